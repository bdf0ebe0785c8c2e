"""Configuration of the macro-unit family; every field is checked before anything is built."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from nightshift.models.errors import ModelConfigError
from nightshift.models.macro_unit.keys import MAX_ORDER
from nightshift.models.protocol import Vocab

if TYPE_CHECKING:
    from nightshift.models.footprint import Footprint, RunShape
    from nightshift.models.macro_unit.model import MacroUnitModel


def _int(name: str, value: object, lo: int, hi: int | None = None) -> None:
    ok = isinstance(value, int) and not isinstance(value, bool) and value >= lo and (hi is None or value <= hi)
    if not ok:
        accepted = f"an integer in {lo}..{hi}" if hi is not None else f"an integer >= {lo}"
        raise ModelConfigError(f"macro_unit {name}={value!r}: expected {accepted}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    # --- byte model
    max_order: int = 7  # bytes of left context of the n-gram byte model (0..7: keys pack 8 bytes in 64 bits)
    smoothing: Literal["kneser_ney", "absolute"] = "kneser_ney"  # lower orders: continuation or raw counts
    discounts: tuple[float, ...] = ()  # () estimate per order; (D,) or (D1, D2, D3+) fixed, with D_j in (0, j]
    max_entries_per_order: int = 1 << 21  # hard cap on each order's n-gram table (memory bound)
    prune_keep: float = 0.75  # a table over its cap is pruned to this fraction of it (highest counts kept)
    chunk_bytes: int = 1 << 21  # bytes buffered before they are counted (one sort per chunk)
    # --- shapes
    train_seq_len: int = 2048  # tokens per training row; each row is counted as its own text fragment
    context_tokens: int = 0  # evaluation context in tokens (0: `horizon`, at least 64 bytes / 16 BPE tokens)
    # --- in-context counts and the mixer (predictor.py)
    cache_orders: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 16, 20, 24, 32)  # byte context lengths
    horizon: int = 1 << 18  # bytes of the same document before a byte that in-context counts read (0: off)
    unit_depth: int = 3  # units of the causal unit chain used as context
    unit_beta: float = 2.0  # pseudo-counts of the byte model in the global unit-context expert
    mix_prior: float = 16.0  # held-out positions' worth of pull of a mixer bucket towards its parent
    # --- macro-units (MDL)
    min_unit_len: int = 2
    max_unit_len: int = 32
    max_units: int = 10_000
    min_frequency: int = 3  # uses in the sample re-parse a new unit needs
    prune_threshold: int = 2  # uses in the sample re-parse an existing unit needs to stay
    min_gain_bits: float = 0.0  # a unit must save more than this many bits on the sample
    candidates_per_round: int = 256  # candidates added per promotion round before re-parsing
    max_candidates: int = 4096  # bound of the candidate map priced each round
    promotion_rounds: int = 4  # promotion rounds per sleep (each validated on held-out bytes)
    sample_bytes: int = 1 << 21  # training sample: MDL promotions and the global unit-context counts
    holdout_bytes: int = 1 << 19  # held-out training bytes: promotions must improve them; the mixer is fitted on them
    holdout_every: int = 16  # 1 row in this many is held out of all counting (0: none; uniform mixer)
    # --- generation
    generation_first_bytes: int = 8  # units are proposed for the most likely next bytes only

    def validate(self) -> None:
        _int("max_order", self.max_order, 0, MAX_ORDER)
        if self.smoothing not in ("kneser_ney", "absolute"):
            raise ModelConfigError(f"macro_unit smoothing={self.smoothing!r}: expected 'kneser_ney' or 'absolute'")
        d = self.discounts
        if not isinstance(d, tuple) or len(d) not in (0, 1, 3) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v <= (1 if len(d) == 1 else j)
            for j, v in enumerate(d, start=1)
        ):
            raise ModelConfigError(
                f"macro_unit discounts={d!r}: expected () to estimate them, (D,) with 0 < D <= 1, "
                "or (D1, D2, D3) with 0 < Dj <= j"
            )
        _int("max_entries_per_order", self.max_entries_per_order, 256)
        if not (isinstance(self.prune_keep, (int, float)) and 0 < self.prune_keep <= 1):
            raise ModelConfigError(f"macro_unit prune_keep={self.prune_keep!r}: expected a fraction in (0, 1]")
        _int("chunk_bytes", self.chunk_bytes, 1)
        _int("train_seq_len", self.train_seq_len, 1)
        _int("context_tokens", self.context_tokens, 0)
        o = self.cache_orders
        if not isinstance(o, tuple) or not all(isinstance(k, int) and not isinstance(k, bool) and 1 <= k <= 64
                                               for k in o) or list(o) != sorted(set(o)):
            raise ModelConfigError(f"macro_unit cache_orders={o!r}: expected a strictly ascending tuple of "
                                   "integers in 1..64")
        _int("horizon", self.horizon, 0)
        _int("unit_depth", self.unit_depth, 1, 8)
        for name in ("unit_beta", "mix_prior"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0):
                raise ModelConfigError(f"macro_unit {name}={v!r}: expected a number > 0")
        _int("min_unit_len", self.min_unit_len, 2)
        _int("max_unit_len", self.max_unit_len, self.min_unit_len, 255)
        if 0 < self.horizon < 2 * self.unit_depth * self.max_unit_len:
            raise ModelConfigError(f"macro_unit horizon={self.horizon}: expected 0 (no in-context counts) or at "
                                   f"least 2 x unit_depth x max_unit_len = {2 * self.unit_depth * self.max_unit_len}")
        _int("max_units", self.max_units, 0)
        _int("min_frequency", self.min_frequency, 1)
        _int("prune_threshold", self.prune_threshold, 0)
        if not (isinstance(self.min_gain_bits, (int, float)) and self.min_gain_bits >= 0):
            raise ModelConfigError(f"macro_unit min_gain_bits={self.min_gain_bits!r}: expected a number >= 0")
        _int("candidates_per_round", self.candidates_per_round, 1)
        _int("max_candidates", self.max_candidates, self.candidates_per_round)
        _int("promotion_rounds", self.promotion_rounds, 0)
        _int("sample_bytes", self.sample_bytes, 0)
        _int("holdout_bytes", self.holdout_bytes, 0)
        if self.holdout_every == 1:
            raise ModelConfigError("macro_unit holdout_every=1 would hold out every row: expected 0 (off) or >= 2")
        _int("holdout_every", self.holdout_every, 0)
        _int("generation_first_bytes", self.generation_first_bytes, 1, 256)

    def check(self) -> None:
        """The checks that need no vocabulary (ModelConfig protocol)."""
        self.validate()

    def build(self, vocab: Vocab) -> "MacroUnitModel":
        self.validate()
        from nightshift.models.macro_unit.model import MacroUnitModel

        return MacroUnitModel(self, vocab)

    def footprint(self, vocab: Vocab, shape: "RunShape") -> "Footprint":
        """Memory of one rank (models/footprint.py): the count tables, their scoring view, samples, DDP deltas."""
        from nightshift.models.macro_unit.footprint import footprint

        return footprint(self, vocab, shape)
