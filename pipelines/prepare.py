"""`prepare`: stream a source, split it, tokenize on Ray actors, write shards, manifest last.

Layout under `<store>/datasets/<dataset_id>/`:
  prepare.json          what is being built (config + tokenizer identity), written with the first shard
  ledger/<split>-NNNNN.json   one entry per finished shard (a killed prepare resumes from these)
  shards/<split>/NNNNN.arrow
  manifest.json         written last: its presence means "complete"
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.ids import canonical_json, content_id, digest
from nightshift.pipelines.progress import PrepareProgress
from nightshift.pipelines.reader import INTENT, MANIFEST
from nightshift.pipelines.shards import ShardTask
from nightshift.pipelines.sizes import format_size
from nightshift.pipelines.source_spec import canonical_source, parse_source
from nightshift.pipelines.sources import Source, open_source
from nightshift.pipelines.split import RULES, SPLIT_RULES, SPLITS, PlanStats, plan_shards, resolve_rule
from nightshift.pipelines.store import FileSpec, Store, StoreFullError
from nightshift.pipelines.tokenizers import TOKENIZER_NAMES, Tokenizer, load_tokenizer, token_dtype
from nightshift.pipelines.workers import RayPool, ShardWriter, run_in_process

log = logging.getLogger(__name__)

FORMAT = "nightshift.dataset/1"
LEDGER = FileSpec(
    what="prepare ledger entry",
    fix="delete it and re-run the same `nightshift prepare` (that one shard is written again)",
    fields={"path": str, "split": str, "index": int, "digest": str, "size": int, "docs": int, "tokens": int,
            "bytes": int, "sha256": str})


@dataclass(frozen=True, slots=True, kw_only=True)
class PrepareConfig:
    """Everything that decides the bytes of a dataset; all of it goes into the dataset id."""

    source: str  # pg19 | fineweb | fineweb-edu | tinystories | hf:OWNER/REPO[:CONFIG][@REVISION] | local:PATH | URL
    max_bytes: int = 10_000_000  # UTF-8 bytes of training text (the last document is cut to fit)
    valid_bytes: int = 1_000_000  # UTF-8 bytes of validation text, the same for every max_bytes
    valid_docs: int = 32  # validation spans this many documents (a share of each); 0: whole docs in order
    tokenizer: str = "gpt2"  # gpt2 | r50k_base | cl100k_base | o200k_base | bytes
    text_field: str = "text"
    id_field: str | None = None  # None: `id`, else `url`, else a sha256 of the text
    config: str | None = None  # HF config name of an alias (fineweb: sample-10BT); an hf: source holds its own
    revision: str | None = None  # HF revision (branch, tag or commit) of an alias; an hf: source holds its own
    split_rule: str = "auto"  # auto: the source's own split, else by offset for one document, else by doc-id hash
    valid_permille: int = 50  # hash rule: share of doc ids (per mille) assigned to validation
    split_seed: int = 0  # hash rule: salt of the doc-id hash
    shard_bytes: int = 4_000_000  # target UTF-8 text bytes per shard (documents are never split)

    def __post_init__(self) -> None:
        for name in ("max_bytes", "valid_bytes", "shard_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise DataError(f"{name} must be a positive number of bytes, got {value!r}")
        if self.tokenizer not in TOKENIZER_NAMES:
            raise DataError(f"unknown tokenizer {self.tokenizer!r}; accepted: {', '.join(TOKENIZER_NAMES)}")
        if self.split_rule not in SPLIT_RULES:
            raise DataError(f"unknown split rule {self.split_rule!r}; accepted: {', '.join(SPLIT_RULES)}")
        if isinstance(self.valid_docs, bool) or not isinstance(self.valid_docs, int) or self.valid_docs < 0:
            raise DataError(f"valid_docs must be a whole number >= 0 (0: whole documents), got {self.valid_docs!r}")
        if not 0 < self.valid_permille < 1000:
            raise DataError(f"valid_permille must be in 1..999, got {self.valid_permille!r}")
        # the same data asked for two ways is one dataset: a folder by two paths, hf: flags folded into the spec
        source, config, revision = canonical_source(self.source, self.config, self.revision)
        for name, value in (("source", source), ("config", config), ("revision", revision)):
            object.__setattr__(self, name, value)

    def build(self) -> "PreparePlan":
        source = open_source(self.source, text_field=self.text_field, id_field=self.id_field,
                             config=self.config, revision=self.revision)
        tokenizer = load_tokenizer(self.tokenizer)
        rule = resolve_rule(self.split_rule, source)
        identity = tokenizer.identity()
        data = source.fingerprint()
        payload = {"format": FORMAT, "config": self, "tokenizer": identity, "data": data, "split_rule": rule}
        slug = f"{parse_source(self.source).slug}-{format_size(self.max_bytes)}-{self.tokenizer}"
        validation = {"data": data, "rule": rule, "valid_bytes": self.valid_bytes, "text_field": self.text_field,
                      "id_field": self.id_field, "valid_docs": self.valid_docs, "draw": RULES[rule].draw}
        if rule == "hash":
            validation |= {"valid_permille": self.valid_permille, "split_seed": self.split_seed}
        return PreparePlan(config=self, source=source, tokenizer=tokenizer, rule=rule, identity=identity,
                           data=data, dataset_id=content_id(slug, payload), validation_id=digest(validation))


@dataclass(frozen=True, slots=True)
class PreparePlan:
    config: PrepareConfig
    source: Source
    tokenizer: Tokenizer
    rule: str
    identity: dict
    data: dict
    dataset_id: str
    validation_id: str  # equal for every max_bytes of one source: "scored on the same bytes"

    @property
    def dir(self) -> str:
        return f"datasets/{self.dataset_id}"

    def intent(self) -> dict:
        return {"format": FORMAT, "dataset_id": self.dataset_id, "config": config_dict(self.config),
                "tokenizer": self.identity, "data": self.data, "split_rule": self.rule}


@dataclass(frozen=True, slots=True)
class Manifest:
    """What `prepare` returns: the manifest plus how this call got it."""

    dataset_id: str
    uri: str
    data: dict[str, Any]
    status: str  # "prepared" (written now) or "exists" (already complete: no-op)
    written_shards: int = 0
    reused_shards: int = 0
    seconds: float = 0.0
    worker_peak_rss_mb: float = 0.0  # largest resident memory any tokenizing worker reached (0: none ran)
    worker_cpu_seconds: float = 0.0  # CPU time of the tokenizing worker processes, whole lifetime

    def summary(self) -> dict[str, Any]:
        splits = {s: {k: v["totals"][k] for k in ("docs", "tokens", "bytes", "shards")}
                  for s, v in self.data["splits"].items()}
        return {"dataset_id": self.dataset_id, "path": self.uri, "status": self.status,
                "source": self.data["config"]["source"], "split_rule": self.data["split_rule"],
                "tokenizer": self.data["tokenizer"]["name"], "vocab_size": self.data["tokenizer"]["vocab_size"],
                "token_dtype": self.data["token_dtype"], "splits": splits,
                "written_shards": self.written_shards, "reused_shards": self.reused_shards,
                "seconds": round(self.seconds, 2)}


def config_dict(config: PrepareConfig) -> dict[str, Any]:
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}


def dataset_id(config: PrepareConfig) -> str:
    """`<slug>-<16 hex>` over the whole config, the tokenizer identity and the data's fingerprint."""
    return config.build().dataset_id


def prepare(config: PrepareConfig, store: Store, *, actors: int = 1, progress: bool = True) -> Manifest:
    """Build the dataset (or finish a killed build); a finished one is returned untouched."""
    start = time.perf_counter()
    if actors < 0:
        raise DataError(f"actors must be >= 0 (0 = tokenize in this process), got {actors}")
    plan = config.build()
    if store.exists(plan.dir, "manifest.json"):
        existing = store.read_json(plan.dir, "manifest.json", spec=MANIFEST)
        _refuse_mismatch(existing, plan, "manifest.json")
        return Manifest(plan.dataset_id, store.uri(plan.dir), existing, "exists",
                        seconds=time.perf_counter() - start)
    plan.source.check()  # bad columns / unreadable files: fail before the store is touched
    store.check_writable()
    resumed = store.exists(plan.dir, "prepare.json")
    if resumed:
        _refuse_mismatch(store.read_json(plan.dir, "prepare.json", spec=INTENT), plan, "prepare.json")
    ledger = _read_ledger(store, plan.dir)
    try:
        entries, stats, run = _run(plan, store, ledger, actors=actors, progress=progress)
    except DataError as exc:
        if not resumed and not isinstance(exc, StoreFullError):  # a fresh build that fails leaves nothing behind
            store.remove(plan.dir, recursive=True)  # (a full disk keeps its ledger: the same command resumes)
        raise
    manifest = _manifest(plan, entries, stats)
    store.write_json(manifest, plan.dir, "manifest.json")
    seconds = time.perf_counter() - start
    written = run.written
    log.info("prepared %s: %d shards written, %d reused, %.1fs", plan.dataset_id, written, len(entries) - written,
             seconds)
    return Manifest(plan.dataset_id, store.uri(plan.dir), manifest, "prepared", written_shards=written,
                    reused_shards=len(entries) - written, seconds=seconds, worker_peak_rss_mb=run.peak_rss_mb,
                    worker_cpu_seconds=sum(run.cpu_by_pid.values()))


def _run(plan: PreparePlan, store: Store, ledger: dict[str, dict], *, actors: int,
         progress: bool) -> tuple[Any, ...]:
    cfg = plan.config
    stats = PlanStats()
    entries: dict[str, dict] = {}
    tasks = plan_shards(plan.source, rule=plan.rule, max_bytes=cfg.max_bytes, valid_bytes=cfg.valid_bytes,
                        shard_bytes=cfg.shard_bytes, valid_permille=cfg.valid_permille,
                        split_seed=cfg.split_seed, stats=stats, valid_docs=cfg.valid_docs)

    def todo() -> Iterator[ShardTask]:
        for task in tasks:
            done = ledger.get(task.path)
            if done is not None and done["digest"] == task.digest and _shard_intact(store, plan.dir, done):
                entries[task.path] = done
                bar.update_reused(done)
                continue
            yield task

    bar = PrepareProgress(plan.dataset_id, total_bytes=cfg.max_bytes + cfg.valid_bytes, enabled=progress)
    pool = None
    run = _RunStats()
    try:
        if actors > 0:
            pool = RayPool(actors=actors, store_url=store.url, dataset_dir=plan.dir, tokenizer=cfg.tokenizer)
            results = pool.run(todo())
        else:
            results = run_in_process(todo(), ShardWriter(store.url, plan.dir, cfg.tokenizer))
        for entry in results:
            run.add(entry.pop("worker", {}))
            if run.written == 0 and not store.exists(plan.dir, "prepare.json"):
                store.write_json(plan.intent(), plan.dir, "prepare.json")
            store.write_json(entry, plan.dir, "ledger", _ledger_name(entry))
            entries[entry["path"]] = entry
            run.written += 1
            bar.update(entry)
    finally:
        bar.close()
        if pool is not None:
            pool.close()
    return entries, stats, run


@dataclass(slots=True)
class _RunStats:
    written: int = 0
    peak_rss_mb: float = 0.0
    cpu_by_pid: dict[int, float] = dataclasses.field(default_factory=dict)  # cumulative per worker process

    def add(self, worker: dict) -> None:
        self.peak_rss_mb = max(self.peak_rss_mb, worker.get("peak_rss_mb", 0.0))
        pid = worker.get("pid", 0)
        self.cpu_by_pid[pid] = max(self.cpu_by_pid.get(pid, 0.0), worker.get("cpu_s", 0.0))


def _ledger_name(entry: dict) -> str:
    return f"{entry['split']}-{entry['index']:05d}.json"


def _read_ledger(store: Store, ds_dir: str) -> dict[str, dict]:
    invalidate = getattr(store.fs, "invalidate_cache", None)
    if invalidate:
        invalidate()  # s3fs caches listings; another process may have written since
    out = {}
    for name in store.listdir(ds_dir, "ledger"):
        if name.endswith(".json"):
            entry = store.read_json(ds_dir, "ledger", name, spec=LEDGER)
            out[entry["path"]] = entry
    return out


def _shard_intact(store: Store, ds_dir: str, entry: dict) -> bool:
    try:
        return store.fs.size(store.path(ds_dir, entry["path"])) == entry["size"]
    except FileNotFoundError:
        return False


def _refuse_mismatch(found: dict, plan: PreparePlan, what: str) -> None:
    """Same id, different contents: never reuse it silently (levanter warns; we refuse)."""
    expected = plan.intent()
    for key in ("config", "tokenizer", "data", "split_rule"):
        if canonical_json(found.get(key)) != canonical_json(expected[key]):
            raise DataError(
                f"dataset {plan.dataset_id} already exists with a different {key} in its {what} "
                f"(found {canonical_json(found.get(key))[:200]}); refusing to reuse it: delete "
                f"{plan.dir} from the store or change the config"
            )


def _manifest(plan: PreparePlan, entries: dict[str, dict], stats: PlanStats) -> dict[str, Any]:
    splits = {}
    for split in SPLITS:
        shards = sorted((e for e in entries.values() if e["split"] == split), key=lambda e: e["index"])
        shards = [{k: e[k] for k in ("path", "index", "docs", "tokens", "bytes", "size", "sha256", "digest")}
                  for e in shards]
        totals = {"docs": sum(s["docs"] for s in shards), "tokens": sum(s["tokens"] for s in shards),
                  "bytes": sum(s["bytes"] for s in shards), "shards": len(shards),
                  "truncated_docs": stats.splits[split].truncated_docs}
        planned = stats.splits[split]
        if (totals["shards"], totals["docs"], totals["bytes"]) != (planned.shards, planned.docs, planned.bytes):
            raise RuntimeError(f"{split}: shards on record {totals} disagree with the plan {planned}")  # a bug
        splits[split] = {"totals": totals, "shards": shards}
    splits["validation"]["text_sha256"] = stats.validation_text_sha256
    splits["validation"]["validation_id"] = plan.validation_id
    splits["validation"]["draw"] = stats.validation_draw
    return {
        **plan.intent(),
        "token_dtype": token_dtype(plan.tokenizer.vocab_size).name,
        "splits": splits,
        "stats": {"seen_docs": stats.seen_docs, "skipped_empty_docs": stats.skipped_empty_docs,
                  "invalid_utf8_replacements": stats.invalid_utf8_replacements,
                  "source_exhausted": stats.source_exhausted},
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
