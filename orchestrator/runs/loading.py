"""Rebuild a trained model from its run folder (for eval, sample, fork)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from nightshift.models.protocol import LanguageModel
from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.folders import RunDir, find_run
from nightshift.orchestrator.runs.vocab import vocab_of
from nightshift.pipelines.reader import Dataset, open_dataset
from nightshift.pipelines.store import Store


@dataclass(slots=True)
class LoadedRun:
    run: RunDir
    model: LanguageModel
    dataset: Dataset
    tokenizer: Any
    step: int
    checkpoint: str = ""  # URI of the checkpoint's state file
    skipped: tuple[str, ...] = ()  # newer checkpoints passed over because they did not load (why, each)

    def describe(self) -> str:
        """Which checkpoint this is, for the user: eval and sample always say what they used."""
        note = f"checkpoint step {self.step} ({self.checkpoint})"
        if self.skipped:
            note += f", the newest that loads; passed over: {' | '.join(self.skipped)}"
        return note


def load_run(store: Store, run_id: str, *, step: int | None = None, device: str = "cpu") -> LoadedRun:
    run = find_run(store, run_id)
    dataset = open_dataset(store, run.config.dataset_id)
    tokenizer = dataset.tokenizer()
    model = run.config.model.config.build(vocab_of(tokenizer))
    trail = CheckpointTrail(store, run.config.run_path)
    found = trail.load_newest() if step is None else trail.load_step(step)  # host memory
    if found is None:
        raise UserError(f"run {run_id} has no checkpoint yet")
    model.load_state_dict(found.state["model"])
    model.to(torch.device(device)).eval()
    return LoadedRun(run=run, model=model, dataset=dataset, tokenizer=tokenizer,
                     step=found.state["progress"]["step"], checkpoint=store.uri(found.meta["path"]),
                     skipped=found.skipped)
