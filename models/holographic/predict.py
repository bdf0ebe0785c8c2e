"""From retrieved neighbours and prototypes to a normalised next-token distribution.

kNN-LM style, with the mixing weight set per query by how close its
neighbours are:

    w_i   = phi^(-(1 - cos_i) / width)          (vote weight of neighbour i)
    p(v)  = (sum_i w_i [y_i = v] + gamma prior(v) + alpha p_bo(v | prev))
            / (sum_i w_i + gamma + alpha)

which is lambda * vote + (1 - lambda) * p_bo with
lambda = (sum w + gamma) / (sum w + gamma + alpha): a query with an exact
match leans on memory, a query with only distant neighbours (a short
left context, an unseen phrase) leans on the backoff. p_bo is strictly
positive, so every token has non-zero probability and the sum over the
vocabulary is 1. width, gamma, alpha (and the backoff's beta) are fit by
grid search on held-out TRAINING windows that never entered the store.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from models.holographic.algebra import PHI
from models.holographic.backoff import BigramBackoff

LOG_PHI = math.log(PHI)
# The narrowest kernel is 1e-5: float32 cosines of identical windows round by ~1e-7, which at
# width 1e-6 would already move a vote weight by 5 %.
WIDTHS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)
ALPHAS = (1e-3, 1e-2, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1e3, 1e4, 1e6)
GAMMAS = (0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
BETAS = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0)


@dataclass(slots=True)
class MixParams:
    width: float = 1e-2  # kernel width of the kNN vote (in units of 1 - cosine)
    gamma: float = 0.1  # mass of the prototype prior
    alpha: float = 1.0  # mass of the backoff
    beta: float = 1.0  # bigram smoothing towards the unigram

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(slots=True)
class Evidence:
    """What memory says about a batch of queries (everything but the candidate token)."""

    sims: Tensor  # (Q, k) cosine of the k nearest stored keys (k may be 0)
    targets: Tensor  # (Q, k) their next tokens
    prior: tuple[Tensor, Tensor, Tensor] | None  # prototype weights (Q, K), ids (Q, K, H), probs (Q, K, H)
    prev: Tensor  # (Q,) last token of each context (for the bigram)


def vote_weights(sims: Tensor, width: float) -> Tensor:
    return torch.exp(-(1.0 - sims.double()).clamp_min(0.0) * (LOG_PHI / width))  # (Q, k)


def prior_point(prior: tuple[Tensor, Tensor, Tensor] | None, y: Tensor) -> Tensor:
    if prior is None:
        return torch.zeros(y.shape[0], dtype=torch.float64)
    w, ids, probs = prior
    hit = (ids == y[:, None, None]).to(probs.dtype) * probs  # (Q, K, H)
    return (w[:, :, None] * hit).sum((1, 2)).double()  # (Q,)


def point_probs(ev: Evidence, y: Tensor, params: MixParams, backoff: BigramBackoff) -> Tensor:
    """p(y_q | context_q) for each query, float64 (Q,)."""
    w = vote_weights(ev.sims, params.width)  # (Q, k)
    vote = (w * (ev.targets == y[:, None])).sum(1)  # (Q,)
    mass = w.sum(1)  # (Q,)
    gamma = params.gamma if ev.prior is not None else 0.0
    p_bo = backoff.prob(ev.prev, y, params.beta)  # (Q,)
    num = vote + gamma * prior_point(ev.prior, y) + params.alpha * p_bo
    return num / (mass + gamma + params.alpha)


def full_probs(ev: Evidence, params: MixParams, backoff: BigramBackoff) -> Tensor:
    """(Q, V) float64 distributions; each row sums to 1."""
    out = params.alpha * backoff.full(ev.prev, params.beta)  # (Q, V)
    w = vote_weights(ev.sims, params.width)  # (Q, k)
    out.scatter_add_(1, ev.targets.long(), w)
    gamma = params.gamma if ev.prior is not None else 0.0
    if ev.prior is not None:
        pw, ids, probs = ev.prior
        contrib = gamma * (pw[:, :, None] * probs).double()  # (Q, K, H)
        out.scatter_add_(1, ids.reshape(ids.shape[0], -1), contrib.reshape(ids.shape[0], -1))
    return out / (w.sum(1) + gamma + params.alpha)[:, None]


def mix_lambda(ev: Evidence, params: MixParams) -> Tensor:
    """Per-query weight of memory (kNN + prior) against the backoff."""
    mass = vote_weights(ev.sims, params.width).sum(1)
    gamma = params.gamma if ev.prior is not None else 0.0
    return (mass + gamma) / (mass + gamma + params.alpha)


def fit(ev: Evidence, y: Tensor, backoff: BigramBackoff) -> tuple[MixParams, dict[str, float]]:
    """Grid-search (beta, then width x gamma x alpha) maximising held-out log-likelihood."""
    best_beta, best_ll = BETAS[0], -math.inf
    for beta in BETAS:
        ll = float(backoff.prob(ev.prev, y, beta).log().mean())
        if ll > best_ll:
            best_beta, best_ll = beta, ll
    p_bo = backoff.prob(ev.prev, y, best_beta)  # (Q,)
    pri = prior_point(ev.prior, y)  # (Q,)
    gammas = torch.tensor(GAMMAS if ev.prior is not None else (0.0,), dtype=torch.float64)
    alphas = torch.tensor(ALPHAS, dtype=torch.float64)
    best = (-math.inf, MixParams(beta=best_beta))
    for width in WIDTHS:
        w = vote_weights(ev.sims, width)  # (Q, k)
        vote = (w * (ev.targets == y[:, None])).sum(1)[:, None, None]  # (Q, 1, 1)
        mass = w.sum(1)[:, None, None]
        num = vote + gammas[None, :, None] * pri[:, None, None] + alphas[None, None, :] * p_bo[:, None, None]
        ll = (num / (mass + gammas[None, :, None] + alphas[None, None, :])).log().mean(0)  # (G, A)
        flat = int(ll.argmax())
        gi, ai = divmod(flat, ll.shape[1])
        if float(ll[gi, ai]) > best[0]:
            best = (float(ll[gi, ai]), MixParams(width=width, gamma=float(gammas[gi]), alpha=float(alphas[ai]),
                                                 beta=best_beta))
    params = best[1]
    info = {
        "heldout_nats": -best[0],
        "heldout_backoff_nats": -best_ll,
        "lambda_mean": float(mix_lambda(ev, params).mean()),
        **{f"fit_{k}": v for k, v in params.as_dict().items()},
    }
    return params, info
