"""Every family through the real trainer on pg19 bytes: learns, sleeps on cadence, checkpoints its memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.runs.vocab import vocab_of
from nightshift.orchestrator.tracking import build_tracker
from nightshift.orchestrator.training.trainer import Trainer
from nightshift.pipelines.reader import open_dataset
from nightshift.pipelines.store import Store
from tests.helpers.cli import nightshift

CASES = {
    "attractor:debug": ({"sleep_every": "480", "lr": "3e-3", "batch_size": "32"}, 40, True),
    "holographic:tiny": ({"sleep_every": "64", "batch_size": "16"}, 12, True),
    "macro_unit:small": ({"sleep_every": "64", "batch_size": "16"}, 12, True),
}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(CASES))
def test_family_learns_sleeps_and_resumes_from_its_checkpoint(model: str, store_dir: Path, pg19_bytes: str) -> None:
    sets, steps, sleeps = CASES[model]
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, model, {"eval_every": "0", "log_every": "4", "sample_tokens": "8",
                                                  "eval_max_bytes": "0", **sets}, steps=steps)
    dataset = open_dataset(store, pg19_bytes)
    torch.manual_seed(config.train.seed)
    untrained = bits_per_byte(config.model.config.build(vocab_of(dataset.tokenizer())), dataset.validation_docs())
    tracker = build_tracker("none", store, rank=0, run_prefix=config.run_path)  # the JSONL history only
    result = Trainer(config, store, progress_bar=False, tracker=tracker).run()
    assert result["stop_reason"] == "finished" and result["step"] == steps
    assert result["val_bpb"] < 0.8 * untrained.bits_per_byte, (result["val_bpb"], untrained.bits_per_byte)
    if sleeps:
        assert result["sleeps"] >= 1
    history = [json.loads(line) for p in store_dir.glob("runs/*/*/*/tracking/*.jsonl")
               for line in p.read_text().splitlines() if line.strip()]
    if sleeps:
        assert any(any(k.startswith("sleep/") for k in row.get("metrics", row)) for row in history), history[:3]
    # the checkpoint holds the whole model (memory included): a fresh process scores it identically
    ev = json.loads(nightshift("eval", config.run_id, "--store", str(store_dir), "--json").stdout)
    assert ev["val_bpb"] == pytest.approx(result["val_bpb"], rel=1e-5)
