"""Rebuild a trained model from its run folder (for eval, sample, fork)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from models.protocol import LanguageModel
from orchestrator.checkpoint import CheckpointTrail
from orchestrator.runs import RunDir, find_run
from orchestrator.vocab import vocab_of
from pipelines.reader import Dataset, open_dataset
from pipelines.store import Store


@dataclass(slots=True)
class LoadedRun:
    run: RunDir
    model: LanguageModel
    dataset: Dataset
    tokenizer: Any
    step: int


def load_run(store: Store, run_id: str, *, step: int | None = None, device: str = "cpu") -> LoadedRun:
    run = find_run(store, run_id)
    dataset = open_dataset(store, run.config.dataset_id)
    tokenizer = dataset.tokenizer()
    model = run.config.model.config.build(vocab_of(tokenizer))
    trail = CheckpointTrail(store, run.config.run_path)
    state = trail.load(step, map_location=device)
    model.load_state_dict(state["model"])
    model.to(torch.device(device)).eval()
    return LoadedRun(run=run, model=model, dataset=dataset, tokenizer=tokenizer, step=state["progress"]["step"])
