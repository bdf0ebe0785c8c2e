"""Everything the holographic model remembers, how it grows, merges across ranks and checkpoints.

- store: the bounded episodic store (key, norm, signature, target) that kNN searches
- buffer: a uniform sample of episodes since the last sleep (what dreaming consolidates)
- holdout: a uniform sample of held-out training windows (+ previous token, + what the reading memory said
  about them) used only to fit the mixture
- probe: a uniform sample of raw training windows, for the vorticity metric at sleep
- backoff: bigram/unigram counts; H: the holographic superposition (4x4); prototypes and schemas

Storage per stored episode: key float32[D] (D = 16 for the faithful key: 64 B;
D = 64 for the suffix flavors: 256 B) + key norm float32 (4 B) + signature
float16[16] (32 B) + target int32 (4 B) + reservoir priority float32 (4 B) =
108 bytes (faithful) or 300 bytes (suffix).

Randomness (reservoir priorities) comes from generators seeded by
(seed, rank, batch counter), so a run is reproducible and resumable without
saving generator state, and ranks draw independent priorities. In DDP a
rank's new rows wait in `pending` reservoirs (each pre-thinned to the
capacity: with priority sampling a row that loses locally would lose
globally too) until synchronize() gathers them; every rank then merges the
same rows in rank order and ends with identical memory.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from nightshift.models.holographic import distributed
from nightshift.models.holographic.backoff import BigramBackoff
from nightshift.models.holographic.keys import KeyLayout
from nightshift.models.holographic.predict import MixParams
from nightshift.models.holographic.prototypes import Prototypes
from nightshift.models.holographic.store import Column, Reservoir


def episode_columns(key_dim: int) -> dict[str, Column]:
    """Columns of a stored episode; key_dim = 16 for the faithful key, 8 x scales for suffix keys."""
    return {
        "key": Column(key_dim, torch.float32),
        "norm": Column(0, torch.float32),
        "sig": Column(16, torch.float16),
        "target": Column(0, torch.int32),
    }


def heldout_columns(key_dim: int, reading: int) -> dict[str, Column]:
    """Columns of a held-out window: an episode, its previous token and, with a reading memory of
    `reading` neighbours, that evidence as computed when the row was observed."""
    cols = episode_columns(key_dim) | {"prev": Column(0, torch.int32)}
    if reading:
        cols |= {"rsim": Column(reading, torch.float32), "rtarget": Column(reading, torch.int32),
                 "wcount": Column(0, torch.float32), "wsize": Column(0, torch.float32)}
    return cols


BUFFERS = ("store", "buffer", "holdout", "probe")
PROBE_SIZE = 512  # raw token windows kept (uniform sample) to measure vorticity discriminability at sleep
COUNTED = ("samples", "heldout_samples")
_MASK63 = (1 << 63) - 1


def seeded(*parts: int) -> torch.Generator:
    """A generator whose seed is a deterministic mix of integers (no global RNG involved)."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h * 6364136223846793005 + int(p) + 1442695040888963407) & _MASK63
    return torch.Generator().manual_seed(h)


class Memory:
    def __init__(
        self, *, vocab_size: int, max_attractors: int, policy: str, buffer_size: int, holdout_size: int,
        hist_width: int, seed: int, layout: KeyLayout, reading: int = 0, probe_width: int = 2,
    ) -> None:
        self.seed = seed
        self.layout = layout
        episode, heldout = episode_columns(layout.dim), heldout_columns(layout.dim, reading)
        caps = {"store": (max_attractors, episode, policy), "buffer": (buffer_size, episode, "reservoir"),
                "holdout": (holdout_size, heldout, "reservoir"),
                "probe": (PROBE_SIZE, {"tokens": Column(probe_width, torch.int32)}, "reservoir")}
        self.res = {name: Reservoir(*spec) for name, spec in caps.items()}
        self.pending = {name: Reservoir(*spec) for name, spec in caps.items()}
        self.backoff = BigramBackoff(vocab_size)
        self.H = torch.zeros(4, 4, dtype=torch.float64)
        self.H_unsynced = torch.zeros(4, 4, dtype=torch.float64)
        self.protos = Prototypes(hist_width, layout)
        self.counters = {"batches": 0, "samples": 0, "heldout_samples": 0, "sleeps": 0}
        self.unsynced = dict.fromkeys(COUNTED, 0)
        self.params = MixParams()
        self.fit_info: dict[str, float] = {}
        # mixtures refit for ablated predictions (parts off -> (params, info)); dropped whenever memory changes
        self.ablation_fits: dict[frozenset[str], tuple[MixParams, dict[str, float]]] = {}
        self._fitted = False

    @property
    def fitted(self) -> bool:
        """True while `params` fit the current memory (any change to memory clears it and the ablation fits)."""
        return self._fitted

    @fitted.setter
    def fitted(self, value: bool) -> None:
        if not value:
            self.ablation_fits.clear()
        self._fitted = value

    # ------------------------------------------------------------ writing
    def add(
        self, episodes: Mapping[str, Tensor], heldout: Mapping[str, Tensor], prev: Tensor, nxt: Tensor,
        h_delta: Tensor, *, rank: int, synced: bool, probe: Tensor | None = None,
    ) -> None:
        """One observed batch: stored episodes, held-out windows, counted pairs, H increment, probe windows."""
        gen = seeded(self.seed, rank, self.counters["batches"])
        m, mh = episodes["target"].shape[0], heldout["target"].shape[0]
        prio = torch.rand(m, generator=gen)
        prio_buf = torch.rand(m, generator=gen)
        prio_h = torch.rand(mh, generator=gen)
        dest = self.res if synced else self.pending
        dest["store"].offer(episodes, prio)
        dest["buffer"].offer(episodes, prio_buf)
        dest["holdout"].offer(heldout, prio_h)
        if probe is not None:
            dest["probe"].offer({"tokens": probe}, torch.rand(probe.shape[0], generator=gen))
        self.backoff.add(prev, nxt, synced=synced)
        if synced:
            self.H += h_delta
        else:
            self.H_unsynced += h_delta
        self.counters["batches"] += 1  # per rank; ranks observe in lockstep
        tally = self.counters if synced else self.unsynced
        tally["samples"] += m
        tally["heldout_samples"] += mh
        self.fitted = False

    def synchronize(self) -> None:
        """Gather every rank's pending rows and counts; all ranks merge them identically (collective)."""
        for name in BUFFERS:
            pend = self.pending[name]
            gathered = {col: distributed.all_gather_rows(pend.view(col)) for col in pend.spec}
            prios = distributed.all_gather_rows(pend.priority[: pend.size])
            for r, prio in enumerate(prios):
                self.res[name].offer({col: parts[r] for col, parts in gathered.items()}, prio)
            pend.clear()
        codes, counts, uni, ctx = self.backoff.take_unsynced()
        all_codes = distributed.all_gather_rows(codes)
        all_counts = distributed.all_gather_rows(counts)
        self.backoff.merge(torch.cat(all_codes), torch.cat(all_counts), distributed.all_reduce_sum(uni),
                           distributed.all_reduce_sum(ctx))
        self.H += distributed.all_reduce_sum(self.H_unsynced)
        self.H_unsynced.zero_()
        tallies = torch.tensor([self.unsynced[k] for k in COUNTED], dtype=torch.long)
        for key, total in zip(COUNTED, distributed.all_reduce_sum(tallies).tolist(), strict=True):
            self.counters[key] += int(total)
            self.unsynced[key] = 0
        self.fitted = False

    # ------------------------------------------------------------ reading
    @property
    def store(self) -> Reservoir:
        return self.res["store"]

    @property
    def buffer(self) -> Reservoir:
        return self.res["buffer"]

    @property
    def holdout(self) -> Reservoir:
        return self.res["holdout"]

    def nbytes(self) -> int:
        h = self.protos.hist_width
        proto = len(self.protos) * (4 * (self.layout.dim + 1 + 16 + 1 + 1 + 1) + h * (8 + 4) + 1)
        return sum(r.nbytes() for r in self.res.values()) + self.backoff.nbytes() + proto + 2 * 128

    # ------------------------------------------------------------ state
    def state(self) -> dict:
        return {
            **{name: self.res[name].state() for name in BUFFERS},
            "backoff": self.backoff.state(),
            "H": self.H.clone(),
            "protos": self.protos.state(),
            "counters": dict(self.counters),
            "params": self.params.as_dict(),
            "fitted": self.fitted,
            "fit_info": dict(self.fit_info),
        }

    def load(self, state: Mapping) -> None:
        for name in BUFFERS:
            if name in state:  # checkpoints from before the probe windows lack "probe"
                self.res[name].load(state[name])
            self.pending[name].clear()
        self.backoff.load(state["backoff"])
        self.H = state["H"].clone()
        self.H_unsynced.zero_()
        self.unsynced = dict.fromkeys(COUNTED, 0)
        self.protos.load(state["protos"])
        self.counters = {k: int(v) for k, v in state["counters"].items()}
        self.params = MixParams(**state["params"])
        self.ablation_fits.clear()
        self.fitted = bool(state["fitted"])
        self.fit_info = {k: float(v) for k, v in state["fit_info"].items()}
