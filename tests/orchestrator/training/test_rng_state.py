"""Random streams in a checkpoint: one per rank, each rank's own GPU only, resumable on another GPU count.

CUDA is not here, so `torch.cuda`'s RNG calls are replaced by a recorder: the
branches the trainer takes on a GPU rank run for real, and a CPU rank is shown
never to touch CUDA at all (the old code initialised it at every checkpoint).
"""

from __future__ import annotations

import random

import pytest
import torch

from nightshift.orchestrator.training import runtime


@pytest.fixture()
def fake_cuda_rng(monkeypatch: pytest.MonkeyPatch) -> dict:
    states: dict = {}

    def get(device: torch.device) -> torch.Tensor:
        return states.setdefault(torch.device(device), torch.tensor([torch.device(device).index], dtype=torch.uint8))

    def put(state: torch.Tensor, device: torch.device) -> None:
        assert state.device.type == "cpu" and state.dtype == torch.uint8  # what CUDA's set_rng_state requires
        states[torch.device(device)] = state

    def forbidden(*args, **kwargs):
        raise AssertionError("all-GPU RNG calls: one state per visible GPU, unusable on another GPU count")

    monkeypatch.setattr(torch.cuda, "get_rng_state", get)
    monkeypatch.setattr(torch.cuda, "set_rng_state", put)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", forbidden)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", forbidden)
    return states


def test_each_gpu_rank_saves_its_own_device_and_a_2_gpu_checkpoint_resumes_on_1(fake_cuda_rng: dict) -> None:
    saved = [runtime.rng_state(torch.device("cuda", r)) for r in (0, 1)]  # what gather_objects collects
    assert [int(s["cuda_device"][0]) for s in saved] == [0, 1]
    fake_cuda_rng.clear()
    one_gpu = runtime.Env(rank=0, world_size=1)
    runtime.set_rng_state(runtime.rank_rng_state(saved, one_gpu), torch.device("cuda", 0))
    assert int(fake_cuda_rng[torch.device("cuda", 0)][0]) == 0  # rank 0's stream, on the one GPU there is
    two = runtime.Env(rank=1, world_size=2)
    runtime.set_rng_state(runtime.rank_rng_state(saved, two), torch.device("cuda", 1))
    assert int(fake_cuda_rng[torch.device("cuda", 1)][0]) == 1  # same world size: every rank its own


def test_an_older_all_gpu_checkpoint_still_resumes(fake_cuda_rng: dict) -> None:
    old = {**runtime.rng_state(torch.device("cpu")), "cuda": [torch.tensor([5], dtype=torch.uint8),
                                                              torch.tensor([6], dtype=torch.uint8)]}
    runtime.set_rng_state(runtime.rank_rng_state(old, runtime.Env(rank=0, world_size=1)), torch.device("cuda", 1))
    assert int(fake_cuda_rng[torch.device("cuda", 1)][0]) == 6
    runtime.set_rng_state(old, torch.device("cuda", 3))  # that GPU did not exist then: GPU 0's stream
    assert int(fake_cuda_rng[torch.device("cuda", 3)][0]) == 5


def test_a_cpu_rank_never_touches_cuda_and_restores_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_cuda(*args, **kwargs):
        raise AssertionError("a CPU run touched CUDA")

    for name in ("get_rng_state", "set_rng_state", "get_rng_state_all", "set_rng_state_all", "is_available"):
        monkeypatch.setattr(torch.cuda, name, no_cuda)
    torch.manual_seed(1)
    random.seed(1)
    state = runtime.rng_state(torch.device("cpu"))
    expected = (torch.rand(3), random.random())
    torch.rand(5)
    runtime.set_rng_state(state, torch.device("cpu"))
    assert torch.equal(torch.rand(3), expected[0]) and random.random() == expected[1]
