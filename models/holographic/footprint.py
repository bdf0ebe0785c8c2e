"""The holographic family's memory, for the planner: its episode store, bigram backoff, buffers, prototypes.

Counted from the family's own column layout (`memory.episode_columns`,
`store.Reservoir.bytes_per_row`) and growth rule (`store.COLUMN_GROWTH`); the
distinct bigrams a text of N tokens holds are a power law fitted on pg19.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nightshift.models.footprint import Footprint, RunShape
from nightshift.models.holographic.backoff import CONSOLIDATE_AT
from nightshift.models.holographic.memory import episode_columns, heldout_columns
from nightshift.models.holographic.placement import store_placement
from nightshift.models.holographic.store import COLUMN_GROWTH, Reservoir
from nightshift.models.protocol import Vocab

if TYPE_CHECKING:
    from nightshift.models.holographic.config import Config

# Distinct gpt2 bigrams on pg19: 1,086,750 in 8,248,616 tokens; exponent fitted between 1 M and 8.2 M tokens.
BIGRAMS_AT, BIGRAMS_TOKENS, BIGRAMS_EXPONENT = 1_086_750, 8_248_616, 0.71
OBSERVE_BYTES_PER_TOKEN = 1024  # observe temporaries per window position (keys, signatures, products)


def footprint(cfg: "Config", vocab: Vocab, shape: RunShape) -> Footprint:
    # the family's own columns (+ priority): 16 floats per key (faithful) or 8 per suffix scale
    row = Reservoir(1, episode_columns(cfg.layout.dim)).bytes_per_row()
    held_row = Reservoir(1, heldout_columns(cfg.layout.dim, cfg.reading)).bytes_per_row()
    T, n = cfg.train_seq_len, cfg.context_size
    samples = shape.steps * shape.batch_size
    episodes = samples * (T - n + 1) * (1 - 1 / cfg.holdout_every)
    rows = int(min(cfg.max_attractors, episodes))
    alloc, growth_peak = reservoir_growth(rows, cfg.max_attractors, COLUMN_GROWTH)
    store = alloc * row
    distinct = min(samples * (T + 1), shape.train_tokens)
    pairs = min(vocab.size ** 2, distinct, BIGRAMS_AT * (distinct / BIGRAMS_TOKENS) ** BIGRAMS_EXPONENT)
    backoff = pairs * 16 + 2 * vocab.size * 8
    parked = min(CONSOLIDATE_AT, samples * (T + 1))
    backoff_peak = 2 * backoff + parked * 8 * 2  # a fold: old + new tables, parked codes and their sort
    protos = cfg.max_prototypes * (4 * (16 + 1 + 16 + 3) + cfg.prototype_targets * 12)
    small = cfg.episodic_buffer_size * row + cfg.holdout_size * held_row + protos
    B = max(1, shape.batch_size // shape.world)
    act = B * T * OBSERVE_BYTES_PER_TOKEN
    state_rows = rows * row
    ckpt = state_rows + pairs * 16 + small
    on, why = store_placement(cfg, vocab, "cuda" if shape.on_gpu else "cpu", shape.device_memory)
    store_note = (f"{rows:,} episodes x {row} B (the family's columns), allocated {alloc:,} rows"
                  f"{'' if rows < cfg.max_attractors else ' (full: max_attractors)'}; {why}; "
                  f"bigram backoff {pairs:,.0f} pairs (fitted on pg19)")
    growth = (growth_peak - alloc) * row  # old columns held while they are copied into larger ones
    memory = {"store": store, "backoff": backoff_peak, "buffers+prototypes": small, "observe temporaries": act,
              "transient copy": max(growth, ckpt)}  # store growth or a checkpoint's state_dict(), not both at once
    if on == "device":
        device = {k: memory.pop(k) for k in ("store",)} | {"store growth copy": growth}
        memory["transient copy"] = ckpt
    else:
        device = {"embeddings": vocab.size * 16 * 4 * 2}
    return Footprint(
        parameters=0, seq_len=T, store_bytes=store + backoff + small, store_on=on, store_note=store_note,
        activation_bytes=act, activation_note=f"formula: {B} x {T} positions x {OBSERVE_BYTES_PER_TOKEN} B of observe "
        "temporaries", checkpoint_bytes=ckpt, store_checkpoint_bytes=state_rows,
        store_appends=episodes <= cfg.max_attractors,
        rewrite_note=f"the store fills and its {cfg.store_policy} then replaces rows"
        + (" everywhere" if cfg.store_policy == "reservoir" else " in place (upper bound)"),
        device_parts=device, host_parts=memory)


def reservoir_growth(rows: int, capacity: int, growth: int) -> tuple[int, int]:
    """(rows allocated at the end, peak rows held while growing) of a Reservoir filled to `rows`."""
    have, peak = 0, 0
    while have < rows:
        new = min(capacity, max(have * growth, 1024))
        peak = max(peak, have + new)  # the old columns are copied into the new ones
        have = new
    return have, max(peak, have)
