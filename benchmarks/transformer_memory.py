"""Peak RSS of a transformer:tiny train step and evaluation batch at gpt2's vocabulary, before and after.

    python benchmarks/transformer_memory.py

Each measurement runs in a fresh process (ru_maxrss only grows): a train step
on a (16, 257) batch with the plain cross-entropy over materialised logits (the
former `Transformer.forward` body) and with the chunked tied-head loss
(models/transformer/loss.py); a 16-window evaluation batch scored at once (the
former evaluate loop) and through `bits_per_byte` (a few rows at a time).
Also the step time of both losses, interleaved in one process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CHILD = r"""
import json, resource, sys, time, types
import numpy as np, torch, torch.nn.functional as F
from nightshift.models.protocol import Vocab
from nightshift.models.registry import resolve
torch.set_num_threads(1)
torch.manual_seed(0)
model = resolve("transformer:tiny").config.build(Vocab(name="gpt2", size=50257, eot_id=50256))
x = torch.randint(0, 50256, (16, 257))
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
mode = sys.argv[1]
if mode == "train-plain":
    F.cross_entropy(model.padded_logits(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
elif mode == "train-chunked":
    model(x)[0].backward()
elif mode == "eval-whole-batch":
    with torch.no_grad():
        model.eval(); model.score(x)
elif mode == "eval-bits-per-byte":
    from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
    doc = types.SimpleNamespace(tokens=np.random.randint(0, 50256, 16 * 129), n_bytes=16 * 129 * 4)
    bits_per_byte(model, [doc], batch_size=16)
print(json.dumps({"mode": mode, "model_mb": base, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def step_times(rounds: int = 3) -> dict[str, float]:
    sys.path.insert(0, ROOT)
    import torch
    import torch.nn.functional as F

    from nightshift.models.protocol import Vocab
    from nightshift.models.registry import resolve

    torch.set_num_threads(1)
    model = resolve("transformer:tiny").config.build(Vocab(name="gpt2", size=50257, eot_id=50256))
    x = torch.randint(0, 50256, (16, 257))
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


def main() -> None:
    env = {**os.environ, "PYTHONPATH": ROOT}
    rows = []
    for mode in ("train-plain", "train-chunked", "eval-whole-batch", "eval-bits-per-byte"):
        out = subprocess.run([sys.executable, "-c", CHILD, mode], env=env, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    for r in rows:
        print(f"{r['mode']:<20} peak RSS {r['peak_mb']:7.0f} MB  (model built: {r['model_mb']:.0f} MB)")
    peak = {r["mode"]: r["peak_mb"] for r in rows}
    print(f"train step: {peak['train-plain'] / peak['train-chunked']:.1f}x less peak memory; "
          f"eval: {peak['eval-whole-batch'] / peak['eval-bits-per-byte']:.1f}x less")
    times = step_times()
    print(f"step time (best of 3, interleaved): plain {times['plain']:.2f} s, chunked {times['chunked']:.2f} s "
          f"({times['plain'] / times['chunked']:.2f}x)")


if __name__ == "__main__":
    main()
