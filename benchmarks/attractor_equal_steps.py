"""Bits/byte at equal steps: attractor:a1's fast training path against the plain eager float32 one.

`attractor:a1` trains with the relaxation compiled (`compile_relaxation=True`) and the
readouts' matmuls in bfloat16 (`readout_precision="auto"`, on CPUs with
AVX512-BF16 / AMX and on CUDA). This script checks that the speed costs no
quality: both variants start from the same weights, see the same batches
(pg19 sample, gpt2 tokens, the trainer's fused AdamW and clipping, one
thread), alternate step by step, and are scored with the project's evaluator
(`nightshift.orchestrator.evaluation.bits_per_byte.bits_per_byte`, plain NLL, float32 readout) at the
same step counts (and, at the end, with the relaxation ablated: what it
adds). A third variant, compiled but float32, differs from the eager one
only in the order of float rounding: its gap is the noise floor the fast
path's gap is judged against.

    python -m benchmarks run attractor_equal_steps [--set steps=300 --set evals=[100,200,300]]
"""

from __future__ import annotations

import dataclasses
import os
import time

import torch

from benchmarks.harness import SHARED, Benchmark, Context
from nightshift.models import registry
from nightshift.models.protocol import Vocab, ablated
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
from nightshift.orchestrator.runs.config import TrainConfig
from nightshift.orchestrator.training.optim import build_optimizer


@dataclasses.dataclass
class Doc:
    tokens: list[int]
    n_bytes: int


def load(train_chars: int, val_chars: int) -> tuple[Vocab, torch.Tensor, list[Doc]]:
    import pyarrow.parquet as pq
    import tiktoken

    data_dir = SHARED / "pg19"
    texts = {s: pq.read_table(data_dir / f"{s}.parquet", columns=["text"]).column("text").to_pylist()
             for s in ("train", "validation")}
    enc = tiktoken.get_encoding("gpt2")
    vocab = Vocab(name="gpt2", size=enc.n_vocab, eot_id=enc.eot_token,
                  token_bytes=tuple(enc.decode_single_token_bytes(i) for i in range(enc.n_vocab)))
    stream: list[int] = []
    for book in texts["train"]:
        if len(stream) and train_chars <= 0:
            break
        stream += enc.encode_ordinary(book[:train_chars]) + [vocab.eot_id]
        train_chars -= len(book)
    val = [Doc(tokens=enc.encode_ordinary(b[:val_chars]), n_bytes=len(b[:val_chars].encode())) for b in
           texts["validation"]]
    return vocab, torch.tensor(stream), val


def marks_of(evals: str | list[int]) -> set[int]:
    """Step counts to evaluate at: a list, or the old comma-separated string ("100,200,300")."""
    return {int(m) for m in (evals.split(",") if isinstance(evals, str) else evals)}


def run(ctx: Context) -> dict:
    flavor, seed = ctx["flavor"], ctx["seed"]
    vocab, data, val = load(ctx["train_chars"], ctx["val_chars"])
    spec = registry.resolve(f"attractor:{flavor}", dict(ctx["config"]))
    variants = {"fast": spec.config,  # the flavor as shipped
                "compiled-fp32": dataclasses.replace(spec.config, readout_precision="float32"),  # rounding only
                "eager-fp32": dataclasses.replace(spec.config, compile_relaxation=False, readout_precision="float32")}
    t = spec.train
    tcfg = TrainConfig(lr=t["lr"], weight_decay=t["weight_decay"], betas=t["betas"])
    models, opts = {}, {}
    for name, cfg in variants.items():
        torch.manual_seed(seed)  # the same initial weights
        models[name] = cfg.build(vocab)
        opts[name] = build_optimizer(models[name], tcfg, torch.device("cpu"))
    B, T = t["batch_size"], spec.config.window
    ctx.log(f"attractor:{flavor}" + (f" ({ctx['config']})" if ctx["config"] else "") + f", V {vocab.size} (gpt2), "
            f"{len(data):,} train tokens, validation {sum(len(d.tokens) for d in val):,} tokens / "
            f"{sum(d.n_bytes for d in val):,} bytes; fast = compile_relaxation {spec.config.compile_relaxation}, "
            f"readout {spec.config.readout_precision}; load {os.getloadavg()[0]:.1f}")
    gen = torch.Generator().manual_seed(seed)
    marks = marks_of(ctx["evals"])
    curve: dict[str, list[dict]] = {n: [] for n in variants}
    seconds = dict.fromkeys(variants, 0.0)
    for step in range(1, ctx["steps"] + 1):
        starts = torch.randint(0, len(data) - T - 1, (B,), generator=gen)
        batch = data[starts[:, None] + torch.arange(T + 1)]  # (B, T+1), the same for both
        for name, model in models.items():
            t0 = time.perf_counter()
            loss, _ = model(batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
            opts[name].step()
            opts[name].zero_grad(set_to_none=True)
            seconds[name] += time.perf_counter() - t0
        if step in marks:
            for name, model in models.items():
                bpb = bits_per_byte(model, val, batch_size=16).bits_per_byte
                model.train()
                curve[name].append({"step": step, "val_bpb": bpb, "train_s": seconds[name]})
            ctx.log(f"  step {step:5d}: " + ", ".join(f"{n} {c[-1]['val_bpb']:.4f} bpb ({seconds[n]:.0f} s)"
                                                    for n, c in curve.items()))
    ablation, relaxation_gain = {}, {}
    for name, model in models.items():  # what the relaxation adds: the same weights read out at K = 0
        with ablated(model, {"relaxation"}):
            ablation[name] = bits_per_byte(model, val, batch_size=16).bits_per_byte
        on = curve[name][-1]["val_bpb"] if curve[name] else float("nan")
        relaxation_gain[name] = ablation[name] - on
        ctx.log(f"  {name}: relaxation off {ablation[name]:.4f} bpb, on {on:.4f}: off - on = "
                f"{ablation[name] - on:+.4f} (> 0: the relaxation helps)")
    out: dict = {"curve": curve, "relaxation_ablated_bpb": ablation, "relaxation_gain_bpb": relaxation_gain,
                 "vocab": vocab.size, "train_tokens": len(data), "batch": B}
    last = {n: c[-1]["val_bpb"] for n, c in curve.items() if c}
    if last:  # compiled-fp32 differs from eager only by float rounding order: its gap is the noise floor
        noise = abs(last["compiled-fp32"] - last["eager-fp32"])
        diff = last["fast"] - last["eager-fp32"]
        verdict = "equal or better" if diff <= max(noise, 1e-4) else "WORSE than eager beyond the rounding noise"
        out["at_step"] = curve["fast"][-1]["step"]
        out["fast_minus_eager_bpb"] = diff
        out["compiled_fp32_minus_eager_bpb"] = last["compiled-fp32"] - last["eager-fp32"]
        out["verdict"] = verdict
        ctx.log(f"at step {curve['fast'][-1]['step']}: fast - eager {diff:+.4f} bits/byte; compiled-fp32 - eager "
                f"{last['compiled-fp32'] - last['eager-fp32']:+.4f} (rounding noise); {verdict}")
    return out


BENCHMARK = Benchmark(
    name="attractor_equal_steps",
    summary="attractor:a1's fast path (compiled relaxation, bf16 readout) vs eager float32: val bits/byte at equal "
            "steps, with compiled float32 as the rounding-noise floor",
    run=run,
    threads=1,
    goal="the fast path costs no quality: fast - eager bits/byte within the compiled-fp32 rounding noise",
    full={"flavor": "a1", "steps": 300, "evals": [100, 200, 300], "train_chars": 3_000_000, "val_chars": 10_000,
          "seed": 0, "config": {}},
    # toy: a1's code paths at a small shape (D 32, K 4), two steps, one eval
    toy={"flavor": "a1", "steps": 2, "evals": [2], "train_chars": 20_000, "val_chars": 200, "seed": 0,
         "config": {"d_model": 32, "steps": 4}},
)
