"""Peak RSS of a transformer:tiny train step and evaluation batch at gpt2's vocabulary, before and after.

    python -m benchmarks run transformer_memory

Each measurement runs in a fresh process (ru_maxrss only grows): a train step
on a (batch, seq_len + 1) batch with the plain cross-entropy over materialised
logits (the former `Transformer.forward` body) and with the chunked tied-head
loss (models/transformer/loss.py); an evaluation batch scored at once (the
former evaluate loop) and through `bits_per_byte` (a few rows at a time).
Also the step time of both losses, interleaved in one process.
"""

from __future__ import annotations

import time
import types
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from benchmarks.harness import Benchmark, Context, peak_rss_mb
from nightshift.models.protocol import Vocab
from nightshift.models.registry import resolve

MODES = ("train-plain", "train-chunked", "eval-whole-batch", "eval-bits-per-byte")
GPT2 = Vocab(name="gpt2", size=50257, eot_id=50256)


def _model_and_batch(batch: int, seq_len: int) -> tuple[Any, torch.Tensor]:
    torch.manual_seed(0)
    model = resolve("transformer:tiny").config.build(GPT2)
    return model, torch.randint(0, 50256, (batch, seq_len + 1))  # (B, T+1)


def memory_child(mode: str, batch: int, seq_len: int) -> dict[str, Any]:
    """One measurement in a fresh process: peak RSS after the model is built and after `mode` ran."""
    model, x = _model_and_batch(batch, seq_len)
    base = peak_rss_mb()
    if mode == "train-plain":
        F.cross_entropy(model.padded_logits(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
    elif mode == "train-chunked":
        model(x)[0].backward()
    elif mode == "eval-whole-batch":
        with torch.no_grad():
            model.eval()
            model.score(x)
    elif mode == "eval-bits-per-byte":
        from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte

        n = batch * (seq_len // 2 + 1)
        doc = types.SimpleNamespace(tokens=np.random.randint(0, 50256, n), n_bytes=n * 4)
        bits_per_byte(model, [doc], batch_size=batch)
    else:
        raise ValueError(f"unknown mode {mode!r}; accepted: {', '.join(MODES)}")
    return {"mode": mode, "model_mb": base, "peak_mb": peak_rss_mb()}


def step_times(batch: int, seq_len: int, rounds: int) -> dict[str, float]:
    model, x = _model_and_batch(batch, seq_len)
    fns = {"plain": lambda: F.cross_entropy(model.padded_logits(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()),
           "chunked": lambda: model(x)[0]}
    best = {k: float("inf") for k in fns}
    for _ in range(rounds):  # interleaved: a busy machine slows both alike
        for name, fn in fns.items():
            model.zero_grad()
            t0 = time.perf_counter()
            fn().backward()
            best[name] = min(best[name], time.perf_counter() - t0)
    return best


def run(ctx: Context) -> dict[str, Any]:
    rows = [ctx.child("memory_child", mode=mode, batch=ctx["batch"], seq_len=ctx["seq_len"]) for mode in MODES]
    for r in rows:
        ctx.log(f"{r['mode']:<20} peak RSS {r['peak_mb']:7.0f} MB  (model built: {r['model_mb']:.0f} MB)")
    peak = {r["mode"]: r["peak_mb"] for r in rows}
    ratios = {"train_peak_plain_over_chunked": peak["train-plain"] / peak["train-chunked"],
              "eval_peak_whole_over_bits_per_byte": peak["eval-whole-batch"] / peak["eval-bits-per-byte"]}
    ctx.log(f"train step: {ratios['train_peak_plain_over_chunked']:.1f}x less peak memory; "
            f"eval: {ratios['eval_peak_whole_over_bits_per_byte']:.1f}x less")
    times = step_times(ctx["batch"], ctx["seq_len"], ctx["rounds"])
    ctx.log(f"step time (best of {ctx['rounds']}, interleaved): plain {times['plain']:.2f} s, chunked "
            f"{times['chunked']:.2f} s ({times['plain'] / times['chunked']:.2f}x)")
    return {"peak_mb": peak, "model_mb": {r["mode"]: r["model_mb"] for r in rows}, "ratios": ratios,
            "step_seconds": times, "step_plain_over_chunked": times["plain"] / times["chunked"]}


BENCHMARK = Benchmark(
    name="transformer_memory",
    summary="peak RSS of a transformer:tiny train step and eval batch at gpt2's vocabulary: plain vs chunked loss, "
            "whole batch vs bits_per_byte",
    run=run,
    threads=1,
    full={"batch": 16, "seq_len": 256, "rounds": 3},
    toy={"batch": 2, "seq_len": 32, "rounds": 1},
)
