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

    .venv/bin/python benchmarks/attractor_equal_steps.py --steps 300 --evals 100,200,300
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(ROOT.parent / "shared" / "data" / "tokenizers" / "tiktoken_cache"))

from nightshift.models import registry  # noqa: E402
from nightshift.models.protocol import Vocab, ablated  # noqa: E402
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte  # noqa: E402
from nightshift.orchestrator.runs.config import TrainConfig  # noqa: E402
from nightshift.orchestrator.training.optim import build_optimizer  # noqa: E402


@dataclasses.dataclass
class Doc:
    tokens: list[int]
    n_bytes: int


def load(train_chars: int, val_chars: int) -> tuple[Vocab, torch.Tensor, list[Doc]]:
    import pyarrow.parquet as pq
    import tiktoken

    data_dir = ROOT.parent / "shared" / "data" / "pg19"
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flavor", default="a1")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--evals", default="100,200,300", help="step counts to evaluate at")
    ap.add_argument("--train-chars", type=int, default=3_000_000)
    ap.add_argument("--val-chars", type=int, default=10_000, help="per validation book")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)
    vocab, data, val = load(args.train_chars, args.val_chars)
    spec = registry.resolve(f"attractor:{args.flavor}")
    variants = {"fast": spec.config,  # the flavor as shipped
                "compiled-fp32": dataclasses.replace(spec.config, readout_precision="float32"),  # rounding only
                "eager-fp32": dataclasses.replace(spec.config, compile_relaxation=False, readout_precision="float32")}
    t = spec.train
    tcfg = TrainConfig(lr=t["lr"], weight_decay=t["weight_decay"], betas=t["betas"])
    models, opts = {}, {}
    for name, cfg in variants.items():
        torch.manual_seed(args.seed)  # the same initial weights
        models[name] = cfg.build(vocab)
        opts[name] = build_optimizer(models[name], tcfg, torch.device("cpu"))
    B, T = t["batch_size"], spec.config.window
    print(f"attractor:{args.flavor}, V {vocab.size} (gpt2), {len(data):,} train tokens, validation "
          f"{sum(len(d.tokens) for d in val):,} tokens / {sum(d.n_bytes for d in val):,} bytes; "
          f"fast = compile_relaxation {spec.config.compile_relaxation}, readout {spec.config.readout_precision}; load "
          f"{os.getloadavg()[0]:.1f}", flush=True)
    gen = torch.Generator().manual_seed(args.seed)
    marks = {int(m) for m in args.evals.split(",")}
    curve: dict[str, list[dict]] = {n: [] for n in variants}
    seconds = dict.fromkeys(variants, 0.0)
    for step in range(1, args.steps + 1):
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
            print(f"  step {step:5d}: " + ", ".join(f"{n} {c[-1]['val_bpb']:.4f} bpb ({seconds[n]:.0f} s)"
                                                 for n, c in curve.items()), flush=True)
    ablation = {}
    for name, model in models.items():  # what the relaxation adds: the same weights read out at K = 0
        with ablated(model, {"relaxation"}):
            ablation[name] = bits_per_byte(model, val, batch_size=16).bits_per_byte
        on = curve[name][-1]["val_bpb"] if curve[name] else float("nan")
        print(f"  {name}: relaxation off {ablation[name]:.4f} bpb, on {on:.4f}: off - on = "
              f"{ablation[name] - on:+.4f} (> 0: the relaxation helps)", flush=True)
    last = {n: c[-1]["val_bpb"] for n, c in curve.items() if c}
    if last:  # compiled-fp32 differs from eager only by float rounding order: its gap is the noise floor
        noise = abs(last["compiled-fp32"] - last["eager-fp32"])
        diff = last["fast"] - last["eager-fp32"]
        print(f"at step {curve['fast'][-1]['step']}: fast - eager {diff:+.4f} bits/byte; compiled-fp32 - eager "
              f"{last['compiled-fp32'] - last['eager-fp32']:+.4f} (rounding noise); "
              f"{'equal or better' if diff <= max(noise, 1e-4) else 'WORSE than eager beyond the rounding noise'}")
    if args.json:
        args.json.write_text(json.dumps({"curve": curve, "relaxation_ablated_bpb": ablation,
                                         "args": {k: str(v) for k, v in vars(args).items()}},
                                        indent=2))


if __name__ == "__main__":
    main()
