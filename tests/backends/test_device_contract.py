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

# Every holographic flavor, with its store where store_device="auto" (the default) puts it: on the device here
# (the fake device's memory cannot be read: taken to fit). Shorter rows and smaller buffers keep each flavor's
# key function, context, vote and reading memory: the same code, in less CI time. Every store spans several
# search tiles and every evaluation several query blocks (HOLOGRAPHIC_TILING).
_HOLO = {"sleep_every": "16", "model.store_device": "auto", "model.holdout_size": "512",
         "model.episodic_buffer_size": "1024"}
_SUFFIX = _HOLO | {"model.train_seq_multiple": "32", "model.max_attractors": "50000"}
FAMILIES = {
    "transformer:debug": {},
    "attractor:debug": {"sleep_every": "16"},
    "holographic:tiny": _HOLO | {"model.train_seq_multiple": "16"},
    "holographic:base": _HOLO,
    "holographic:phi": _HOLO,
    "holographic:short": _HOLO,
    "holographic:long": _HOLO | {"model.row_positions": "256"},
    "holographic:giant": _HOLO | {"model.row_positions": "256"},
    "holographic:suffix": _SUFFIX | {"model.reading_window": "512"},  # the locality keys and the reading memory
    "holographic:suffix-store": _SUFFIX,
    "macro_unit:small": {"sleep_every": "16"},
}
HOLOGRAPHIC_TILING = (64, 2048)  # (query block, key tile) of the store search on the CPU and on the fake device
HOLOGRAPHIC_QUERY_CHUNK = 512  # queries per retrieval call of score()
XFAIL: dict[str, str] = {}  # family: why it fails today (strict: the fix turns this red)
STEPS = 4


def params() -> list:
    return [pytest.param(f, marks=pytest.mark.xfail(reason=XFAIL[f], raises=DeviceMixup, strict=True))
            if f in XFAIL else f for f in FAMILIES]


def run(data, store_dir: Path, model: str, device: str, stop_at: int | None = None,
        models: list | None = None) -> dict:
    store = Store.open(str(store_dir))
    sets = {"device": device, "batch_size": "8", "eval_every": "2", "eval_max_bytes": "2000",
            "final_eval_max_bytes": "2000", "checkpoint_every": "2", "sample_every": "2", "sample_tokens": "2",
            "log_every": "1", "final_ablations": "false",  # scored elsewhere
            **FAMILIES[model]}
    config = build_run_config(data.dataset_id, model, {k if "." in k else f"train.{k}": v for k, v in sets.items()},
                              steps=STEPS, seed=4)

    built: list = []

    def stop(trainer: Trainer, step: int) -> None:
        built[:] = [trainer.model]
        if step == stop_at:
            trainer._stop.requested = True  # what SIGTERM does: checkpoint, then leave

    trainer = Trainer(config, store, progress_bar=False, hooks=[Hook(stop)],
                      tracker=build_tracker("none", store, rank=0, run_prefix=config.run_path))
    result = trainer.run()
    if models is not None:
        models += built  # the run's model, as it ended
    return result


@pytest.mark.slow
@pytest.mark.parametrize("model", params())
def test_family_runs_on_a_second_device_and_resumes_there(model: str, tiny_data, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    searches = small_search_tiles(monkeypatch) if model.startswith("holographic:") else []
    on_cpu = run(tiny_data, copy_datasets(tiny_data, tmp_path / "cpu"), model, "cpu")
    monkeypatch.setattr(torch, "load", load_as_cuda_does)
    store = copy_datasets(tiny_data, tmp_path / "device")
    models: list = []
    with fake_accelerator() as device:
        searches.clear()
        first = run(tiny_data, store, model, str(device), stop_at=STEPS // 2, models=models)
        resumed = run(tiny_data, store, model, str(device), models=models)
    if model.startswith("holographic:"):
        check_store_on_the_device(models, device, searches)
    assert first["stop_reason"] == "interrupted" and first["step"] == STEPS // 2
    assert resumed["stop_reason"] == "finished" and resumed["step"] == STEPS and resumed["device"] == "meta"
    assert resumed["sleeps"] == on_cpu["sleeps"]
    assert resumed["val_bpb"] == pytest.approx(on_cpu["val_bpb"], rel=1e-5)
    # the whole trained state (weights, memory) equals the CPU run's: nothing was lost on the way (up to 2.5e-5
    # apart on a 2-core Xeon: the CPU run takes fused AdamW, the device run its per-tensor twin, and their
    # rounding differs with the CPU's kernels; a lost restore is 1e-4 off)
    cpu_state, device_state = final_state(tmp_path / "cpu", on_cpu), final_state(store, resumed)
    assert cpu_state.keys() == device_state.keys()
    for key, value in cpu_state.items():
        if isinstance(value, torch.Tensor):
            gap = (value.float() - device_state[key].float()).abs().max()
            assert gap <= 5e-5, (key, gap)


def small_search_tiles(monkeypatch: pytest.MonkeyPatch) -> list[tuple[torch.device, int, int, bool]]:
    """Holographic runs search in small tiles (CPU and device runs alike); returns the tiled searches it sees:
    (the keys' device, queries, keys, whether score() asked)."""
    from nightshift.models.holographic import model as holo_model
    from nightshift.models.holographic import store as holo_store

    monkeypatch.setattr(holo_store, "CPU_TILING", HOLOGRAPHIC_TILING)
    monkeypatch.setattr(holo_model, "QUERY_CHUNK", HOLOGRAPHIC_QUERY_CHUNK)
    seen: list[tuple[torch.device, int, int, bool]] = []
    scoring = [False]
    tiles, score = holo_store._knn_tiles, holo_model.HolographicModel.score

    def spy_tiles(queries, keys, *args, **kwargs):
        seen.append((keys.device, queries.shape[0], keys.shape[0], scoring[0]))
        return tiles(queries, keys, *args, **kwargs)

    def spy_score(self, tokens):
        scoring[0] = True
        try:
            return score(self, tokens)
        finally:
            scoring[0] = False

    monkeypatch.setattr(holo_store, "_knn_tiles", spy_tiles)
    monkeypatch.setattr(holo_model.HolographicModel, "score", spy_score)
    return seen


def check_store_on_the_device(models: list, device: torch.device, searches: list) -> None:
    """store_device="auto" put the store on the device, and evaluation searched it there across tiles."""
    for model in models:
        store = model.memory.store
        assert model.store_placed is not None and model.store_placed[1] == "device", model.store_placed
        assert store.size > HOLOGRAPHIC_TILING[1]  # larger than one key tile
        assert store.priority.device == device and all(t.device == device for t in store.cols.values())
        assert all(r.view(c).device.type == "cpu" for r in (model.memory.buffer, model.memory.holdout)
                   for c in r.spec)  # the rest of memory stays on the host
    block, tile = HOLOGRAPHIC_TILING
    scored = [(q, n) for dev, q, n, scoring in searches if scoring and dev == device]
    assert scored and max(q for q, _ in scored) > block and max(n for _, n in scored) > tile, searches
    assert all(dev == device for dev, *_ in searches)


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
