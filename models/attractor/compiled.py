"""One relaxation step as a single pure function, for `torch.compile` (`Config(compile_relaxation=True)`).

Why. At `a1` a step is ~100 small tensor ops on a 256 KiB state; in eager mode
each is a kernel launch plus a full pass over the state, and the K = 16 steps
cost as much as the model's one large matmul. Written as one branch-free
function (breaks are a masked move instead of a data-dependent `if`), the step
compiles to a handful of fused loops (inductor emits vectorised C++ on CPU and
Triton on CUDA) around the five small batched matmuls, and AOTAutograd derives
the fused backward. The math is exactly `dynamics.Relaxation._step` plus the
loss pieces `_segment` accumulates; `tests/models/attractor/test_fast_paths.py`
checks loss and gradients against the eager path.

Compilation happens once per process and shape (the first training step pays
it: tens of seconds on a small CPU); inductor's on-disk caches make later
processes faster. Only training (grad enabled, no early exit, no activation
checkpointing) takes this path; evaluation and the other options run eagerly.
"""

from __future__ import annotations

import logging
import types
from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    from nightshift.models.attractor.config import Config

log = logging.getLogger(__name__)

StepFn = Callable[..., tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]]
STEPS_PER_GRAPH = 4  # steps unrolled into one compiled graph: fewer calls (each costs guards and autograd
#   bookkeeping, ~0.3 ms on a small CPU) against a longer first compile; 4 keeps most of the gain of K


def _unit(x: Tensor) -> Tensor:
    """Unit L2 norm per wave (last dim), the same guard as `dynamics.normalize_waves`."""
    return x / torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min(1e-12)


def _tanh(x: Tensor) -> Tensor:
    """tanh as 1 - 2 / (exp(2x) + 1): the same value to float rounding (saturates correctly at
    +-inf), and in a compiled CPU kernel about twice as fast as the vectorised tanh, the costliest
    elementwise op of a step."""
    return 1.0 - 2.0 / (torch.exp(2.0 * x) + 1.0)


def make_step(cfg: "Config", causal: bool) -> StepFn:
    """`segment(n, S, ...)`: n steps for this config; every decision is a Python constant the compiler
    specialises on (n too: each distinct n is one graph)."""
    detach = cfg.gradients == "detach"
    breaks, eta = cfg.breaks, cfg.eta
    lam, margin = cfg.tension_lambda, cfg.traj_margin
    b_high, b_low, patience = cfg.break_high, cfg.break_low, float(cfg.break_patience)
    b_ref, b_alpha = cfg.break_ref, cfg.break_alpha

    def tension(S: Tensor) -> Tensor:
        """S (H, W, B, d) -> (G, B); the formula of `Relaxation.tension`."""
        H, W, B, d = S.shape
        if W < 2:
            return S.new_zeros(1, B)
        c0, c1 = 2.0 / d + lam, 2.0 / (H * d) + lam / H
        if not causal:
            dots = (S[:, 1:] * S[:, :-1]).sum(dim=(0, 1, 3)).unsqueeze(0)  # (1, B)
            return c0 - (c1 / (W - 1)) * dots
        dots = (S[:, 1:] * S[:, :-1]).sum(dim=(0, 3))  # (W-1, B)
        count = torch.arange(1, W, device=S.device, dtype=S.dtype).unsqueeze(1)  # (W-1, 1)
        return torch.cat([S.new_zeros(1, B), c0 - c1 * dots.cumsum(0) / count], 0)  # (W, B)

    def step(S: Tensor, M: Tensor, low: Tensor, norm: Tensor, A: Tensor, b: Tensor, v: Tensor, c: Tensor
             ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """S (H, W, B, d), M (W, W), low (G, B), norm (B,) = |S| per window; energy weights A (H, d, d),
        b, v (H, d), c (H,).

        Returns (S_next, low, tension (G, B), breaks (scalar), trajectory term (scalar), E^2 term
        (scalar), |S_next| per window (B,)).
        """
        H, W, B, d = S.shape
        S_dyn, M_dyn = (S.detach(), M.detach()) if detach else (S, M)  # detach: autograd restarts here
        X = torch.matmul(M_dyn, S_dyn.reshape(H, W, B * d)).reshape(H, W * B, d)  # a. coupling
        T = _tanh(torch.baddbmm(b.unsqueeze(1), X, A.transpose(1, 2)))  # b. energy: (H, N, d)
        G = v.unsqueeze(1) * (1.0 - T * T)  # dE/dpre
        Y = _unit(torch.baddbmm(X, G, A, alpha=-eta / W)).reshape(H, W, B, d)  # step, c. per-wave norm
        E = torch.matmul(T, v.unsqueeze(-1)).squeeze(-1) + c.unsqueeze(1)  # (H, N) energies at X
        with torch.no_grad():  # d. tension, e. break decisions: control signals
            Tn = tension(Y)  # (G, B)
            if breaks == "off":
                fire = torch.zeros_like(Tn, dtype=torch.bool)
                T_ctl = Tn
            else:
                T_ctl = Tn.mean().expand_as(Tn) if breaks == "batch" else Tn
                high = Tn > b_high
                if breaks == "batch":
                    high = high.any().expand_as(high)
                low = torch.where(T_ctl < b_low, low + 1.0, 0.0)
                low_fire = low >= patience
                low = low.masked_fill(low_fire, 0.0)
                fire = high | low_fire
                if causal:
                    fire = torch.cat([torch.zeros_like(fire[:1]), fire[1:]], 0)
            alpha = ((b_ref - T_ctl) / b_ref).clamp(0.1, 2.0) * b_alpha
            alpha = alpha.masked_fill(~fire, 0.0).unsqueeze(0).unsqueeze(-1)  # (1, G, B, 1)
            n_breaks = fire.sum()
        S_in = S_dyn
        if breaks == "off":
            S_next = Y
        else:
            S_next = torch.where(alpha > 0, _unit(Y + alpha * _unit(Y - S_in)), Y)
        target = S_next.detach()
        with torch.no_grad():
            norm_next = torch.linalg.vector_norm(target, dim=(0, 1, 3))  # (B,)
            inv_pos = (norm * norm_next).clamp_min(1e-12).reciprocal()
            inv_neg = (norm * norm_next.roll(1)).clamp_min(1e-12).reciprocal()
        pos = (S * target).sum(dim=(0, 1, 3))  # (B,) same window one step later
        neg = (S * target.roll(1, dims=2)).sum(dim=(0, 1, 3))  # (B,) the previous window of the batch
        traj = F.relu(margin + neg * inv_neg - pos * inv_pos).mean()
        esq = E.reshape(H, W, B).sum(0).mean(0).square().mean()  # E(S) per window, squared, batch mean
        return S_next, low, Tn, n_breaks, traj, esq, norm_next

    def segment(n: int, S: Tensor, M: Tensor, low: Tensor, norm: Tensor, A: Tensor, b: Tensor, v: Tensor,
                c: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
        """n steps; the per-step outputs (breaks, trajectory and E^2 terms) summed over them."""
        S, low, T, breaks, traj, esq, norm = step(S, M, low, norm, A, b, v, c)
        for _ in range(n - 1):
            S, low, T, nb, tr, es, norm = step(S, M, low, norm, A, b, v, c)
            breaks, traj, esq = breaks + nb, traj + tr, esq + es
        return S, low, T, breaks, traj, esq, norm

    return segment


def compile_step(step: StepFn) -> StepFn:
    """`torch.compile` the step (static shapes, one graph); the plain function where this torch cannot
    compile (it then runs eagerly: the same math, slower). A compiler missing at the first call (no C++
    toolchain) raises there; `compile_relaxation=false` is the way out.

    Dynamo keeps one cache per code object, with a small recompile limit; every config's step
    shares `make_step`'s code, so each gets a copy of it (a process that builds many configs,
    a sweep or the tests, would otherwise hit the limit and fail).
    """
    own = types.FunctionType(step.__code__.replace(), step.__globals__, step.__name__, step.__defaults__,
                             step.__closure__)
    try:
        return torch.compile(own, dynamic=False, fullgraph=True)
    except Exception as err:  # noqa: BLE001  (an unsupported platform): fall back to eager, say so once
        log.warning("attractor: torch.compile unavailable (%s); relaxing eagerly", err)
        return step
