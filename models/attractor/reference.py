"""The original's per-step structure, kept as a yardstick (never used for training).

BoggersTheLLM relaxes a window the straightforward way: every step rebuilds
the coupling weights, restarts autograd from `S.detach()`, evaluates each
wave's energy MLP in a Python loop, calls `torch.autograd.grad(E, S,
create_graph=True)`, normalises wave by wave, and triggers breaks with
`.any()` over the batch using the batch-mean tension. This module does the
same in (B, W, D) layout with the same parameters as `AttractorLM`, so

- tests can check that the fast model computes the same loss and gradients
  (with `breaks="batch"`, the original's rule), and
- the throughput benchmark can time both side by side in one process.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nightshift.models.attractor.config import Config
from nightshift.models.attractor.dynamics import _inv_softplus
from nightshift.models.attractor.model import AttractorLM


class OriginalAttractor(nn.Module):
    def __init__(self, cfg: Config, vocab_size: int) -> None:
        super().__init__()
        cfg.validate(vocab_size)
        self.cfg = cfg
        D, H, d, W = cfg.d_model, cfg.n_waves, cfg.wave_dim, cfg.window
        self.embedder = nn.Embedding(vocab_size, D)
        self.energy_heads = nn.ModuleList(nn.Sequential(nn.Linear(d, d), nn.Tanh(), nn.Linear(d, 1)) for _ in range(H))
        for head in self.energy_heads:
            for layer in (head[0], head[2]):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.position_gamma_raw = nn.Parameter(torch.tensor(_inv_softplus(cfg.gamma_init)))
        self.interaction_dt_raw = nn.Parameter(torch.tensor(_inv_softplus(cfg.dt_init)))
        self.interaction_scale_raw = nn.Parameter(torch.tensor(_inv_softplus(cfg.scale_init)))
        self.position_asym = nn.Parameter(torch.tensor(0.0))
        self.readout_window = nn.Linear(W * D, vocab_size, bias=False)
        self.readout = nn.Linear(D, vocab_size, bias=False)
        self.temperature_raw = nn.Parameter(torch.tensor(_inv_softplus(cfg.tau_init)))

    @classmethod
    def from_model(cls, model: AttractorLM) -> "OriginalAttractor":
        """A copy with exactly the parameters of `model` (layouts converted)."""
        ref = cls(model.cfg, model.vocab.size).to(model.tau_raw.dtype)
        e, c = model.relax.energy, model.relax.coupling
        with torch.no_grad():
            ref.embedder.weight.copy_(model.embed.weight)
            for h, head in enumerate(ref.energy_heads):
                head[0].weight.copy_(e.A[h])
                head[0].bias.copy_(e.b[h])
                head[2].weight.copy_(e.v[h : h + 1])
                head[2].bias.copy_(e.c[h : h + 1])
            for mine, theirs in ((ref.position_gamma_raw, c.gamma_raw), (ref.interaction_dt_raw, c.dt_raw),
                                 (ref.interaction_scale_raw, c.scale_raw), (ref.position_asym, c.asym),
                                 (ref.temperature_raw, model.tau_raw)):
                mine.copy_(theirs)
            ref.readout_window.weight.copy_(model.readout_window.weight)
            ref.readout.weight.copy_(model.readout_last.weight)
        return ref

    def gradients_like(self, model: AttractorLM) -> dict[str, Tensor | None]:
        """This module's gradients under `model`'s parameter names and layouts (for comparisons)."""
        g = lambda p: None if p.grad is None else p.grad  # noqa: E731
        heads = self.energy_heads
        stack = lambda ts: None if any(t is None for t in ts) else torch.stack(ts)  # noqa: E731
        return {
            "embed.weight": g(self.embedder.weight),
            "relax.energy.A": stack([g(h[0].weight) for h in heads]),
            "relax.energy.b": stack([g(h[0].bias) for h in heads]),
            "relax.energy.v": stack([None if g(h[2].weight) is None else g(h[2].weight)[0] for h in heads]),
            "relax.energy.c": stack([None if g(h[2].bias) is None else g(h[2].bias)[0] for h in heads]),
            "relax.coupling.gamma_raw": g(self.position_gamma_raw),
            "relax.coupling.dt_raw": g(self.interaction_dt_raw),
            "relax.coupling.scale_raw": g(self.interaction_scale_raw),
            "relax.coupling.asym": g(self.position_asym),
            "readout_window.weight": g(self.readout_window.weight),
            "readout_last.weight": g(self.readout.weight),
            "tau_raw": g(self.temperature_raw),
        }

    # ------------------------------------------------------------------ steps
    def _coupling(self, S: Tensor) -> Tensor:
        """S (B, W, D): S_i + c sum_j w_ij (S_j - S_i), the weights rebuilt every step."""
        cfg = self.cfg
        W = S.shape[1]
        idx = torch.arange(W, device=S.device)
        rel = (idx[None, :] - idx[:, None]).to(S.dtype)  # (W, W): j - i
        w = torch.exp(-F.softplus(self.position_gamma_raw) * rel.abs())
        w = w * torch.clamp(1.0 + cfg.asym_strength * torch.tanh(self.position_asym) * torch.sign(rel),
                            min=cfg.asym_floor)
        c = F.softplus(self.interaction_dt_raw) * F.softplus(self.interaction_scale_raw)
        diff = S.unsqueeze(1) - S.unsqueeze(2)  # (B, W, W, D): S_j - S_i at [b, i, j]
        return S + c * (w.unsqueeze(0).unsqueeze(-1) * diff).sum(2)

    def _energy(self, S: Tensor) -> Tensor:
        """S (B, W, D) -> E (B,): mean over positions of the per-wave heads, one head at a time."""
        d = self.cfg.wave_dim
        total = 0.0
        for h, head in enumerate(self.energy_heads):
            total = total + head(S[:, :, h * d : (h + 1) * d]).squeeze(-1)  # (B, W)
        return total.mean(1)

    def _normalise_waves(self, S: Tensor) -> Tensor:
        cfg, d = self.cfg, self.cfg.wave_dim
        waves = []
        for h in range(cfg.n_waves):
            u = S[:, :, h * d : (h + 1) * d]
            n = u.norm(dim=-1, keepdim=True)
            u = u * (n.clamp(cfg.norm_min, cfg.norm_max) / n.clamp_min(1e-12))  # norm clamped to [1e-3, 12]
            waves.append(u / u.norm(dim=-1, keepdim=True).clamp_min(1e-12))
        return torch.cat(waves, -1)

    def _tension(self, S: Tensor) -> Tensor:
        """(B,) per window: mean (S_i+1 - S_i)^2 + lambda mean (1 - cos)."""
        a, b = S[:, 1:], S[:, :-1]
        sq = (a - b).pow(2).mean(dim=(1, 2))
        cos = F.cosine_similarity(a, b, dim=-1).mean(1)
        return sq + self.cfg.tension_lambda * (1.0 - cos)

    def relax(self, S: Tensor) -> tuple[list[Tensor], list[Tensor]]:
        cfg = self.cfg
        states, energies = [S], []
        low = 0
        for _ in range(cfg.steps):
            S_prev = S.detach() if cfg.gradients == "detach" else S
            S = self._coupling(S_prev)
            if cfg.gradients == "detach":
                S = S.detach().requires_grad_(True)
            with torch.enable_grad():
                E = self._energy(S)
                grad = torch.autograd.grad(E.sum(), S, create_graph=torch.is_grad_enabled() or self.training)[0]
            S = torch.nan_to_num(S - cfg.eta * grad)
            S = self._normalise_waves(S)
            if cfg.breaks != "off":
                T = self._tension(S)  # (B,)
                T_mean = float(T.detach().mean())
                low = low + 1 if T_mean < cfg.break_low else 0
                fire = bool((T > cfg.break_high).any()) or low >= cfg.break_patience
                if low >= cfg.break_patience:
                    low = 0
                if fire:
                    alpha = cfg.break_alpha * min(max((cfg.break_ref - T_mean) / cfg.break_ref, 0.1), 2.0)
                    move = S - S_prev
                    d = cfg.wave_dim
                    units = [move[..., h * d : (h + 1) * d] / move[..., h * d : (h + 1) * d].norm(
                        dim=-1, keepdim=True).clamp_min(1e-12) for h in range(cfg.n_waves)]
                    S = self._normalise_waves(S + alpha * torch.cat(units, -1))
            states.append(S)
            energies.append(E)
        return states, energies

    def forward(self, tokens: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        cfg = self.cfg
        x, target = tokens[:, :-1], tokens[:, -1]
        e = F.normalize(F.layer_norm(self.embedder(x), (cfg.d_model,)), dim=-1)  # (B, W, D)
        states, energies = self.relax(e)
        traj = 0.0
        for s, t in zip(states[:-1], states[1:]):
            s, t = s.flatten(1), t.detach().flatten(1)
            neg = t.roll(1, dims=0)
            traj = traj + F.relu(cfg.traj_margin - F.cosine_similarity(s, t, dim=-1)
                                 + F.cosine_similarity(s, neg, dim=-1)).mean()
        traj = traj / cfg.steps
        esq = torch.stack([E.square().mean() for E in energies]).mean()
        tau = F.softplus(self.temperature_raw)
        S = states[-1]
        ce = F.cross_entropy(self.readout_window(S.flatten(1)) / tau, target)
        ce_last = F.cross_entropy(self.readout(S[:, -1]) / tau, target)
        loss = (cfg.traj_weight * traj + cfg.window_ce_weight * ce + cfg.last_ce_weight * ce_last
                + cfg.energy_weight * esq)
        return loss, {"ce": ce.detach(), "traj": traj.detach()}
