"""Attractor family throughput at `a1` (D 128, H 4, W 8, K 16, batch 64, V 8192), one thread.

Side by side in one process, interleaved rep by rep so a shared machine's
load hits every variant alike (medians reported):

- bound      the W*D -> V readout's three matmuls (forward, grad input, grad weight) as
             autograd runs them: the FLOP floor of any a1 training step
- ours       `attractor:a1` (detached steps, the original's semantics) and `a1-unroll`, as the
             flavors ship them (compiled steps, bfloat16 readout matmuls where native)
- reference  `nightshift.models.attractor.reference.OriginalAttractor`: the original's per-step
             structure (autograd.grad with create_graph every step, per-wave Python loops,
             `.any()` batch breaks), same parameters. A test yardstick, NOT the original's
             timing: the speed-up against the original itself is measured by
             `benchmarks/attractor_vs_original.py`, which runs the original code.

Predicted tokens/s = windows per second (one target per window), i.e. B / seconds per step.
Each step is timed as forward + backward, and separately the AdamW update (the trainer's
optimizer) in its foreach implementation (the trainer's CPU default) and its fused one.

Also: saved activations (MiB) against K, with and without activation checkpointing, and
(--rss) peak RSS of a process running each variant.

    .venv/bin/python benchmarks/attractor_throughput.py            # ~2-4 min on a quiet box
    .venv/bin/python benchmarks/attractor_throughput.py --no-malloc-tuning
"""

from __future__ import annotations

import argparse
import ctypes
import dataclasses
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nightshift.models.attractor import FLAVORS
from nightshift.models.attractor.reference import OriginalAttractor
from nightshift.models.protocol import Vocab


def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap: a fresh 32 MiB gradient then costs no page faults.

    Process-wide and glibc-only; every variant in this process gets it alike.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
    return bool(libc.mallopt(M_MMAP_THRESHOLD, 1 << 30)) and bool(libc.mallopt(M_TRIM_THRESHOLD, 1 << 30))


def make_step(model: torch.nn.Module, tokens: torch.Tensor) -> dict[str, Callable[[], None]]:
    """fwd+bwd, and the AdamW update two ways: foreach (what the trainer uses on CPU today) and fused.

    Both optimizers update the same parameters (each call is timed on its own); the values drift,
    which changes nothing in the timing.
    """
    optimizers = {impl: torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0, **{impl: True})
                  for impl in ("foreach", "fused")}
    grads: list[torch.Tensor | None] = []

    def fwd_bwd() -> None:
        loss, _ = model(tokens)
        loss.backward()
        grads[:] = [p.grad for p in model.parameters()]

    def update(impl: str) -> Callable[[], None]:
        def run() -> None:
            for p, g in zip(model.parameters(), grads):  # the same gradients for both updates
                p.grad = g
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizers[impl].step()
            optimizers[impl].zero_grad(set_to_none=True)

        return run

    return {"fb": fwd_bwd, "foreach": update("foreach"), "fused": update("fused")}


def make_bound(B: int, in_features: int, V: int) -> Callable[[], None]:
    x = torch.randn(B, in_features)
    w = torch.randn(V, in_features) * in_features**-0.5
    g = torch.randn(B, V)

    def run() -> None:
        F.linear(x, w)  # forward (B, V)
        g @ w  # grad input (B, W*D)
        g.t() @ x  # grad weight (V, W*D), a fresh tensor as autograd makes it

    return run


def timed(fn: Callable[[], None]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def saved_mib(model: torch.nn.Module, tokens: torch.Tensor) -> float:
    """MiB of distinct non-parameter tensors autograd keeps for backward in one training forward."""
    seen: dict[tuple[int, int], int] = {}
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def pack(t: torch.Tensor) -> torch.Tensor:
        st = t.untyped_storage()
        if st.data_ptr() not in params:
            seen[(st.data_ptr(), st.nbytes())] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = model(tokens)
    del loss
    return sum(seen.values()) / 2**20


def build(variant: str, vocab: Vocab, steps: int | None = None, checkpoint_every: int = 0) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = FLAVORS["a1-unroll" if variant.startswith("unroll") else "a1"].model
    cfg = dataclasses.replace(cfg, steps=steps or cfg.steps, checkpoint_every=checkpoint_every)
    model = cfg.build(vocab)
    if variant == "reference":
        return OriginalAttractor.from_model(dataclasses.replace(cfg, breaks="batch").build(vocab))
    return model


def rss_child(variant: str, vocab_size: int, batch: int) -> None:
    torch.set_num_threads(1)
    vocab = Vocab(name="cap", size=vocab_size, eot_id=0)
    model = build(variant.split("+")[0], vocab, checkpoint_every=4 if "+ckpt" in variant else 0)
    tokens = torch.randint(0, vocab_size, (batch, 9), generator=torch.Generator().manual_seed(0))
    fns = make_step(model, tokens)
    for _ in range(3):
        fns["fb"]()
        fns["foreach"]()
    # VmHWM, not getrusage: Linux carries ru_maxrss across exec from the parent that spawned us
    hwm_kib = next(int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines()
                   if line.startswith("VmHWM:"))
    print(json.dumps({"variant": variant, "peak_rss_mib": hwm_kib / 1024}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vocab", type=int, default=8192)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--reps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-malloc-tuning", action="store_true")
    ap.add_argument("--rss", action="store_true", help="also peak RSS per variant (one subprocess each)")
    ap.add_argument("--rss-child", default="", help=argparse.SUPPRESS)
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    tuned = False if args.no_malloc_tuning else tune_malloc()
    if args.rss_child:
        rss_child(args.rss_child, args.vocab, args.batch)
        return
    torch.set_num_threads(args.threads)
    vocab = Vocab(name=f"cap{args.vocab}", size=args.vocab, eot_id=0)
    B = args.batch
    tokens = torch.randint(0, args.vocab, (B, 9), generator=torch.Generator().manual_seed(0))

    variants = {name: make_step(build(name, vocab), tokens) for name in ("detach", "unroll", "reference")}
    W_D = FLAVORS["a1"].model.window * FLAVORS["a1"].model.d_model
    bound = make_bound(B, W_D, args.vocab)
    times: dict[str, list[float]] = {"bound": []} | {f"{v}/{p}": [] for v in variants for p in variants[v]}
    bound()
    for fns in variants.values():  # warm-up
        for fn in fns.values():
            fn()
    print(f"threads {torch.get_num_threads()}, malloc tuning {tuned}, B {B}, V {args.vocab}, reps {args.reps}")
    for rep in range(args.reps):
        times["bound"].append(timed(bound))
        for name, fns in variants.items():
            for part, fn in fns.items():
                times[f"{name}/{part}"].append(timed(fn))
        print(f"  rep {rep + 1}/{args.reps}: " + ", ".join(f"{k} {v[-1] * 1e3:.0f}" for k, v in times.items())
              + " ms", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}

    rows = []
    tps = lambda s: B / s  # noqa: E731  predicted tokens (targets) per second
    gflop = 3 * 2 * B * W_D * args.vocab / 1e9
    print(f"\nbound (readout matmuls, fwd + 2 bwd, {gflop:.2f} GFLOP): {med['bound'] * 1e3:.1f} ms "
          f"= {gflop / med['bound']:.0f} GFLOP/s -> {tps(med['bound']):.0f} tok/s")
    for name in variants:
        fb, each, fused = med[f"{name}/fb"], med[f"{name}/foreach"], med[f"{name}/fused"]
        rows.append({"variant": name, "fwd_bwd_ms": fb * 1e3, "adamw_foreach_ms": each * 1e3,
                     "adamw_fused_ms": fused * 1e3, "tok_s_fwd_bwd": tps(fb), "tok_s_step_foreach": tps(fb + each),
                     "tok_s_step_fused": tps(fb + fused), "of_bound_fwd_bwd": med["bound"] / fb})
        print(f"{name:9s} fwd+bwd {fb * 1e3:6.1f} ms = {tps(fb):5.0f} tok/s ({med['bound'] / fb:4.0%} of bound); "
              f"+ AdamW foreach {each * 1e3:5.1f} ms -> {tps(fb + each):5.0f} tok/s; "
              f"+ AdamW fused {fused * 1e3:5.1f} ms -> {tps(fb + fused):5.0f} tok/s")
    for opt in ("foreach", "fused"):
        ref = med["reference/fb"] + med[f"reference/{opt}"]
        for name in ("detach", "unroll"):
            ours = med[f"{name}/fb"] + med[f"{name}/{opt}"]
            print(f"{name} vs reference.py, AdamW {opt}: {ref / ours:.1f}x in this process (reference.py is a "
                  f"yardstick; for the ratio to the original code run benchmarks/attractor_vs_original.py)")

    print("\nsaved activations (MiB) for one training forward, batch", B)
    mem = {}
    for K in (4, 8, 16, 32):
        mem[K] = {
            "detach": saved_mib(build("detach", vocab, K), tokens),
            "unroll": saved_mib(build("unroll", vocab, K), tokens),
            "unroll+ckpt4": saved_mib(build("unroll", vocab, K, checkpoint_every=4), tokens),
            "reference": saved_mib(build("reference", vocab, K), tokens),
        }
        print(f"  K {K:2d}: " + ", ".join(f"{k} {v:6.1f}" for k, v in mem[K].items()))
    rss = []
    if args.rss:
        for variant in ("detach", "unroll", "unroll+ckpt", "reference"):
            cmd = [sys.executable, __file__, "--rss-child", variant, "--vocab", str(args.vocab),
                   "--batch", str(B)] + (["--no-malloc-tuning"] if args.no_malloc_tuning else [])
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
            rss.append(json.loads(out))
            print(f"  peak RSS {variant}: {rss[-1]['peak_rss_mib']:.0f} MiB")
    if args.json:
        args.json.write_text(json.dumps({"median_s": med, "rows": rows, "saved_mib": mem, "rss": rss,
                                         "malloc_tuning": tuned, "batch": B, "vocab": args.vocab}, indent=2))


if __name__ == "__main__":
    main()
