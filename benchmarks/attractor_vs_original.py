"""attractor:a1 training steps against the original BoggersTheLLM code itself, side by side, one thread.

The original (`sandbox.py`, `TorchAttractorLanguageModel`) is not part of this
project; fetch it anywhere outside the checkout and point the benchmark at it:

    git clone https://github.com/BoggersTheFish/BoggersTheLLM /tmp/BoggersTheLLM
    python -m benchmarks run attractor_vs_original --set original=/tmp/BoggersTheLLM [--set procs=3]

(or set NIGHTSHIFT_ATTRACTOR_ORIGINAL). Without it, ours, the reference and
the bound are still timed and the ratios to the original are left out (a note
says so). Its git submodules are not needed: without `vendor/ts-llm` its
`main()` falls back from the vectorized dynamics to plain window dynamics,
which computes the same window relaxation (dt 0.09 either way), so that is
what is timed.

What is timed, per batch, on the same pg19 windows (gpt2 tokens, ids >= 8191
folded into 8191 so both models see an 8192-token vocabulary), one intra-op
thread, steps of the variants interleaved rep by rep in each process:

- original  the body of the original's training loop for the README's A1 command (V 8192, D 128,
            4 waves, W 8, K 16 via --num-dynamics-steps 16, batch 64, lr 1e-3, clip 1.0): its
            trajectory loss + readout aux CE + token aux CE, backward, clip, Adam (weight decay
            1e-5), with the model built from the original's own argparse defaults
- ours      `attractor:a1` through the trainer's update: forward, backward, clip 1.0, the
            trainer's optimizer (`nightshift.orchestrator.training.optim.build_optimizer`, fused AdamW)
- reference `models/attractor/reference.py` (the original's per-step structure, a test yardstick)
            with the original's optimizer: how its timing compares with the original itself
- bound     the W*D -> V readout's three float32 matmuls (forward, grad input, grad weight):
            the FLOP floor of a training forward + backward; "of bound" = bound / ours fwd+bwd. Also
            the same in bfloat16 with its casts ("bf16 bound"): the floor of a bf16 readout, which
            `attractor:a1` uses where the CPU has native bf16 (it then beats the float32 bound)

Both wall time and the thread's CPU time are recorded (CPU time moves less on a shared box).
Each process reports medians; the summary is the median over processes.
Goals (issue 14): >= 5x the original (wall), fwd+bwd >= 80 % of the readout bound (wall).
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import torch
import torch.nn.functional as F

from benchmarks.harness import SHARED, Benchmark, Context

V, B, W = 8192, 64, 8
A1_ARGS = ["--tokenizer", "tiktoken", "--vocab-cap", "8192", "--val-fraction", "0.1", "--window-size", "8",
           "--state-dim", "128", "--num-waves", "4", "--vectorized-num-heads", "4", "--batch-size", "64",
           "--max-epochs", "10", "--lr", "0.001", "--grad-clip", "1.0", "--lr-decay-every", "5",
           "--lr-gamma", "0.8", "--num-dynamics-steps", "16"]
FETCH_HELP = ("the original BoggersTheLLM code was not found{where} (git clone "
              "https://github.com/BoggersTheFish/BoggersTheLLM /tmp/BoggersTheLLM, then --set "
              "original=/tmp/BoggersTheLLM or export NIGHTSHIFT_ATTRACTOR_ORIGINAL=/tmp/BoggersTheLLM)")
RATIO_KEYS = ("ratio_wall", "ratio_cpu", "of_bound_wall", "of_bound_cpu", "of_bf16_bound_wall",
              "reference_vs_original_wall")


def tune_malloc() -> bool:
    """Keep freed memory in glibc's heap (no page faults on each step's fresh 32 MiB gradient).
    Process-wide: the original and ours get it alike."""
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(-3, 1 << 30)) and bool(libc.mallopt(-1, 1 << 30))  # MMAP_, TRIM_THRESHOLD


def pg19_batches(n: int, seed: int) -> list[torch.Tensor]:
    """n batches (B, W+1) of gpt2 token windows from the pg19 sample's train split."""
    import pyarrow.parquet as pq
    import tiktoken

    text = "".join(pq.read_table(SHARED / "pg19" / "train.parquet",
                                 columns=["text"]).column("text").to_pylist()[:2])[:2_000_000]
    ids = torch.tensor(tiktoken.get_encoding("gpt2").encode_ordinary(text)).clamp_(max=V - 1)
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(ids) - W - 1, (n, B), generator=g)
    return [ids[s[:, None] + torch.arange(W + 1)] for s in starts]


# ----------------------------------------------------------------------------- the original
def original_args(sandbox) -> SimpleNamespace:
    """The namespace the original's main() parses for the A1 command: run main() up to parse_args."""

    class Parsed(Exception):
        pass

    real = argparse.ArgumentParser.parse_args

    def grab(self, args=None, namespace=None):
        raise Parsed(real(self, args, namespace))

    argv, sys.argv = sys.argv, ["sandbox.py", *A1_ARGS]
    argparse.ArgumentParser.parse_args = grab
    try:
        sandbox.main()
    except Parsed as got:
        return got.args[0]
    finally:
        argparse.ArgumentParser.parse_args = real
        sys.argv = argv
    raise RuntimeError("the original's main() returned without parsing arguments")


def original_step(path: Path, seed: int) -> Callable[[torch.Tensor], None]:
    """One batch of the original's training loop (trajectory mode), as its main() runs it."""
    sys.path.insert(0, str(path))
    import sandbox as sb

    args = original_args(sb)
    torch.manual_seed(seed)
    model = sb.TorchAttractorLanguageModel(
        V, state_dim=args.state_dim, train_window_size=args.window_size, max_window_steps=args.num_dynamics_steps,
        convergence_epsilon=float(args.convergence_epsilon), min_attractor_steps=max(2, int(args.min_attractor_steps)),
        num_waves=args.num_waves, use_readout_fusion=bool(args.readout_fusion),
        phase05=sb.phase05_config_from_args(args), phase1=sb.phase1_config_from_args(args),
        phase2=sb.phase2_config_from_args(args))
    model.train()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-5)

    def step(batch: torch.Tensor) -> None:
        contexts, targets = batch[:, :-1].tolist(), batch[:, -1].tolist()
        targets_tensor = torch.tensor(targets, dtype=torch.long)
        loss_traj, logits = model.trajectory_contrastive_loss_and_logits(contexts, targets, target_states=None)
        loss = loss_traj
        with torch.no_grad():
            float(F.cross_entropy(logits, targets_tensor, label_smoothing=sb.LABEL_SMOOTHING))
        if args.readout_aux_alpha > 0 and model._last_pred_final_state is not None:
            single = model.readout(model._last_pred_final_state) / model.effective_temperature()
            single = torch.nan_to_num(single, nan=0.0, posinf=0.0, neginf=-1e4)
            loss = loss + args.readout_aux_alpha * F.cross_entropy(single, targets_tensor,
                                                                   label_smoothing=sb.LABEL_SMOOTHING)
        if args.token_aux_ce > 0.0:
            loss = loss + args.token_aux_ce * sb._aux_ce_loss_batch(model, logits, contexts, targets)
        float(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()

    return step


# ------------------------------------------------------------------------------------- ours
def ours(seed: int, flavor: str, overrides: str = ""
         ) -> tuple[Callable[[torch.Tensor], None], Callable[[torch.Tensor], None]]:
    """(fwd+bwd, full trainer update) closures for attractor:<flavor> with the trainer's optimizer."""
    from nightshift.models import registry
    from nightshift.models.protocol import Vocab
    from nightshift.orchestrator.runs.config import TrainConfig
    from nightshift.orchestrator.training.optim import build_optimizer

    spec = registry.resolve(f"attractor:{flavor}", dict(kv.split("=", 1) for kv in overrides.split(",") if kv))
    torch.manual_seed(seed)
    model = spec.config.build(Vocab(name=f"cap{V}", size=V, eot_id=V - 1))
    t = spec.train
    optimizer = build_optimizer(model, TrainConfig(lr=t["lr"], weight_decay=t["weight_decay"],
                                                   betas=t["betas"]), torch.device("cpu"))
    grads: list[torch.Tensor | None] = []

    def fwd_bwd(batch: torch.Tensor) -> None:
        loss, _ = model(batch)
        loss.backward()
        float(loss.detach())
        grads[:] = [p.grad for p in model.parameters()]

    def update(batch: torch.Tensor) -> None:
        fwd_bwd(batch)
        torch.nn.utils.clip_grad_norm_(model.parameters(), t["grad_clip"])
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return fwd_bwd, update


def reference(seed: int) -> Callable[[torch.Tensor], None]:
    """`models/attractor/reference.py` (the original's per-step structure, kept as a test yardstick)
    with the original's optimizer, to measure how its timing compares with the original itself."""
    import dataclasses

    from nightshift.models.attractor import FLAVORS
    from nightshift.models.attractor.reference import OriginalAttractor
    from nightshift.models.protocol import Vocab

    torch.manual_seed(seed)
    cfg = dataclasses.replace(FLAVORS["a1"].model, breaks="batch", compile_relaxation=False,
                              readout_precision="float32")
    model = OriginalAttractor.from_model(cfg.build(Vocab(name=f"cap{V}", size=V, eot_id=V - 1)))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-5)

    def step(batch: torch.Tensor) -> None:
        loss, _ = model(batch)
        float(loss.detach())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()

    return step


def bound(dtype: torch.dtype = torch.float32) -> Callable[[torch.Tensor], None]:
    """The readout's three matmuls; in bfloat16 with the casts `readout.LowPrecisionLinear` needs
    (weight in, weight gradient out), the floor of a bf16 readout."""
    x, w, g = torch.randn(B, W * 128), torch.randn(V, W * 128) / 32, torch.randn(B, V)

    def run(_: torch.Tensor) -> None:
        F.linear(x, w)  # forward (B, V)
        g @ w  # grad input (B, W*D)
        g.t() @ x  # grad weight (V, W*D), a fresh tensor as autograd makes it

    def run_bf16(_: torch.Tensor) -> None:
        wb, xb, gb = w.to(dtype), x.to(dtype), g.to(dtype)
        torch.mm(xb, wb.t()).float()
        torch.mm(gb, wb).float()
        torch.mm(gb.t(), xb).float()

    return run if dtype == torch.float32 else run_bf16


def child(original: str, flavor: str, set: str, reps: int, seed: int) -> dict:  # `set`: the old --set
    """One fresh process: every variant's steps interleaved rep by rep; medians and paired ratios.
    `original` "" times everything but the original (its ratios are then absent)."""
    tuned = tune_malloc()
    batches = pg19_batches(reps + 2, seed=seed)
    fb, step = ours(seed, flavor, set)
    t0 = time.perf_counter()
    step(batches[0])  # the first step compiles (attractor:a1 has compile_relaxation=True)
    first_step_s = time.perf_counter() - t0
    fns = ({"original": original_step(Path(original), seed)} if original else {}) | {
        "ours": step, "ours_fwd_bwd": fb, "bound": bound(), "bound_bf16": bound(torch.bfloat16),
        "reference": reference(seed)}
    for fn in fns.values():
        fn(batches[1])  # warm-up
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    names = list(fns)
    for rep in range(reps):
        order = names if rep % 2 == 0 else names[::-1]
        for name in order:
            batch = batches[2 + rep]
            t, c = time.perf_counter(), time.thread_time()
            fns[name](batch)
            cpu[name].append(time.thread_time() - c)
            wall[name].append(time.perf_counter() - t)
    med = lambda xs: statistics.median(xs)  # noqa: E731
    out = {"malloc_tuning": tuned, "first_step_s": first_step_s, "reps": reps,
           "wall": {k: med(v) for k, v in wall.items()}, "cpu": {k: med(v) for k, v in cpu.items()},
           "of_bound_wall": med([b / s for b, s in zip(wall["bound"], wall["ours_fwd_bwd"])]),
           "of_bound_cpu": med([b / s for b, s in zip(cpu["bound"], cpu["ours_fwd_bwd"])]),
           "of_bf16_bound_wall": med([b / s for b, s in zip(wall["bound_bf16"], wall["ours_fwd_bwd"])])}
    if original:
        out |= {"ratio_wall": med([o / s for o, s in zip(wall["original"], wall["ours"])]),
                "ratio_cpu": med([o / s for o, s in zip(cpu["original"], cpu["ours"])]),
                "reference_vs_original_wall": med([r / o for r, o in zip(wall["reference"], wall["original"])])}
    return out


def run(ctx: Context) -> dict:
    original = str(ctx["original"] or "")
    if original and (Path(original) / "sandbox.py").is_file():
        original = str(Path(original).resolve())
    else:
        where = "" if not original else f" at {original} (no sandbox.py there)"
        ctx.note("original not available: " + FETCH_HELP.format(where=where) + "; the comparison was skipped "
                 "(ours, reference.py and the bound are still timed)")
        original = ""
    variant = f"attractor:{ctx['flavor']}" + (f" ({ctx['set']})" if ctx["set"] else "")
    ctx.log(f"{variant} vs the original at {original or '(not available)'}: {ctx['procs']} processes x "
            f"{ctx['reps']} interleaved steps, one thread, B {B}, V {V}, W {W}; load {os.getloadavg()[0]:.1f}")
    runs = []
    for i in range(ctx["procs"]):
        runs.append(ctx.child("child", original=original, flavor=ctx["flavor"], set=ctx["set"], reps=ctx["reps"],
                              seed=ctx["seed"] + i))
        r = runs[-1]
        w = r["wall"]
        vs = (f"original {w['original'] * 1e3:.0f} ms, " if original else "")
        ratios = (f"ratio {r['ratio_wall']:.2f}x wall, {r['ratio_cpu']:.2f}x CPU; " if original else "")
        ref = (f"reference.py takes {r['reference_vs_original_wall']:.2f}x the original's time; " if original
               else f"reference.py {w['reference'] * 1e3:.0f} ms; ")
        ctx.log(f"  process {i + 1}: {vs}ours {w['ours'] * 1e3:.1f} ms "
                f"(fwd+bwd {w['ours_fwd_bwd'] * 1e3:.1f}), bound {w['bound'] * 1e3:.1f} ms per batch "
                f"(wall); {ratios}of bound {r['of_bound_wall']:.0%} wall, {r['of_bound_cpu']:.0%} CPU "
                f"({r['of_bf16_bound_wall']:.0%} of the bf16 bound); {ref}first step {r['first_step_s']:.1f} s; "
                f"load {os.getloadavg()[0]:.1f}")
    med = lambda key: statistics.median(r[key] for r in runs)  # noqa: E731
    summary = {k: med(k) for k in RATIO_KEYS if k in runs[0]}
    bound_text = (f"fwd+bwd at {summary['of_bound_wall']:.0%} of the readout bound (wall), "
                  f"{summary['of_bound_cpu']:.0%} (CPU time), {summary['of_bf16_bound_wall']:.0%} of the bound "
                  "with the readout in bfloat16 (wall)")
    goals = {"of_bound_wall >= 0.8": summary["of_bound_wall"] >= 0.8}
    if original:
        ctx.log(f"median over processes: ours {summary['ratio_wall']:.2f}x the original (wall), "
                f"{summary['ratio_cpu']:.2f}x (CPU time); {bound_text}; models/attractor/reference.py takes "
                f"{summary['reference_vs_original_wall']:.2f}x the original's time per batch")
        goals = {"ratio_wall >= 5": summary["ratio_wall"] >= 5} | goals
    else:
        ctx.log(f"median over processes: {bound_text}")
    ctx.log("goals (issue 14): " + "; ".join(f"{k}: {'met' if v else 'MISSED'}" for k, v in goals.items()))
    return {"runs": runs, "summary": summary, "goals": goals, "original": original or None,
            "variant": variant, "batch": B, "vocab": V, "window": W}


BENCHMARK = Benchmark(
    name="attractor_vs_original",
    summary="attractor:a1 training steps vs the original BoggersTheLLM code side by side (when given), with "
            "reference.py and the readout's FLOP bound, one thread",
    run=run,
    threads=1,
    goal="attractor a1 >= 5x the original code side by side, fwd+bwd >= 80 % of the readout bound (issue 14)",
    full={"original": os.environ.get("NIGHTSHIFT_ATTRACTOR_ORIGINAL", ""), "flavor": "a1", "set": "", "procs": 3,
          "reps": 10, "seed": 0},
    # toy: a1's shape (the original's A1 command fixes it), one process, one timed step per variant
    toy={"original": os.environ.get("NIGHTSHIFT_ATTRACTOR_ORIGINAL", ""), "flavor": "a1", "set": "", "procs": 1,
         "reps": 1, "seed": 0},
)
