"""Memory a run needs, per family: parameters and optimizer, the memory stores, activations, checkpoints.

Counted where the family's code says it (parameters from a build on the meta
device, bytes per stored row from the family's own column layout), a formula
where it cannot (activations, growth of the stores, distinct bigrams), and the
source of each is in its note. `memory_device` on a family config (if a family
grows one) moves its store onto the accelerator; otherwise memory families keep
their stores on the host, as they do today.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from nightshift.models.protocol import Vocab
from nightshift.orchestrator.config import RunConfig

# Distinct gpt2 bigrams on pg19: 1,086,750 in 8,248,616 tokens; exponent fitted between 1 M and 8.2 M tokens.
BIGRAMS_AT, BIGRAMS_TOKENS, BIGRAMS_EXPONENT = 1_086_750, 8_248_616, 0.71
# Distinct (k+1)-byte n-grams per order k = 0..7 in the first 2 MB of pg19 train, and the exponent of their
# growth fitted between 2 MB and 31 MB (orders 6-7: before their cap binds), from macro_unit's own tables.
NGRAMS_AT_2MB = (86, 1649, 11664, 48494, 136391, 286161, 487539, 722270)
NGRAMS_EXPONENT = (0.13, 0.24, 0.36, 0.45, 0.54, 0.62, 0.77, 0.83)
OBSERVE_BYTES_PER_TOKEN = 1024  # holographic observe temporaries per window position (keys, signatures, products)
HOLO_PENDING_CODES = 1 << 23  # nightshift.models.holographic.backoff.CONSOLIDATE_AT: pair codes parked before a fold


@dataclass(slots=True)
class MemoryEstimate:
    parameters: int
    seq_len: int  # T: tokens per training window (sequences are T + 1)
    store_bytes: float  # non-parametric memory at the end of the run
    store_on: str  # "host" or "device"
    store_note: str
    activation_bytes: float
    activation_note: str
    device_bytes: float  # per accelerator (0 on a CPU run)
    host_bytes: float  # per process, peak (while checkpointing)
    checkpoint_bytes: float  # one checkpoint
    store_checkpoint_bytes: float  # of which the memory stores
    store_appends: bool  # the store only grows by appending over the whole run (chunks written once)
    rewrite_note: str = "the state changes everywhere between checkpoints"  # why not, when it does not
    flops_per_sample: float | None = None
    breakdown: dict[str, float] = field(default_factory=dict)


def _meta_build(config: RunConfig, vocab: Vocab) -> Any:
    with torch.device("meta"):
        return config.model.config.build(vocab)


def estimate_memory(config: RunConfig, vocab: Vocab, *, world: int, on_gpu: bool,
                    train_tokens: int) -> MemoryEstimate:
    """`train_tokens`: distinct training text; repeated epochs add no new bigrams or n-grams."""
    family = config.model.family
    if family == "holographic":
        return _holographic(config, vocab, world, on_gpu, train_tokens)
    if family == "macro_unit":
        return _macro_unit(config, vocab, world, on_gpu, train_tokens)
    return _gradient(config, vocab, world, on_gpu)


def _finish(est: MemoryEstimate, on_gpu: bool, host_parts: dict[str, float], device_parts: dict[str, float]) -> None:
    from nightshift.orchestrator.plan import CUDA_CONTEXT_BYTES, PROCESS_BASE_BYTES

    host_parts = {"process": PROCESS_BASE_BYTES, **host_parts}
    if on_gpu:
        device_parts = {**device_parts, "cuda context": CUDA_CONTEXT_BYTES}
        est.device_bytes = sum(device_parts.values())
        est.host_bytes = sum(host_parts.values())
    else:
        host_parts = {**host_parts, **device_parts}
        est.host_bytes = sum(host_parts.values())
    est.breakdown = {**device_parts, **host_parts} if on_gpu else host_parts


# ----------------------------------------------------------------------------- gradient families
def _gradient(config: RunConfig, vocab: Vocab, world: int, on_gpu: bool) -> MemoryEstimate:
    model = _meta_build(config, vocab)
    t = config.train
    P = model.num_parameters()
    T = model.train_seq_len
    B = max(1, t.batch_size // (world * t.grad_accum))
    cfg = config.model.config
    V = getattr(model, "padded_vocab", vocab.size)
    if config.model.family == "transformer":
        d, L = cfg.d_model, cfg.n_layer
        per_layer = (34 if on_gpu else 68) * B * T * d  # Korthikanti et al. 2022, SDPA (no T^2 scores kept)
        logits = B * T * V * (10 if on_gpu else 12)  # logits, their fp32 copy and the gradient of the loss
        act = L * per_layer + logits
        note = f"formula: {L} layers x {34 if on_gpu else 68} B x B x T x d + logits, B={B} T={T}"
        eval_act = t.eval_batch_size * T * V * 8  # forward only: logits + log-softmax
    else:
        D, W, K = cfg.d_model, cfg.window, cfg.steps
        kept = K if cfg.gradients == "unroll" else 1
        act = B * T * W * D * 4 * 6 * kept + B * T * V * 12
        note = f"rough: B x T x W x D x 24 B x {'K' if kept > 1 else '1'} + logits, B={B} T={T}"
        eval_act = 4 * getattr(cfg, "eval_chunk_floats", 1 << 24)
    act = max(act, eval_act)
    state = 16 * P  # fp32 weights + gradients + AdamW moments
    ckpt = 12 * P  # weights + moments (gradients are not saved)
    est = MemoryEstimate(P, T, 0.0, "host", "no memory store", act, note, 0.0, 0.0, ckpt, 0.0, True,
                         "weights and optimizer change at every step", model.train_flops_per_sample())
    device = {"weights+grads+AdamW": state, "activations": act}
    _finish(est, on_gpu, {"checkpoint copy": ckpt} if on_gpu else {}, device)
    return est


# ----------------------------------------------------------------------------- holographic
def _holographic(config: RunConfig, vocab: Vocab, world: int, on_gpu: bool, train_tokens: int) -> MemoryEstimate:
    from nightshift.models.holographic.memory import episode_columns, heldout_columns
    from nightshift.models.holographic.store import COLUMN_GROWTH, Reservoir

    cfg, t = config.model.config, config.train
    # the family's own columns (+ priority): 16 floats per key (faithful) or 8 per suffix scale
    row = Reservoir(1, episode_columns(cfg.layout.dim)).bytes_per_row()
    held_row = Reservoir(1, heldout_columns(cfg.layout.dim, cfg.reading)).bytes_per_row()
    T, n = cfg.train_seq_len, cfg.context_size
    samples = t.steps * t.batch_size
    kept_frac = 1 - 1 / cfg.holdout_every
    episodes = samples * (T - n + 1) * kept_frac
    rows = int(min(cfg.max_attractors, episodes))
    alloc, growth_peak = _reservoir_growth(rows, cfg.max_attractors, COLUMN_GROWTH)
    store = alloc * row
    distinct = min(samples * (T + 1), train_tokens)
    pairs = min(vocab.size ** 2, distinct, BIGRAMS_AT * (distinct / BIGRAMS_TOKENS) ** BIGRAMS_EXPONENT)
    backoff = pairs * 16 + 2 * vocab.size * 8
    parked = min(HOLO_PENDING_CODES, samples * (T + 1))
    backoff_peak = 2 * backoff + parked * 8 * 2  # a fold: old + new tables, parked codes and their sort
    protos = cfg.max_prototypes * (4 * (16 + 1 + 16 + 3) + cfg.prototype_targets * 12)
    small = cfg.episodic_buffer_size * row + cfg.holdout_size * held_row + protos
    B = max(1, t.batch_size // world)
    act = B * T * OBSERVE_BYTES_PER_TOKEN
    state_rows = rows * row
    ckpt = state_rows + pairs * 16 + small
    on = "device" if cfg.store_device == "model" and on_gpu else "host"
    store_note = (f"{rows:,} episodes x {row} B (the family's columns), allocated {alloc:,} rows"
                  f"{'' if rows < cfg.max_attractors else ' (full: max_attractors)'}; bigram backoff "
                  f"{pairs:,.0f} pairs (fitted on pg19)")
    est = MemoryEstimate(0, T, store + backoff + small, on, store_note, act,
                         f"formula: {B} x {T} positions x {OBSERVE_BYTES_PER_TOKEN} B of observe temporaries",
                         0.0, 0.0, ckpt, state_rows, episodes <= cfg.max_attractors,
                         f"the store fills and its {cfg.store_policy} then replaces rows"
                         + (" everywhere" if cfg.store_policy == "reservoir" else " in place (upper bound)"))
    growth = (growth_peak - alloc) * row  # old columns held while they are copied into larger ones
    memory = {"store": store, "backoff": backoff_peak, "buffers+prototypes": small, "observe temporaries": act,
              "transient copy": max(growth, ckpt)}  # store growth or a checkpoint's state_dict(), not both at once
    if on == "device":
        device = {k: memory.pop(k) for k in ("store",)} | {"store growth copy": growth}
        memory["transient copy"] = ckpt
        _finish(est, on_gpu, memory, device)
    else:
        _finish(est, on_gpu, memory, {"embeddings": vocab.size * 16 * 4 * 2})
    return est


def _reservoir_growth(rows: int, capacity: int, growth: int) -> tuple[int, int]:
    """(rows allocated at the end, peak rows held while growing) of a Reservoir filled to `rows`."""
    have, peak = 0, 0
    while have < rows:
        new = min(capacity, max(have * growth, 1024))
        peak = max(peak, have + new)  # the old columns are copied into the new ones
        have = new
    return have, max(peak, have)


# ----------------------------------------------------------------------------- macro_unit
def _macro_unit(config: RunConfig, vocab: Vocab, world: int, on_gpu: bool, train_tokens: int) -> MemoryEstimate:
    from nightshift.orchestrator.plan_figures import BYTES_PER_TOKEN

    cfg, t = config.model.config, config.train
    per_token = 1.0 if vocab.name == "bytes" else BYTES_PER_TOKEN.get(vocab.name, 4.0)
    text = min(t.steps * t.batch_size * cfg.train_seq_len, train_tokens) * per_token  # distinct bytes seen
    cap = cfg.max_entries_per_order
    entries = [min(cap, 256 ** (k + 1), text, NGRAMS_AT_2MB[k] * (text / 2e6) ** NGRAMS_EXPONENT[k])
               for k in range(cfg.max_order + 1)]
    tables = 16 * sum(entries)  # uint64 key + int64 count per n-gram
    view = 16 * sum(entries) + 24 * sum(entries[:-1])  # scoring view: n-grams + (total, gamma) per context
    delta = tables if world > 1 else 0.0
    merge = 2 * 16 * (max(entries) + min(cfg.chunk_bytes, cap))  # one order's merge: old + new arrays
    samples = 2 * (cfg.sample_bytes + cfg.holdout_bytes) + 9 * cfg.chunk_bytes
    ckpt = tables + delta + cfg.sample_bytes + cfg.holdout_bytes
    note = (f"{cfg.max_order + 1} orders, {sum(entries):,.0f} n-grams (min of cap {cap:,} and growth fitted "
            f"on pg19) x 16 B + a scoring view")
    est = MemoryEstimate(0, cfg.train_seq_len, tables + view + delta, "host", note, 0.0, "none (counting)",
                         0.0, 0.0, ckpt, tables + delta, False, "sorted count tables shift where new n-grams land")
    _finish(est, on_gpu, {"count tables": tables, "scoring view": view, "DDP delta": delta,
                          "samples+pending": samples, "transient copy": max(merge, ckpt)}, {})
    return est

