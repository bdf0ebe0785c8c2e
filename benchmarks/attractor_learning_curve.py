"""Learning curve: attractor vs the transformer baseline on the pg19 sample, gpt2 tokens, equal CPU time.

Both models train in the same process on one thread, alternating slices of
CPU time (process time, so a shared box's load hits both alike), and are
evaluated at the same budget points with the project's evaluator
(`nightshift.orchestrator.evaluation.bits_per_byte.bits_per_byte`: every validation token scored once,
full left context, plain NLL) on the first `--val-chars` of each validation
book.

    .venv/bin/python benchmarks/attractor_learning_curve.py --budget 240   # CPU seconds per model
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT.parent / "shared" / "data" / "tokenizers" / "tiktoken_cache"))

from attractor_equal_steps import load  # noqa: E402 - the same pg19 gpt2 loader

from nightshift.models import registry  # noqa: E402
from nightshift.models.protocol import Vocab  # noqa: E402
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte  # noqa: E402


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=300.0, help="CPU seconds of training per model")
    ap.add_argument("--evals", type=str, default="30,75,150,300", help="CPU-second marks to evaluate at")
    ap.add_argument("--train-chars", type=int, default=3_000_000)
    ap.add_argument("--val-chars", type=int, default=15_000, help="per validation book")
    ap.add_argument("--attractors", default="attractor:a1,attractor:a1-unroll", help="comma-separated flavors")
    ap.add_argument("--attractor-set", default="d_model=64", help="comma-separated overrides of every attractor")
    ap.add_argument("--transformer", default="transformer:tiny")
    ap.add_argument("--transformer-set", default="seq_len=128", help="comma-separated overrides")
    ap.add_argument("--transformer-batch", type=int, default=8)
    ap.add_argument("--transformer-warmup", type=int, default=10,
                    help="the recipe's 100 warmup steps would outlast a CPU-minutes budget")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    vocab, data, val_docs = load(args.train_chars, args.val_chars)
    print(f"train tokens {len(data):,}; validation {sum(len(d.tokens) for d in val_docs):,} tokens, "
          f"{sum(d.n_bytes for d in val_docs):,} bytes", flush=True)

    overrides = dict(kv.split("=", 1) for kv in args.attractor_set.split(",") if kv)
    runners = [Runner(name, vocab, overrides, data, None, 0) for name in args.attractors.split(",") if name]
    t_over = dict(kv.split("=", 1) for kv in args.transformer_set.split(",") if kv)
    runners.append(Runner(args.transformer, vocab, t_over, data, args.transformer_batch, 0, args.transformer_warmup))
    for r in runners:
        print(f"{r.name} {overrides if r.name.startswith('attractor') else t_over}: "
              f"{r.model.num_parameters() / 1e6:.1f} M params, batch {r.batch} x {r.T} tokens", flush=True)
    marks = [float(m) for m in args.evals.split(",") if float(m) <= args.budget]
    curve: dict[str, list[dict]] = {r.name: [] for r in runners}

    def evaluate(r: Runner, loss: float) -> None:
        t0 = time.perf_counter()
        res = bits_per_byte(r.model, val_docs, batch_size=8)
        curve[r.name].append({"cpu_s": round(r.cpu, 1), "steps": r.steps, "train_loss": loss,
                              "val_bpb": res.bits_per_byte, "targets_seen": r.steps * r.batch * (
                                  r.T if r.name.startswith("transformer") else 1)})
        print(f"  {r.name:24s} cpu {r.cpu:6.1f}s steps {r.steps:6d} train loss {loss:6.3f} "
              f"val bpb {res.bits_per_byte:.3f} (eval {time.perf_counter() - t0:.0f}s)", flush=True)

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
    if args.json:
        args.json.write_text(json.dumps({"curve": curve, "args": vars(args) | {"json": str(args.json)}}, indent=2))
    print("unigram reference: ln(V) =", round(math.log(vocab.size), 2), "nats/token untrained-uniform")


if __name__ == "__main__":
    main()
