"""Reading a prepared dataset: token windows for training, whole documents for bits-per-byte.

Training windows never cross a shard boundary. Each epoch draws a seeded
permutation of the shards and, inside each shard, of its windows; global
sample g of the epoch goes to rank g % world_size, truncated so every rank
gets the same number of batches. Only the shards being read are in memory
(at most two), and each is checked against its sha256 when loaded.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from nightshift.pipelines.errors import DataError
from nightshift.pipelines.ids import validate_id
from nightshift.pipelines.shards import ShardData, decode_shard
from nightshift.pipelines.store import FileSpec, Store
from nightshift.pipelines.tokenizers import Tokenizer, load_tokenizer

SHARD_CACHE = 2  # shards held in memory by one reader

_SHARD_FIELDS = {"path": str, "index": int, "docs": int, "tokens": int, "bytes": int, "size": int, "sha256": str}
MANIFEST = FileSpec(
    what="dataset manifest",
    fix="delete it and re-run the same `nightshift prepare` (it rebuilds the manifest from the finished shards)",
    fields={"config.source": str, "config.max_bytes": int, "tokenizer.name": str, "tokenizer.vocab_size": int,
            "tokenizer.eot_id": int, "token_dtype": str, "split_rule": str,
            **{f"splits.{split}.totals.{k}": int for split in ("train", "validation")
               for k in ("docs", "tokens", "bytes", "shards")},
            **{f"splits.{split}.shards[].{k}": t for split in ("train", "validation")
               for k, t in _SHARD_FIELDS.items()}})
INTENT = FileSpec(
    what="prepare record",
    fix="delete the dataset folder and re-run the same `nightshift prepare`",
    fields={"config.source": str, "config.max_bytes": int, "tokenizer.name": str, "split_rule": str})


@dataclass(frozen=True, slots=True)
class ValidationDoc:
    doc_id: str
    tokens: np.ndarray  # (n_tokens,) int64, without end-of-text
    n_bytes: int  # UTF-8 bytes of exactly this document's text


def list_datasets(store: Store) -> list[dict[str, Any]]:
    """Every dataset in the store, complete or not, for a `nightshift datasets`-style listing."""
    out = []
    for name in store.listdir("datasets"):
        if store.exists("datasets", name, "manifest.json"):
            m = store.read_json("datasets", name, "manifest.json", spec=MANIFEST)
            t, v = m["splits"]["train"]["totals"], m["splits"]["validation"]["totals"]
            out.append({"id": name, "status": "complete", "source": m["config"]["source"],
                        "tokenizer": m["tokenizer"]["name"], "max_bytes": m["config"]["max_bytes"],
                        "train_bytes": t["bytes"], "train_tokens": t["tokens"], "train_docs": t["docs"],
                        "validation_bytes": v["bytes"], "validation_tokens": v["tokens"],
                        "validation_id": m["splits"]["validation"].get("validation_id"), "created": m.get("created")})
        elif store.exists("datasets", name, "prepare.json"):
            m = store.read_json("datasets", name, "prepare.json", spec=INTENT)
            out.append({"id": name, "status": "incomplete", "source": m["config"]["source"],
                        "tokenizer": m["tokenizer"]["name"], "max_bytes": m["config"]["max_bytes"]})
    return out


def open_dataset(store: Store, dataset_id: str) -> "Dataset":
    validate_id(dataset_id, "dataset id")
    if not store.exists("datasets", dataset_id, "manifest.json"):
        if store.exists("datasets", dataset_id, "prepare.json"):
            raise DataError(f"dataset {dataset_id} in {store.url} is incomplete (no manifest.json); "
                            "re-run the same `nightshift prepare` to finish it")
        known = [d["id"] for d in list_datasets(store) if d["status"] == "complete"]
        raise DataError(f"no dataset {dataset_id!r} in {store.url}; datasets there: "
                        f"{', '.join(known) if known else '(none; create one with nightshift prepare)'}")
    return Dataset(store, dataset_id, store.read_json("datasets", dataset_id, "manifest.json", spec=MANIFEST))


class Dataset:
    def __init__(self, store: Store, dataset_id: str, manifest: dict) -> None:
        self.store = store
        self.id = dataset_id
        self.manifest = manifest
        self._tokenizer: Tokenizer | None = None

    @property
    def source(self) -> str:
        return self.manifest["config"]["source"]

    @property
    def tokenizer_name(self) -> str:
        return self.manifest["tokenizer"]["name"]

    @property
    def vocab_size(self) -> int:
        return int(self.manifest["tokenizer"]["vocab_size"])

    @property
    def eot_id(self) -> int:
        return int(self.manifest["tokenizer"]["eot_id"])

    @property
    def train_bytes(self) -> int:
        return int(self.manifest["splits"]["train"]["totals"]["bytes"])

    @property
    def validation_bytes(self) -> int:
        return int(self.manifest["splits"]["validation"]["totals"]["bytes"])

    def shards(self, split: str) -> list[dict]:
        return list(self.manifest["splits"][split]["shards"])

    def tokenizer(self) -> Tokenizer:
        """The tokenizer that made the shards; refuses one whose vocabulary has changed since."""
        if self._tokenizer is None:
            tok = load_tokenizer(self.tokenizer_name)
            if tok.identity() != self.manifest["tokenizer"]:
                raise DataError(f"tokenizer {self.tokenizer_name!r} here differs from the one that made {self.id} "
                                f"(manifest {self.manifest['tokenizer']}, here {tok.identity()})")
            self._tokenizer = tok
        return self._tokenizer

    def load_shard(self, entry: dict) -> ShardData:
        path = self.store.path("datasets", self.id, entry["path"])
        try:
            data = self.store.fs.cat_file(path)
        except FileNotFoundError:
            raise DataError(f"shard {self.store.uri('datasets', self.id, entry['path'])} is missing; "
                            f"expected sha256 {entry['sha256']}") from None
        return decode_shard(data, entry, self.store.uri("datasets", self.id, entry["path"]))

    def train_reader(self, seq_len: int, batch_size: int, *, rank: int = 0, world_size: int = 1,
                     seed: int = 0) -> "TrainReader":
        return TrainReader(self, seq_len, batch_size, rank=rank, world_size=world_size, seed=seed)

    def validation_docs(self) -> Iterator[ValidationDoc]:
        """Every validation document once, in manifest order, one shard in memory at a time."""
        for entry in self.shards("validation"):
            shard = self.load_shard(entry)
            for i, doc_id in enumerate(shard.doc_ids):
                tokens = shard.tokens[shard.offsets[i]:shard.offsets[i + 1]].astype(np.int64)
                yield ValidationDoc(doc_id=doc_id, tokens=tokens, n_bytes=int(shard.n_bytes[i]))


class TrainReader:
    """Infinite, deterministic, resumable stream of (batch_size, seq_len + 1) int64 windows for one rank."""

    def __init__(self, dataset: Dataset, seq_len: int, batch_size: int, *, rank: int, world_size: int,
                 seed: int) -> None:
        if seq_len < 1 or batch_size < 1:
            raise DataError(f"seq_len and batch_size must be >= 1, got {seq_len} and {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is not in 0..world_size-1 (world_size {world_size})")
        self.dataset = dataset
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.rank = rank
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0
        self.batch = 0  # batches already returned in this epoch
        self._entries = dataset.shards("train")
        # windows per shard: its stream is tokens + one eot per doc; a window needs seq_len + 1 tokens
        self._windows = np.array([max(0, (e["tokens"] + e["docs"] - 1) // seq_len) for e in self._entries],
                                 dtype=np.int64)
        self.samples_per_epoch = int(self._windows.sum())
        self.batches_per_epoch = self.samples_per_epoch // world_size // batch_size
        if self.batches_per_epoch == 0:
            raise DataError(
                f"dataset {dataset.id} has {self.samples_per_epoch} windows of {seq_len + 1} tokens: too few for "
                f"batch_size {batch_size} x world_size {world_size}; use a smaller seq_len/batch or more data")
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._layout_epoch = -1

    def __iter__(self) -> "TrainReader":
        return self

    def __next__(self) -> np.ndarray:
        if self.batch >= self.batches_per_epoch:
            self.epoch += 1
            self.batch = 0
        first = self.batch * self.batch_size
        out = np.empty((self.batch_size, self.seq_len + 1), dtype=np.int64)  # (B, T+1)
        for i in range(self.batch_size):
            out[i] = self._sample((first + i) * self.world_size + self.rank)
        self.batch += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        """The cursor after the last returned batch; the same on every rank (ranks move in lockstep)."""
        return {"dataset_id": self.dataset.id, "seed": self.seed, "epoch": self.epoch, "batch": self.batch,
                "sample_index": self.batch * self.batch_size * self.world_size, "seq_len": self.seq_len,
                "batch_size": self.batch_size, "world_size": self.world_size}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume at the saved cursor; another world size is fine when the global batch is unchanged.

        The cursor is a global sample index, so a run started on one process can
        resume on N Ray workers (each with batch_size / N) at exactly the same sample.
        """
        mine = {"dataset_id": self.dataset.id, "seq_len": self.seq_len}
        for key, value in mine.items():
            if state.get(key) != value:
                raise DataError(f"reader state has {key}={state.get(key)!r} but this reader has {value!r}; "
                                "resume with the same dataset and seq_len")
        global_batch = self.batch_size * self.world_size
        saved_global = int(state["batch_size"]) * int(state["world_size"])
        if saved_global != global_batch:
            raise DataError(f"reader state has a global batch of {saved_global} sequences "
                            f"({state['batch_size']} x {state['world_size']} ranks) but this reader has "
                            f"{global_batch} ({self.batch_size} x {self.world_size}); keep batch_size the same")
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])
        self.batch = int(state["sample_index"]) // global_batch
        self._layout_epoch = -1

    def _layout(self) -> None:
        """This epoch's shard order and cumulative window counts (cheap: one int per shard)."""
        rng = np.random.default_rng([self.seed, self.epoch])
        self._order = rng.permutation(len(self._entries))
        self._cum = np.concatenate([[0], np.cumsum(self._windows[self._order])])
        self._window_perm: dict[int, np.ndarray] = {}
        self._layout_epoch = self.epoch

    def _sample(self, g: int) -> np.ndarray:
        if self._layout_epoch != self.epoch:
            self._layout()
        pos = int(np.searchsorted(self._cum, g, side="right")) - 1
        shard = int(self._order[pos])
        perm = self._window_perm.get(shard)
        if perm is None:
            self._window_perm = {shard: np.random.default_rng([self.seed, self.epoch, shard]).permutation(
                int(self._windows[shard]))}
            perm = self._window_perm[shard]
        start = int(perm[g - self._cum[pos]]) * self.seq_len
        return self._stream(shard)[start:start + self.seq_len + 1]

    def _stream(self, shard: int) -> np.ndarray:
        if shard in self._cache:
            self._cache.move_to_end(shard)
            return self._cache[shard]
        stream = self.dataset.load_shard(self._entries[shard]).stream(self.dataset.eot_id)
        self._cache[shard] = stream
        while len(self._cache) > SHARD_CACHE:
            self._cache.popitem(last=False)
        return stream
