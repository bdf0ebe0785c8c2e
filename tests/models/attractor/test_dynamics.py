"""The relaxation: closed-form energy gradient, fused backward, parity with the original's structure,
detach vs unroll gradients, per-row breaks, checkpointing, early exit."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import torch.nn.functional as F

from nightshift.models.attractor import Config
from nightshift.models.attractor.dynamics import WaveEnergy, normalize_waves
from nightshift.models.attractor.fused import BreakMove, EnergyStep, PairDots
from nightshift.models.attractor.reference import OriginalAttractor
from nightshift.models.protocol import Vocab

VOCAB = Vocab(name="syn", size=40, eot_id=0)
SMALL = Config(d_model=16, n_waves=4, window=5, steps=6)
COUPLING = ("relax.coupling.gamma_raw", "relax.coupling.dt_raw", "relax.coupling.scale_raw", "relax.coupling.asym")


def build(seed: int = 0, **change: object):
    torch.manual_seed(seed)
    return dataclasses.replace(SMALL, **change).build(VOCAB).double()


def tokens(B: int = 6, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, VOCAB.size, (B, SMALL.window + 1), generator=torch.Generator().manual_seed(seed))


def grads(model: torch.nn.Module) -> dict[str, torch.Tensor | None]:
    return {n: None if p.grad is None else p.grad.clone() for n, p in model.named_parameters()}


def loss_and_grads(model, x: torch.Tensor) -> tuple[float, dict]:
    model.zero_grad(set_to_none=True)
    loss, _ = model(x)
    loss.backward()
    return loss.item(), grads(model)


# ------------------------------------------------------------------ energy gradient
def test_energy_gradient_step_equals_finite_differences() -> None:
    torch.manual_seed(0)
    energy = WaveEnergy(3, 5).double()
    with torch.no_grad():
        energy.b.normal_()
        energy.c.normal_()
    u = torch.randn(3, 7, 5, dtype=torch.float64)
    scale = 0.37
    moved, E = energy.step(u, scale, with_energy=True)
    analytic = (u - moved) / scale  # the closed-form dE/du the step used
    assert torch.allclose(E, energy.energy(u), atol=1e-12)
    fd = torch.zeros_like(u)
    h = 1e-6
    for idx in range(u.numel()):
        e = torch.zeros(u.numel(), dtype=torch.float64)
        e[idx] = h
        e = e.view_as(u)
        fd.view(-1)[idx] = ((energy.energy(u + e) - energy.energy(u - e)).sum() / (2 * h)).item()
    assert torch.allclose(analytic, fd, atol=1e-8, rtol=1e-6)
    assert analytic.abs().max() > 1e-3  # not trivially zero


def test_fused_energy_step_passes_gradcheck() -> None:
    torch.manual_seed(0)
    H, N, d = 2, 5, 3
    X = torch.randn(H, N, d, dtype=torch.float64, requires_grad=True)
    A = torch.randn(H, d, d, dtype=torch.float64, requires_grad=True)
    b = torch.randn(H, d, dtype=torch.float64, requires_grad=True)
    v = torch.randn(H, d, dtype=torch.float64, requires_grad=True)
    c = torch.randn(H, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: EnergyStep.apply(*a, 0.3), (X, A, b, v, c))
    # and with X cut from the graph (detach mode): parameter gradients only
    assert torch.autograd.gradcheck(lambda *a: EnergyStep.apply(X.detach(), *a, 0.3), (A, b, v, c))


def test_fused_break_move_passes_gradcheck() -> None:
    torch.manual_seed(0)
    Y = normalize_waves(torch.randn(2, 3, 4, 5, dtype=torch.float64)).requires_grad_(True)
    S_prev = normalize_waves(torch.randn(2, 3, 4, 5, dtype=torch.float64)).requires_grad_(True)
    for alpha in ([0.0, 0.05, 0.2, 0.0], [0.1, 0.05, 0.2, 0.01]):  # some windows do not break; all do
        alpha = torch.tensor(alpha, dtype=torch.float64).view(1, 1, 4, 1)
        assert torch.autograd.gradcheck(lambda y, s, alpha=alpha: BreakMove.apply(y, s, alpha), (Y, S_prev))


def test_fused_pair_dots_pass_gradcheck() -> None:
    torch.manual_seed(0)
    S = torch.randn(2, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    T = torch.randn(2, 3, 4, 5, dtype=torch.float64)
    pos, neg = PairDots.apply(S, T)
    assert torch.allclose(pos, (S * T).sum(dim=(0, 1, 3)))
    assert torch.allclose(neg[1], (S[:, :, 1] * T[:, :, 0]).sum())  # window b meets window b-1
    assert torch.autograd.gradcheck(lambda s: PairDots.apply(s, T), (S,))


@pytest.mark.parametrize("gradients", ["detach", "unroll"])
@pytest.mark.parametrize("breaks", ["row", "off"])
def test_fused_equals_autograd_formulation(gradients: str, breaks: str) -> None:
    x = tokens()
    fused = build(gradients=gradients, breaks=breaks, traj_margin=1.5)
    plain = build(gradients=gradients, breaks=breaks, traj_margin=1.5, impl="autograd")
    plain.load_state_dict(fused.state_dict())
    l1, g1 = loss_and_grads(fused, x)
    l2, g2 = loss_and_grads(plain, x)
    assert l1 == pytest.approx(l2, rel=1e-12)
    for name, g in g1.items():
        assert (g is None) == (g2[name] is None), name
        if g is not None:
            assert torch.allclose(g, g2[name], rtol=1e-9, atol=1e-13), name


# ----------------------------------------------------------- parity with the original
@pytest.mark.parametrize("gradients", ["detach", "unroll"])
def test_same_loss_and_gradients_as_the_originals_structure(gradients: str) -> None:
    """Batch breaks are the original's rule; a large margin keeps the trajectory term active."""
    model = build(gradients=gradients, breaks="batch", traj_margin=1.5)
    ref = OriginalAttractor.from_model(model)
    x = tokens()
    loss, mine = loss_and_grads(model, x)
    ref_loss, _ = ref(x)
    ref_loss.backward()
    theirs = ref.gradients_like(model)
    assert loss == pytest.approx(ref_loss.item(), rel=1e-12)
    for name, g in mine.items():
        other = theirs[name]
        if name in COUPLING and gradients == "detach":
            continue  # covered by the next test
        assert g is not None and other is not None, name
        assert torch.allclose(g, other, rtol=1e-9, atol=1e-13), name


def test_detach_gives_coupling_exactly_zero_gradient_like_the_original_and_unroll_does_not() -> None:
    x = tokens()
    for gradients in ("detach", "unroll"):
        model = build(gradients=gradients, traj_margin=1.5)
        _, g = loss_and_grads(model, x)
        ref = OriginalAttractor.from_model(model)
        ref(x)[0].backward()
        ref_g = ref.gradients_like(model)
        for name in COUPLING:
            ours_zero = g[name] is None or bool((g[name] == 0).all())
            theirs_zero = ref_g[name] is None or bool((ref_g[name] == 0).all())
            assert ours_zero == theirs_zero == (gradients == "detach"), (gradients, name)
        if gradients == "unroll":
            assert all(g[name].abs() > 0 for name in COUPLING)
            assert g["embed.weight"].abs().sum() > 0


def test_detach_embeddings_learn_only_through_the_first_trajectory_term() -> None:
    """In the original the embeddings 'barely learn': with the trajectory term inactive they get nothing."""
    model = build(gradients="detach", traj_margin=0.0)
    _, g = loss_and_grads(model, tokens())
    assert g["embed.weight"] is None or bool((g["embed.weight"] == 0).all())
    unrolled = build(gradients="unroll", traj_margin=0.0)
    _, g = loss_and_grads(unrolled, tokens())
    assert g["embed.weight"].abs().sum() > 0


# --------------------------------------------------------------------- breaks
def test_tension_is_the_specs_formula() -> None:
    model = build()
    S = normalize_waves(torch.randn(4, 5, 3, 4, dtype=torch.float64))  # (H, W, B, d)
    Sb = model.to_bwd(S)  # (B, W, D)
    a, b = Sb[:, 1:], Sb[:, :-1]
    expected = (a - b).pow(2).mean(dim=(1, 2)) + 0.35 * (1 - F.cosine_similarity(a, b, dim=-1)).mean(1)
    assert torch.allclose(model.relax.tension(S)[0], expected, atol=1e-12)


def test_row_breaks_do_not_depend_on_the_rest_of_the_batch() -> None:
    """Per-row breaks: a window relaxes the same alone or in a batch; the original's batch rule does not."""
    x = tokens(B=8, seed=3)
    with torch.no_grad():  # a threshold that some windows cross and others do not
        high = build(breaks="off", steps=1).relax_ids(x[:, :-1], with_loss=False)[0].tension.median().item()
    results = {}
    for breaks in ("row", "batch"):
        model = build(breaks=breaks, break_high=high)
        with torch.no_grad():
            out_all, S_all = model.relax_ids(x[:, :-1], with_loss=False)
            alone = torch.stack([model.relax_ids(x[i : i + 1, :-1], with_loss=False)[1][0] for i in range(8)])
        results[breaks] = (S_all - alone).abs().max().item()
        assert 0 < out_all.breaks < 8 * SMALL.steps or breaks == "batch"
    assert results["row"] < 1e-12
    assert results["batch"] > 1e-6


# ------------------------------------------------------- checkpointing, early exit
def test_activation_checkpointing_changes_nothing_but_memory() -> None:
    x = tokens()
    plain = build(gradients="unroll", traj_margin=1.5)
    ckpt = build(gradients="unroll", traj_margin=1.5, checkpoint_every=2)
    ckpt.load_state_dict(plain.state_dict())
    l1, g1 = loss_and_grads(plain, x)
    l2, g2 = loss_and_grads(ckpt, x)
    assert l1 == pytest.approx(l2, rel=1e-12)
    for name, g in g1.items():
        assert torch.allclose(g, g2[name], rtol=1e-9, atol=1e-13), name


def test_early_exit_stops_converged_windows() -> None:
    model = build(breaks="off", early_exit_eps=10.0, steps=8)  # every window converges at once
    with torch.no_grad():
        out, _ = model.relax_ids(tokens()[:, :-1], with_loss=False)
    assert out.steps == 1
    model = build(breaks="off", early_exit_eps=1e-30, steps=8)  # never
    out, _ = model.relax_ids(tokens()[:, :-1], with_loss=True)
    assert out.steps == 8 and out.traj is not None
