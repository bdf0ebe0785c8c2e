"""Reference compressors on the same bytes: what xz, zstd and PPMd make of the validation text.

For a dataset (training text + validation split) the figure is the conditional
code length of the validation text given the training text, per validation
byte: (bits(C(train + valid)) - bits(C(train))) / validation bytes, for

- xz: LZMA2, preset 9 extreme (64 MiB dictionary);
- zstd: level 19, long-distance matching, 128 MiB window (`zstd --long=27 -19`);
- ppmd: PPMd variant H (7z's), model order 8, 256 MiB of model memory (`pyppmd`).

They are *adaptive*: they keep learning from the validation text while coding
it, where the models are frozen at evaluation (`nightshift eval --online` scores
a memory family the same way). Texts are the documents' UTF-8 bytes, concatenated
in manifest order without separators (exactly the bytes bits/byte counts). The
cost stays bounded on large datasets: only the last TRAIN_TAIL_BYTES of training
text condition the code (the report says how many were used). Computed once per
dataset and cached beside it: `<store>/datasets/<dataset_id>/references.json`.
"""

from __future__ import annotations

import logging
import lzma
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from nightshift.pipelines.reader import open_dataset
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)

FORMAT = "nightshift.references/1"
NAMES = ("xz", "zstd", "ppmd")
TRAIN_TAIL_BYTES = 8_000_000
PPMD_ORDER, PPMD_MEMORY = 8, 256 << 20
ZSTD_LEVEL, ZSTD_WINDOW_LOG = 19, 27
SETTINGS = {"train_tail_bytes": TRAIN_TAIL_BYTES, "xz": "preset 9 extreme",
            "zstd": f"level {ZSTD_LEVEL}, long mode, window 2^{ZSTD_WINDOW_LOG}",
            "ppmd": f"PPMd H, order {PPMD_ORDER}, {PPMD_MEMORY >> 20} MiB"}
NOTE = ("adaptive compressors: conditional code length of the validation text given the (tail of the) training "
        "text; they also learn from the validation text while coding it")
FILE = "references.json"


def xz_bytes(data: bytes) -> int:
    return len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME))


def zstd_bytes(data: bytes) -> int:
    import zstandard

    params = zstandard.ZstdCompressionParameters.from_level(ZSTD_LEVEL, window_log=ZSTD_WINDOW_LOG,
                                                            enable_ldm=True)
    return len(zstandard.ZstdCompressor(compression_params=params).compress(data))


def ppmd_bytes(data: bytes) -> int:
    import pyppmd

    encoder = pyppmd.Ppmd7Encoder(PPMD_ORDER, PPMD_MEMORY)
    return len(encoder.encode(data) + encoder.flush())


COMPRESSORS: dict[str, Callable[[bytes], int]] = {"xz": xz_bytes, "zstd": zstd_bytes, "ppmd": ppmd_bytes}


def conditional_bpb(name: str, train: bytes, valid: bytes) -> float:
    """(bits(train + valid) - bits(train)) / len(valid) with compressor `name`."""
    size = COMPRESSORS[name]
    return 8.0 * (size(train + valid) - size(train)) / len(valid)


def dataset_texts(store: Store, dataset_id: str, tail_bytes: int = TRAIN_TAIL_BYTES) -> tuple[bytes, bytes]:
    """(last `tail_bytes` of the training text, the whole validation text), decoded from the shards."""
    dataset = open_dataset(store, dataset_id)
    table = dataset.tokenizer().token_bytes()

    def docs(entry: dict) -> list[bytes]:
        shard = dataset.load_shard(entry)
        out = []
        for i in range(len(shard.doc_ids)):
            ids = shard.tokens[shard.offsets[i]:shard.offsets[i + 1]]
            text = b"".join(map(table.__getitem__, np.asarray(ids, dtype=np.int64).tolist()))
            if len(text) != int(shard.n_bytes[i]):  # a lossy tokenizer cannot be scored per byte at all
                raise ValueError(f"{dataset_id}: document {shard.doc_ids[i]} decodes to {len(text)} bytes, "
                                 f"the manifest says {int(shard.n_bytes[i])}")
            out.append(text)
        return out

    valid = b"".join(t for entry in dataset.shards("validation") for t in docs(entry))
    tail: list[bytes] = []
    held = 0
    for entry in reversed(dataset.shards("train")):  # only as many shards as the tail needs
        for text in reversed(docs(entry)):
            tail.append(text)
            held += len(text)
        if held >= tail_bytes:
            break
    train = b"".join(reversed(tail))
    return train[-tail_bytes:] if len(train) > tail_bytes else train, valid


def compute_references(train: bytes, valid: bytes, names: tuple[str, ...] = NAMES) -> dict[str, Any]:
    bpb, seconds = {}, {}
    for name in names:
        t0 = time.perf_counter()
        bpb[name] = conditional_bpb(name, train, valid)
        seconds[name] = round(time.perf_counter() - t0, 3)
    return {"format": FORMAT, "settings": SETTINGS, "note": NOTE, "train_bytes_used": len(train),
            "validation_bytes": len(valid), "bpb": bpb, "seconds": seconds}


def references_for(store: Store, dataset_id: str, *, compute: bool = True) -> dict[str, Any] | None:
    """The dataset's reference figures: cached beside it, computed (and cached) on first use.

    compute=False: only what is cached (None when nothing is, or it was made with other settings).
    """
    where = ("datasets", dataset_id, FILE)
    if store.exists(*where):
        cached = store.read_json(*where)
        if cached.get("format") == FORMAT and cached.get("settings") == SETTINGS:
            return cached
    if not compute:
        return None
    t0 = time.perf_counter()
    train, valid = dataset_texts(store, dataset_id)
    refs = compute_references(train, valid)
    refs["dataset_id"] = dataset_id
    store.write_json(refs, *where)
    log.info("references for %s in %.1fs: %s", dataset_id, time.perf_counter() - t0,
             ", ".join(f"{k} {v:.3f}" for k, v in refs["bpb"].items()))
    return refs


def reference_metrics(refs: dict[str, Any], suffix: str = "") -> dict[str, float]:
    """MLflow metric names: `reference/<name>/val_bpb[/<suffix>]` (labelled adaptive by a tag beside them)."""
    tail = f"/{suffix}" if suffix else ""
    return {f"reference/{name}/val_bpb{tail}": float(v) for name, v in refs["bpb"].items()}
