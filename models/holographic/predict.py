"""From retrieved neighbours and prototypes to a normalised next-token distribution.

kNN-LM style, with the mixing weight set per query by how close its
neighbours are:

    w_i   = phi^(-(1 - sim_i) / width)          (vote weight of stored neighbour i)
    u_j   = phi^(-(1 - sim_j) / rwidth)         (reading neighbour j: earlier in the same text)
    p(v)  = (sum_i w_i [y_i = v] + delta sum_j u_j [y_j = v] + gamma prior(v) + alpha p_bo(v | prev))
            / (sum_i w_i + delta sum_j u_j + gamma + alpha)

sim is the key cosine (faithful flavors) or the matched-suffix similarity
(suffix flavors, see keys.KeyLayout.depth). Reading neighbours exist only
when the flavor keeps a reading memory. This is lambda * vote + (1 - lambda)
* p_bo with lambda = (vote mass + gamma) / (vote mass + gamma + alpha): a query with an exact
match leans on memory, a query with only distant neighbours (a short
left context, an unseen phrase) leans on the backoff. p_bo is strictly
positive, so every token has non-zero probability and the sum over the
vocabulary is 1. width, rwidth, delta, gamma, alpha (and the backoff's beta)
are fit by grid search on held-out TRAINING windows that never entered the store.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor

from nightshift.models.holographic import chain
from nightshift.models.holographic.algebra import PHI
from nightshift.models.holographic.backoff import BigramBackoff

LOG_PHI = math.log(PHI)
# The narrowest kernel is 1e-5: float32 cosines of identical windows round by ~1e-7, which at
# width 1e-6 would already move a vote weight by 5 %.
WIDTHS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
ALPHAS = (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 1e4, 1e6)
GAMMAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
DELTAS = (0.0, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
BETAS = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)


@dataclass(slots=True)
class MixParams:
    width: float = 1e-2  # kernel width of the kNN vote (in units of 1 - cosine)
    gamma: float = 0.1  # mass of the prototype prior
    alpha: float = 1.0  # mass of the backoff
    beta: float = 1.0  # bigram smoothing towards the unigram
    rwidth: float = 1e-2  # kernel width of the reading-memory vote
    delta: float = 0.0  # weight of the reading-memory vote against the store's
    # vote "depth" (chain.py): concentration c_d and reading weight rho_d per matched depth d = 1..J;
    # when set they replace width/rwidth/delta (alpha is then 1: the bottom of the chain is p_0)
    chain: tuple[float, ...] | None = None
    rho: tuple[float, ...] | None = None
    u0: float = 0.0  # weight of the reading window's token counts (depth 0 of the reading memory)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class Evidence:
    """What memory says about a batch of queries (everything but the candidate token)."""

    sims: Tensor  # (Q, k) cosine of the k nearest stored keys (k may be 0)
    targets: Tensor  # (Q, k) their next tokens
    prior: tuple[Tensor, Tensor, Tensor] | None  # prototype weights (Q, K), ids (Q, K, H), probs (Q, K, H)
    prev: Tensor  # (Q,) last token of each context (for the bigram)
    rsims: Tensor | None = None  # (Q, r) similarity of reading neighbours (earlier in the same text); -inf = none
    rtargets: Tensor | None = None  # (Q, r) their next tokens
    wsize: Tensor | None = None  # (Q,) episodes in the reading window (depth 0 of the reading memory)
    wcount: Tensor | None = None  # (Q,) how often the SCORED token came next in the window (score() only)
    wtokens: Tensor | None = None  # (Q, W) next tokens of the window's episodes, -1 = none (full distributions)

    def rows(self, sl: slice) -> "Evidence":
        """The evidence of queries `sl`."""
        cut = (lambda t: None if t is None else t[sl])  # noqa: E731
        prior = None if self.prior is None else tuple(t[sl] for t in self.prior)
        return Evidence(self.sims[sl], self.targets[sl], prior, self.prev[sl], cut(self.rsims), cut(self.rtargets),
                        cut(self.wsize), cut(self.wcount), cut(self.wtokens))


def vote_weights(sims: Tensor, width: float) -> Tensor:
    return torch.exp(-(1.0 - sims.double()).clamp_min(0.0) * (LOG_PHI / width))  # (Q, k)


def store_weights(ev: Evidence, params: MixParams) -> Tensor:
    """(Q, k) vote weight of each stored neighbour."""
    return vote_weights(ev.sims, params.width)


def reading_weights(ev: Evidence, params: MixParams) -> Tensor | None:
    """(Q, r) vote weight of each reading neighbour (delta included), None without reading memory."""
    if ev.rsims is None or ev.rsims.shape[1] == 0:
        return None
    return params.delta * vote_weights(ev.rsims, params.rwidth)


def prior_point(prior: tuple[Tensor, Tensor, Tensor] | None, y: Tensor) -> Tensor:
    if prior is None:
        return torch.zeros(y.shape[0], dtype=torch.float64)
    w, ids, probs = prior
    hit = (ids == y[:, None, None]).to(probs.dtype) * probs  # (Q, K, H)
    return (w[:, :, None] * hit).sum((1, 2)).double()  # (Q,)


def reading_vote(ev: Evidence, y: Tensor, rwidth: float) -> tuple[Tensor, Tensor]:
    """(votes for y (Q,), total mass (Q,)) of the reading neighbours, before the delta weight."""
    if ev.rsims is None or ev.rsims.shape[1] == 0:
        zero = torch.zeros(y.shape[0], dtype=torch.float64, device=y.device)
        return zero, zero
    u = vote_weights(ev.rsims, rwidth)  # (Q, r)
    return (u * (ev.rtargets == y[:, None])).sum(1), u.sum(1)


def point_probs(ev: Evidence, y: Tensor, params: MixParams, backoff: BigramBackoff) -> Tensor:
    """p(y_q | context_q) for each query, float64 (Q,)."""
    if params.chain is not None:
        gamma = params.gamma if ev.prior is not None else 0.0
        p0 = (gamma * prior_point(ev.prior, y) + backoff.prob(ev.prev, y, params.beta)) / (gamma + 1.0)
        levels, q = len(params.chain), y.shape[0]
        hs, ns = chain.cumulative(ev.sims, ev.targets, y, levels, q)
        hr, nr = chain.cumulative(ev.rsims, ev.rtargets, y, levels, q)
        return chain.point(p0, hs, ns, hr, nr, params.chain, params.rho, params.u0, ev.wcount, ev.wsize)
    w = store_weights(ev, params)  # (Q, k)
    vote = (w * (ev.targets == y[:, None])).sum(1)  # (Q,)
    mass = w.sum(1)  # (Q,)
    u = reading_weights(ev, params)  # (Q, r) or None
    if u is not None:
        vote = vote + (u * (ev.rtargets == y[:, None])).sum(1)
        mass = mass + u.sum(1)
    gamma = params.gamma if ev.prior is not None else 0.0
    p_bo = backoff.prob(ev.prev, y, params.beta)  # (Q,)
    num = vote + gamma * prior_point(ev.prior, y) + params.alpha * p_bo
    return num / (mass + gamma + params.alpha)


def full_probs(ev: Evidence, params: MixParams, backoff: BigramBackoff) -> Tensor:
    """(Q, V) float64 distributions; each row sums to 1."""
    if params.chain is not None:
        gamma = params.gamma if ev.prior is not None else 0.0
        p0 = backoff.full(ev.prev, params.beta)  # (Q, V)
        if gamma > 0:
            pw, ids, probs = ev.prior
            contrib = gamma * (pw[:, :, None] * probs).double()  # (Q, K, H)
            p0 = p0.scatter_add_(1, ids.reshape(ids.shape[0], -1), contrib.reshape(ids.shape[0], -1))
        p0 = p0 / (gamma + 1.0)
        return chain.full(p0, ev.sims, ev.targets, ev.rsims, ev.rtargets, params.chain, params.rho, params.u0,
                          ev.wtokens)
    out = params.alpha * backoff.full(ev.prev, params.beta)  # (Q, V)
    w = store_weights(ev, params)  # (Q, k)
    out.scatter_add_(1, ev.targets.long(), w)
    mass = w.sum(1)  # (Q,)
    u = reading_weights(ev, params)  # (Q, r) or None
    if u is not None:
        out.scatter_add_(1, ev.rtargets.long(), u)
        mass = mass + u.sum(1)
    gamma = params.gamma if ev.prior is not None else 0.0
    if ev.prior is not None:
        pw, ids, probs = ev.prior
        contrib = gamma * (pw[:, :, None] * probs).double()  # (Q, K, H)
        out.scatter_add_(1, ids.reshape(ids.shape[0], -1), contrib.reshape(ids.shape[0], -1))
    return out / (mass + gamma + params.alpha)[:, None]


def mix_lambda(ev: Evidence, params: MixParams) -> Tensor:
    """Per-query weight of memory (kNN + reading + prior) against the backoff."""
    if params.chain is not None:
        gamma = params.gamma if ev.prior is not None else 0.0
        nb = chain.memory_weight(ev.sims, ev.rsims, params.chain, params.rho, params.u0, ev.wsize)
        return nb + (1.0 - nb) * gamma / (gamma + 1.0)
    mass = store_weights(ev, params).sum(1)
    u = reading_weights(ev, params)
    if u is not None:
        mass = mass + u.sum(1)
    gamma = params.gamma if ev.prior is not None else 0.0
    return (mass + gamma) / (mass + gamma + params.alpha)


def _fit_beta(ev: Evidence, y: Tensor, backoff: BigramBackoff) -> tuple[float, float]:
    """The backoff's beta on the grid that maximises held-out log-likelihood alone: (beta, mean log-lik)."""
    best_beta, best_ll = BETAS[0], -math.inf
    for beta in BETAS:
        ll = float(backoff.prob(ev.prev, y, beta).log().mean())
        if ll > best_ll:
            best_beta, best_ll = beta, ll
    return best_beta, best_ll


def fit(ev: Evidence, y: Tensor, backoff: BigramBackoff) -> tuple[MixParams, dict[str, float]]:
    """Grid-search (beta, then width x rwidth x delta x gamma x alpha) maximising held-out log-likelihood."""
    best_beta, best_ll = _fit_beta(ev, y, backoff)
    p_bo = backoff.prob(ev.prev, y, best_beta)  # (Q,)
    pri = prior_point(ev.prior, y)  # (Q,)
    f64 = dict(dtype=torch.float64, device=y.device)
    gammas = torch.tensor(GAMMAS if ev.prior is not None else (0.0,), **f64)  # (G,)
    alphas = torch.tensor(ALPHAS, **f64)  # (A,)
    reading = ev.rsims is not None and ev.rsims.shape[1] > 0
    deltas = torch.tensor(DELTAS if reading else (0.0,), **f64)  # (R,)

    def votes(sims: Tensor, targets: Tensor, width: float) -> tuple[Tensor, Tensor]:
        w = vote_weights(sims, width)  # (Q, k)
        return (w * (targets == y[:, None])).sum(1), w.sum(1)

    stored = [votes(ev.sims, ev.targets, w) for w in WIDTHS]
    read = [reading_vote(ev, y, w) for w in (WIDTHS if reading else (1e-2,))]
    base_num = gammas[None, :, None] * pri[:, None, None] + alphas[None, None, :] * p_bo[:, None, None]  # (Q, G, A)
    base_den = gammas[None, :, None] + alphas[None, None, :]  # (1, G, A)
    best = (-math.inf, MixParams(beta=best_beta))
    for width, (svote, smass) in zip(WIDTHS, stored, strict=True):
        for ri, (rvote, rmass) in enumerate(read):
            vote = svote[:, None] + deltas[None, :] * rvote[:, None]  # (Q, R)
            mass = smass[:, None] + deltas[None, :] * rmass[:, None]  # (Q, R)
            num = vote[:, :, None, None] + base_num[:, None]  # (Q, R, G, A)
            ll = (num / (mass[:, :, None, None] + base_den[:, None])).log().mean(0)  # (R, G, A)
            flat = int(ll.argmax())
            if float(ll.reshape(-1)[flat]) > best[0]:
                di, rest = divmod(flat, ll.shape[1] * ll.shape[2])
                gi, ai = divmod(rest, ll.shape[2])
                rwidth = WIDTHS[ri] if reading else 1e-2
                best = (float(ll.reshape(-1)[flat]), MixParams(
                    width=width, gamma=float(gammas[gi]), alpha=float(alphas[ai]), beta=best_beta,
                    rwidth=rwidth, delta=float(deltas[di])))
    params = best[1]
    info = {
        "heldout_nats": -best[0],
        "heldout_backoff_nats": -best_ll,
        "lambda_mean": float(mix_lambda(ev, params).mean()),
        **{f"fit_{k}": v for k, v in params.as_dict().items() if isinstance(v, float)},
    }
    return params, info


def fit_depth(ev: Evidence, y: Tensor, backoff: BigramBackoff, levels: int) -> tuple[MixParams, dict[str, float]]:
    """The depth vote's fit (chain.py): beta by grid on the backoff alone, then c, rho, gamma by L-BFGS."""
    best_beta, best_ll = _fit_beta(ev, y, backoff)
    p_bo = backoff.prob(ev.prev, y, best_beta)  # (Q,)
    c, rho, gamma, u0, nats = chain.fit(p_bo, prior_point(ev.prior, y), ev.prior is not None, ev.sims,
                                        ev.targets, ev.rsims, ev.rtargets, y, levels, ev.wcount, ev.wsize)
    params = MixParams(gamma=gamma, alpha=1.0, beta=best_beta, chain=c, rho=rho, u0=u0)
    info = {
        "heldout_nats": nats,
        "heldout_backoff_nats": -best_ll,
        "lambda_mean": float(mix_lambda(ev, params).mean()),
        "fit_gamma": gamma, "fit_beta": best_beta, "fit_u0": u0,
        **{f"fit_c{d + 1}": v for d, v in enumerate(c)},
        **{f"fit_rho{d + 1}": v for d, v in enumerate(rho)},
    }
    return params, info
