"""Every family through the real trainer on a second device, on a CPU-only machine.

`tests/backends/fake_cuda.py` gives the run a device whose tensors hold real
CPU data but are checked op by op the way CUDA checks its operands: a CPU
tensor multiplied by a device buffer, `.numpy()` of a device tensor or a CPU
generator sampling device logits fails here as it would on the first GPU step.
Each family trains, sleeps, evaluates, writes samples and checkpoints there,
is stopped half way and resumed from its checkpoint, and must end where the
same run on the CPU ends (the device is a label: the arithmetic is the CPU's).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch.utils._pytree import tree_map

from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.runs.folders import find_run
from nightshift.orchestrator.tracking import build_tracker
from nightshift.orchestrator.training.trainer import Hook, Trainer
from nightshift.pipelines.store import Store
from tests.backends.fake_cuda import DeviceMixup, fake_accelerator
from tests.backends.helpers import copy_datasets

FAMILIES = {
    "transformer:debug": {},
    "attractor:debug": {"sleep_every": "16"},
    "holographic:tiny": {"sleep_every": "16"},
    # the locality keys and the reading memory (shorter rows and memory: the same code, in less CI time)
    "holographic:suffix": {"sleep_every": "16", "model.reading_window": "512", "model.train_seq_multiple": "32",
                           "model.holdout_size": "512", "model.episodic_buffer_size": "1024",
                           "model.max_attractors": "50000"},
    "macro_unit:small": {"sleep_every": "16"},
}
XFAIL: dict[str, str] = {}  # family: why it fails today (strict: the fix turns this red)
STEPS = 4


def params() -> list:
    return [pytest.param(f, marks=pytest.mark.xfail(reason=XFAIL[f], raises=DeviceMixup, strict=True))
            if f in XFAIL else f for f in FAMILIES]


def run(data, store_dir: Path, model: str, device: str, stop_at: int | None = None) -> dict:
    store = Store.open(str(store_dir))
    sets = {"device": device, "batch_size": "8", "eval_every": "2", "eval_max_bytes": "2000", "checkpoint_every": "2",
            "sample_every": "2", "sample_tokens": "4", "log_every": "1", "final_ablations": "false",  # scored elsewhere
            **FAMILIES[model]}
    config = build_run_config(data.dataset_id, model, {k if "." in k else f"train.{k}": v for k, v in sets.items()},
                              steps=STEPS, seed=4)

    def stop(trainer: Trainer, step: int) -> None:
        if step == stop_at:
            trainer._stop.requested = True  # what SIGTERM does: checkpoint, then leave

    trainer = Trainer(config, store, progress_bar=False, hooks=[Hook(stop)],
                      tracker=build_tracker("none", store, rank=0, run_prefix=config.run_path))
    return trainer.run()


@pytest.mark.slow
@pytest.mark.parametrize("model", params())
def test_family_runs_on_a_second_device_and_resumes_there(model: str, tiny_data, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    on_cpu = run(tiny_data, copy_datasets(tiny_data, tmp_path / "cpu"), model, "cpu")
    monkeypatch.setattr(torch, "load", load_as_cuda_does)
    store = copy_datasets(tiny_data, tmp_path / "device")
    with fake_accelerator() as device:
        first = run(tiny_data, store, model, str(device), stop_at=STEPS // 2)
        resumed = run(tiny_data, store, model, str(device))
    assert first["stop_reason"] == "interrupted" and first["step"] == STEPS // 2
    assert resumed["stop_reason"] == "finished" and resumed["step"] == STEPS and resumed["device"] == "meta"
    assert resumed["sleeps"] == on_cpu["sleeps"]
    assert resumed["val_bpb"] == pytest.approx(on_cpu["val_bpb"], rel=1e-5)
    # the whole trained state (weights, memory) equals the CPU run's: nothing was lost on the way (1e-6 apart:
    # the CPU run takes fused AdamW, the device run its per-tensor twin; a lost restore is 1e-4 off)
    cpu_state, device_state = final_state(tmp_path / "cpu", on_cpu), final_state(store, resumed)
    assert cpu_state.keys() == device_state.keys()
    for key, value in cpu_state.items():
        if isinstance(value, torch.Tensor):
            gap = (value.float() - device_state[key].float()).abs().max()
            assert gap <= 2e-5, (key, gap)


def load_as_cuda_does(*args, map_location=None, **kwargs):
    """torch.load as on a GPU machine: tensors come back on the device `map_location` names (data intact).

    The trainer must ask for host memory; a load onto the device hands every
    family device tensors (RNG states, numpy views, host stores), as CUDA does.
    """
    state = _LOAD(*args, map_location="cpu", **kwargs)
    if map_location is None or torch.device(map_location).type == "cpu":
        return state
    return tree_map(lambda x: x.to(map_location) if isinstance(x, torch.Tensor) else x, state)


_LOAD = torch.load


def final_state(store_dir: Path, result: dict) -> dict:
    store = Store.open(str(store_dir))
    run_dir = find_run(store, result["run_id"])
    return CheckpointTrail(store, run_dir.config.run_path).load(result["step"])["model"]


def test_the_fake_device_fails_where_cuda_would_and_only_there() -> None:
    with fake_accelerator() as device:
        x = torch.arange(6.0, device=device).reshape(2, 3)  # (2, 3) on the device
        with pytest.raises(DeviceMixup, match="aten.mm.default: expected all tensors on the device"):
            x @ torch.ones(3, 1)
        with pytest.raises(DeviceMixup, match="aten.cat.default"):
            torch.cat([x, torch.zeros(1, 3)])
        with pytest.raises(DeviceMixup, match="numpy"):
            x.numpy()
        with pytest.raises(DeviceMixup, match="CPU torch.Generator"):
            torch.multinomial(torch.softmax(x, -1), 1, generator=torch.Generator().manual_seed(0))
        # what CUDA allows: scalars, CPU indices, explicit copies both ways, host reads
        assert (x * torch.tensor(2.0) + 1).device == device
        assert x[torch.tensor([1])].tolist() == [[3.0, 4.0, 5.0]]
        x[torch.tensor([0])] = torch.zeros(1, 3).to(device)
        assert x.cpu().sum().item() == 12.0 and float(x.sum()) == 12.0
        assert torch.zeros(2).to(device).device == device and type(x.cpu()) is torch.Tensor
        w = torch.nn.Linear(3, 1).to(device)
        w(x).sum().backward()
        assert w.weight.grad.device == device
