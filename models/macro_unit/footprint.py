"""The macro-unit family's memory, for the planner: its count tables, their scoring view, samples, DDP deltas.

n-gram tables hold a uint64 key and an int64 count per entry; the distinct
(k+1)-byte n-grams a text holds grow as a power law per order, fitted on pg19
from this family's own tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nightshift.models.footprint import Footprint, RunShape
from nightshift.models.protocol import Vocab

if TYPE_CHECKING:
    from nightshift.models.macro_unit.config import Config

# Distinct (k+1)-byte n-grams per order k = 0..7 in the first 2 MB of pg19 train, and the exponent of their
# growth fitted between 2 MB and 31 MB (orders 6-7: before their cap binds), from macro_unit's own tables.
NGRAMS_AT_2MB = (86, 1649, 11664, 48494, 136391, 286161, 487539, 722270)
NGRAMS_EXPONENT = (0.13, 0.24, 0.36, 0.45, 0.54, 0.62, 0.77, 0.83)


def footprint(cfg: "Config", vocab: Vocab, shape: RunShape) -> Footprint:
    per_token = 1.0 if vocab.name == "bytes" else shape.bytes_per_token
    text = min(shape.steps * shape.batch_size * cfg.train_seq_len, shape.train_tokens) * per_token  # distinct bytes
    cap = cfg.max_entries_per_order
    entries = [min(cap, 256 ** (k + 1), text, NGRAMS_AT_2MB[k] * (text / 2e6) ** NGRAMS_EXPONENT[k])
               for k in range(cfg.max_order + 1)]
    tables = 16 * sum(entries)  # uint64 key + int64 count per n-gram
    view = 16 * sum(entries) + 24 * sum(entries[:-1])  # scoring view: n-grams + (total, gamma) per context
    delta = tables if shape.world > 1 else 0.0
    merge = 2 * 16 * (max(entries) + min(cfg.chunk_bytes, cap))  # one order's merge: old + new arrays
    samples = 2 * (cfg.sample_bytes + cfg.holdout_bytes) + 9 * cfg.chunk_bytes
    ckpt = tables + delta + cfg.sample_bytes + cfg.holdout_bytes
    note = (f"{cfg.max_order + 1} orders, {sum(entries):,.0f} n-grams (min of cap {cap:,} and growth fitted "
            f"on pg19) x 16 B + a scoring view")
    return Footprint(
        parameters=0, seq_len=cfg.train_seq_len, store_bytes=tables + view + delta, store_note=note,
        activation_bytes=0.0, activation_note="none (counting)", checkpoint_bytes=ckpt,
        store_checkpoint_bytes=tables + delta, store_appends=False,
        rewrite_note="sorted count tables shift where new n-grams land",
        host_parts={"count tables": tables, "scoring view": view, "DDP delta": delta, "samples+pending": samples,
                    "transient copy": max(merge, ckpt)})
