"""The spec's "seed metrics", computed from the model's current state at bounded cost.

`HolographicModel.eval_metrics()` calls `seed_metrics` beside each evaluation (the trainer logs the result
under `seed/`). Everything here reads memory the model already keeps, never the validation split:

- the probe: a uniform reservoir sample (at most PROBE_SIZE = 512) of raw training windows whose episodes were
  offered to the store (seen data);
- the holdout: a uniform reservoir sample of held-out training windows (rows hashed out of the store, never
  stored; the same windows fit the mixture's few scalars), i.e. unseen text;
- the store (up to max_attractors episodes: 10^8 in the giant run) and the prototype table.

Every sample is a fixed, evenly spaced selection of rows (no RNG), and the one random draw (the substitution
tokens of the vorticity test) uses a generator seeded by the config's seed, so two calls on the same state
return identical numbers. The costs do not grow with training except for the two kNN retrievals (RETRIEVAL_WINDOWS
queries each, one pass over the store: the price of scoring 256 tokens) and the prototype lookups
(STORE_SAMPLE x prototypes inner products, chunked). A metric that is undefined for the current state
(no prototypes yet, an empty probe, a window too short for the vorticity test) is omitted, never NaN.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from nightshift.models.holographic import predict
from nightshift.models.holographic.context import unit
from nightshift.models.holographic.sleep import CONSOLIDATE_BELOW

if TYPE_CHECKING:
    from nightshift.models.holographic.model import HolographicModel
    from nightshift.models.holographic.predict import Evidence

log = logging.getLogger(__name__)

RETRIEVAL_WINDOWS = 256  # seen (probe) windows for retrieval accuracy; held-out windows for generalization
VORTICITY_PAIRS = 256  # (same-structure, order-swap) pairs of the vorticity test
STORE_SAMPLE = 4096  # stored episodes for sigma, enstrophy, consolidation and witness stability
FEATURE_CHUNK = 32  # probe windows whose keys are computed at once (a window may be 4,096 tokens long)
SCORE_FLOATS = 1 << 24  # largest (queries x vocabulary) or (queries x prototypes) block held at once


def spread(size: int, count: int, device: torch.device | str = "cpu") -> Tensor:
    """min(size, count) row indices evenly spread over [0, size): a fixed, RNG-free sample."""
    m = min(size, count)
    return torch.arange(m, dtype=torch.long, device=device) * size // max(1, m)


@torch.no_grad()
def top1(model: HolographicModel, ev: Evidence, y: Tensor) -> dict[str, float]:
    """Top-1 of the nearest stored key's next token and of the model's full distribution, against y (Q,).

    The model's prediction is the argmax of `full_probs` (kNN vote + prototype prior + backoff, fitted mixture),
    in chunks of at most SCORE_FLOATS probabilities.
    """
    q = y.shape[0]
    nearest = float((ev.targets[:, 0] == y).float().mean()) if ev.targets.shape[1] else 0.0
    chunk = max(1, min(q, SCORE_FLOATS // model.vocab.size))
    correct = 0
    for s in range(0, q, chunk):
        sl = slice(s, s + chunk)
        correct += int((predict.full_probs(ev.rows(sl), model.mix, model.memory.backoff).argmax(1) == y[sl]).sum())
    return {"nearest": nearest, "model": correct / q}


@torch.no_grad()
def retrieval(model: HolographicModel, windows: int = RETRIEVAL_WINDOWS) -> dict[str, float]:
    """Top-1 on at most `windows` SEEN training windows (the probe), next to a most-frequent-token baseline.

    Keys are recomputed from the probe's raw tokens with THE key function (the one observe() stored them with),
    so a window still in the store finds itself: `retrieval_nearest_accuracy` is the fraction whose nearest
    stored key carries the window's true next token (below 1 only where the same window was stored with other
    continuations, or evicted from a bounded store), `retrieval_accuracy` the model's argmax top-1 (what the
    vote makes of ties). Probe windows start their row, so they had no reading-memory evidence when seen and
    get none here. Bounded: `windows` keys, one kNN pass over the store. Omitted when the probe is empty.
    """
    probe = model.memory.res["probe"]
    if probe.size == 0:
        return {}
    n = model.config.context_size
    rows = probe.view("tokens")[spread(probe.size, windows, probe.device)].long().cpu()  # (W, n + 1)
    ctx, y = rows[:, :n], rows[:, n]
    keys, sigs = [], []
    for s in range(0, ctx.shape[0], FEATURE_CHUNK):
        part = ctx[s : s + FEATURE_CHUNK].to(model.embeddings.device)
        k, _, g = model.layout.features(model.embeddings, part)  # (c, n, D), _, (c, n, 16)
        keys.append(k[:, -1])
        sigs.append(g[:, -1])
    ev = model.evidence(torch.cat(keys), torch.cat(sigs), ctx[:, -1])
    return accuracies(model, ev, y, "retrieval")


def accuracies(model: HolographicModel, ev: Any, y: Tensor, name: str) -> dict[str, float]:
    """`{name}_accuracy` (the model's top-1), `{name}_nearest_accuracy` and `{name}_baseline_accuracy` (always
    the most frequent training token) on the same windows."""
    acc = top1(model, ev, y)
    most_frequent = int(model.memory.backoff.unigram.argmax())
    return {f"{name}_accuracy": acc["model"], f"{name}_nearest_accuracy": acc["nearest"],
            f"{name}_baseline_accuracy": float((y == most_frequent).float().mean())}


@torch.no_grad()
def generalization(model: HolographicModel, windows: int = RETRIEVAL_WINDOWS) -> dict[str, float]:
    """Top-1 on at most `windows` UNSEEN windows (the held-out training windows), next to the same baseline.

    These windows never entered the store; they are what the mixture's handful of scalars (kernel widths and
    weights) is fit on, so the figure is very slightly optimistic, but it needs no validation data inside the
    model. The reading-memory evidence recorded when each window was observed is used (as the model had it),
    without the reading window's token counts (a held-out row keeps only the count of its own target, as
    `_heldout_quality` does). Bounded: `windows` queries, one kNN pass over the store. Omitted when empty.
    """
    h = model.memory.holdout
    if h.size == 0:
        return {}
    idx = spread(h.size, windows, h.device)
    reading = None
    if model.config.reading:
        reading = {"rsims": h.view("rsim")[idx], "rtargets": h.view("rtarget")[idx], "wsize": h.view("wsize")[idx]}
    ev = model.evidence(h.view("key")[idx], h.view("sig")[idx], h.view("prev")[idx], reading=reading)
    y = h.view("target")[idx].long().cpu()
    return accuracies(model, ev, y, "generalization")


@torch.no_grad()
def vorticity(model: HolographicModel, pairs: int = VORTICITY_PAIRS) -> dict[str, float]:
    """The spec's grammar test on the probe's seen windows (metrics.vorticity_discriminability, fixed seed).

    `vorticity_discriminability` is the AUC: the probability that a same-structure pair (two positions
    substituted by random tokens) has a higher signature cosine than an order-swap pair (the same two positions
    exchanged); 1 = word order always discriminated. The two mean cosines are logged too (the original's
    ">= 0.92 vs < 0.3"). Bounded: `pairs` x 3 signatures of context_size tokens. Omitted when context_size < 3
    (no two non-adjacent positions) or the probe holds fewer than 8 windows.
    """
    from nightshift.models.holographic.metrics import vorticity_discriminability, vorticity_pairs

    probe = model.memory.res["probe"]
    if probe.size < 8 or model.config.context_size < 3:
        return {}
    pairs = vorticity_pairs(model.config.context_size, pairs)
    out = vorticity_discriminability(model, probe.view("tokens").long().cpu(), pairs=pairs, seed=model.config.seed)
    return {"vorticity_discriminability": out["auc"], "vorticity_same_structure_cos": out["same_structure_cos"],
            "vorticity_order_swap_cos": out["order_swap_cos"]}


@torch.no_grad()
def episodes(model: HolographicModel, sample: int = STORE_SAMPLE) -> dict[str, float]:
    """Episode-level quantities of the sleep metrics, on at most `sample` stored episodes (evenly spread).

    - grace_stability: mean sigma = (s^2 + p^2) / (||M||_F^2 / 4) of the episodes' keys (per scale, weighted);
    - consolidation_ratio: fraction of them below the phi^-2 sigma threshold (what Non-REM would consolidate);
    - enstrophy: mean sum of squared bivector coefficients of the (unnormalised) key, key x norm, as sleep does.

    Sleep reports the same numbers over the episodes it dreams on (its buffer, empty right after a sleep); the
    store holds every stored episode, so these are defined from the first observed batch. Omitted while empty.
    """
    store, layout = model.memory.store, model.layout
    if store.size == 0:
        return {}
    idx = spread(store.size, sample, store.device)
    keys, norms = store.view("key")[idx].float().cpu(), store.view("norm")[idx].float().cpu()
    sigma = layout.sigma(keys)  # (S,)
    return {"grace_stability": float(sigma.mean()),
            "consolidation_ratio": float((sigma < CONSOLIDATE_BELOW).float().mean()),
            "enstrophy": float(layout.enstrophy(keys * norms[:, None]).mean())}


@torch.no_grad()
def prototypes(model: HolographicModel, sample: int = STORE_SAMPLE) -> dict[str, float]:
    """Counts of consolidated memory, and what is defined once there is at least one prototype.

    - prototypes: rows of the prototype table (schemas included: they predict exactly like prototypes);
      schemas: the rows REM made that earned their place. Both 0 before the first sleep (defined, not omitted).
    - compression_ratio: stored episodes per prototype (store size / prototypes).
    - prototype_target_entropy: mean Shannon entropy, in bits, of the prototypes' normalised target histograms
      (top-prototype_targets slots, so at most log2 of that width).
    - prototype_stability: mean grace stability sigma of the prototype centroids (the spec names the metric
      without a definition; Grace preserves exactly the (s, p) part sigma measures, so 1 = a fixed point).
    - witness_stability: the sleep metric's "how well a prototype keeps the (s, p) direction of its members",
      on at most `sample` stored episodes (evenly spread): each is assigned to its nearest prototype by key
      cosine; those inside that prototype's radius (its members' largest 1 - cosine) are members, and the
      metric is their mean cosine between the unit witness vectors of episode and centroid.
      prototype_coverage: the fraction of sampled episodes that are members. Witness stability is omitted
      when no sampled episode is a member.
    Bounded: `sample` x prototypes inner products, in chunks of at most SCORE_FLOATS.
    """
    mem, layout = model.memory, model.layout
    protos = mem.protos
    p = len(protos)
    out = {"prototypes": float(p), "schemas": float(protos.num_schemas)}
    if p == 0:
        return out
    counts = protos.hist_counts.double()
    probs = counts / counts.sum(1, keepdim=True).clamp_min(1e-300)  # (P, H)
    entropy = -(probs * probs.clamp_min(1e-300).log2()).sum(1)  # (P,) zeros contribute 0
    out |= {"compression_ratio": mem.store.size / p, "prototype_target_entropy": float(entropy.mean()),
            "prototype_stability": float(protos.sigma.mean())}
    store = mem.store
    if store.size == 0:
        return out
    keys = store.view("key")[spread(store.size, sample, store.device)].float().cpu()  # (S, D) unit
    cw = unit(layout.witness(protos.centroid))  # (P, 2J)
    chunk = max(1, SCORE_FLOATS // p)
    cos_sum, members = 0.0, 0
    for s in range(0, keys.shape[0], chunk):
        k = keys[s : s + chunk]
        best, near = (k @ protos.centroid.T).max(1)  # (c,)
        inside = (1.0 - best) <= protos.radius[near] + 1e-6
        if bool(inside.any()):
            wk = unit(layout.witness(k[inside]))
            cos_sum += float((wk * cw[near[inside]]).sum(1).sum())
            members += int(inside.sum())
    out["prototype_coverage"] = members / keys.shape[0]
    if members:
        out["witness_stability"] = cos_sum / members
    return out


def seed_metrics(model: HolographicModel) -> dict[str, float]:
    """Every definable seed metric of the model's current state; keys as docs/seed_metrics.md lists them."""
    model.ensure_fitted()
    out: dict[str, float] = {}
    for part in (retrieval, generalization, vorticity, episodes, prototypes):
        out |= part(model)
    bad = sorted(k for k, v in out.items() if not math.isfinite(v))
    if bad:  # a bug: said out loud and left out, never a silent NaN in the logs (nor a crashed run)
        log.warning("holographic seed metrics not finite, left out: %s", bad)
    return {k: float(v) for k, v in out.items() if k not in bad}
