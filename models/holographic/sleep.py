"""Dreaming: Non-REM (episodes -> prototypes), REM (prototypes -> schemas), prune and merge.

All steps are deterministic given their inputs and the generator passed in,
so every DDP rank that enters sleep with the same memory leaves it with the
same prototypes.

Non-REM. Candidates are buffer episodes with grace-stability sigma < phi^-2
(transient, they need consolidating) or whose target is shared by >= 3
episodes (redundant). Similarity is (1 - mean sigma) cos(key) + mean sigma
cos(signature). The threshold adapts to the data (see
`adaptive_threshold`), never below phi^-2 similarity. Greedy
leader clustering visits candidates most transient first; a cluster of
>= 3 becomes a prototype.

REM (`rem_cycles` times). Random prototype pairs A, B are recombined as
AB, AB^T and A + phi^-4 noise. Each recombination R0 is run through a
Grace-damped flow x <- normalize(G(x R0)) for 10 steps; it survives if the
last step barely moves (cos(x10, x9) >= phi^-1): a real, stable attractor
rather than a rotation. Survivors that recur (>= 3 land in the same spot,
cos >= 1 - phi^-3) become schemas, carrying their parents' target
histograms.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from nightshift.models.holographic import algebra
from nightshift.models.holographic.context import unit
from nightshift.models.holographic.keys import KeyLayout
from nightshift.models.holographic.prototypes import Prototypes, histogram

PHI = algebra.PHI
CONSOLIDATE_BELOW = PHI**-2  # sigma threshold of a transient episode
MERGE_ABOVE = 1.0 - PHI**-3  # prototypes this similar are one
PRUNE_SALIENCE = PHI**-3
SURVIVE_COS = PHI**-1
MIN_CLUSTER = 3
REM_STEPS = 10


def leader_clusters(feats: Tensor, order: Tensor, threshold: float) -> Tensor:
    """Greedy leader clustering: feats (M, D) with dot = similarity -> labels (M,) in [0, C)."""
    m = feats.shape[0]
    labels = torch.full((m,), -1, dtype=torch.long)
    free = torch.ones(m, dtype=torch.bool)
    c = 0
    for i in order.tolist():
        if not free[i]:
            continue
        members = free & ((feats @ feats[i]) >= threshold)  # (M,)
        members[i] = True
        labels[members] = c
        free &= ~members
        c += 1
    return labels


def adaptive_threshold(feats: Tensor, rank: int = MIN_CLUSTER, chunk: int = 1024) -> float:
    """Similarity threshold between "neighbours" and "strangers", scale-free.

    d_near = median distance (1 - similarity) of a row to its `rank`-th nearest other row,
    d_far = median distance of unrelated pairs (row i vs row i + M/2); the threshold distance
    is their geometric mean, so tight clusters split from each other and loose data still
    clusters. Never below phi^-2 similarity.
    """
    m = feats.shape[0]
    if m <= rank:
        return 1.0
    kth = []
    for s in range(0, m, chunk):
        sims = feats[s : s + chunk] @ feats.T  # (c, M)
        sims[torch.arange(sims.shape[0]), torch.arange(s, s + sims.shape[0])] = -math.inf  # not yourself
        kth.append(torch.topk(sims, rank, dim=1).values[:, -1])
    d_near = max(1.0 - float(torch.cat(kth).median()), 1e-9)
    d_far = max(1.0 - float((feats * feats.roll(m // 2, 0)).sum(1).median()), d_near)
    return max(1.0 - math.sqrt(d_near * d_far), CONSOLIDATE_BELOW)


def _rows_from_clusters(
    keys: Tensor, norms: Tensor, sigs: Tensor, targets: Tensor, labels: Tensor, hist_width: int, layout: KeyLayout
) -> dict[str, Tensor]:
    """Summaries of clusters with >= MIN_CLUSTER members."""
    n_clusters = int(labels.max()) + 1 if labels.numel() else 0
    support = torch.bincount(labels, minlength=n_clusters).float()
    keep = (support >= MIN_CLUSTER).nonzero().squeeze(1)
    remap = torch.full((n_clusters,), -1, dtype=torch.long)
    remap[keep] = torch.arange(keep.numel())
    lab = remap[labels]
    inside = lab >= 0
    lab, keys, norms, sigs, targets = lab[inside], keys[inside], norms[inside], sigs[inside], targets[inside]
    g = keep.numel()
    sums = torch.zeros(g, keys.shape[1]).index_add_(0, lab, keys)
    centroid = unit(sums)
    scale = torch.zeros(g).index_add_(0, lab, norms) / support[keep]
    signature = unit(torch.zeros(g, 16).index_add_(0, lab, sigs))
    ids, counts = histogram(targets, lab, g, hist_width)
    dist = 1.0 - (keys * centroid[lab]).sum(1)
    radius = torch.zeros(g).scatter_reduce_(0, lab, dist, reduce="amax")
    return {
        "centroid": centroid, "scale": scale, "signature": signature, "hist_ids": ids, "hist_counts": counts,
        "radius": radius, "support": support[keep], "sigma": layout.sigma(centroid),
        "schema": torch.zeros(g, dtype=torch.bool),
    }


def nrem(
    keys: Tensor, norms: Tensor, sigs: Tensor, targets: Tensor, hist_width: int, layout: KeyLayout
) -> tuple[dict[str, Tensor], dict[str, float]]:
    """Buffer episodes -> new prototype rows, and the episode-level sleep metrics."""
    full_k = keys * norms[:, None]
    sigma = layout.sigma(keys)  # (M,) scale-free
    tcount = torch.bincount(targets.long())[targets.long()]
    cand = (sigma < CONSOLIDATE_BELOW) | (tcount >= MIN_CLUSTER)
    idx = cand.nonzero().squeeze(1)
    stats = {
        "episodes": float(keys.shape[0]),
        "candidates": float(idx.numel()),
        "consolidation_ratio": float((sigma < CONSOLIDATE_BELOW).float().mean()) if keys.numel() else 0.0,
        "mean_sigma": float(sigma.mean()) if keys.numel() else 0.0,
        "enstrophy": float(layout.enstrophy(full_k).mean()) if keys.numel() else 0.0,
    }
    if idx.numel() < MIN_CLUSTER:
        return {}, stats | {"threshold": 1.0, "witness_stability": 0.0, "new_prototypes": 0.0}
    k, s, sg = keys[idx], sigs[idx], sigma[idx]
    mean_sigma = float(sg.mean())
    feats = torch.cat([k * math.sqrt(1.0 - mean_sigma), s * math.sqrt(mean_sigma)], dim=1)  # dot = mixed sim
    threshold = adaptive_threshold(feats)
    order = torch.argsort(sg, stable=True)  # most transient (lowest sigma) first
    labels = leader_clusters(feats, order, threshold)
    rows = _rows_from_clusters(k, norms[idx], s, targets[idx], labels, hist_width, layout)
    # witness stability: how well a prototype keeps the (s, p) direction of its members
    n_clusters = int(labels.max()) + 1
    sums = unit(torch.zeros(n_clusters, k.shape[1]).index_add_(0, labels, k))
    wm = unit(layout.witness(k))
    wc = unit(layout.witness(sums))[labels]
    stats |= {
        "threshold": threshold,
        "witness_stability": float((wm * wc).sum(1).mean()),
        "new_prototypes": float(rows["centroid"].shape[0]),
        "clustered": float(rows["support"].sum()),
    }
    return rows, stats


def rem(protos: Prototypes, cycles: int, pairs: int, gen: torch.Generator) -> tuple[dict[str, Tensor], dict]:
    """Recombine prototype pairs; return schema rows (possibly empty) and REM metrics."""
    p = len(protos)
    stats = {"rem_recombinations": 0.0, "rem_survivors": 0.0}
    if p < 2 or cycles == 0:
        return {}, stats
    layout = protos.layout
    mats = layout.matrices(protos.centroid * protos.scale[:, None])  # (P, J, 4, 4): one multivector per scale
    j = layout.num_scales
    finals, parents = [], []
    for _ in range(cycles):
        a = torch.randint(0, p, (pairs,), generator=gen)
        b = (a + 1 + torch.randint(0, p - 1, (pairs,), generator=gen)) % p  # b != a
        ma, mb = mats[a], mats[b]  # (pairs, J, 4, 4); products act scale by scale
        noise = algebra.frobenius_normalize(torch.randn(pairs, j, 4, 4, generator=gen))
        scale = ma.flatten(-2).norm(dim=-1)[..., None, None]  # (pairs, J, 1, 1)
        recs = torch.cat([ma @ mb, ma @ mb.transpose(-1, -2), ma + PHI**-4 * scale * noise])  # (3*pairs, J, 4, 4)
        x0 = algebra.frobenius_normalize(recs)
        x, prev = x0, x0
        for _ in range(REM_STEPS):
            prev, x = x, algebra.frobenius_normalize(algebra.grace(x @ x0))
        # Frobenius cosine of unit matrices, per scale, weighted like the key's inner product
        stable = layout.weighted_mean((x * prev).sum((-1, -2))) >= SURVIVE_COS
        finals.append(layout.from_matrices(x[stable]))
        parents.append(torch.stack([a.repeat(3), b.repeat(3)], 1)[stable])
        stats["rem_recombinations"] += float(recs.shape[0])
    fin, par = torch.cat(finals), torch.cat(parents)  # (S, D), (S, 2)
    stats["rem_survivors"] = float(fin.shape[0])
    if fin.shape[0] < MIN_CLUSTER:
        return {}, stats
    labels = leader_clusters(fin, torch.arange(fin.shape[0]), MERGE_ABOVE)
    support = torch.bincount(labels).float()
    keep = (support >= MIN_CLUSTER).nonzero().squeeze(1)
    if keep.numel() == 0:
        return {}, stats
    remap = torch.full((support.numel(),), -1, dtype=torch.long)
    remap[keep] = torch.arange(keep.numel())
    lab = remap[labels]
    inside = lab >= 0
    lab, fin, par = lab[inside], fin[inside], par[inside]
    g = keep.numel()
    centroid = unit(torch.zeros(g, fin.shape[1]).index_add_(0, lab, fin))
    both = par.reshape(-1)  # each survivor inherits both parents
    lab2 = lab.repeat_interleave(2)
    # inherited histogram: the parents' histograms, pooled
    h = protos.hist_width
    ids, counts = histogram(
        protos.hist_ids[both].reshape(-1), lab2.repeat_interleave(h), g, h, protos.hist_counts[both].reshape(-1)
    )
    scale = torch.zeros(g).index_add_(0, lab2, protos.scale[both]) / (2 * support[keep])
    signature = unit(torch.zeros(g, 16).index_add_(0, lab2, protos.signature[both]))
    radius = torch.zeros(g).scatter_reduce_(0, lab, 1.0 - (fin * centroid[lab]).sum(1), reduce="amax")
    rows = {
        "centroid": centroid, "scale": scale, "signature": signature, "hist_ids": ids, "hist_counts": counts,
        "radius": radius, "support": support[keep], "sigma": layout.sigma(centroid),
        "schema": torch.ones(g, dtype=torch.bool),
    }
    return rows, stats


def merge_similar(protos: Prototypes, threshold: float = MERGE_ABOVE) -> int:
    """Merge prototypes whose centroids have cosine >= threshold; returns how many merged away."""
    p = len(protos)
    if p < 2:
        return 0
    order = torch.argsort(-protos.support, stable=True)  # strongest leads
    labels = leader_clusters(protos.centroid, order, threshold)
    g = int(labels.max()) + 1
    if g == p:
        return 0
    sup = protos.support
    centroid = unit(torch.zeros(g, protos.centroid.shape[1]).index_add_(0, labels, protos.centroid * sup[:, None]))
    support = torch.zeros(g).index_add_(0, labels, sup)
    scale = torch.zeros(g).index_add_(0, labels, protos.scale * sup) / support
    signature = unit(torch.zeros(g, 16).index_add_(0, labels, protos.signature * sup[:, None]))
    h = protos.hist_width
    ids, counts = histogram(protos.hist_ids.reshape(-1), labels.repeat_interleave(h), g, h,
                            protos.hist_counts.reshape(-1))
    spread = protos.radius + (1.0 - (protos.centroid * centroid[labels]).sum(1))
    radius = torch.zeros(g).scatter_reduce_(0, labels, spread, reduce="amax")
    schema = torch.ones(g, dtype=torch.uint8).scatter_reduce_(0, labels, protos.schema.to(torch.uint8), reduce="amin")
    merged = Prototypes(h, protos.layout)
    merged.append({
        "centroid": centroid, "scale": scale, "signature": signature, "hist_ids": ids, "hist_counts": counts,
        "radius": radius, "support": support, "sigma": protos.layout.sigma(centroid), "schema": schema.bool(),
    })
    protos.load(merged.state())
    return p - g


def prune(protos: Prototypes, max_prototypes: int) -> int:
    """Drop prototypes with salience < phi^-3 and support < 2; then keep the best-supported max_prototypes."""
    before = len(protos)
    keep = ~((protos.salience() < PRUNE_SALIENCE) & (protos.support < 2))
    protos.select(keep)
    if len(protos) > max_prototypes:
        top = torch.topk(protos.support, max_prototypes).indices.sort().values
        protos.select(top)
    return before - len(protos)
