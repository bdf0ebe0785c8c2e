"""Holographic family throughput, side by side in one run.

- training samples/s (stored (context -> next token) episodes per second of observe())
  at context 64, 512 and 4096, next to the original holographic_v4 figures on this machine;
- retrieval queries/s with 1M stored keys (exact kNN), and full score() queries/s;
- bytes per stored episode and peak RSS of a fresh process holding 1M episodes;
- the flavors' quality after one sleep (bits per byte, top-1, vorticity).

Text: the pg19 sample in ../shared/data, tokenized with tiktoken gpt2 (offline cache).
The planner's holographic observe rates are this benchmark's recorded figures.

    python -m benchmarks run holographic_throughput [--set seconds=20]
"""

from __future__ import annotations

import time

import torch

from benchmarks.harness import SHARED, Benchmark, Clock, Context, peak_rss_mb, status_bytes
from nightshift.models.holographic import Config
from nightshift.models.holographic.store import knn
from nightshift.models.protocol import Vocab

ORIGINAL = {64: 19_180, 512: 3_301, 4096: 411}  # holographic_v4 train_batch, samples/s, this machine
TOKENS_PER_BATCH = 1 << 17
MILLION = 1_000_000


def gpt2_vocab_and_stream(max_tokens: int) -> tuple[Vocab, torch.Tensor, torch.Tensor]:
    import pyarrow.parquet as pq
    import tiktoken

    enc = tiktoken.get_encoding("gpt2")
    vocab = Vocab(name="gpt2", size=enc.n_vocab, eot_id=enc.eot_token,
                  token_bytes=tuple(enc.decode_single_token_bytes(i) for i in range(enc.n_vocab)))

    def stream(split: str, limit: int) -> torch.Tensor:
        ids: list[int] = []
        for text in pq.read_table(SHARED / "pg19" / f"{split}.parquet", columns=["text"]).column("text").to_pylist():
            ids += enc.encode_ordinary(text) + [enc.eot_token]
            if len(ids) >= limit:
                break
        return torch.tensor(ids[:limit])

    return vocab, stream("train", max_tokens), stream("validation", 200_000)


def rows_of(stream: torch.Tensor, length: int) -> torch.Tensor:
    n = stream.numel() // length
    return stream[: n * length].view(n, length)


def train_rate(vocab: Vocab, stream: torch.Tensor, context: int, seconds: float) -> tuple[dict, object]:
    multiple = 4 if context >= 4096 else 8
    model = Config(context_size=context, max_attractors=MILLION, train_seq_multiple=multiple).build(vocab)
    rows = rows_of(stream, model.train_seq_len + 1)
    batch = max(1, TOKENS_PER_BATCH // (model.train_seq_len + 1))
    model.observe(rows[:batch])  # warm-up (allocations)
    samples, start, s = 0, time.perf_counter(), batch
    with Clock() as clock:
        while time.perf_counter() - start < seconds:
            if s >= rows.shape[0]:
                s = 0
            samples += int(model.observe(rows[s : s + batch])["samples"])
            s += batch
    return {"per_s": samples / clock.wall, "per_cpu_s": samples / clock.cpu, "samples": samples}, model


def retrieval_rates(model, val: torch.Tensor, queries: int = 2048) -> dict[str, float]:
    from nightshift.models.holographic.context import window_features

    n = model.context_length
    ctx = rows_of(val, n + 1)[:queries]
    keys, _, sigs = window_features(model.embeddings, ctx[:, :-1], n)
    q = keys[:, -1]  # (Q, 16) full-window query keys
    bank = model.memory.store.view("key")
    knn(q[:128], bank, model.config.knn_k)  # warm-up
    with Clock() as c_knn:
        knn(q, bank, model.config.knn_k)
    model.ensure_fitted()  # held-out fit happens once, outside the timing
    probe = ctx[:32]
    with Clock() as c_score:
        model.score(probe)  # every position of 32 windows: n queries per row
    nq = probe.shape[0] * n
    return {"stored_keys": float(bank.shape[0]), "knn_queries": q.shape[0],
            "knn_queries_per_s": q.shape[0] / c_knn.wall, "knn_queries_per_cpu_s": q.shape[0] / c_knn.cpu,
            "score_queries": nq, "score_queries_per_s": nq / c_score.wall, "score_queries_per_cpu_s": nq / c_score.cpu}


def memory_child(episodes: int) -> dict:
    """Fresh process (its threads pinned by the harness): fill `episodes` at context 64, report bytes/episode
    and RSS."""
    rss_imports = status_bytes("VmRSS")
    vocab, stream, _ = gpt2_vocab_and_stream(max(20_000, int(episodes * 1.25)))
    rss_before = status_bytes("VmRSS")
    peak_before = status_bytes("VmHWM")
    model = Config(context_size=64, max_attractors=episodes).build(vocab)
    rows = rows_of(stream, model.train_seq_len + 1)
    batch = max(1, TOKENS_PER_BATCH // (model.train_seq_len + 1))
    for s in range(0, rows.shape[0], batch):
        model.observe(rows[s : s + batch])
        if model.memory.store.size >= episodes:
            break
    store = model.memory.store
    return {
        "episodes": store.size,
        "bytes_per_episode": store.bytes_per_row(),
        "store_bytes": store.nbytes(),
        "memory_bytes_total": model.memory_bytes(),
        "peak_rss_bytes": max(status_bytes("VmHWM"), int(peak_rss_mb() * 2**20)),
        "rss_after_imports_bytes": rss_imports,
        "rss_before_model_bytes": rss_before,
        "peak_rss_before_model_bytes": peak_before,
        "rss_after_fill_bytes": status_bytes("VmRSS"),
    }


def quality(vocab: Vocab, stream: torch.Tensor, val: torch.Tensor, flavor: str, val_tokens: int) -> dict:
    """Train on the stream, sleep once, then the metrics users expect (see models/holographic/metrics.py)."""
    from nightshift.models.holographic import FLAVORS, metrics
    from nightshift.models.protocol import SleepContext

    cfg = FLAVORS[flavor].model
    model = cfg.build(vocab)
    rows = rows_of(stream, model.train_seq_len + 1)
    batch = max(1, TOKENS_PER_BATCH // (model.train_seq_len + 1))
    t0 = time.perf_counter()
    for s in range(0, rows.shape[0], batch):
        model.observe(rows[s : s + batch])
    out: dict[str, object] = {"flavor": flavor, "context_size": cfg.context_size, "train_tokens": stream.numel(),
                              "stored": model.memory.store.size, "observe_s": time.perf_counter() - t0}
    out["sleep"] = model.sleep(SleepContext(step=1))
    seen = rows[~model.heldout_rows(rows)][:64]
    out["seen_top1"] = metrics.top1(model, seen)
    val_rows = rows_of(val, model.train_seq_len + 1)
    out["validation_top1"] = metrics.top1(model, val_rows)
    out["vorticity"] = metrics.vorticity_discriminability(model, val_rows, pairs=1024)
    # validation documents: the shared split, first `val_tokens` tokens of each book
    docs, cur = [], []
    for t in val.tolist():
        if t == vocab.eot_id:
            docs.append(cur[:val_tokens])
            cur = []
        else:
            cur.append(t)
    window, stride = metrics.full_context_windows(model)
    backoff_only = cfg.build(vocab)  # same counts and fitted beta, no episodes: what memory adds
    backoff_only.memory.backoff.load(model.memory.backoff.state())
    backoff_only.memory.params, backoff_only.memory.fitted = model.memory.params, True
    t0 = time.perf_counter()
    out["bpb"] = {
        "untrained": metrics.bits_per_byte(cfg.build(vocab), docs, window=window, stride=stride),
        "backoff_only": metrics.bits_per_byte(backoff_only, docs, window=window, stride=stride),
        "holographic_full_context": metrics.bits_per_byte(model, docs, window=window, stride=stride),
        "holographic_evaluator_windows": metrics.bits_per_byte(model, docs),
        "val_docs": len(docs), "val_tokens": sum(map(len, docs)),
        "val_bytes": sum(len(vocab.token_bytes[t]) for d in docs for t in d),
    }
    out["bpb_seconds"] = time.perf_counter() - t0
    out["fit"] = dict(model.memory.fit_info)
    return out




def run(ctx: Context) -> dict:
    vocab, stream, val = gpt2_vocab_and_stream(ctx["train_tokens"])
    ctx.log(f"pg19 gpt2 tokens: train {stream.numel():,}, validation {val.numel():,}")
    results: dict[str, object] = {"threads": torch.get_num_threads()}
    for flavor in ctx["quality_flavors"]:
        q = quality(vocab, stream[: ctx["quality_tokens"]], val, flavor, ctx["val_tokens"])
        results[f"quality_{flavor}"] = q
        b = q["bpb"]
        ctx.log(f"[{flavor}, context {q['context_size']}] val bpb: untrained {b['untrained']:.3f}, backoff only "
                f"{b['backoff_only']:.3f}, holographic {b['holographic_full_context']:.3f}")
    rates, model64 = {}, None
    for context in ctx["contexts"]:
        rate, model = train_rate(vocab, stream, context, ctx["seconds"])
        rates[str(context)] = rate | {"original_per_s": ORIGINAL.get(context)}
        if context == 64:
            model64 = model
        ctx.log(f"context {context:5d}: {rate['per_s']:10,.0f} samples/s ({rate['per_cpu_s']:10,.0f} per CPU-s); "
                f"original {ORIGINAL.get(context, 0):,}")
    results["train_samples_per_s"] = rates
    results["planner"] = {"rates": [
        {"family": "holographic", "match": {"context_size": int(c)}, "unit": "episodes/s", "value": r["per_s"],
         "what": f"holographic observe, context {c}, {torch.get_num_threads()} threads"} for c, r in rates.items()]}
    if model64 is not None:  # fill the context-64 store to `stored_keys` if the timed run did not get there
        rows = rows_of(stream, model64.train_seq_len + 1)
        batch = max(1, TOKENS_PER_BATCH // (model64.train_seq_len + 1))
        s = 0
        while model64.memory.store.size < ctx["stored_keys"] and s < rows.shape[0]:
            model64.observe(rows[s : s + batch])
            s += batch
        results["retrieval"] = retrieval_rates(model64, val, ctx["queries"])
        ctx.log(f"retrieval over {results['retrieval']['stored_keys']:,.0f} keys: "
                f"{results['retrieval']['knn_queries_per_s']:,.0f} kNN queries/s")
    results["memory"] = ctx.child("memory_child", episodes=ctx["stored_keys"])
    return results


BENCHMARK = Benchmark(
    name="holographic_throughput",
    summary="holographic observe samples/s at context 64/512/4096 (vs the original), kNN queries/s, bytes "
            "per episode, quality after a sleep",
    run=run,
    threads=2,
    full={"train_tokens": 2_500_000, "seconds": 20.0, "contexts": [64, 512, 4096], "quality_flavors": ["base", "short"],
          "quality_tokens": 1_000_000, "val_tokens": 10_000, "stored_keys": MILLION, "queries": 2048},
    toy={"train_tokens": 60_000, "seconds": 0.5, "contexts": [64, 512], "quality_flavors": ["short"],
         "quality_tokens": 30_000, "val_tokens": 500, "stored_keys": 5_000, "queries": 64},
)
