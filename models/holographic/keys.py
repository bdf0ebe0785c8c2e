"""Context keys: the faithful window product, and multi-scale suffix keys that have locality.

A key is J blocks, one per *scale* s_1 < ... < s_J (window lengths in tokens).
Block j is the Grace-projected, normalised product of the LAST s_j tokens of
the window, K_j = G(normalize_F(E_(t-s_j+1) ... E_t)), as a unit multivector
scaled by a weight w_j (sum of w_j^2 = 1), so the inner product of two keys is

    <k, k'> = sum_j w_j^2 cos(K_j, K'_j).

- The faithful key of the spec (flavors base, phi, short, long, giant) is the
  single scale s_1 = context_size with all 16 coefficients: bit-for-bit the
  original key function. It behaves like a hash: one changed token anywhere
  drops its cosine to ~0.5 and windows sharing their last 32 tokens are as far
  apart as random pairs.
- Suffix keys (flavors `suffix*`): scales such as 1, 2, 3, 4, 6, 8, ..., n.
  Two windows that share their last L tokens have *identical* blocks for every
  s_j <= L, so their similarity is at least sum_{s_j <= L} w_j^2 plus the
  (noisy, mean ~0) cosines of the longer scales: windows sharing recent
  context are neighbours, and more shared context means nearer. The kNN vote
  then behaves like a smoothed variable-order n-gram whose orders are the
  scales, with a soft match on everything longer. Token embeddings are even
  multivectors (grades 0, 2, 4), so every product is even and grades 1 and 3
  are exactly zero: suffix keys store only the 8 even coefficients per scale.
- Cost: each scale is one sliding-window product (block aggregation, see
  context.py), amortised O(1) per window, so a key costs O(J) = O(log n)
  batched 4x4 matmuls whatever the context length.

Scalar summaries the sleep phase needs (grace-stability sigma, witness,
salience, enstrophy) are taken per scale and averaged with the weights w_j^2;
with one scale they are exactly the spec's quantities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from nightshift.models.holographic import algebra
from nightshift.models.holographic.context import (
    keys_from_products,
    sliding_products,
    sliding_signatures,
    unit,
    window_features,
)

ALL = tuple(range(16))
EVEN = (0, 5, 6, 7, 8, 9, 10, 15)  # grade 0, the 6 bivectors, gamma5: where even products live
# Two blocks "match" above this cosine. The same suffix computed along two float32 paths (another offset in
# the block scan) differs by ~1e-7 (measured). 50,257 gpt2 token embeddings in 8 dimensions leave 1.7 % of
# tokens a twin within 1e-5 at noise_std 0.3, 0.5 % at noise_std 1.0: a merged token class for the match depth.
MATCH_TOL = 1e-5


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Which suffix products make a key, how they are weighted and which coefficients are stored."""

    scales: tuple[int, ...]  # window lengths, increasing; the last one is context_size
    weights: tuple[float, ...]  # (J,) block weights, sum of squares 1
    coeffs: tuple[int, ...]  # stored Clifford coefficient indices per block (ALL or EVEN)

    @classmethod
    def faithful(cls, context_size: int) -> "KeyLayout":
        return cls(scales=(context_size,), weights=(1.0,), coeffs=ALL)

    @classmethod
    def suffixes(cls, scales: tuple[int, ...], decay: float) -> "KeyLayout":
        """Weights w_j proportional to decay^j (j = 0 for the shortest scale), normalised."""
        raw = [decay**j for j in range(len(scales))]
        total = math.sqrt(sum(r * r for r in raw))
        return cls(scales=tuple(scales), weights=tuple(r / total for r in raw), coeffs=EVEN)

    # ------------------------------------------------------------- shapes
    @property
    def num_scales(self) -> int:
        return len(self.scales)

    @property
    def width(self) -> int:
        return len(self.coeffs)

    @property
    def dim(self) -> int:
        """Floats per stored key."""
        return self.num_scales * self.width

    def _w(self, like: Tensor) -> Tensor:
        return torch.tensor(self.weights, dtype=like.dtype, device=like.device)  # (J,)

    def _coeff_index(self, like: Tensor) -> Tensor:
        """The kept coefficients as an index tensor on like's device (a Python list index would be
        turned into a tensor behind the caller's back)."""
        return torch.tensor(self.coeffs, dtype=torch.long, device=like.device)  # (C,)

    def blocks(self, keys: Tensor) -> Tensor:
        """Keys (..., D) -> per-scale multivectors (..., J, 16), weights divided out (unit for a unit key)."""
        b = keys.reshape(*keys.shape[:-1], self.num_scales, self.width) / self._w(keys)[:, None]  # (..., J, C)
        if self.coeffs == ALL:
            return b
        out = b.new_zeros(*b.shape[:-1], 16)  # (..., J, 16)
        out.index_copy_(-1, self._coeff_index(out), b)
        return out

    def pack(self, blocks: Tensor) -> Tensor:
        """Per-scale multivectors (..., J, 16) -> unit key (..., D): each block unit, times its weight."""
        b = unit(blocks.index_select(-1, self._coeff_index(blocks))) * self._w(blocks)[:, None]  # (..., J, C)
        return b.reshape(*blocks.shape[:-2], self.dim)

    # ------------------------------------------------------------- the key function
    def features(self, emb_table: Tensor, tokens: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """tokens (B, L) -> (unit keys (B, L, D), key norms (B, L), unit signatures (B, L, 16)).

        Position t describes the window ending at t; a block whose scale exceeds the available left
        context uses the whole prefix (the same function at store and query time). THE key function:
        observe() stores with it and score()/log_probs()/generate() look up with it.
        """
        if self.num_scales == 1 and self.coeffs == ALL:  # the faithful key, exactly as the spec computes it
            return window_features(emb_table, tokens, self.scales[0])
        emb = emb_table[tokens]  # (B, L, 4, 4)
        parts, norms = [], []
        for s in self.scales:
            prod = emb if s == 1 else sliding_products(emb, s)  # (B, L, 4, 4)
            k, nrm = keys_from_products(prod)  # (B, L, 16), (B, L)
            parts.append(k)
            norms.append(nrm)
        blocks = torch.stack(parts, dim=-2)  # (B, L, J, 16)
        w2 = self._w(blocks) ** 2  # (J,)
        norm = (torch.stack(norms, dim=-1) * w2).sum(-1)  # (B, L) weighted mean Grace norm
        sigs = unit(sliding_signatures(emb, self.scales[-1]))  # (B, L, 16)
        return self.pack(blocks), norm, sigs

    # ------------------------------------------------------------- scalar summaries (weights w_j^2)
    def weighted_mean(self, per_scale: Tensor) -> Tensor:
        return (per_scale * self._w(per_scale) ** 2).sum(-1)

    def sigma(self, keys: Tensor) -> Tensor:
        """Grace-stability (s^2 + p^2) / |M|^2, per scale then weighted: (..., D) -> (...)."""
        return self.weighted_mean(algebra.grace_stability(self.blocks(keys)))

    def salience(self, keys: Tensor) -> Tensor:
        """|s| + phi^-1 |p| of (scaled) keys, per scale then weighted."""
        return self.weighted_mean(algebra.salience(self.blocks(keys)))

    def enstrophy(self, keys: Tensor) -> Tensor:
        return self.weighted_mean(algebra.enstrophy(self.blocks(keys)))

    def witness(self, keys: Tensor) -> Tensor:
        """(..., D) -> (..., 2J): the (s, p) of every scale times its weight (Euclidean = weighted distance)."""
        s, p = algebra.witness(self.blocks(keys))  # (..., J) each
        w = self._w(keys)
        return torch.cat([s * w, p * w], dim=-1)

    def depth(self, queries: Tensor, neighbours: Tensor) -> Tensor:
        """Matched depth: queries (..., D), neighbours (..., k, D) -> (..., k) float in {0, ..., J}.

        The number of scales, from the shortest up to the first mismatch, whose block equals the
        query's (cosine >= 1 - MATCH_TOL): how many of the scales the shared suffix covers. Unlike the
        raw inner product it carries none of the noise that the unmatched longer blocks add.
        """
        j, c = self.num_scales, self.width
        q = queries.reshape(*queries.shape[:-1], 1, j, c)  # (..., 1, J, C)
        nb = neighbours.reshape(*neighbours.shape[:-1], j, c)  # (..., k, J, C)
        cos = (q * nb).sum(-1) / self._w(queries) ** 2  # (..., k, J)
        return torch.cumprod((cos >= 1.0 - MATCH_TOL).to(queries.dtype), dim=-1).sum(-1)

    def matrices(self, keys: Tensor) -> Tensor:
        """(..., D) -> (..., J, 4, 4): the per-scale multivectors as matrices."""
        return algebra.from_coefficients(self.blocks(keys))

    def from_matrices(self, mats: Tensor) -> Tensor:
        """(..., J, 4, 4) -> unit keys (..., D)."""
        return self.pack(algebra.coefficients(mats))
