"""Reference compressors: the cached figures equal xz / zstd / PPMd run directly on the same bytes."""

from __future__ import annotations

import json
import lzma
import random
from pathlib import Path

import pyppmd
import pytest
import zstandard

from nightshift.orchestrator.evaluation import references
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.store import Store


def _docs(rng: random.Random, n: int, prefix: str) -> list[str]:
    words = "river stone light quiet morning letter garden window winter house road evening".split()
    return [f"{prefix} {i}: " + " ".join(rng.choice(words) for _ in range(rng.randint(40, 90))) + "."
            for i in range(n)]


def test_cached_references_equal_a_direct_computation_on_the_same_bytes(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(1)
    train_docs, valid_docs = _docs(rng, 120, "Chapter"), _docs(rng, 20, "Letter")
    src = tmp_path / "src"
    src.mkdir()
    for split, docs in (("train", train_docs), ("validation", valid_docs)):
        (src / f"{split}.jsonl").write_text("".join(json.dumps({"id": f"{split}{i}", "text": t}) + "\n"
                                                    for i, t in enumerate(docs)))
    store = Store.open(str(tmp_path / "store"))
    manifest = prepare(PrepareConfig(source=f"local:{src}", max_bytes=30_000, valid_bytes=6_000, valid_docs=4,
                                     tokenizer="gpt2"), store, actors=0, progress=False)
    # what the split rule takes (short documents whole, in order, the last cut to the cap), built independently
    train = "".join(train_docs).encode()[:30_000]
    valid = "".join(valid_docs).encode()[:6_000]

    refs = references.references_for(store, manifest.dataset_id)
    assert refs["validation_bytes"] == len(valid) and refs["train_bytes_used"] == len(train)

    def xz(b: bytes) -> int:
        return len(lzma.compress(b, preset=9 | lzma.PRESET_EXTREME))

    def zstd(b: bytes) -> int:
        params = zstandard.ZstdCompressionParameters.from_level(19, window_log=27, enable_ldm=True)
        return len(zstandard.ZstdCompressor(compression_params=params).compress(b))

    def ppmd(b: bytes) -> int:
        enc = pyppmd.Ppmd7Encoder(8, 256 << 20)
        return len(enc.encode(b) + enc.flush())

    for name, size in (("xz", xz), ("zstd", zstd), ("ppmd", ppmd)):
        assert refs["bpb"][name] == pytest.approx(8 * (size(train + valid) - size(train)) / len(valid), abs=1e-12)
    assert refs["bpb"]["ppmd"] < refs["bpb"]["xz"]  # a context model beats LZ on text (sanity, not a target)

    assert store.exists("datasets", manifest.dataset_id, "references.json")  # cached beside the dataset ...
    monkeypatch.setattr(references, "compute_references", lambda *a, **k: pytest.fail("recomputed"))
    assert references.references_for(store, manifest.dataset_id) == refs  # ... and read back, not recomputed

    tail, whole_valid = references.dataset_texts(store, manifest.dataset_id, tail_bytes=1_000)
    assert tail == train[-1_000:] and whole_valid == valid  # large training sets: only the tail conditions
