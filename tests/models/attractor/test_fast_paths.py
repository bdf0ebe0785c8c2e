"""The fast training paths compute what the eager float32 model computes.

- `readout_precision="bfloat16"`: the readouts' training matmuls in bfloat16 (float32 weights,
  gradients and accumulation): loss and gradients within bfloat16 rounding of float32, and
  evaluation exactly float32.
- `compile_relaxation=True`: the relaxation step compiled (compiled.py): the same loss and gradients as the
  eager path to float64 rounding (slow: the first compile takes tens of seconds on a small CPU).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from nightshift.models.attractor import FLAVORS, Config
from nightshift.models.attractor.readout import LowPrecisionLinear
from nightshift.models.protocol import Vocab

VOCAB = Vocab(name="syn", size=300, eot_id=0)


def tokens(B: int, W: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB.size, (B, W + 1), generator=torch.Generator().manual_seed(seed))


def loss_and_grads(model: torch.nn.Module, x: torch.Tensor) -> tuple[float, dict[str, torch.Tensor | None]]:
    model.zero_grad(set_to_none=True)
    loss, _ = model(x)
    loss.backward()
    return loss.item(), {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def test_low_precision_linear_is_float32_linear_within_bf16_rounding() -> None:
    torch.manual_seed(0)
    x = torch.randn(16, 64, requires_grad=True)
    w = torch.randn(300, 64, requires_grad=True)
    g = torch.randn(16, 300)
    y = LowPrecisionLinear.apply(x, w)
    assert y.dtype == torch.float32
    y.backward(g)
    ref_y = x.detach() @ w.detach().t()
    scale = ref_y.abs().max()
    assert (y - ref_y).abs().max() < 2e-2 * scale
    assert (x.grad - g @ w.detach()).abs().max() < 2e-2 * (g @ w.detach()).abs().max()
    assert (w.grad - g.t() @ x.detach()).abs().max() < 2e-2 * (g.t() @ x.detach()).abs().max()
    assert not torch.equal(y, ref_y)  # it did round: the test would pass a float32 path otherwise


def test_bf16_readout_trains_like_float32_and_scores_in_float32() -> None:
    base = dataclasses.replace(FLAVORS["debug"].model, compile_relaxation=False, readout_precision="float32")
    torch.manual_seed(0)
    fp32 = base.build(VOCAB)
    bf16 = dataclasses.replace(base, readout_precision="bfloat16").build(VOCAB)
    bf16.load_state_dict(fp32.state_dict())
    x = tokens(8, base.window)
    l32, g32 = loss_and_grads(fp32, x)
    l16, g16 = loss_and_grads(bf16, x)
    assert l16 == pytest.approx(l32, rel=1e-2) and l16 != l32
    for name in ("readout_window.weight", "readout_last.weight", "relax.energy.A"):
        ref = g32[name]
        assert (g16[name] - ref).abs().max() < 3e-2 * ref.abs().max(), name
    fp32.eval(), bf16.eval()
    y = tokens(2, 12, seed=4)
    assert torch.equal(fp32.score(y), bf16.score(y))  # evaluation reads out in float32 either way


def test_a1_flavors_train_fast_and_the_auto_precision_resolves() -> None:
    from nightshift.models.attractor.readout import resolve

    for name in ("a1", "a1-unroll", "default"):
        cfg = FLAVORS[name].model
        assert cfg.compile_relaxation and cfg.readout_precision == "auto", name
    assert not FLAVORS["debug"].model.compile_relaxation  # tests stay eager
    assert resolve("float32", torch.device("cpu")) == torch.float32
    assert resolve("bfloat16", torch.device("cpu")) == torch.bfloat16


@pytest.mark.slow
def test_compiled_relaxation_has_the_eager_loss_and_gradients() -> None:
    """float64, detached steps (a1's setting), per-row breaks that fire, trajectory term active."""
    cfg = Config(d_model=16, n_waves=4, window=5, steps=4, traj_margin=1.5, break_low=0.0, break_high=0.0)
    torch.manual_seed(0)
    eager = cfg.build(VOCAB).double()
    fast = dataclasses.replace(cfg, compile_relaxation=True).build(VOCAB).double()
    fast.load_state_dict(eager.state_dict())
    x = tokens(6, cfg.window)
    assert fast.relax.uses_compiled(with_loss=True) and not eager.relax.uses_compiled(with_loss=True)
    l1, g1 = loss_and_grads(eager, x)
    l2, g2 = loss_and_grads(fast, x)
    assert l2 == pytest.approx(l1, rel=1e-12)
    for name, g in g1.items():
        other = g2[name]
        if g is None:  # detach: the coupling gets no gradient (eager: None; compiled: None or zeros)
            assert other is None or bool((other == 0).all()), name
            continue
        assert other is not None and torch.allclose(g, other, rtol=1e-9, atol=1e-12), name
    _, metrics = fast(x)
    assert metrics["breaks_per_window"] > 0  # the break move was exercised
