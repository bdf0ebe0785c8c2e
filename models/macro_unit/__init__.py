"""Macro-unit family: a byte n-gram (Kneser-Ney) model, in-context counts and MDL macro-units, mixed.

A memory family (no gradients). See /work/shared/specs/macro_unit.md for the
design and the defects of the original it fixes; `model.py` for how it plugs
into nightshift. Files: `keys.py` (n-gram key packing), `counts.py` (capped
streaming counts), `byte_model.py` (normalised Kneser-Ney), `units.py`
(greedy longest-match codebook), `mdl.py` (promotion with held-out rollback),
`reservoir.py` (bounded samples), `tokens.py` (ids -> bytes), `generate.py`,
`distributed.py`; the score: `predictor.py` (the mixture), `context.py` (hashed
contexts), `cache.py` (in-context and global counts), `unit_context.py` (the
causal unit parse as context), `mixer.py` (bucketed weights, EM on held-out rows).
"""

from __future__ import annotations

from nightshift.models.macro_unit.config import Config
from nightshift.models.macro_unit.model import MacroUnitModel
from nightshift.models.protocol import Flavor

SUMMARY = "Byte Kneser-Ney + in-context counts + MDL macro-units as context, mixed (memory family, no gradients)"

_TRAIN = {"batch_size": 32}  # memory family: no optimizer settings; rows per observe() call

FLAVORS: dict[str, Flavor] = {
    "base": Flavor(
        model=Config(),
        train=_TRAIN,
        summary="order-7 contexts, 2M n-grams per order (~0.5 GB), up to 10k units",
    ),
    "small": Flavor(
        model=Config(max_order=5, max_entries_per_order=1 << 18, chunk_bytes=1 << 20, max_units=2000,
                     sample_bytes=1 << 18, holdout_bytes=1 << 16),
        train=_TRAIN,
        summary="order-5 contexts, 256k n-grams per order, up to 2k units: quick runs and tests",
    ),
    "large": Flavor(
        model=Config(max_entries_per_order=1 << 23, chunk_bytes=1 << 22, sample_bytes=1 << 21),
        train=_TRAIN,
        summary="order-7 contexts, 8M n-grams per order (~2 GB): for 100 MB+ datasets",
    ),
}
DEFAULT_FLAVOR = "base"

__all__ = ["DEFAULT_FLAVOR", "FLAVORS", "SUMMARY", "Config", "MacroUnitModel"]
