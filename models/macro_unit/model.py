"""MacroUnitModel: a byte n-gram model with MDL macro-units, as a nightshift memory family.

- `observe` decodes token rows to bytes (any vocabulary), holds 1 row in
  `holdout_every` out (by content hash) for MDL validation, offers rows to the
  bounded samples, and buffers bytes that are counted a chunk at a time.
- `score` is exact: log p(token) = sum over the token's bytes of ln P(byte |
  previous bytes) + ln(1 - p_eot); an eot target gets ln p_eot. p_eot is the
  count-based estimate (eots + 1) / (eots + bytes + 2) over training rows, so for
  the bytes vocabulary the 257-way `log_probs` sums to 1 exactly. P(byte | ...)
  is the predictor's mixture (`predictor.py`): the Kneser-Ney byte model,
  in-context counts over the last `horizon` bytes of the document, and the
  units as context; `ablatable` parts "units" and "cache" switch experts off
  (each set of parts has its own mixer, fitted on held-out training rows).
- `sleep` = MDL consolidation (`mdl.py`), `synchronize` = all-gather of every
  rank's counts since the last sync, summed in rank order (an all-reduce of
  sparse tables), so every rank ends with identical memory.

Devices: all state and computation are numpy arrays on the CPU. `observe`,
`score`, `log_probs` and `generate` accept token tensors on any device (they
are copied to the CPU) and return their results on the input's device.
"""

from __future__ import annotations

import logging
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from nightshift.models.errors import ModelConfigError
from nightshift.models.macro_unit import distributed
from nightshift.models.macro_unit.byte_model import ByteModel
from nightshift.models.macro_unit.context import Stream
from nightshift.models.macro_unit.counts import CountTable, NgramCounts
from nightshift.models.macro_unit.generate import generate_bytes
from nightshift.models.macro_unit.keys import U64
from nightshift.models.macro_unit.mdl import MdlSettings, consolidate, table_proposals
from nightshift.models.macro_unit.predictor import CHUNK_BYTES, Predictor, PredictorSettings
from nightshift.models.macro_unit.reservoir import Reservoir
from nightshift.models.macro_unit.tokens import DecodedRows, TokenBytes, row_priorities
from nightshift.models.macro_unit.units import Codebook
from nightshift.models.protocol import LanguageModel, SleepContext, Vocab, float32

if TYPE_CHECKING:
    from nightshift.models.macro_unit.config import Config

log = logging.getLogger(__name__)
STATE_VERSION = 1
_STATS = ("bytes", "eot", "rows", "heldout_rows")


class MacroUnitModel(LanguageModel):
    family = "macro_unit"
    trains_by_gradient = False
    ablatable = ("units", "cache")

    def __init__(self, config: "Config", vocab: Vocab) -> None:
        super().__init__(vocab)
        self.config = config
        self.tokens = TokenBytes(vocab)
        self.is_byte_vocab = vocab.size == 257 and vocab.eot_id == 256 and all(
            vocab.token_bytes[i] == bytes([i]) for i in range(256)
        )
        K, cap = config.max_order, config.max_entries_per_order
        keep = max(1, int(cap * config.prune_keep))
        self.counts = NgramCounts(K, cap, keep)  # merged counts: identical on every rank after synchronize()
        self.delta = NgramCounts(K, cap, keep)  # this rank's counts since the last synchronize() (DDP only)
        self.stats = dict.fromkeys(_STATS, 0)
        self.delta_stats = dict.fromkeys(_STATS, 0)
        self.sample = Reservoir(config.sample_bytes)
        self.heldout = Reservoir(config.holdout_bytes)
        self.book = Codebook()
        self.sleeps = 0
        self._pending: list[tuple[np.ndarray, np.ndarray]] = []
        self._pending_bytes = 0
        self._byte_model: ByteModel | None = None
        self._predictor: Predictor | None = None
        self.predictor_settings = PredictorSettings(
            orders=config.cache_orders, horizon=config.horizon, unit_depth=config.unit_depth,
            unit_beta=float(config.unit_beta), mix_prior=float(config.mix_prior))
        self.mdl = MdlSettings(
            min_unit_len=config.min_unit_len, max_unit_len=config.max_unit_len, max_units=config.max_units,
            min_frequency=config.min_frequency, prune_threshold=config.prune_threshold,
            min_gain_bits=float(config.min_gain_bits), candidates_per_round=config.candidates_per_round,
            max_candidates=config.max_candidates, promotion_rounds=config.promotion_rounds,
        )

    # ----------------------------------------------------------------- shapes
    @property
    def context_length(self) -> int:
        """Tokens of left context: `horizon` (a token is >= 1 byte, so that covers `horizon` bytes).

        The in-context counts read at most `horizon` bytes back, so any window
        that gives a target this many tokens of left context scores it exactly
        as the whole document would: the score does not depend on the stride.
        """
        if self.config.context_tokens:
            return self.config.context_tokens
        return max(self.config.horizon, 64 if self.is_byte_vocab else 16)

    @property
    def eval_window(self) -> int:
        """Windows 4x the context: each window re-reads its context once, a 1/3 overhead."""
        return 4 * self.context_length

    @property
    def train_seq_len(self) -> int:
        return self.config.train_seq_len

    # --------------------------------------------------------------- training
    def _ids(self, tokens: Tensor) -> np.ndarray:
        if tokens.dim() != 2:
            raise ValueError(f"expected token ids of shape (B, T), got {tuple(tokens.shape)}")
        ids = tokens.detach().cpu().numpy().astype(np.int64, copy=False)
        self.tokens.check(ids)
        return ids

    def _local(self) -> tuple[NgramCounts, dict[str, int]]:
        """Where this rank's new counts go: straight into the model, or a delta awaiting synchronize()."""
        return (self.delta, self.delta_stats) if distributed.world() else (self.counts, self.stats)

    @torch.no_grad()
    def observe(self, tokens: Tensor) -> dict[str, float]:
        """Count a batch (B, T+1) of token rows; each row is its own text fragment."""
        ids = self._ids(tokens)  # (B, L)
        prio = row_priorities(ids)  # (B,) uint64
        every = self.config.holdout_every
        held = (prio % U64(every) == 0) if every else np.zeros(len(ids), dtype=bool)
        counted = ids[~held]
        dec = self.tokens.decode(counted, self.config.max_order)
        _, stats = self._local()
        stats["bytes"] += len(dec.x)
        stats["eot"] += int((counted == self.vocab.eot_id).sum())
        stats["rows"] += len(counted)
        stats["heldout_rows"] += int(held.sum())
        self._pending.append((dec.x, dec.avail.astype(np.int8)))
        self._pending_bytes += len(dec.x)
        self._offer(self.heldout, ids[held], prio[held])
        self._offer(self.sample, counted, prio[~held])
        if self._pending_bytes >= self.config.chunk_bytes:
            self._flush()
        return {"bytes": float(len(dec.x)), "heldout_rows": float(held.sum()),
                "ngram_entries": float(len(self.counts) + len(self.delta)), "memory_mb": self.memory_bytes() / 2**20}

    def _offer(self, reservoir: Reservoir, rows: np.ndarray, prio: np.ndarray) -> None:
        if reservoir.cap == 0 or len(rows) == 0:
            return
        threshold = reservoir.threshold()
        take = np.flatnonzero(prio < U64(threshold)) if threshold is not None else np.arange(len(rows))
        reservoir.offer([(int(prio[i]), self.tokens.fragments(rows[i])) for i in take])

    def _flush(self) -> None:
        """Count the buffered bytes (one sort per chunk); the byte model is rebuilt on next use."""
        if not self._pending:
            return
        self._byte_model = self._predictor = None  # stale now; dropping them first lowers peak memory
        x = np.concatenate([p[0] for p in self._pending])
        avail = np.concatenate([p[1] for p in self._pending])
        self._pending, self._pending_bytes = [], 0
        target, _ = self._local()
        target.count(x, avail)

    def byte_model(self) -> ByteModel:
        """The scoring view of all counts so far (this rank's unsynchronised delta included)."""
        self._flush()
        if self._byte_model is None:
            tables = self.counts.tables
            if not self.delta.is_empty():
                tables = [t.copy() for t in tables]
                for t, d in zip(tables, self.delta.tables, strict=True):
                    t.add([(d.keys, d.counts)])
            self._byte_model = ByteModel(tables, smoothing=self.config.smoothing, discounts=self.config.discounts)
        return self._byte_model

    def predictor(self) -> Predictor:
        """The mixture over the current state; built (and its mixers fitted on held-out rows) on first use."""
        bm = self.byte_model()
        if self._predictor is None:
            self._predictor = Predictor(bm, self.book, self.sample.fragments(), self.heldout.fragments(),
                                        self.predictor_settings, self.config.max_order)
        return self._predictor

    def p_eot(self) -> float:
        eot = self.stats["eot"] + self.delta_stats["eot"]
        n = self.stats["bytes"] + self.delta_stats["bytes"]
        return (eot + 1) / (eot + n + 2)

    # ------------------------------------------------------------ sleep / DDP
    def synchronize(self) -> None:
        """Sum every rank's new counts (rank order) and union the samples: identical memory on all ranks."""
        self._flush()
        if distributed.world() is None:
            return
        for table, delta in zip(self.counts.tables, self.delta.tables, strict=True):
            keys = distributed.all_gather_array(delta.keys)
            counts = distributed.all_gather_array(delta.counts)
            table.add(list(zip(keys, counts, strict=True)))
            self.counts.pruned += table.prune(self.counts.cap, self.counts.keep)
        totals = distributed.all_reduce_ints([self.delta_stats[k] for k in _STATS])
        for k, v in zip(_STATS, totals, strict=True):
            self.stats[k] += v
        self.delta_stats = dict.fromkeys(_STATS, 0)
        self.delta.clear()
        for reservoir in (self.sample, self.heldout):
            mine = reservoir.to_arrays()
            gathered = {name: distributed.all_gather_array(arr) for name, arr in mine.items()}
            for r in range(len(gathered["priority"])):
                reservoir.add_arrays({name: parts[r] for name, parts in gathered.items()})
        self._byte_model = self._predictor = None

    def sleep(self, ctx: SleepContext) -> dict[str, float]:
        """MDL consolidation: promote/prune units on the sample, validated on held-out bytes."""
        start = time.perf_counter()
        if ctx.world_size > 1:
            self.synchronize()
        self._flush()
        scale = self.sample.size / max(self.stats["bytes"], 1)
        proposals = table_proposals(self.counts.tables, scale, self.mdl)
        self.book, metrics = consolidate(
            self.book, self.sample.fragments(), self.heldout.fragments(), proposals, self.mdl
        )
        _ = self.book.regex  # rebuild the encoder now, not on the first encode
        self.sleeps += 1
        self._predictor = None
        bits = self.predictor().heldout_bits  # held-out training bytes, per set of parts switched off
        for name, off in (("", frozenset()), ("_no_units", frozenset({"units"})),
                          ("_no_cache", frozenset({"cache"})), ("_byte_model", frozenset({"units", "cache"}))):
            if off in bits:
                metrics[f"heldout_bpb{name}"] = bits[off]
        metrics.update(
            ngram_entries=float(len(self.counts)),
            ngram_pruned=float(self.counts.pruned),
            memory_mb=self.memory_bytes() / 2**20,
            seconds=time.perf_counter() - start,
        )
        log.info("macro_unit sleep %d: %s", self.sleeps, {k: round(v, 4) for k, v in metrics.items()})
        return metrics

    # ------------------------------------------------------------- evaluation
    def _stream(self, ids: np.ndarray) -> tuple[Stream, DecodedRows]:
        dec = self.tokens.decode(ids, 1 << 62)  # avail uncapped: the offset of each byte in its fragment
        frag = np.cumsum(dec.avail == 0) - 1
        return Stream(dec.x, frag, dec.avail), dec

    def _byte_logp(self, st: Stream, q: np.ndarray | None = None, targets: np.ndarray | None = None) -> np.ndarray:
        """ln P of every byte of st (or of `targets` after positions q) under the mixture, ablations applied."""
        pred = self.predictor()
        K = self.config.max_order
        if q is None:
            p_static = np.exp(pred.byte_model.logp(st.x, np.minimum(st.pos, K)))
            return np.log(pred.prob(st, np.arange(len(st)), st.x, p_static, self.ablated_parts))
        uq, inv = np.unique(q, return_inverse=True)  # log_probs asks each position for all 256 bytes
        dist = pred.byte_model.distribution(st.x, np.minimum(st.pos[uq], K), uq)  # (U, 256)
        p_static = dist[inv, targets.astype(np.int64)]
        return np.log(pred.prob(st, q, targets, p_static, self.ablated_parts))

    def _row_groups(self, dec: DecodedRows, n_rows: int) -> list[tuple[int, int]]:
        """Consecutive row ranges of at most CHUNK_BYTES bytes each (a longer row is a range of its own)."""
        row_end = dec.tok_end[:, -1] if dec.tok_end.shape[1] else np.zeros(n_rows, dtype=np.int64)
        groups, first, base = [], 0, 0
        for r in range(n_rows):
            if r > first and row_end[r] - base > CHUNK_BYTES:
                groups.append((first, r))
                first, base = r, row_end[r - 1]
        groups.append((first, n_rows))
        return groups

    @torch.no_grad()
    @float32
    def score(self, tokens: Tensor) -> Tensor:
        """(B, T+1) -> (B, T) ln p(tokens[:, t+1] | tokens[:, :t+1]), by the byte-level chain rule."""
        ids = self._ids(tokens)
        p_eot = self.p_eot()
        out = np.empty(ids.shape, dtype=np.float64)
        for lo, hi in self._row_groups(self.tokens.decode(ids, 0), len(ids)):
            st, dec = self._stream(ids[lo:hi])
            lp = self._byte_logp(st) if len(st) else np.zeros(0)  # (N,) per byte
            csum = np.concatenate(([0.0], np.cumsum(lp)))
            per_token = csum[dec.tok_end] - csum[dec.tok_start]  # (b, L) sum over each token's bytes
            out[lo:hi] = np.where(ids[lo:hi] == self.vocab.eot_id, math.log(p_eot), per_token + math.log1p(-p_eot))
        return torch.from_numpy(out[:, 1:]).to(device=tokens.device, dtype=torch.float32)

    @torch.no_grad()
    def log_probs(self, tokens: Tensor) -> Tensor:
        """(B, T) -> (B, T, 257) for the bytes vocabulary: 256 bytes x (1 - p_eot), and eot."""
        if not self.is_byte_vocab:
            raise NotImplementedError(
                f"macro_unit log_probs is defined for the bytes vocabulary only: over {self.vocab.name!r} tokens "
                "the byte model gives each token the product of its bytes' probabilities, and since tokens "
                "are prefixes of one another those do not form one distribution; use score() (exact per byte)"
            )
        ids = self._ids(tokens)
        B, T = ids.shape
        p_eot = self.p_eot()
        out = np.empty((B, T, 257))
        out[:, :, 256] = math.log(p_eot)
        for r in range(B):
            dec = self.tokens.decode(ids[r : r + 1], 0)
            # The query after token t reads x[frag_start[t] : tok_end[t]] (empty after an eot): one stream
            # piece per distinct fragment start, up to its last query, plus a pad byte where a query may sit.
            fs, at = dec.frag_start[0], dec.tok_end[0]  # (T,)
            starts, inv = np.unique(fs, return_inverse=True)
            ends = np.zeros(len(starts), dtype=np.int64)
            np.maximum.at(ends, inv, at)
            st = Stream.of([dec.x[f:e].tobytes() + b"\0" for f, e in zip(starts, ends, strict=True)])
            base = np.concatenate(([0], np.cumsum(ends - starts + 1)[:-1]))
            q_all = base[inv] + (at - fs)  # (T,) query positions in st
            for c0 in range(0, T, 1024):
                q = np.repeat(q_all[c0 : c0 + 1024], 256)
                b = np.tile(np.arange(256, dtype=np.uint8), len(q) // 256)
                lp = self._byte_logp(st, q, b).reshape(-1, 256)
                out[r, c0 : c0 + 1024, :256] = lp + math.log1p(-p_eot)
        return torch.from_numpy(out).to(device=tokens.device, dtype=torch.float32)

    def sampling_device(self, prompt_device: torch.device) -> torch.device:
        """Sampling runs on the host whatever the prompt's device: its generator is a CPU one."""
        return torch.device("cpu")

    @torch.no_grad()
    def generate(
        self,
        prompt: Tensor,
        max_new_tokens: int,
        *,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
    ) -> Tensor:
        """prompt (T,) -> (T + max_new_tokens,): whole units proposed and scored by the byte model.

        New bytes are emitted as single-byte tokens (the identity for the bytes
        vocabulary; byte-level BPE vocabularies have a token for every byte).
        """
        ids = self._ids(prompt.reshape(1, -1))[0]
        eots = np.flatnonzero(ids == self.vocab.eot_id)
        context = b"".join(self.tokens.fragments(ids[eots[-1] + 1 :] if len(eots) else ids))
        pieces = generate_bytes(
            self.byte_model(), self.book, context, max_new_tokens, temperature=temperature, top_k=top_k,
            first_bytes=self.config.generation_first_bytes, generator=generator,
        )
        new = b"".join(pieces)[:max_new_tokens]
        new_ids = self.tokens.byte_token[np.frombuffer(new, dtype=np.uint8)]
        if (new_ids < 0).any():
            raise NotImplementedError(f"vocab {self.vocab.name!r} has no single-byte token for some generated bytes")
        return torch.cat([prompt, torch.from_numpy(new_ids).to(device=prompt.device, dtype=prompt.dtype)])

    # ------------------------------------------------------------------ units
    def encode(self, data: bytes) -> np.ndarray:
        """bytes -> unit ids (0..255 bytes, 256 + j unit j) by greedy longest match."""
        return self.book.encode(data)

    def decode(self, ids: np.ndarray | list[int]) -> bytes:
        return self.book.decode(ids)

    # ------------------------------------------------------------------ info
    def memory_bytes(self) -> int:
        model = self._byte_model.nbytes if self._byte_model is not None else 0
        model += self._predictor.nbytes if self._predictor is not None else 0
        units = sum(len(u) + 64 for u in self.book.units)
        return (self.counts.nbytes + self.delta.nbytes + model + 9 * self._pending_bytes
                + self.sample.nbytes + self.heldout.nbytes + units)

    # ------------------------------------------------------------ checkpoints
    def get_extra_state(self) -> dict[str, Any]:
        self._flush()  # invisible to predictions, which always count pending bytes first

        def tables(c: NgramCounts) -> list[dict[str, Tensor]]:
            # uint64 keys travel as int64 bit patterns: torch.load(weights_only=True) takes plain int64 tensors
            return [{"keys": torch.from_numpy(t.keys.view(np.int64).copy()),
                     "counts": torch.from_numpy(t.counts.copy())} for t in c.tables]

        units = self.book.units
        return {
            "version": STATE_VERSION,
            "max_order": self.config.max_order,
            "counts": tables(self.counts),
            "delta": tables(self.delta),
            "pruned": self.counts.pruned,
            "stats": dict(self.stats),
            "delta_stats": dict(self.delta_stats),
            "sample": self.sample.state(),
            "heldout": self.heldout.state(),
            "units": torch.from_numpy(np.frombuffer(b"".join(units), dtype=np.uint8).copy()),
            "unit_lengths": torch.tensor([len(u) for u in units], dtype=torch.int64),
            "sleeps": self.sleeps,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        if state.get("version") != STATE_VERSION or state.get("max_order") != self.config.max_order:
            raise ModelConfigError(
                f"macro_unit checkpoint has version={state.get('version')} max_order={state.get('max_order')}; "
                f"this model expects version={STATE_VERSION} max_order={self.config.max_order}"
            )

        def restore(target: NgramCounts, saved: list[dict[str, Tensor]]) -> None:
            target.tables = [CountTable(t["keys"].numpy().view(U64).copy(), t["counts"].numpy().copy()) for t in saved]

        restore(self.counts, state["counts"])
        restore(self.delta, state["delta"])
        self.counts.pruned = int(state["pruned"])
        self.stats = {k: int(state["stats"][k]) for k in _STATS}
        self.delta_stats = {k: int(state["delta_stats"][k]) for k in _STATS}
        self.sample.load(state["sample"])
        self.heldout.load(state["heldout"])
        data = state["units"].numpy().tobytes()
        ends = np.cumsum(state["unit_lengths"].numpy()).tolist()
        self.book = Codebook(data[e - n : e] for e, n in zip(ends, state["unit_lengths"].tolist(), strict=True))
        self.sleeps = int(state["sleeps"])
        self._pending, self._pending_bytes, self._byte_model, self._predictor = [], 0, None, None
