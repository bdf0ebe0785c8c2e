"""The "depth" vote: neighbours grouped by the length of the suffix they share, interpolated like PPM.

With suffix keys (keys.py) a retrieved neighbour's matched depth d in {0..J} says how many scales of its
key equal the query's: it shares the last s_d tokens. Neighbours of depth >= d form an s_d-gram estimate,
and the estimates are interpolated from the shortest context to the longest, each one backing off to the
previous (Dirichlet / PPM-style interpolation; the bigram backoff and the prototype prior at the bottom):

    p_0(v) = (gamma prior(v) + p_bo(v | prev)) / (gamma + 1)
    p_0(v) <- (u_0 m(v) + p_0(v)) / (u_0 M + 1)      m(v): how often v came next in the reading window
                                                     (its M episodes all match at depth 0: a token cache)
    n_d(v) = #{stored i: d_i >= d, y_i = v} + rho_d #{reading j: d_j >= d, y_j = v}     (d = 1..J)
    p_d(v) = (n_d(v) + c_d p_(d-1)(v)) / (n_d + c_d)
    p(v)   = p_J(v)

A context with many deep matches is predicted by them; one with none falls through to p_0. Every p_d
is a distribution, so p sums to 1. The concentrations c_d, the reading-memory weights rho_d (an episode of
the text being read is worth rho_d stored ones) and gamma are fit by maximum likelihood (L-BFGS on their
logs, a deterministic start: every DDP rank gets the same numbers) on held-out TRAINING windows.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BOUNDS = (-12.0, 16.0)  # log-parameters stay here (c_d from 6e-6 to 9e6)


def cumulative(depth: Tensor | None, targets: Tensor | None, y: Tensor | None, levels: int, q: int
               ) -> tuple[Tensor, Tensor]:
    """Neighbours (Q, k) at matched depths (-inf: none) -> (hits (Q, J), counts (Q, J)) at depth >= d, d = 1..J.

    hits counts the neighbours whose next token is y (zeros when y is None).
    """
    zeros = torch.zeros(q, levels, dtype=torch.float64)
    if depth is None or depth.shape[1] == 0:
        return zeros, zeros.clone()
    valid = depth != float("-inf")  # (Q, k)
    d = depth.clamp(0, levels).long()  # (Q, k)
    per = torch.zeros(q, levels + 1, dtype=torch.float64, device=depth.device)
    per.scatter_add_(1, d, valid.double())  # (Q, J+1) neighbours at exactly depth d
    counts = per.flip(1).cumsum(1).flip(1)[:, 1:]  # (Q, J) at depth >= d
    if y is None:
        return zeros.to(depth.device), counts
    hit = torch.zeros_like(per).scatter_add_(1, d, (valid & (targets == y[:, None])).double())
    return hit.flip(1).cumsum(1).flip(1)[:, 1:], counts


def point(p0: Tensor, hs: Tensor, ns: Tensor, hr: Tensor, nr: Tensor, c: Tensor, rho: Tensor,
          u0: Tensor | float = 0.0, m: Tensor | None = None, big_m: Tensor | None = None) -> Tensor:
    """p_J(y) from p_0(y) (Q,) and the cumulative hits/counts (Q, J) of stored (s) and reading (r) neighbours;
    m, big_m (Q,): the reading window's count of y and its number of episodes (depth 0), or None."""
    p = p0 if m is None else (u0 * m + p0) / (u0 * big_m + 1.0)
    for d in range(hs.shape[1]):
        p = (hs[:, d] + rho[d] * hr[:, d] + c[d] * p) / (ns[:, d] + rho[d] * nr[:, d] + c[d])
    return p


def full(p0: Tensor, depth: Tensor, targets: Tensor, rdepth: Tensor | None, rtargets: Tensor | None,
         c: tuple[float, ...], rho: tuple[float, ...], u0: float = 0.0, window: Tensor | None = None) -> Tensor:
    """p_J over the vocabulary from p_0 (Q, V); neighbours (Q, k), reading neighbours (Q, r) or None, and the
    next tokens of the reading window (Q, W) (-1: none) or None."""
    out = p0
    if window is not None and u0 > 0:
        valid = (window >= 0).double()  # (Q, W)
        hist = torch.zeros_like(out).scatter_add_(1, window.clamp_min(0).long(), valid)  # (Q, V)
        out = (u0 * hist + out) / (u0 * valid.sum(1) + 1.0)[:, None]
    for d in range(1, len(c) + 1):
        h = torch.zeros_like(out)  # (Q, V)
        w = (depth >= d).double()  # (Q, k); -inf is never >= d
        h.scatter_add_(1, targets.long(), w)
        n = w.sum(1)
        if rdepth is not None and rdepth.shape[1]:
            u = rho[d - 1] * (rdepth >= d).double()  # (Q, r)
            h.scatter_add_(1, rtargets.long(), u)
            n = n + u.sum(1)
        out = (h + c[d - 1] * out) / (n + c[d - 1])[:, None]
    return out


def memory_weight(depth: Tensor, rdepth: Tensor | None, c: tuple[float, ...], rho: tuple[float, ...],
                  u0: float = 0.0, big_m: Tensor | None = None) -> Tensor:
    """(Q,) the mass the neighbours take from the bottom p_0: 1 - prod_d c_d / (n_d + c_d) (/ (u_0 M + 1))."""
    q, levels = depth.shape[0], len(c)
    _, ns = cumulative(depth, None, None, levels, q)
    _, nr = cumulative(rdepth, None, None, levels, q)
    keep = torch.ones(q, dtype=torch.float64, device=ns.device)
    if big_m is not None:
        keep = keep / (u0 * big_m.double() + 1.0)
    for d in range(levels):
        n = ns[:, d] + rho[d] * nr[:, d]
        keep = keep * c[d] / (n + c[d])
    return 1.0 - keep


def fit(p_bo: Tensor, pri: Tensor, use_prior: bool, depth: Tensor, targets: Tensor, rdepth: Tensor | None,
        rtargets: Tensor | None, y: Tensor, levels: int, m: Tensor | None = None, big_m: Tensor | None = None,
        steps: int = 80) -> tuple[tuple[float, ...], tuple[float, ...], float, float, float]:
    """Maximum-likelihood (c_1..c_J, rho_1..rho_J, gamma, u_0) on held-out windows; also the held-out nats."""
    q = y.shape[0]
    hs, ns = cumulative(depth, targets, y, levels, q)
    hr, nr = cumulative(rdepth, rtargets, y, levels, q)
    window = m is not None
    if window:
        m, big_m = m.double(), big_m.double()
    theta = torch.zeros(2 * levels + 2, dtype=torch.float64)  # log c, log rho, log gamma, log u0
    theta[-2] = -2.0
    theta[-1] = -6.0
    theta.requires_grad_(True)

    def nll() -> Tensor:
        t = theta.clamp(*BOUNDS)
        c, rho, gamma = t[:levels].exp(), t[levels:-2].exp(), t[-2].exp() * float(use_prior)
        p0 = (gamma * pri + p_bo) / (gamma + 1.0)
        return -point(p0, hs, ns, hr, nr, c, rho, t[-1].exp(), m, big_m).log().mean()

    opt = torch.optim.LBFGS([theta], lr=1.0, max_iter=steps, tolerance_grad=1e-10, tolerance_change=1e-13,
                            line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = nll()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    with torch.no_grad():
        final = float(nll())
    w = theta.detach().clamp(*BOUNDS).exp()
    gamma = float(w[-2]) if use_prior else 0.0
    u0 = float(w[-1]) if window else 0.0
    if not math.isfinite(final):
        raise FloatingPointError(f"holographic depth-vote fit diverged (held-out nats {final})")
    return tuple(float(v) for v in w[:levels]), tuple(float(v) for v in w[levels:-2]), gamma, u0, final
