"""No host syncs between log steps: a GPU runs ahead of the Python loop.

Every host read of a tensor (`float(t)`, `.item()`, `bool(t)`, `.tolist()`, ...)
passes through torch's function hook on CPU as on CUDA, so counting those per
step shows what a CUDA run would wait for. Losses and metrics stay on the device until a flush
point (a log step here); a non-finite step is skipped by fused AdamW's
`found_inf` on the device, not by a host check.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import torch
from torch.overrides import TorchFunctionMode

from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.training.trainer import Hook, Trainer
from nightshift.pipelines.store import Store

HOST_READS = {"tolist", "item", "__bool__", "__float__", "__int__", "__index__", "numpy"}


class SyncCounter(TorchFunctionMode):
    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.trainer, self.by_step = trainer, Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") in HOST_READS and any(
                isinstance(a, torch.Tensor) and a.device.type != "meta" and a.dim() >= 0 for a in args[:1]):
            self.by_step[self.trainer.state.step] += 1  # reads after step k's counters and before step k+1's
        return func(*args, **(kwargs or {}))


def test_no_host_sync_on_steps_between_log_steps(store_dir: Path, pg19_bytes: str) -> None:
    sets = {"eval_every": "0", "checkpoint_every": "0", "sample_every": "0", "log_every": "4", "grad_clip": "1.0"}
    config = build_run_config(pg19_bytes, "transformer:debug", {f"train.{k}": v for k, v in sets.items()}, steps=8)
    trainer = Trainer(config, Store.open(str(store_dir)), progress_bar=False)
    counter = SyncCounter(trainer)
    with counter:  # the whole run: each step, and the loop's bookkeeping after it
        result = trainer.run()
    assert result["step"] == 8 and result["stop_reason"] == "finished"
    assert trainer.optimizer.defaults.get("fused")  # the CPU run takes fused AdamW, as CUDA does
    assert counter.by_step[4] > 0  # the log step reads the window's losses and metrics (the counter counts)
    assert all(counter.by_step[k] == 0 for k in (1, 2, 3, 5, 6, 7)), dict(counter.by_step)


def test_a_nan_step_leaves_weights_and_moments_untouched_without_a_host_check(store_dir: Path, pg19_bytes: str,
                                                                               monkeypatch) -> None:
    monkeypatch.setenv("NIGHTSHIFT_FAULTS", "nan@3")
    sets = {"eval_every": "0", "checkpoint_every": "0", "sample_every": "0", "log_every": "1", "spike_factor": "0",
            "max_rollbacks": "0"}
    config = build_run_config(pg19_bytes, "transformer:debug", {f"train.{k}": v for k, v in sets.items()}, steps=4)
    trainer = Trainer(config, Store.open(str(store_dir)), progress_bar=False)
    seen: dict[int, dict] = {}

    def snapshot(t: Trainer, step: int) -> None:
        seen[step] = {k: v.clone() for k, v in t.model.state_dict().items() if isinstance(v, torch.Tensor)}

    trainer.hooks = (Hook(snapshot, every=1),)
    trainer.setup = _setup_without_guard(trainer)  # no rollback: the optimizer alone must refuse the NaN step
    trainer.run()
    assert all(torch.equal(seen[2][k], seen[3][k]) for k in seen[2])  # step 3 (NaN) changed nothing
    assert any(not torch.equal(seen[3][k], seen[4][k]) for k in seen[3])  # step 4 trained again
    assert all(torch.isfinite(v).all() for v in seen[4].values() if v.is_floating_point())


def _setup_without_guard(trainer: Trainer):
    real = trainer.setup

    def setup() -> None:
        real()
        trainer.guard = None

    return setup
