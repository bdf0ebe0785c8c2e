"""Holographic memory at 1 M and 10 M episodes: observe and query rates, RSS, and checkpoints before/after.

One fresh process per size (so peak RSS is its own). In it, side by side on the
same model state, interleaved:

  original  the checkpoint code before incremental chunks (`git show REV:orchestrator/checkpoint.py`, the
            file's path at that revision, later orchestrator/checkpointing/trail.py; written to the scratch
            folder with its bare `orchestrator.` / `pipelines.` imports pointed at `nightshift.`, and imported
            from there, never copied into the project). Where git cannot find REV only the chunked side runs.
  chunked   this checkout's CheckpointTrail (orchestrator/checkpointing/chunks.py)

Phases: fill the store to N - 2 delta episodes (the store still has room: it appends) and save
(both write everything); observe delta more and save again (append: the chunked save writes only the
new tail); observe 2 delta more so the reservoir is full and replaces rows at random places, and save
(the chunked save rewrites nearly every chunk: reported, not hidden); restore each checkpoint.
delta = N / 100. Each save is timed with `model.state_dict()` (which both pay) apart.

Text: the pg19 sample (gpt2) repeated as needed: a throughput and memory measurement only.
The planner's checkpoint write rate is this benchmark's recorded figure (chunked, first save, largest N).

    python -m benchmarks run scale_memory [--set sizes='[1000000,10000000]']
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from benchmarks.harness import ROOT, SHARED, Benchmark, Context, status_bytes

ORIGINAL_REV = "7682f24"  # main before incremental checkpoints
ORIGINAL_PATHS = ("orchestrator/checkpoint.py", "orchestrator/checkpointing/trail.py")  # then, and since


class PeakRSS:
    """Highest VmRSS seen while the block runs (sampled every 5 ms), minus RSS at entry."""

    def __enter__(self) -> "PeakRSS":
        self.base = self.peak = status_bytes("VmRSS")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        self.t0, self.c0 = time.perf_counter(), time.process_time()
        return self

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, status_bytes("VmRSS"))

    def __exit__(self, *exc: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.t0, time.process_time() - self.c0
        self._stop.set()
        self._thread.join()
        self.extra = max(0, self.peak - self.base)


def original_source(rev: str) -> str | None:
    """The checkpoint module as it was at `rev` (None where git cannot show it: a shallow clone, a snapshot)."""
    for path in ORIGINAL_PATHS:
        try:
            return subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, check=True, capture_output=True,
                                  text=True).stdout
        except (OSError, subprocess.CalledProcessError):
            continue
    return None


def original_trail_class(rev: str, scratch: Path):
    """CheckpointTrail as it was at `rev`, from a file in the scratch folder (never copied into the project)."""
    folder = scratch / "original"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"checkpoint_{rev}.py"
    if not path.exists():
        text = original_source(rev)
        if text is None:
            return None
        # the code then imported the project's folders by bare name; today they live under nightshift.
        text = re.sub(r"^(\s*)(from|import) (orchestrator|pipelines|models)([. ])", r"\1\2 nightshift.\3\4", text,
                      flags=re.M)
        path.write_text(text)
    spec = importlib.util.spec_from_file_location(f"original_checkpoint_{rev}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module.CheckpointTrail


def token_stream(books: int | None = None) -> tuple[object, torch.Tensor]:
    import pyarrow.parquet as pq
    import tiktoken

    from nightshift.models.protocol import Vocab

    enc = tiktoken.get_encoding("gpt2")
    vocab = Vocab(name="gpt2", size=enc.n_vocab, eot_id=enc.eot_token)
    texts = pq.read_table(SHARED / "pg19" / "train.parquet", columns=["text"]).column("text").to_pylist()
    ids = [t + [enc.eot_token] for t in enc.encode_ordinary_batch(texts[:books])]
    return vocab, torch.tensor([i for doc in ids for i in doc])


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def measure_child(n: int, rev: str, scratch: str, books: int | None = None) -> dict:
    """Fresh process: one size, its store under `scratch` (removed afterwards)."""
    root = Path(scratch) / f"ckpt-{n}"
    shutil.rmtree(root, ignore_errors=True)
    try:
        return measure(n, rev, root, Path(scratch), books)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def measure(n: int, rev: str, store_root: Path, scratch: Path, books: int | None = None) -> dict:
    from nightshift.models.holographic import Config
    from nightshift.models.holographic.store import knn
    from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
    from nightshift.pipelines.store import Store

    Original = original_trail_class(rev, scratch)
    vocab, stream = token_stream(books)
    rss_before_model = status_bytes("VmRSS")
    model = Config(context_size=64, max_attractors=n).build(vocab)
    width, batch = model.train_seq_len + 1, 16
    windows = (stream.numel() - 1) // width
    delta = n // 100
    out: dict = {"episodes_target": n, "delta": delta, "threads": torch.get_num_threads(),
                 "load_before": os.getloadavg(), "original_rev": rev if Original else None}
    cursor = 0

    def observe_until(target: int) -> tuple[float, float, int]:
        nonlocal cursor
        t0, c0, seen = time.perf_counter(), time.process_time(), 0
        while model.memory.counters["samples"] < target:
            idx = (torch.arange(batch) + cursor) % windows
            rows = torch.stack([stream[i * width:(i + 1) * width] for i in idx.tolist()])
            seen += int(model.observe(rows)["samples"])
            cursor += batch
        return time.perf_counter() - t0, time.process_time() - c0, seen

    with PeakRSS():
        wall, cpu, seen = observe_until(n - 2 * delta)
    out["observe"] = {"episodes": seen, "wall_s": wall, "cpu_s": cpu, "episodes_per_s": seen / wall,
                      "episodes_per_cpu_s": seen / cpu}
    trails = {"chunked": CheckpointTrail(Store.open(str(store_root / "chunked")), ("runs", "r"))}
    if Original is not None:
        trails["original"] = Original(Store.open(str(store_root / "original")), ("runs", "r"))
    saves: dict[str, list] = {name: [] for name in trails}
    order = [("original", "chunked"), ("chunked", "original"), ("original", "chunked")]
    phases = [("first", None), ("append", n - delta), ("full", n + delta)]
    for step, ((phase, target), names) in enumerate(zip(phases, order, strict=True), start=1):
        if target is not None:
            observe_until(target)
        with PeakRSS() as sd:
            state = {"model": model.state_dict(), "step": step}
        for name in (nm for nm in names if nm in trails):
            before = dir_bytes(store_root / name) if (store_root / name).exists() else 0
            with PeakRSS() as clock:
                info = trails[name].save(state, step, step - 1 or None)
            saves[name].append({"phase": phase, "store_rows": model.memory.store.size, "save_s": clock.wall,
                                "save_cpu_s": clock.cpu, "state_dict_s": sd.wall, "peak_extra_rss": clock.extra,
                                "written_bytes": dir_bytes(store_root / name) - before,
                                "checkpoint_bytes": info["bytes"] + info.get("chunk_bytes", 0),
                                "new_chunk_bytes": info.get("new_chunk_bytes")})
        del state
    for name in (nm for nm in ("chunked", "original", "chunked", "original") if nm in trails):
        trail = trails[name]
        with PeakRSS() as clock:
            loaded = trail.load(3)
        restored = Config(context_size=64, max_attractors=n).build(vocab)
        restored.load_state_dict(loaded["model"])
        assert torch.equal(restored.memory.store.view("key"), model.memory.store.view("key"))
        saves[name].append({"phase": "restore", "load_s": clock.wall, "load_cpu_s": clock.cpu,
                            "peak_extra_rss": clock.extra})
        del loaded, restored
    out["checkpoints"] = saves
    # retrieval over the whole store
    from nightshift.models.holographic.context import window_features

    q_rows = torch.stack([stream[i * width + 7:i * width + 7 + 65] for i in range(256)])
    keys, _, _ = window_features(model.embeddings, q_rows[:, :-1], 64)
    q = keys[:, -1]
    bank = model.memory.store.view("key")
    knn(q[:16], bank, model.config.knn_k)
    t0 = time.perf_counter()
    knn(q, bank, model.config.knn_k)
    out["knn"] = {"queries": q.shape[0], "stored_keys": bank.shape[0],
                  "queries_per_s": q.shape[0] / (time.perf_counter() - t0)}
    out["memory"] = {"store_rows": model.memory.store.size, "store_bytes": model.memory.store.nbytes(),
                     "memory_bytes": model.memory_bytes(), "rss_before_model": rss_before_model,
                     "rss_after": status_bytes("VmRSS"), "peak_rss": status_bytes("VmHWM")}
    out["load_after"] = os.getloadavg()
    return out


def run(ctx: Context) -> dict:
    rev = ctx["rev"]
    if original_source(rev) is None:
        ctx.note(f"original not available: git cannot show {rev}:{ORIGINAL_PATHS[0]} here; the comparison was "
                 "skipped (the chunked checkpoints timed alone)")
    results = []
    for n in ctx["sizes"]:
        res = ctx.child("measure_child", n=int(n), rev=rev, scratch=str(ctx.work), books=ctx["books"])
        results.append(res)
        report(ctx, res)
    largest = max(results, key=lambda r: r["episodes_target"])
    first = next(s for s in largest["checkpoints"]["chunked"] if s["phase"] == "first")
    return {"results": results, "planner": {"checkpoint_bytes_per_s": first["written_bytes"] / first["save_s"]}}


def report(ctx: Context, r: dict) -> None:
    gb = 1e9
    ctx.log(f"== {r['memory']['store_rows']:,} episodes (load {r['load_before'][0]:.1f} -> "
            f"{r['load_after'][0]:.1f})")
    o = r["observe"]
    ctx.log(f"observe: {o['episodes_per_s']:,.0f} episodes/s wall, {o['episodes_per_cpu_s']:,.0f} per CPU-s")
    ctx.log(f"kNN: {r['knn']['queries_per_s']:,.1f} queries/s over {r['knn']['stored_keys']:,} keys")
    m = r["memory"]
    ctx.log(f"store {m['store_bytes'] / gb:.2f} GB, memory {m['memory_bytes'] / gb:.2f} GB, "
            f"RSS {m['rss_after'] / gb:.2f} GB, peak {m['peak_rss'] / gb:.2f} GB")
    c = r["checkpoints"]
    for i, phase in enumerate(("first", "append", "full")):
        b = c["chunked"][i]
        line = (f"chunked {b['save_s']:6.2f} s {b['written_bytes'] / gb:5.2f} GB (+{b['peak_extra_rss'] / gb:.2f} GB "
                f"RSS); state_dict {b['state_dict_s']:.2f} s")
        if "original" in c:
            a = c["original"][i]
            line = (f"original {a['save_s']:6.2f} s {a['written_bytes'] / gb:5.2f} GB "
                    f"(+{a['peak_extra_rss'] / gb:.2f} GB RSS) | {line} | ratio {a['save_s'] / b['save_s']:.1f}x")
        ctx.log(f"save {phase:6s}: {line}")
    lc = [x["load_s"] for x in c["chunked"][3:]]
    if "original" in c:
        lo = [x["load_s"] for x in c["original"][3:]]
        ctx.log(f"restore: original {min(lo):.2f} s, chunked {min(lc):.2f} s (best of 2, warm page cache)")
    else:
        ctx.log(f"restore: chunked {min(lc):.2f} s (best of 2, warm page cache)")


def markdown(doc: dict) -> str:
    """RESULTS.md: each size's saves side by side (seconds / GB written / extra RSS), then observe and kNN."""
    gb = 1e9

    def side(x: dict | None) -> str:
        return f"{x['save_s']:.2f} / {x['written_bytes'] / gb:.3f} / +{x['peak_extra_rss'] / gb:.3f}" if x else "-"

    lines = ["| N = episodes | phase | original: s / GB written / extra RSS | chunked: s / GB written / extra RSS "
             "| ratio (s) |", "|---:|---|---|---|---:|"]
    for r in doc["figures"]["results"]:
        c, n = r["checkpoints"], f"{r['episodes_target']:,}"
        for i, phase in enumerate(("first", "append", "full")):
            a, b = (c["original"][i] if "original" in c else None), c["chunked"][i]
            ratio = f"{a['save_s'] / b['save_s']:.1f}x" if a else "-"
            lines.append(f"| {n} | {phase} | {side(a)} | {side(b)} | {ratio} |")
        lc = min(x["load_s"] for x in c["chunked"][3:])
        lo = min(x["load_s"] for x in c["original"][3:]) if "original" in c else None
        lines.append(f"| {n} | restore (best of 2) | {f'{lo:.2f} s' if lo else '-'} | {lc:.2f} s | "
                     f"{f'{lo / lc:.1f}x' if lo else '-'} |")
    lines += ["", "| N | observe episodes/s | per CPU-s | kNN queries/s | store GB | peak RSS GB |",
              "|---:|---:|---:|---:|---:|---:|"]
    for r in doc["figures"]["results"]:
        o, m = r["observe"], r["memory"]
        lines.append(f"| {r['episodes_target']:,} | {o['episodes_per_s']:,.0f} | {o['episodes_per_cpu_s']:,.0f} | "
                     f"{r['knn']['queries_per_s']:,.1f} | {m['store_bytes'] / gb:.2f} | {m['peak_rss'] / gb:.2f} |")
    rate = doc["figures"]["planner"]["checkpoint_bytes_per_s"]
    lines.append(f"\nplanner: chunked checkpoint writes {rate / 1e6:,.0f} MB/s (first save, largest N)")
    return "\n".join(lines)


BENCHMARK = Benchmark(
    name="scale_memory",
    summary="holographic at 1 M / 10 M episodes: observe and kNN rates, RSS, and incremental (chunked) "
            "checkpoints against the original checkpoint code (git), interleaved",
    run=run,
    threads=1,
    full={"sizes": [1_000_000, 10_000_000], "rev": ORIGINAL_REV, "books": None},
    toy={"sizes": [20_000], "rev": ORIGINAL_REV, "books": 2},
    goal="incremental checkpoint cost follows the new data (10 M episodes, +1 %)",
    table=markdown,
)
