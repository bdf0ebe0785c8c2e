"""Prototypes and schemas (consolidated memory) and the distributed prior they give.

A prototype is {centroid (unit key direction), key scale, signature,
target histogram (top-H ids and counts), radius, support, sigma, schema
flag}. Schemas (from REM) live in the same table with `schema = True`, so
they join prediction exactly like prototypes do.

Distributed prior for a query q: the top-K prototypes by cosine, weighted
phi^(-witness distance) x sigma x sqrt(support + 1), mixing their
normalised target histograms. The witness distance is the Euclidean
distance between the (s, p) coefficients of the unit query key and of the
unit centroid.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from nightshift.models.holographic import algebra
from nightshift.models.holographic.keys import KeyLayout

FIELDS = ("centroid", "scale", "signature", "hist_ids", "hist_counts", "radius", "support", "sigma", "schema")


class Prototypes:
    def __init__(self, hist_width: int, layout: KeyLayout) -> None:
        self.hist_width = hist_width
        self.layout = layout
        self.centroid = torch.zeros(0, layout.dim)  # unit key directions
        self.scale = torch.zeros(0)  # mean key norm of the members (salience needs the scale)
        self.signature = torch.zeros(0, 16)  # unit mean signature
        self.hist_ids = torch.zeros(0, hist_width, dtype=torch.long)
        self.hist_counts = torch.zeros(0, hist_width)  # 0 where a slot is unused
        self.radius = torch.zeros(0)
        self.support = torch.zeros(0)
        self.sigma = torch.zeros(0)
        self.schema = torch.zeros(0, dtype=torch.bool)

    def __len__(self) -> int:
        return self.centroid.shape[0]

    @property
    def num_schemas(self) -> int:
        return int(self.schema.sum())

    def salience(self) -> Tensor:
        return self.layout.salience(self.centroid * self.scale[:, None])  # (P,)

    # ------------------------------------------------------------ editing
    def append(self, rows: Mapping[str, Tensor]) -> None:
        for name in FIELDS:
            setattr(self, name, torch.cat([getattr(self, name), rows[name].to(getattr(self, name).dtype)]))

    def select(self, keep: Tensor) -> None:
        """Keep rows by boolean mask or index tensor."""
        for name in FIELDS:
            setattr(self, name, getattr(self, name)[keep])

    def rows(self, idx: Tensor) -> dict[str, Tensor]:
        return {name: getattr(self, name)[idx] for name in FIELDS}

    def copy(self) -> "Prototypes":
        other = Prototypes(self.hist_width, self.layout)
        other.append(self.rows(torch.arange(len(self))))
        return other

    # ------------------------------------------------------------ prediction
    def prior(self, keys: Tensor, top: int) -> tuple[Tensor, Tensor, Tensor] | None:
        """keys (Q, 16) unit -> (weights (Q, K), hist ids (Q, K, H), hist probs (Q, K, H)), or None if empty.

        Weights are normalised over the K chosen prototypes (the prior is a distribution).
        """
        if len(self) == 0:
            return None
        top = min(top, len(self))
        sims = keys @ self.centroid.T  # (Q, P)
        idx = torch.topk(sims, top, dim=1).indices  # (Q, K)
        qw = self.layout.witness(keys)  # (Q, 2J): (s, p) per scale
        cw = self.layout.witness(self.centroid)  # (P, 2J)
        dist = (qw[:, None, :] - cw[idx]).norm(dim=-1)  # (Q, K)
        w = algebra.PHI ** (-dist) * self.sigma[idx] * torch.sqrt(self.support[idx] + 1.0)  # (Q, K)
        w = w.clamp_min(1e-12)
        w = w / w.sum(1, keepdim=True)
        counts = self.hist_counts[idx]  # (Q, K, H)
        probs = counts / counts.sum(-1, keepdim=True).clamp_min(1e-12)
        return w, self.hist_ids[idx], probs

    # ------------------------------------------------------------ state
    def state(self) -> dict:
        return {name: getattr(self, name).clone() for name in FIELDS}

    def load(self, state: Mapping) -> None:
        for name in FIELDS:
            setattr(self, name, state[name].clone())


def histogram(
    targets: Tensor, groups: Tensor, num_groups: int, width: int, weights: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Top-`width` (weighted) target counts per group.

    targets (M,), group ids (M,) in [0, G), weights (M,) or None (counts of 1)
    -> ids (G, width), counts (G, width) (count 0 marks an unused slot).
    """
    pair = groups.long() * (1 << 32) + targets.long()
    uniq, inv = torch.unique(pair, return_inverse=True)  # sorted by group, then target
    w = torch.ones(pair.shape[0]) if weights is None else weights.float()
    cnt = torch.zeros(uniq.shape[0]).index_add_(0, inv, w)
    g, t = uniq >> 32, uniq & ((1 << 32) - 1)
    # rank the entries inside each group by count (desc); the stable sort keeps it deterministic
    order = torch.argsort(-cnt, stable=True)
    order = order[torch.argsort(g[order], stable=True)]
    g, t, cnt = g[order], t[order], cnt[order]
    first = torch.searchsorted(g, torch.arange(num_groups))
    rank = torch.arange(g.numel()) - first[g]
    keep = (rank < width) & (cnt > 0)
    ids = torch.zeros(num_groups, width, dtype=torch.long)
    counts = torch.zeros(num_groups, width)
    ids[g[keep], rank[keep]] = t[keep]
    counts[g[keep], rank[keep]] = cnt[keep]
    return ids, counts
