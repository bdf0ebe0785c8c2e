"""A machine where torch.compile cannot build its kernels (no C++ toolchain) still trains: eagerly, same math."""

from __future__ import annotations

import logging

import pytest
import torch

import nightshift.models.attractor.compiled as compiled
from nightshift.models.protocol import Vocab
from nightshift.models.registry import resolve


def _loss(model: torch.nn.Module, tokens: torch.Tensor) -> float:
    loss, _ = model(tokens)
    loss.backward()
    return float(loss.detach())


def test_a_compile_failure_at_the_first_call_falls_back_to_the_same_step_eagerly(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    def unbuildable(step: compiled.StepFn) -> compiled.StepFn:
        def fail(*args: object) -> tuple[torch.Tensor, ...]:
            raise RuntimeError("InductorError: CppCompileError: no C++ compiler found")
        return fail

    monkeypatch.setattr(compiled, "compile_step", unbuildable)
    vocab = Vocab.bytes_vocab()
    torch.manual_seed(0)
    fast = resolve("attractor:debug", {"compile_relaxation": True}).config.build(vocab)
    torch.manual_seed(0)
    eager = resolve("attractor:debug", {"compile_relaxation": False}).config.build(vocab)
    tokens = torch.randint(0, 256, (8, fast.train_seq_len + 1), generator=torch.Generator().manual_seed(1))
    with caplog.at_level(logging.WARNING, logger="nightshift.models.attractor.dynamics"):
        first = _loss(fast, tokens)
        second = _loss(fast, tokens)  # later calls go straight to the eager step, without retrying
    assert "relaxing eagerly" in caplog.text and caplog.text.count("relaxing eagerly") == 1
    assert first == pytest.approx(_loss(eager, tokens), rel=1e-5)
    assert second == pytest.approx(first, rel=1e-6)
    grads = [p.grad for p in fast.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
