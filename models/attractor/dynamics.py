"""The relaxation: a window of token states slides down a learned energy landscape.

Layout. Inside the relaxation the state is kept *wave-major*: S of shape
(H, W, B, d) (waves, window positions, batch, wave width). Both hot
operations then are single batched GEMMs with no copies: the positional
coupling is (W, W) @ S viewed as (H, W, B*d), and the per-wave energy MLPs
are H independent (W*B, d) @ (d, d) products (`bmm` over H). The model
converts to and from the usual (B, W, D) at the two ends.

Why it is fast. The original calls `torch.autograd.grad(E, S,
create_graph=True)` every step and loops over waves in Python. The energy
here is E_h(u) = v_h . tanh(A_h u + b_h) + c_h, whose gradient is known in
closed form, dE_h/du = A_h^T (v_h * (1 - tanh^2)), so a step is a handful
of batched tensor ops; `fused.py` goes one further and writes the backward
of the energy step and of the break move by hand (`impl="fused"`, the
default; `impl="autograd"` runs the plain ops below, with identical
results). Tension, break decisions and break strength are control signals
computed without gradient, as the original's scalar thresholds effectively
are.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from nightshift.models.attractor import compiled
from nightshift.models.attractor.config import Config
from nightshift.models.attractor.fused import BreakMove, EnergyStep, PairDots

log = logging.getLogger(__name__)


def _inv_softplus(y: float) -> float:
    return math.log(math.expm1(y))


class WaveEnergy(nn.Module):
    """H energy heads E_h(u) = Linear(d->1)(tanh(Linear(d->d)(u))), stored as grouped weights."""

    def __init__(self, n_waves: int, wave_dim: int) -> None:
        super().__init__()
        self.A = nn.Parameter(torch.empty(n_waves, wave_dim, wave_dim))  # (H, d_out, d_in) first layer
        self.b = nn.Parameter(torch.zeros(n_waves, wave_dim))  # (H, d)
        self.v = nn.Parameter(torch.empty(n_waves, wave_dim))  # (H, d) second layer (d -> 1)
        self.c = nn.Parameter(torch.zeros(n_waves))  # (H,)
        for h in range(n_waves):  # Xavier per head, as the original's per-wave nn.Linear layers
            nn.init.xavier_uniform_(self.A.data[h])
            nn.init.xavier_uniform_(self.v.data[h : h + 1])

    def step(self, u: Tensor, scale: float, *, with_energy: bool) -> tuple[Tensor, Tensor | None]:
        """u (H, N, d) -> (u - scale * dE/du, E (H, N) or None), the gradient in closed form."""
        pre = torch.baddbmm(self.b.unsqueeze(1), u, self.A.transpose(1, 2))  # (H, N, d)
        t = torch.tanh(pre)  # (H, N, d)
        g_pre = self.v.unsqueeze(1) * (1.0 - t * t)  # dE/dpre: (H, N, d)
        moved = torch.baddbmm(u, g_pre, self.A, alpha=-scale)  # u - scale * g_pre @ A: (H, N, d)
        energy = None
        if with_energy:
            energy = torch.bmm(t, self.v.unsqueeze(-1)).squeeze(-1) + self.c.unsqueeze(1)  # (H, N)
        return moved, energy

    def energy(self, u: Tensor) -> Tensor:
        """u (H, N, d) -> E (H, N); the reference the closed-form gradient is tested against."""
        t = torch.tanh(torch.baddbmm(self.b.unsqueeze(1), u, self.A.transpose(1, 2)))  # (H, N, d)
        return torch.bmm(t, self.v.unsqueeze(-1)).squeeze(-1) + self.c.unsqueeze(1)  # (H, N)


class Coupling(nn.Module):
    """Positional coupling S_i += c * sum_j w_ij (S_j - S_i) as one (W, W) matrix M = I + c (w - diag(rowsum w))."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.gamma_raw = nn.Parameter(torch.tensor(_inv_softplus(cfg.gamma_init)))
        self.dt_raw = nn.Parameter(torch.tensor(_inv_softplus(cfg.dt_init)))
        self.scale_raw = nn.Parameter(torch.tensor(_inv_softplus(cfg.scale_init)))
        self.asym = nn.Parameter(torch.tensor(0.0))  # left vs right strength, tanh-bounded

    def weights(self, W: int, *, causal: bool) -> Tensor:
        """w (W, W): w_ij = exp(-gamma |i-j|) * clamp(1 + s tanh(a) sign(j-i), floor); causal zeroes j > i."""
        pos = torch.arange(W, device=self.gamma_raw.device)
        rel = (pos[None, :] - pos[:, None]).to(self.gamma_raw.dtype)  # (W, W): j - i
        w = torch.exp(-F.softplus(self.gamma_raw) * rel.abs())  # (W, W)
        w = w * (1.0 + self.cfg.asym_strength * torch.tanh(self.asym) * rel.sign()).clamp(min=self.cfg.asym_floor)
        if causal:
            w = w * (rel <= 0)
        return w

    def matrix(self, W: int, *, causal: bool) -> Tensor:
        w = self.weights(W, causal=causal)  # (W, W)
        c = F.softplus(self.dt_raw) * F.softplus(self.scale_raw)  # scalar
        return torch.eye(W, dtype=w.dtype, device=w.device) + c * (w - torch.diag(w.sum(1)))  # (W, W)


@dataclass(slots=True)
class Relaxed:
    """What a relaxation returns. Loss pieces are None when not requested (evaluation)."""

    state: Tensor  # (H, W, B, d) after the last step
    tension: Tensor  # (B,) final tension of each window (no gradient)
    traj: Tensor | None  # scalar: mean over steps of the batch-mean trajectory-contrastive term
    energy_sq: Tensor | None  # scalar: mean over steps of the batch-mean E^2
    breaks: Tensor  # scalar: break moves applied, summed over steps and windows
    steps: int  # steps actually run (< K only with early exit)


def normalize_waves(S: Tensor, eps: float = 1e-12) -> Tensor:
    """Unit L2 norm per wave (last dim). Clamping the norm to [1e-3, 12] first, as the original does,
    changes nothing once the result is normalised, so only a division guard remains."""
    return S / torch.linalg.vector_norm(S, dim=-1, keepdim=True).clamp_min(eps)


class Relaxation(nn.Module):
    """The K-step outer loop: coupling, energy step, per-wave normalisation, tension, breaks, early exit.

    The loss terms that look at every step (trajectory contrast, E^2) are accumulated step by step,
    while each state is still in cache.
    """

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.cfg = cfg
        self.energy = WaveEnergy(cfg.n_waves, cfg.wave_dim)
        self.coupling = Coupling(cfg)
        self.causal = cfg.readout == "all_positions"
        self._compiled: compiled.StepFn | None = None  # built on the first compiled training step

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_compiled": None}  # a compiled function does not pickle; it is rebuilt on use

    # ------------------------------------------------------------------ tension
    def tension(self, S: Tensor) -> Tensor:
        """S (H, W, B, d), unit per wave -> tension (W, B) per prefix (causal) or (1, B) per window.

        T = mean_i mean_D (S_i+1 - S_i)^2 + lambda mean_i (1 - cos(S_i+1, S_i)). Every wave has unit
        norm, so |S_i|^2 = H and both terms are affine in the dot products p_i = S_i+1 . S_i:
        T = (2/d + lambda) - (2/(H d) + lambda/H) mean_i p_i.
        Position 0 of a prefix has no pair: its tension is 0 and it never breaks.
        """
        H, W, B, d = S.shape
        if W < 2:
            return S.new_zeros(1, B)
        c0 = 2.0 / d + self.cfg.tension_lambda
        c1 = 2.0 / (H * d) + self.cfg.tension_lambda / H
        if not self.causal:
            dots = (S[:, 1:] * S[:, :-1]).sum(dim=(0, 1, 3), keepdim=True)[0, :, :, 0]  # (1, B): sum_i p_i
            return torch.add(c0, dots, alpha=-c1 / (W - 1))  # (1, B)
        dots = (S[:, 1:] * S[:, :-1]).sum(dim=(0, 3))  # (W-1, B): p_i
        count = torch.arange(1, W, device=S.device, dtype=S.dtype).unsqueeze(1)  # (W-1, 1)
        prefix = c0 - c1 * dots.cumsum(0) / count  # (W-1, B): tension of positions 1..W-1
        return torch.cat([S.new_zeros(1, B), prefix], 0)  # (W, B)

    def _break_strength(self, S: Tensor, low: Tensor) -> tuple[Tensor | None, Tensor, Tensor, Tensor]:
        """Decide breaks from the tension of S (no gradient: a control signal).

        Returns (alpha (1, G, B, 1) with 0 where no break, or None when nothing breaks; low counter;
        tension (G, B); breaks applied). G is 1 per window, or W per prefix (causal).
        """
        cfg = self.cfg
        with torch.no_grad():
            T = self.tension(S)  # (G, B)
            if cfg.breaks == "off":
                return None, low, T, S.new_zeros(())
            T_ctl = T.mean().expand_as(T) if cfg.breaks == "batch" else T  # the original: batch mean
            high = T > cfg.break_high
            if cfg.breaks == "batch":
                high = high.any().expand_as(high)  # the original: one tense window breaks them all
            low = torch.where(T_ctl < cfg.break_low, low + 1.0, 0.0)  # consecutive low-tension steps
            low_fire = low >= cfg.break_patience
            low = low.masked_fill(low_fire, 0.0)
            fire = high | low_fire  # (G, B)
            if self.causal:
                fire[0] = False  # a lone first token has no tension to relieve
            n_breaks = fire.sum()
            if S.device.type == "cpu" and not bool(n_breaks):  # a shortcut only (a masked move would be
                #   a no-op); not on accelerators, where reading the count would wait for the device
                return None, low, T, n_breaks
            alpha = ((cfg.break_ref - T_ctl) / cfg.break_ref).clamp_(0.1, 2.0).mul_(cfg.break_alpha)
            alpha = alpha.masked_fill_(~fire, 0.0)  # (G, B)
            return alpha.unsqueeze(0).unsqueeze(-1), low, T, n_breaks  # (1, G, B, 1)

    # --------------------------------------------------------------------- step
    def _step(self, S: Tensor, M: Tensor, low: Tensor, done: Tensor | None
              ) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor, Tensor, Tensor | None]:
        """One outer step on S (H, W, B, d).

        Returns (S, E (H, W*B) energies at the step's input, low counter, done, tension (G, B),
        breaks, active (B,) windows that moved this step or None).
        """
        cfg = self.cfg
        H, W, B, d = S.shape
        if cfg.gradients == "detach":  # the original: autograd restarts every step, after the coupling,
            S, M = S.detach(), M.detach()  # so coupling parameters get exactly zero gradient
        S_in = S
        X = torch.bmm(M.expand(H, W, W), S.view(H, W, B * d)).view(H, W * B, d)  # a. positional coupling
        e = self.energy  # b. energy step (E is a mean over positions: step eta / W); c. per-wave norm
        if cfg.impl == "fused":
            S, E = EnergyStep.apply(X, e.A, e.b, e.v, e.c, cfg.eta / W)  # (H, W*B, d), (H, W*B)
        else:
            u, E = e.step(X, cfg.eta / W, with_energy=True)  # (H, W*B, d)
            S = normalize_waves(u)
        S = S.view(H, W, B, d)
        alpha, low, T, n_breaks = self._break_strength(S, low)  # d. tension; e. breaks
        if alpha is not None:
            if cfg.impl == "fused":
                S = BreakMove.apply(S, S_in, alpha)
            else:
                S = torch.where(alpha > 0, normalize_waves(S + alpha * normalize_waves(S - S_in)), S)
        active = None
        if done is not None:  # f. early exit: converged windows (or prefixes) stay frozen
            active = ~done.all(0)  # (B,)
            S = torch.where(done.unsqueeze(0).unsqueeze(-1), S_in, S)  # (H, W, B, d)
            with torch.no_grad():
                change = (S - S_in).abs().amax(dim=(0, 3))  # (W, B)
                change = change.cummax(0).values if self.causal else change.amax(0, keepdim=True)
                done = done | (change < cfg.early_exit_eps)
        return S, E, low, done, T, n_breaks, active

    def _segment(self, S: Tensor, M: Tensor, low: Tensor, done: Tensor | None, n: int, norm: Tensor,
                 with_loss: bool) -> tuple[Tensor, ...]:
        """n consecutive steps (fewer if every window converged); a pure function, so checkpointing
        can replay it. `norm` (B,) is |S| per window. Returns (S, norm, low, done, tension, breaks,
        steps run, trajectory terms summed over steps, E^2 (per step, stacked))."""
        traj = S.new_zeros(())
        esq, breaks = [], []
        T = None
        for _ in range(n):
            if done is not None and bool(done.all()):
                break
            S_next, E, low, done, T, b, active = self._step(S, M, low, done)
            with torch.no_grad():
                norm_next = torch.linalg.vector_norm(S_next, dim=(0, 1, 3))  # (B,)
            if with_loss:
                traj = traj + self._traj(S, S_next.detach(), norm, norm_next, active)
                H, W, B, _ = S.shape
                esq.append(E.view(H, W, B).sum(0).mean(0).square().mean())  # E(S) per window: (B,)
            S, norm = S_next, norm_next
            breaks.append(b)
        ran = len(breaks)
        esq_t = torch.stack(esq) if esq else S.new_zeros(0)
        breaks_t = torch.stack(breaks).sum() if breaks else S.new_zeros(())
        return S, norm, low, done, T, breaks_t, ran, traj, esq_t

    def _traj(self, S: Tensor, target: Tensor, n_s: Tensor, n_t: Tensor, active: Tensor | None) -> Tensor:
        """Batch mean of relu(margin - cos(S_t, sg S_t+1) + cos(S_t, sg S_t+1 of window b-1)).

        The negative is a roll by one row of the batch (a shuffle with no fixed point and no RNG).
        Norms are taken without gradient: every state lies on a normalised manifold, so the radial
        part a differentiated norm would remove is removed by the normalisation's own backward.
        """
        pos, neg = PairDots.apply(S, target)  # (B,), (B,)
        with torch.no_grad():
            inv_pos = (n_s * n_t).clamp_min_(1e-12).reciprocal_()  # (B,)
            inv_neg = (n_s * n_t.roll(1)).clamp_min_(1e-12).reciprocal_()  # (B,)
        term = F.relu(self.cfg.traj_margin + neg * inv_neg - pos * inv_pos)  # (B,)
        if active is None:
            return term.mean()
        return (term * active).sum() / active.sum().clamp_min(1)  # frozen windows do not count

    # ------------------------------------------------------------------ forward
    def uses_compiled(self, with_loss: bool) -> bool:
        """Training steps without early exit or checkpointing run compiled when cfg.compile_relaxation is set."""
        cfg = self.cfg
        return (cfg.compile_relaxation and with_loss and torch.is_grad_enabled() and cfg.early_exit_eps == 0
                and not cfg.checkpoint_every)

    def _forward_compiled(self, S0: Tensor) -> Relaxed:
        """The K steps through the compiled step function (see compiled.py): same math, fused kernels."""
        cfg = self.cfg
        if self._compiled is None:
            self._compiled = compiled.compile_step(compiled.make_step(cfg, self.causal))
            self._compile_checked = False
        H, W, B, d = S0.shape
        M = self.coupling.matrix(W, causal=self.causal)  # (W, W)
        e = self.energy
        low = S0.new_zeros(W if self.causal else 1, B)
        with torch.no_grad():
            norm = torch.linalg.vector_norm(S0, dim=(0, 1, 3))  # (B,)
        S, traj, esq, breaks, T, k = S0, S0.new_zeros(()), S0.new_zeros(()), S0.new_zeros(()), low, 0
        while k < cfg.steps:
            n = min(compiled.STEPS_PER_GRAPH, cfg.steps - k)
            S, low, T, b, tr, es, norm = self._call_compiled(n, S, M, low, norm, e.A, e.b, e.v, e.c)
            traj, esq, breaks, k = traj + tr, esq + es, breaks + b, k + n
        return Relaxed(state=S, tension=T[-1], traj=traj / cfg.steps, energy_sq=esq / cfg.steps,
                       breaks=breaks.to(S.dtype), steps=cfg.steps)

    def _call_compiled(self, *args: object) -> tuple[Tensor, ...]:
        """The compiled step; if compiling fails at its first call (no C++ toolchain on a laptop, an
        unsupported platform), the same step function eagerly from then on, said once: slower, same math."""
        if getattr(self, "_compile_checked", True):
            return self._compiled(*args)
        try:
            out = self._compiled(*args)
        except Exception as err:  # noqa: BLE001 - inductor/dynamo raise many kinds of errors
            log.warning("attractor: torch.compile failed at its first call (%s: %s); relaxing eagerly "
                        "(set compile_relaxation=false to skip the attempt)", type(err).__name__, str(err)[:200])
            self._compiled = compiled.make_step(self.cfg, self.causal)
            out = self._compiled(*args)
        self._compile_checked = True
        return out

    def forward(self, S0: Tensor, *, with_loss: bool) -> Relaxed:
        """S0 (H, W, B, d) -> Relaxed after K steps (fewer with early exit)."""
        cfg = self.cfg
        if self.uses_compiled(with_loss):
            return self._forward_compiled(S0)
        H, W, B, d = S0.shape
        M = self.coupling.matrix(W, causal=self.causal)  # (W, W), built once per forward
        G = W if self.causal else 1
        low = S0.new_zeros(G, B)  # consecutive low-tension steps (a float count)
        done = torch.zeros(G, B, dtype=torch.bool, device=S0.device) if cfg.early_exit_eps > 0 else None
        with torch.no_grad():
            norm = torch.linalg.vector_norm(S0, dim=(0, 1, 3))  # (B,)
        segment = cfg.checkpoint_every if (cfg.checkpoint_every and torch.is_grad_enabled()) else cfg.steps
        S, T, k, steps = S0, None, 0, 0
        traj, esq, breaks = S0.new_zeros(()), [], []
        while k < cfg.steps and not (done is not None and bool(done.all())):
            n = min(segment, cfg.steps - k)
            args = (S, M, low, done, n, norm, with_loss)
            if segment < cfg.steps:  # activation checkpointing: internals of a segment are recomputed
                out = checkpoint(self._segment, *args, use_reentrant=False)
            else:
                out = self._segment(*args)
            S, norm, low, done, T, b, ran, tr, es = out
            traj, steps, k = traj + tr, steps + ran, k + n
            esq.append(es)
            breaks.append(b)
        run = max(steps, 1)
        return Relaxed(state=S, tension=T[-1], traj=traj / run if with_loss else None,
                       energy_sq=torch.cat(esq).mean() if with_loss else None,
                       breaks=torch.stack(breaks).sum().to(S.dtype), steps=steps)
