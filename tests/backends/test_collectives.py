"""The one device rule for distributed code (nightshift/collectives.py), held on CPU.

NCCL groups serve only CUDA tensors, so a collective on a CPU tensor, a rank
that never bound its GPU, or a family that calls torch.distributed itself
fails on the first multi-GPU step. No GPU here: the rule is a pure function
tested for the NCCL case; the source tree is held to one collective module;
and real gloo DDP runs of every family, through the local backend's code
path (the one the Modal multi-GPU run uses too), record every collective
call and where it came from.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import pytest
import torch

from nightshift import collectives
from nightshift.orchestrator.backends import launch
from nightshift.orchestrator.backends.local_ddp import rank_device, run_local_ddp
from nightshift.orchestrator.backends.ray_backend import backend_for as ray_backend_for
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.training.runtime import Env, resolve_device
from nightshift.pipelines.store import Store
from tests.backends.ddp_ranks import run_many
from tests.backends.helpers import copy_datasets
from tests.helpers.paths import ROOT

PROBE = Path(__file__).parent / "collective_probe"
HELPER = ROOT / "nightshift" / "collectives.py"
SOURCE_DIRS = ("nightshift", "orchestrator", "models", "pipelines", "jobs", "benchmarks")
COLLECTIVES = frozenset({
    "all_reduce", "all_gather", "all_gather_object", "all_gather_into_tensor", "broadcast",
    "broadcast_object_list", "barrier", "reduce", "reduce_scatter", "reduce_scatter_tensor", "gather",
    "gather_object", "scatter", "scatter_object_list", "all_to_all", "all_to_all_single", "send", "recv",
    "isend", "irecv", "monitored_barrier", "init_process_group", "new_group",
})

NCCL_ONLY = {"cuda": "nccl"}  # what torchrun or Ray make from backend="nccl"
MAPPED = collectives.device_backends(collectives.backend_for("cuda"))  # what we make on GPUs
GLOO = collectives.device_backends("gloo")


# ------------------------------------------------------------------------------ the rule itself
def test_groups_we_make_on_gpus_serve_cpu_and_cuda_tensors_natively() -> None:
    assert MAPPED == {"cpu": "gloo", "cuda": "nccl"}
    assert collectives.wire_device(torch.device("cpu"), MAPPED) == torch.device("cpu")
    assert collectives.wire_device(torch.device("cuda", 3), MAPPED) == torch.device("cuda", 3)
    assert collectives.backend_for("cpu") == "gloo"
    # Ray Train makes the group from the same string, and recognises it as NCCL (its NCCL error handling)
    from ray.train.torch.config import _is_backend_nccl

    assert ray_backend_for(1) == collectives.backend_for("cuda") and _is_backend_nccl(ray_backend_for(0.5))
    assert ray_backend_for(0) == "gloo"


def test_a_cpu_tensor_on_a_cuda_only_group_travels_on_the_ranks_own_gpu() -> None:
    # Defect 1: the loss sum, stop flags, eval sums and numpy memory merges are CPU tensors.
    assert collectives.wire_device(torch.device("cpu"), NCCL_ONLY, current_cuda=5) == torch.device("cuda", 5)
    # and a CUDA tensor on a gloo group goes through the host rather than gloo's partial CUDA support
    assert collectives.wire_device(torch.device("cuda", 1), GLOO) == torch.device("cpu")
    with pytest.raises(RuntimeError, match="serve neither CPU .* nor CUDA"):
        collectives.wire_device(torch.device("cpu"), {"xla": "xla"})


def test_the_device_is_the_one_the_backend_assigned_or_this_ranks_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # Ray: a worker sees only its own GPUs, and ray.train.torch.get_device() says which (defect 2).
    assert resolve_device("auto", Env(rank=5, local_rank=5, device="cuda:0")) == torch.device("cuda", 0)
    assert resolve_device("cuda", Env(device="cuda:1")) == torch.device("cuda", 1)
    assert resolve_device("auto", Env(device="cpu")) == torch.device("cpu")
    assert resolve_device("cpu", Env(device="cuda:0")) == torch.device("cpu")
    assert resolve_device("cuda:2", Env()) == torch.device("cuda", 2)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto", Env()) == torch.device("cpu")
    with pytest.raises(RuntimeError, match="device=cuda but torch sees no CUDA device"):
        resolve_device("cuda", Env())
    # The local backend: rank r takes GPU r; more ranks than GPUs is refused, not silently doubled up.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert [rank_device("auto", r, 2) for r in range(2)] == [torch.device("cuda", 0), torch.device("cuda", 1)]
    with pytest.raises(UserError, match="--workers 4 with device=auto: NCCL needs one GPU per rank .* has 2"):
        rank_device("auto", 0, 4)
    with pytest.raises(UserError, match="device=cuda:1 names one GPU, but --workers 2"):
        rank_device("cuda:1", 0, 2)
    assert rank_device("cpu", 3, 4) == torch.device("cpu")


# -------------------------------------------------------------------------- the source tree
def direct_collective_calls(path: Path) -> list[str]:
    """`dist.X(...)` / `torch.distributed.X(...)` / `from torch.distributed import X` for a collective X."""
    tree = ast.parse(path.read_text(), filename=str(path))
    dist_names = {"torch.distributed"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            dist_names |= {a.asname for a in node.names if a.name == "torch.distributed" and a.asname}
        if isinstance(node, ast.ImportFrom) and node.module in ("torch.distributed",
                                                                "torch.distributed.distributed_c10d"):
            found += [f"{path.relative_to(ROOT)}:{node.lineno} imports {a.name}" for a in node.names
                      if a.name in COLLECTIVES]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in COLLECTIVES:
            if ast.unparse(node.func.value) in dist_names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} calls {ast.unparse(node.func)}")
    return found


def test_no_torch_distributed_collective_outside_the_helper() -> None:
    files = [p for d in SOURCE_DIRS for p in sorted((ROOT / d).rglob("*.py")) if p != HELPER]
    assert len(files) > 50
    offenders = [hit for p in files for hit in direct_collective_calls(p)]
    assert offenders == [], "collectives must go through nightshift/collectives.py:\n" + "\n".join(offenders)
    assert direct_collective_calls(HELPER)  # the scan does see calls where they are


# -------------------------------------------------------------- real gloo DDP, every family
CASES = {  # family: (sets, steps); sleep, eval and checkpoint all happen inside the run
    "transformer:debug": ({}, 6),
    "attractor:debug": ({"train.sleep_every": "16"}, 6),
    "holographic:tiny": ({"train.sleep_every": "16"}, 6),
    "macro_unit:small": ({"train.sleep_every": "16"}, 6),
}
COMMON = {f"train.{k}": v for k, v in {
    "batch_size": "8", "eval_every": "4", "eval_max_bytes": "4000", "checkpoint_every": "3", "log_every": "2",
    "sample_every": "0", "sample_tokens": "4", "eval_batch_size": "32", "device": "cpu"}.items()}


def probed(monkeypatch: pytest.MonkeyPatch, out: Path) -> None:
    """Every process started from here on (the spawned ranks) records its collective calls in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(PROBE), str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("NIGHTSHIFT_PROBE_COLLECTIVES", str(out))


def records(out: Path) -> list[dict]:
    return [json.loads(line) for p in sorted(out.glob("*.jsonl")) for line in p.read_text().splitlines()]


def ours(path: str) -> bool:
    """A file of this checkout (not torch's or Ray's own internals)."""
    return Path(path).resolve().is_relative_to(ROOT) and ".venv" not in Path(path).parts


@pytest.mark.slow
def test_every_family_trains_on_two_gloo_ranks_with_every_collective_through_the_helper(
        tiny_data, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "calls"
    probed(monkeypatch, out)
    store = Store.open(str(copy_datasets(tiny_data, tmp_path / "store")))
    configs = [build_run_config(tiny_data.dataset_id, model, {**COMMON, **sets}, steps=steps, seed=1)
               for model, (sets, steps) in CASES.items()]
    results = run_many([c.to_dict() for c in configs], store.url, workers=2)  # local_ddp's rank body, 4 runs
    for (model, (sets, steps)), result in zip(CASES.items(), results, strict=True):
        assert result["family"] == model.split(":")[0]
        assert result["stop_reason"] == "finished" and result["step"] == steps, (model, result)
        assert result["val_bpb"] is not None and result["val_bpb"] < 9.0, (model, result["val_bpb"])
        if sets:
            assert result["sleeps"] >= 1, model
    calls = records(out)
    assert len(list(out.glob("*.jsonl"))) == 2  # both ranks were probed
    assert sum(c["op"] == "init_process_group" for c in calls) == 2 * len(CASES)
    stray = [c for c in calls if ours(c["file"]) and Path(c["file"]).resolve() != HELPER]
    assert stray == [], stray
    ops = {c["op"] for c in calls}
    assert {"init_process_group", "all_reduce", "all_gather", "all_gather_object", "barrier"} <= ops, ops
    assert {c["backend"] for c in calls if c["op"] == "init_process_group"} == {"gloo"}


@pytest.mark.slow
def test_one_rank_through_a_real_process_group_matches_the_in_process_run(tiny_data, tmp_path: Path) -> None:
    """What benchmarks/gpu_check.sh runs on one GPU with NCCL: every collective of a DDP run, on one rank."""
    config = build_run_config(tiny_data.dataset_id, "transformer:debug", {**COMMON}, steps=6, seed=2)
    alone = launch(config, Store.open(str(copy_datasets(tiny_data, tmp_path / "alone"))), tracking_uri="none",
                   progress=False)
    grouped = run_local_ddp(config, str(copy_datasets(tiny_data, tmp_path / "grouped")), workers=1,
                            tracking_uri="none", progress=False)
    assert grouped["step"] == alone["step"] == 6
    assert grouped["val_bpb"] == pytest.approx(alone["val_bpb"], rel=1e-4)
    assert grouped["device"] == alone["device"] == "cpu"
