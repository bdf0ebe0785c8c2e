"""A linear mixture of next-byte experts with weights chosen by context buckets, fitted by EM on held-out bytes.

P(b | ctx) = sum_e w[bucket(ctx), e] * P_e(b | ctx), with w >= 0 summing to 1
per bucket. Every expert is a distribution over the 256 bytes and the bucket
depends on the context only (never on b), so P sums to 1 exactly.

Buckets are mixed-radix tuples of features (coarse to fine, e.g. longest
in-context order seen, how often, unit length). Weights are fitted level by
level: level l's buckets start from, and are pulled towards (a Dirichlet prior
of `prior` pseudo-positions), the weights of their level l - 1 parent, so a
bucket with few held-out bytes keeps its parent's weights instead of
over-fitting them. EM maximises the held-out likelihood of the mixture; it
never sees validation bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, slots=True)
class Mixer:
    radices: tuple[int, ...]  # number of values of each bucket feature, coarse to fine
    weights: np.ndarray  # (prod(radices), E) float64, rows sum to 1

    @classmethod
    def uniform(cls, radices: tuple[int, ...], experts: int) -> "Mixer":
        return cls(radices, np.full((int(np.prod(radices)), experts), 1.0 / experts))

    @staticmethod
    def bucket(features: list[np.ndarray], radices: tuple[int, ...]) -> np.ndarray:
        """Mixed-radix bucket id (N,) of feature columns, each clipped into 0..radix-1."""
        b = np.zeros(len(features[0]), dtype=np.int64)
        for f, r in zip(features, radices, strict=True):
            b = b * r + np.clip(f, 0, r - 1)
        return b

    def __call__(self, P: np.ndarray, bucket: np.ndarray) -> np.ndarray:
        """P (E, Q) expert probabilities, bucket (Q,) -> (Q,) mixture probability."""
        return np.einsum("qe,eq->q", self.weights[bucket], P)

    @property
    def nbytes(self) -> int:
        return int(self.weights.nbytes)


def fit(P: np.ndarray, features: list[np.ndarray], radices: tuple[int, ...], *, prior: float = 16.0,
        iters: int = 25) -> Mixer:
    """EM, level by level, of bucketed mixture weights. P (E, N) expert probabilities of the held-out bytes."""
    E, N = P.shape
    w = np.full((1, E), 1.0 / E)  # level 0: one bucket
    if N == 0:
        return Mixer.uniform(radices, E)
    P = np.maximum(P, 1e-300)
    for level in range(len(radices) + 1):
        rad = radices[:level]
        nb = int(np.prod(rad)) if rad else 1
        b = Mixer.bucket(features[:level], rad) if rad else np.zeros(N, dtype=np.int64)
        parent = w if level == 0 else w[np.arange(nb) // radices[level - 1]]  # (nb, E)
        w = parent.copy()
        n = np.bincount(b, minlength=nb).astype(np.float64)[:, None]  # (nb, 1)
        strength = prior if level else 0.0
        for _ in range(iters):
            mix = w[b].T * P  # (E, N)
            r = mix / mix.sum(axis=0)
            acc = np.stack([np.bincount(b, weights=r[e], minlength=nb) for e in range(E)], axis=1)  # (nb, E)
            w = (acc + strength * parent) / (n + strength)
            w = np.where(n + strength > 0, w, parent)
    return Mixer(tuple(radices), w / w.sum(axis=1, keepdims=True))
