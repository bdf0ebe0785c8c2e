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
             `python -m benchmarks run attractor_vs_original`, which runs the original code.

Predicted tokens/s = windows per second (one target per window), i.e. B / seconds per step.
Each step is timed as forward + backward, and separately the AdamW update (the trainer's
optimizer) in its foreach implementation (the trainer's CPU default) and its fused one.

Also: saved activations (MiB) against K, with and without activation checkpointing, and
(rss=true) peak RSS of a fresh process running each variant.

The planner's attractor rate is this benchmark's recorded a1 figure (fwd+bwd + fused AdamW, one thread).

    python -m benchmarks run attractor_throughput            # ~2-4 min on a quiet box
    python -m benchmarks run attractor_throughput --set malloc_tuning=false --set rss=true
"""

from __future__ import annotations

import ctypes
import dataclasses
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.harness import Benchmark, Context, status_bytes
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


def a1_config(variant: str, config: dict[str, Any] | None = None):
    """The shipped a1 (or a1-unroll) config; `config` overrides its fields (the toy run's smaller shape)."""
    cfg = FLAVORS["a1-unroll" if variant.startswith("unroll") else "a1"].model
    return dataclasses.replace(cfg, **(config or {}))


def build(variant: str, vocab: Vocab, steps: int | None = None, checkpoint_every: int = 0,
          config: dict[str, Any] | None = None) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = a1_config(variant, config)
    cfg = dataclasses.replace(cfg, steps=steps or cfg.steps, checkpoint_every=checkpoint_every)
    model = cfg.build(vocab)
    if variant == "reference":
        return OriginalAttractor.from_model(dataclasses.replace(cfg, breaks="batch").build(vocab))
    return model


def rss_child(variant: str, vocab_size: int, batch: int, malloc_tuning: bool = True,
              config: dict[str, Any] | None = None) -> dict:
    """Fresh process: three training steps of one variant, its peak RSS."""
    if malloc_tuning:
        tune_malloc()
    vocab = Vocab(name="cap", size=vocab_size, eot_id=0)
    model = build(variant.split("+")[0], vocab, checkpoint_every=4 if "+ckpt" in variant else 0, config=config)
    window = a1_config(variant, config).window
    tokens = torch.randint(0, vocab_size, (batch, window + 1), generator=torch.Generator().manual_seed(0))
    fns = make_step(model, tokens)
    for _ in range(3):
        fns["fb"]()
        fns["foreach"]()
    # VmHWM, not getrusage: Linux carries ru_maxrss across exec from the parent that spawned us
    return {"variant": variant, "peak_rss_mib": status_bytes("VmHWM") / 2**20}


def run(ctx: Context) -> dict:
    tuned = tune_malloc() if ctx["malloc_tuning"] else False
    overrides: dict[str, Any] = dict(ctx["config"])
    V, B, reps = ctx["vocab"], ctx["batch"], ctx["reps"]
    cfg = a1_config("detach", overrides)
    vocab = Vocab(name=f"cap{V}", size=V, eot_id=0)
    tokens = torch.randint(0, V, (B, cfg.window + 1), generator=torch.Generator().manual_seed(0))

    variants = {name: make_step(build(name, vocab, config=overrides), tokens)
                for name in ("detach", "unroll", "reference")}
    W_D = cfg.window * cfg.d_model
    bound = make_bound(B, W_D, V)
    times: dict[str, list[float]] = {"bound": []} | {f"{v}/{p}": [] for v in variants for p in variants[v]}
    bound()
    for fns in variants.values():  # warm-up
        for fn in fns.values():
            fn()
    shape = f"D {cfg.d_model}, W {cfg.window}, K {cfg.steps}" + (f" (a1 with {overrides})" if overrides else "")
    ctx.log(f"threads {torch.get_num_threads()}, malloc tuning {tuned}, B {B}, V {V}, {shape}, reps {reps}")
    for rep in range(reps):
        times["bound"].append(timed(bound))
        for name, fns in variants.items():
            for part, fn in fns.items():
                times[f"{name}/{part}"].append(timed(fn))
        ctx.log(f"  rep {rep + 1}/{reps}: " + ", ".join(f"{k} {v[-1] * 1e3:.0f}" for k, v in times.items()) + " ms")
    med = {k: statistics.median(v) for k, v in times.items()}

    rows = []
    tps = lambda s: B / s  # noqa: E731  predicted tokens (targets) per second
    gflop = 3 * 2 * B * W_D * V / 1e9
    bound_figures = {"gflop": gflop, "ms": med["bound"] * 1e3, "gflop_per_s": gflop / med["bound"],
                     "tok_s": tps(med["bound"])}
    ctx.log(f"bound (readout matmuls, fwd + 2 bwd, {gflop:.2f} GFLOP): {med['bound'] * 1e3:.1f} ms "
            f"= {gflop / med['bound']:.0f} GFLOP/s -> {tps(med['bound']):.0f} tok/s")
    for name in variants:
        fb, each, fused = med[f"{name}/fb"], med[f"{name}/foreach"], med[f"{name}/fused"]
        rows.append({"variant": name, "fwd_bwd_ms": fb * 1e3, "adamw_foreach_ms": each * 1e3,
                     "adamw_fused_ms": fused * 1e3, "tok_s_fwd_bwd": tps(fb), "tok_s_step_foreach": tps(fb + each),
                     "tok_s_step_fused": tps(fb + fused), "of_bound_fwd_bwd": med["bound"] / fb})
        ctx.log(f"{name:9s} fwd+bwd {fb * 1e3:6.1f} ms = {tps(fb):5.0f} tok/s ({med['bound'] / fb:4.0%} of bound); "
                f"+ AdamW foreach {each * 1e3:5.1f} ms -> {tps(fb + each):5.0f} tok/s; "
                f"+ AdamW fused {fused * 1e3:5.1f} ms -> {tps(fb + fused):5.0f} tok/s")
    vs_reference: dict[str, float] = {}
    for opt in ("foreach", "fused"):
        ref = med["reference/fb"] + med[f"reference/{opt}"]
        for name in ("detach", "unroll"):
            ours = med[f"{name}/fb"] + med[f"{name}/{opt}"]
            vs_reference[f"{name}_adamw_{opt}"] = ref / ours
            ctx.log(f"{name} vs reference.py, AdamW {opt}: {ref / ours:.1f}x in this process (reference.py is a "
                    f"yardstick; for the ratio to the original code run attractor_vs_original)")

    ctx.log(f"saved activations (MiB) for one training forward, batch {B}")
    mem = {}
    for K in ctx["saved_steps"]:
        mem[str(K)] = {
            "detach": saved_mib(build("detach", vocab, K, config=overrides), tokens),
            "unroll": saved_mib(build("unroll", vocab, K, config=overrides), tokens),
            "unroll+ckpt4": saved_mib(build("unroll", vocab, K, checkpoint_every=4, config=overrides), tokens),
            "reference": saved_mib(build("reference", vocab, K, config=overrides), tokens),
        }
        ctx.log(f"  K {K:2d}: " + ", ".join(f"{k} {v:6.1f}" for k, v in mem[str(K)].items()))
    rss = []
    if ctx["rss"]:
        for variant in ctx["rss_variants"]:
            rss.append(ctx.child("rss_child", variant=variant, vocab_size=V, batch=B,
                                 malloc_tuning=bool(ctx["malloc_tuning"]), config=overrides))
            ctx.log(f"  peak RSS {variant}: {rss[-1]['peak_rss_mib']:.0f} MiB")
    a1 = next(r for r in rows if r["variant"] == "detach")
    what = "attractor:a1 train step, one thread" if not overrides else (
        f"attractor:a1 with {', '.join(f'{k}={v}' for k, v in overrides.items())} (toy shape) train step, one thread")
    planner = {"rates": [{"family": "attractor", "match": {"d_model": cfg.d_model, "window": cfg.window,
                                                           "steps": cfg.steps},
                          "unit": "tokens/s", "value": a1["tok_s_step_fused"], "what": what}]}
    return {"median_s": med, "rows": rows, "bound": bound_figures, "vs_reference": vs_reference, "saved_mib": mem,
            "rss": rss, "malloc_tuning": tuned, "batch": B, "vocab": V, "threads": torch.get_num_threads(),
            "config": {"d_model": cfg.d_model, "n_waves": cfg.n_waves, "window": cfg.window, "steps": cfg.steps},
            "planner": planner}


BENCHMARK = Benchmark(
    name="attractor_throughput",
    summary="attractor:a1 / a1-unroll train step tokens/s against the readout's FLOP bound and reference.py, one "
            "thread; saved activations against K, peak RSS",
    run=run,
    threads=1,
    goal="attractor a1 >= 680 predicted tok/s and >= 80 % of the readout bound (issue 4)",
    full={"vocab": 8192, "batch": 64, "reps": 12, "malloc_tuning": True, "rss": False,
          "rss_variants": ["detach", "unroll", "unroll+ckpt", "reference"], "saved_steps": [4, 8, 16, 32],
          "config": {}},
    # toy: a small a1 shape (the planner entry then names that shape, never a1's); one fresh RSS process
    toy={"vocab": 512, "batch": 8, "reps": 2, "malloc_tuning": True, "rss": True, "rss_variants": ["unroll+ckpt"],
         "saved_steps": [4], "config": {"d_model": 32, "steps": 4}},
)
