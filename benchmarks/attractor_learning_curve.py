"""Learning curve: attractor vs the transformer baseline on the pg19 sample, gpt2 tokens, equal CPU time.

Both models train in the same process on one thread, alternating slices of
CPU time (process time, so a shared box's load hits both alike), and are
evaluated at the same budget points with the project's evaluator
(`nightshift.orchestrator.evaluation.bits_per_byte.bits_per_byte`: every validation token scored once,
full left context, plain NLL) on the first `val_chars` of each validation
book.

    python -m benchmarks run attractor_learning_curve [--set budget=240]   # CPU seconds per model
"""

from __future__ import annotations

import math
import time

import torch

from benchmarks.attractor_equal_steps import load  # the same pg19 gpt2 loader
from benchmarks.harness import Benchmark, Context
from nightshift.models import registry
from nightshift.models.protocol import Vocab
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte


class Runner:
    """One model, its AdamW (the flavor's recipe), and a CPU-time clock."""

    def __init__(self, name: str, vocab: Vocab, overrides: dict, data: torch.Tensor, batch: int | None, seed: int,
                 warmup: int | None = None):
        spec = registry.resolve(name, overrides)
        torch.manual_seed(seed)
        self.name, self.model = name, spec.config.build(vocab)
        t = spec.train
        params = [p for p in self.model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": t.get("weight_decay", 0.0)},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        self.opt = torch.optim.AdamW(groups, lr=t.get("lr", 1e-3), betas=tuple(t.get("betas", (0.9, 0.999))))
        self.lr, self.clip = t.get("lr", 1e-3), t.get("grad_clip", 1.0)
        self.warmup = t.get("warmup_steps", 0) if warmup is None else warmup
        self.batch = batch or t.get("batch_size", 16)
        self.data, self.T = data, self.model.train_seq_len
        self.gen = torch.Generator().manual_seed(seed)
        self.cpu = 0.0  # CPU seconds spent training
        self.steps = 0

    def train_for(self, seconds: float) -> float:
        t0 = time.process_time()
        loss = float("nan")
        while time.process_time() - t0 < seconds:
            starts = torch.randint(0, len(self.data) - self.T - 1, (self.batch,), generator=self.gen)
            batch = self.data[starts[:, None] + torch.arange(self.T + 1)]  # (B, T+1)
            for group in self.opt.param_groups:
                group["lr"] = self.lr * min(1.0, (self.steps + 1) / max(self.warmup, 1))
            out, _ = self.model(batch)
            self.opt.zero_grad(set_to_none=True)
            out.backward()
            if self.clip:
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.opt.step()
            self.steps += 1
            loss = float(out.detach())
        self.cpu += time.process_time() - t0
        return loss


def listed(value: str | list) -> list[str]:
    """A list parameter, or the old comma-separated string form."""
    return [str(v) for v in (value.split(",") if isinstance(value, str) else value) if str(v)]


def run(ctx: Context) -> dict:
    vocab, data, val_docs = load(ctx["train_chars"], ctx["val_chars"])
    ctx.log(f"train tokens {len(data):,}; validation {sum(len(d.tokens) for d in val_docs):,} tokens, "
            f"{sum(d.n_bytes for d in val_docs):,} bytes")

    overrides = dict(kv.split("=", 1) for kv in ctx["attractor_set"].split(",") if kv)
    runners = [Runner(name, vocab, overrides, data, None, 0) for name in listed(ctx["attractors"])]
    t_over = dict(kv.split("=", 1) for kv in ctx["transformer_set"].split(",") if kv)
    runners.append(Runner(ctx["transformer"], vocab, t_over, data, ctx["transformer_batch"], 0,
                          ctx["transformer_warmup"]))
    models = {}
    for r in runners:
        models[r.name] = {"overrides": overrides if r.name.startswith("attractor") else t_over,
                          "params": r.model.num_parameters(), "batch": r.batch, "seq_len": r.T}
        ctx.log(f"{r.name} {models[r.name]['overrides']}: {r.model.num_parameters() / 1e6:.1f} M params, "
                f"batch {r.batch} x {r.T} tokens")
    marks = [float(m) for m in listed(ctx["evals"]) if float(m) <= ctx["budget"]]
    curve: dict[str, list[dict]] = {r.name: [] for r in runners}

    def evaluate(r: Runner, loss: float) -> None:
        t0 = time.perf_counter()
        res = bits_per_byte(r.model, val_docs, batch_size=8)
        curve[r.name].append({"cpu_s": round(r.cpu, 1), "steps": r.steps,
                              "train_loss": None if math.isnan(loss) else loss,  # None: no slice before this eval
                              "val_bpb": res.bits_per_byte, "targets_seen": r.steps * r.batch * (
                                  r.T if r.name.startswith("transformer") else 1)})
        ctx.log(f"  {r.name:24s} cpu {r.cpu:6.1f}s steps {r.steps:6d} train loss {loss:6.3f} "
                f"val bpb {res.bits_per_byte:.3f} (eval {time.perf_counter() - t0:.0f}s)")

    for r in runners:
        evaluate(r, float("nan"))
    slice_s = 5.0
    for mark in marks:
        loss = {}
        while min(r.cpu for r in runners) < mark - 1e-6:
            for r in runners:  # alternate slices so both see the same machine
                if r.cpu < mark:
                    loss[r.name] = r.train_for(min(slice_s, mark - r.cpu))
        for r in runners:
            evaluate(r, loss.get(r.name, float("nan")))
    uniform = math.log(vocab.size)
    ctx.log(f"unigram reference: ln(V) = {round(uniform, 2)} nats/token untrained-uniform")
    return {"curve": curve, "models": models, "uniform_nats_per_token": uniform,
            "train_tokens": len(data), "val_tokens": sum(len(d.tokens) for d in val_docs),
            "val_bytes": sum(d.n_bytes for d in val_docs)}


BENCHMARK = Benchmark(
    name="attractor_learning_curve",
    summary="val bits/byte against CPU seconds: attractor:a1 / a1-unroll vs transformer:tiny, pg19 gpt2, equal CPU "
            "time, one thread",
    run=run,
    threads=1,
    full={"budget": 300.0, "evals": [30, 75, 150, 300], "train_chars": 3_000_000, "val_chars": 15_000,
          "attractors": ["attractor:a1", "attractor:a1-unroll"], "attractor_set": "d_model=64",
          "transformer": "transformer:tiny", "transformer_set": "seq_len=128", "transformer_batch": 8,
          # the recipe's 100 warmup steps would outlast a CPU-minutes budget
          "transformer_warmup": 10},
    toy={"budget": 1.0, "evals": [0.5, 1], "train_chars": 20_000, "val_chars": 200,
         "attractors": ["attractor:a1"], "attractor_set": "d_model=32,steps=4",  # one compile (full: both)
         "transformer": "transformer:debug", "transformer_set": "seq_len=32", "transformer_batch": 2,
         "transformer_warmup": 10},
)
