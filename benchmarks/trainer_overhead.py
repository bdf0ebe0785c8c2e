"""Trainer overhead vs a bare torch loop, and the baseline vs a nanoGPT-style reference, in one run.

transformer:small (6 layers, d 384, 6 heads, context 256; the `model` parameter), fp32 CPU, the same
pg19 batches (gpt2 tokens) for everyone. Three things train side by side:

  trainer  `Trainer(config, store, tracker=build_tracker(None, ...)).run()`: what `nightshift train`
           runs in-process (MLflow in the store's embedded sqlite DB + the JSONL history; progress bar
           off), at the trainer's default cadence except for eval/checkpoint (see below)
  bare     the same Transformer (same seed, so the same init) in a plain loop over the same batches,
           pre-read: forward, backward, clip, AdamW (same groups), LambdaLR (same schedule)
  nanogpt  `benchmarks/nanogpt_reference.py` at the identical config (padded vocab 50304), same loop

The box is shared, so the three are interleaved: a hook fires inside the
trainer every `chunk` steps and runs `bare` and `nanogpt` (alternating
order) on the batches the trainer just used; figures are medians of the
paired per-chunk ratios. Time is taken twice, wall and process CPU time, with
1 torch thread (CPU time barely moves with the load from other jobs; wall
time does). Evals, samples and checkpoints are timed on their own.

A short run reaches no eval (every 200) or checkpoint (every 500), so the
trainer runs with them scaled to the run length, as often per run as the
defaults are in a 1000-step run (eval every steps/5, checkpoint every
steps/2): 4 periodic evals + 1 periodic checkpoint, plus the final eval,
samples and checkpoint. From the timed parts the benchmark also reports the run
at the pure defaults (loop + setup + final eval/samples/checkpoint) and a
projection to the flavor's own recipe run (1000 steps, batch 32, 1 MB of
validation text): that one is the figure to hold against the 3 % goal.

The planner's transformer rate (and its CPU FLOP/s reference) is the trainer's own tokens/s of this run.

    python -m benchmarks run trainer_overhead [--set steps=20 --set batch_size=2 --set chunk=2]
    python -m benchmarks run trainer_overhead --set mode=diagnose   # why the baseline is slower than nanoGPT
"""

from __future__ import annotations

import dataclasses
import logging
import os
import statistics
import tempfile
import time
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.harness import SHARED, Benchmark, Context
from benchmarks.nanogpt_reference import GPTConfig
from nightshift.models.transformer.model import Transformer
from nightshift.orchestrator.runs.config import RunConfig, TrainConfig, build_run_config
from nightshift.orchestrator.runs.vocab import vocab_of
from nightshift.orchestrator.tracking import build_tracker
from nightshift.orchestrator.training.optim import lr_factor
from nightshift.orchestrator.training.trainer import Hook, Trainer
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.reader import open_dataset
from nightshift.pipelines.store import Store

RECIPE_STEPS, RECIPE_BATCH, RECIPE_VALID_BYTES = 1000, 32, 1_000_000  # the run the projection is for


def clock() -> tuple[float, float]:
    """(wall, process CPU) seconds; CPU counts every thread of the process (MLflow's sender too)."""
    return time.perf_counter(), time.process_time()


def since(t0: tuple[float, float]) -> tuple[float, float]:
    t1 = clock()
    return t1[0] - t0[0], t1[1] - t0[1]


# ----------------------------------------------------------------------------- the bare loop
@dataclasses.dataclass(slots=True)
class BareLoop:
    """What a person writes without a framework: the trainer's optimizer, schedule and clip, nothing else."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    grad_clip: float
    losses: list[float] = dataclasses.field(default_factory=list)
    chunks: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # (wall, cpu) per chunk
    optim: list[tuple[float, float]] = dataclasses.field(default_factory=list)  # clip + step + zero, per step

    @classmethod
    def build(cls, model: torch.nn.Module, cfg: TrainConfig) -> "BareLoop":
        params = [p for p in model.parameters() if p.requires_grad]
        groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": cfg.weight_decay},
                  {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
        optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
        return cls(model, optimizer, scheduler, cfg.grad_clip)

    def step(self, tokens: torch.Tensor) -> None:
        out = self.model(tokens)  # ours: (loss, metrics); nanoGPT: loss
        loss = out[0] if isinstance(out, tuple) else out
        loss.backward()
        t0 = clock()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()
        self.optim.append(since(t0))
        self.losses.append(float(loss.detach()))

    def run(self, batches: list[torch.Tensor]) -> None:
        t0 = clock()
        for tokens in batches:
            self.step(tokens)
        self.chunks.append(since(t0))


def nanogpt_for(config: RunConfig, padded_vocab: int) -> torch.nn.Module:
    m = config.model.config
    return GPTConfig(vocab_size=padded_vocab, n_layer=m.n_layer, n_head=m.n_head, n_embd=m.d_model,
                     block_size=m.seq_len).build()


# ----------------------------------------------------------------------------- the timed trainer
class TimedTrainer(Trainer):
    """The real Trainer; the overrides only take the time of what they wrap."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.first_step: tuple[float, float] | None = None
        self.finish_start: tuple[float, float] | None = None
        self.events: list[dict[str, Any]] = []  # {kind, step, start, wall, cpu, final, bytes}
        self.losses: list[float] = []

    def train_step(self) -> tuple[float, dict[str, float]]:
        if self.first_step is None:
            self.first_step = clock()
        loss, metrics = super().train_step()
        self.losses.append(float(loss))  # a host read per step: this benchmark compares losses step by step
        return loss, metrics

    def _timed(self, kind: str, fn: Any, *args: Any) -> Any:
        t0 = clock()
        out = fn(*args)
        wall, cpu = since(t0)
        self.events.append({"kind": kind, "step": self.state.step, "start": t0[0], "wall": wall, "cpu": cpu,
                            "final": self.finish_start is not None,
                            "bytes": getattr(out, "n_bytes", 0)})
        return out

    def evaluate(self, max_bytes: int = 0, *, kind: str = "eval"):
        return self._timed("eval", lambda: super(TimedTrainer, self).evaluate(max_bytes, kind=kind))

    def write_samples(self) -> str:
        return self._timed("samples", super().write_samples)

    def checkpoint(self):
        return self._timed("checkpoint", super().checkpoint)

    def finish(self, reason: str) -> dict[str, Any]:
        self.finish_start = clock()
        return super().finish(reason)


@dataclasses.dataclass(slots=True)
class Interleave:
    """The hook: close the trainer's chunk, run the bare loops on the same batches, reopen."""

    batches: list[torch.Tensor]
    chunk: int
    bare: BareLoop
    ref: BareLoop
    trainer_chunks: list[tuple[float, float, float, float]] = dataclasses.field(default_factory=list)
    hook_time: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.0])
    _open: tuple[float, float] | None = None

    def __call__(self, trainer: TimedTrainer, step: int) -> None:
        t0 = clock()
        start = self._open or trainer.first_step
        events = [e for e in trainer.events if e["start"] >= start[0]]
        self.trainer_chunks.append((t0[0] - start[0], t0[1] - start[1],
                                    sum(e["wall"] for e in events), sum(e["cpu"] for e in events)))
        batches = self.batches[step - self.chunk:step]
        loops = (self.bare, self.ref) if len(self.trainer_chunks) % 2 else (self.ref, self.bare)
        for loop in loops:
            loop.run(batches)
        wall, cpu = since(t0)
        self.hook_time[0] += wall
        self.hook_time[1] += cpu
        self._open = clock()


# ----------------------------------------------------------------------------- main run
def prepare_pg19(store: Store, train_bytes: int, valid_bytes: int) -> str:
    cfg = PrepareConfig(source=f"local:{SHARED / 'pg19'}", max_bytes=train_bytes, valid_bytes=valid_bytes,
                        tokenizer="gpt2")
    return prepare(cfg, store, actors=0, progress=False).dataset_id


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def trainer_run(ctx: Context, tmp: str) -> dict:
    store = Store.open(tmp)
    dataset_id = prepare_pg19(store, ctx["train_bytes"], ctx["valid_bytes"])
    sets = {"batch_size": str(ctx["batch_size"]), "eval_every": str(ctx["steps"] // 5),
            "checkpoint_every": str(ctx["steps"] // 2)}
    config = build_run_config(dataset_id, ctx["model"], sets, steps=ctx["steps"])
    cfg = config.train
    dataset = open_dataset(store, dataset_id)
    vocab = vocab_of(dataset.tokenizer())
    seq_len = config.model.config.seq_len
    reader = dataset.train_reader(seq_len, cfg.batch_size, seed=cfg.seed)  # the trainer's reader, twin
    batches = [torch.from_numpy(next(reader)) for _ in range(ctx["steps"])]  # (B, T+1) each
    torch.manual_seed(cfg.seed)  # what the trainer's seed_everything does before it builds: the same init
    ours = config.model.config.build(vocab)
    torch.manual_seed(cfg.seed)
    ref = nanogpt_for(config, ours.padded_vocab)
    hook = Interleave(batches, ctx["chunk"], BareLoop.build(ours, cfg), BareLoop.build(ref, cfg))

    t0 = clock()
    tracker = build_tracker(None, store, rank=0, run_prefix=config.run_path)  # what train_in_process builds
    trainer = TimedTrainer(config, store, tracker=tracker, progress_bar=False, hooks=[Hook(hook, ctx["chunk"])])
    result = trainer.run()
    total = since(t0)
    out = report(ctx, config, result, trainer, hook, total, t0, sum(p.numel() for p in ours.parameters()))
    m = config.model.config
    B = config.train.batch_size
    out["planner"] = {"rates": [{
        "family": "transformer", "match": {"n_layer": m.n_layer, "d_model": m.d_model, "seq_len": m.seq_len},
        "unit": "tokens/s", "value": result["tokens_per_s"],
        "what": f"{ctx['model']} trainer loop, batch {B}, gpt2",
        "train_flops_per_sample": ours.train_flops_per_sample()}]}
    return out


def report(ctx: Context, config: RunConfig, result: dict, trainer: TimedTrainer, hook: Interleave,
           total: tuple[float, float], t0: tuple[float, float], n_params: int) -> dict:
    B, T, k, steps = config.train.batch_size, config.model.config.seq_len, ctx["chunk"], ctx["steps"]
    diff = max(abs(a - b) for a, b in zip(trainer.losses, hook.bare.losses, strict=True))
    setup = (trainer.first_step[0] - t0[0], trainer.first_step[1] - t0[1])
    periodic = [e for e in trainer.events if not e["final"]]
    final = [e for e in trainer.events if e["final"]]
    ctx.log(f"{ctx['model']} ({n_params / 1e6:.1f} M params), batch {B} x {T} tokens, {steps} steps "
            f"in chunks of {k}, torch threads {torch.get_num_threads()}, fp32 CPU, os.cpu_count()={os.cpu_count()}, "
            f"load avg {os.getloadavg()[0]:.1f}")
    ctx.log(f"same batches, same init: max |trainer loss - bare loss| over {steps} steps = {diff:.2e}; "
            f"final loss trainer {trainer.losses[-1]:.3f}, nanoGPT {hook.ref.losses[-1]:.3f}")
    out: dict[str, dict[str, float]] = {}
    for c, name in ((0, "wall"), (1, "cpu")):
        tr_loop = [t[c] - t[2 + c] for t in hook.trainer_chunks]  # trainer chunk minus its evals/checkpoints
        bare = [x[c] for x in hook.bare.chunks]
        ref = [x[c] for x in hook.ref.chunks]
        step_bare, step_tr, step_ref = median(bare) / k, median(tr_loop) / k, median(ref) / k
        loop_ovh = median([t / b - 1 for t, b in zip(tr_loop, bare, strict=True)])
        ratio = median([r / b for r, b in zip(ref, bare, strict=True)])  # ours tok/s over nanoGPT tok/s
        ev_periodic = sum(e[("wall", "cpu")[c]] for e in periodic)
        ev_final = sum(e[("wall", "cpu")[c]] for e in final)
        finish = (total[c] - (trainer.finish_start[c] - t0[c]))
        e2e = total[c] - hook.hook_time[c]  # the trainer from build_tracker to run()'s return
        bare_total = sum(bare)
        defaults = setup[c] + sum(tr_loop) + finish  # the same run at the pure defaults: no periodic events
        # projection to the recipe run: forward+backward scales with batch, the optimizer step does not
        opt = median([x[c] for x in hook.bare.optim])
        step32 = (step_bare - opt) * RECIPE_BATCH / B + opt
        evals = [e for e in trainer.events if e["kind"] == "eval"]
        eval_per_byte = sum(e[("wall", "cpu")[c]] for e in evals) / max(sum(e["bytes"] for e in evals), 1)
        ckpt = median([e[("wall", "cpu")[c]] for e in trainer.events if e["kind"] == "checkpoint"])
        samples = sum(e[("wall", "cpu")[c]] for e in final if e["kind"] == "samples")
        extra_finish = finish - ev_final
        n_evals = len(range(200, RECIPE_STEPS, 200)) + 1
        n_ckpts = len(range(500, RECIPE_STEPS, 500)) + 1
        # the loop overhead is taken as the same share of a batch-32 step (conservative: its cost is per step)
        proj_parts = {"loop": RECIPE_STEPS * loop_ovh * step32,
                      "eval": n_evals * eval_per_byte * RECIPE_VALID_BYTES, "checkpoint": n_ckpts * ckpt,
                      "setup+samples+finish": setup[c] + samples + extra_finish}
        proj_base = RECIPE_STEPS * step32
        out[name] = {
            "step_bare": step_bare, "step_tr": step_tr, "step_ref": step_ref, "loop_ovh": loop_ovh, "ratio": ratio,
            "setup": setup[c], "periodic": ev_periodic, "final": ev_final, "finish": finish,
            "scaled": (e2e / bare_total - 1), "defaults": defaults / bare_total - 1,
            "proj": sum(proj_parts.values()) / proj_base, **{f"proj_{p}": v / proj_base for p, v in proj_parts.items()},
            "step32": step32, "ckpt": ckpt, "eval_1mb": eval_per_byte * RECIPE_VALID_BYTES,
        }
    w, c = out["wall"], out["cpu"]
    tok = B * T
    tokens_per_s: dict[str, dict[str, float]] = {}
    ctx.log(f"{'':<34}{'tok/s wall':>11}{'s/step wall':>13}{'tok/s cpu':>11}{'s/step cpu':>12}")
    for label, key, short in (("bare loop (ours)", "step_bare", "bare"),
                              ("nightshift Trainer, loop only", "step_tr", "trainer_loop"),
                              ("nanoGPT reference", "step_ref", "nanogpt")):
        tokens_per_s[short] = {"wall": tok / w[key], "cpu": tok / c[key]}
        ctx.log(f"{label:<34}{tok / w[key]:>11.0f}{w[key]:>13.2f}{tok / c[key]:>11.0f}{c[key]:>12.2f}")
    ctx.log(f"{f'(medians over {len(hook.trainer_chunks)} interleaved chunks)':<68}{'wall':>9}{'cpu':>11}")
    rows = [
        ("Trainer overhead, loop only (logging, reader, guard)", "loop_ovh", True),
        (f"this run, trainer defaults (+setup {w['setup']:.0f} s, final eval/samples/ckpt)", "defaults", True),
        (f"this run, cadence scaled x{steps}/1000 (+{len(periodic)} evals/ckpts)", "scaled", True),
        ("projected: 1000 steps x batch 32, 1 MB valid, defaults", "proj", True),
        ("   of which loop", "proj_loop", True), ("   of which 5 evals of 1 MB", "proj_eval", True),
        ("   of which 2 checkpoints", "proj_checkpoint", True),
        ("   of which setup + samples + finish", "proj_setup+samples+finish", True),
        ("ours / nanoGPT training tokens/s (goal >= 1.0)", "ratio", False),
    ]
    for label, key, pct in rows:
        fmt = (lambda v: f"{v * 100:+9.1f} %") if pct else (lambda v: f"{v:11.3f}")
        ctx.log(f"{label:<68}{fmt(w[key])}{fmt(c[key])}")
    ctx.log(f"events (wall s): setup {w['setup']:.1f}, periodic evals+ckpts {w['periodic']:.1f}, final eval+samples+"
            f"ckpt {w['final']:.1f}, finish total {w['finish']:.1f}; one checkpoint {w['ckpt']:.1f} s, "
            f"a 1 MB eval ~{w['eval_1mb']:.0f} s (cpu {c['eval_1mb']:.0f} s); est. batch-32 step "
            f"{w['step32']:.1f} s wall, {c['step32']:.1f} s cpu")
    ctx.log(f"trainer result: {result['step']} steps, val_bpb {result['val_bpb']:.3f}, "
            f"tokens/s (its own clock) {result['tokens_per_s']:.0f}")
    return {"model": ctx["model"], "params": n_params, "batch": B, "seq_len": T, "steps": steps, "chunk": k,
            "chunks": len(hook.trainer_chunks), "periodic_events": len(periodic),
            "max_loss_diff_trainer_vs_bare": diff, "final_loss": {"trainer": trainer.losses[-1],
                                                                   "nanogpt": hook.ref.losses[-1]},
            "tokens_per_s": tokens_per_s, "wall": w, "cpu": c,
            "trainer_result": {"step": result["step"], "val_bpb": result["val_bpb"],
                               "tokens_per_s": result["tokens_per_s"]}}


# ----------------------------------------------------------------------------- diagnosis
class PaddedLossTransformer(Transformer):
    """The proposed fix: mask the padded logits to -inf in place; no slice, no strided copy, same loss."""

    def forward(self, tokens: torch.Tensor) -> tuple[torch.Tensor, dict]:
        idx = tokens[:, :-1]  # (B, T)
        x = self.embed(idx)  # (B, T, D)
        if self.pos is not None:
            x = x + self.pos(torch.arange(idx.shape[1], device=idx.device))
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)
        return F.cross_entropy(self.padded_logits(x).flatten(0, 1), tokens[:, 1:].flatten()), {}

    def padded_logits(self, x: torch.Tensor) -> torch.Tensor:
        logits = (self.norm_f(x) @ self.embed.weight.T).float()  # (B, T, V_padded), contiguous
        mask = torch.zeros(self.padded_vocab, device=x.device)  # (V_padded,)
        mask[self.vocab.size:] = float("-inf")  # padding ids: probability 0, gradient 0
        return logits.add_(mask)  # in place is safe: mm keeps its inputs, not its output, for backward

    def score(self, tokens: torch.Tensor) -> torch.Tensor:
        """Eval's path without the (B, V, T) transpose that sends cross_entropy down a strided kernel."""
        x = self.embed(tokens[:, :-1])  # (B, T, D)
        for block in self.blocks:
            x = block(x, self.rope_cos, self.rope_sin)
        nll = F.cross_entropy(self.padded_logits(x).flatten(0, 1), tokens[:, 1:].flatten(), reduction="none")
        return -nll.view(tokens.shape[0], -1)  # (B, T)


def diagnose(ctx: Context, tmp: str) -> dict:
    """Model-only, interleaved: ours, ours with the proposed loss, + LayerNorm/learned positions, nanoGPT."""
    store = Store.open(tmp)
    dataset_id = prepare_pg19(store, ctx["train_bytes"], ctx["valid_bytes"])
    config = build_run_config(dataset_id, ctx["model"], {"batch_size": str(ctx["batch_size"])})
    batch_size, chunk, reps = ctx["batch_size"], ctx["chunk"], ctx["reps"]
    dataset = open_dataset(store, dataset_id)
    vocab = vocab_of(dataset.tokenizer())
    mcfg = config.model.config
    reader = dataset.train_reader(mcfg.seq_len, batch_size)
    batches = [torch.from_numpy(next(reader)) for _ in range(chunk)]
    variants = {
        "ours (as is)": lambda: mcfg.build(vocab),
        "ours, padded-logit loss (fix)": lambda: PaddedLossTransformer(mcfg, vocab),
        "  + LayerNorm, learned positions": lambda: PaddedLossTransformer(
            dataclasses.replace(mcfg, norm="layernorm", positions="learned"), vocab),
        "nanoGPT reference": lambda: nanogpt_for(config, (vocab.size + 63) // 64 * 64),
    }
    loops = {}
    for name, make in variants.items():
        torch.manual_seed(0)
        loops[name] = BareLoop.build(make(), config.train)
    for rep in range(reps):
        for name in (list(loops) if rep % 2 == 0 else list(loops)[::-1]):
            loops[name].run(batches)
    ref = median([c[1] for c in loops["nanoGPT reference"].chunks])
    ctx.log(f"batch {batch_size} x {mcfg.seq_len}, {reps} interleaved reps of {chunk} steps, "
            f"threads {torch.get_num_threads()}, load avg {os.getloadavg()[0]:.1f}; CPU s/step (median)")
    variants_out = {}
    for name, loop in loops.items():
        cpu = median([c[1] for c in loop.chunks]) / chunk
        variants_out[name.strip()] = {"cpu_s_per_step": cpu, "tokens_per_s_vs_nanogpt": ref / chunk / cpu,
                                      "first_losses": loop.losses[:2]}
        ctx.log(f"  {name:<36}{cpu:8.3f} s   tokens/s vs nanoGPT {ref / chunk / cpu:6.3f}   "
                f"first losses {', '.join(f'{v:.4f}' for v in loop.losses[:2])}")
    # evaluation's forward (`score`, batch 16 windows as in the trainer's default) as is vs the fix
    ours, fixed = loops["ours (as is)"].model, loops["ours, padded-logit loss (fix)"].model
    fixed.load_state_dict(ours.state_dict())
    window = torch.cat(batches * 8)[:16]  # (16, T+1)
    times: dict[str, list[float]] = {"as is": [], "fix": []}
    with torch.no_grad():
        for _ in range(3):
            for name, model in (("as is", ours), ("fix", fixed)):
                t0 = clock()
                model.score(window)
                times[name].append(since(t0)[1])
        gap = float((ours.score(window) - fixed.score(window)).abs().max())
    ctx.log(f"eval score(), 16 x {mcfg.seq_len} windows, CPU s: as is {median(times['as is']):.2f}, "
            f"fix {median(times['fix']):.2f} (x{median(times['as is']) / median(times['fix']):.2f}); "
            f"max |difference| {gap:.1e}")
    return {"batch": batch_size, "seq_len": mcfg.seq_len, "reps": reps, "chunk": chunk, "variants": variants_out,
            "eval_score_cpu_s": {"as_is": median(times["as is"]), "fix": median(times["fix"]),
                                 "speedup": median(times["as is"]) / median(times["fix"]), "max_abs_diff": gap}}


def run(ctx: Context) -> dict:
    """mode "run": the trainer side by side (the old default); "diagnose": only the model-vs-nanoGPT breakdown
    (the old --diagnose); "both": one then the other."""
    steps, chunk, mode = ctx["steps"], ctx["chunk"], ctx["mode"]
    if mode not in ("run", "diagnose", "both"):
        raise SystemExit(f"trainer_overhead: mode {mode!r}: one of run, diagnose, both")
    if steps % chunk or steps % 10 or steps < 10:
        raise SystemExit("trainer_overhead: steps must be a multiple of chunk and of 10 (so evals/checkpoints "
                         "scale evenly)")
    logging.basicConfig(level=logging.WARNING)
    out: dict[str, Any] = {"threads": torch.get_num_threads()}
    if mode in ("run", "both"):
        with tempfile.TemporaryDirectory(prefix="trainer-", dir=ctx.work) as tmp:  # a fresh store: no resume
            out |= trainer_run(ctx, tmp)
    if mode in ("diagnose", "both"):
        with tempfile.TemporaryDirectory(prefix="diagnose-", dir=ctx.work) as tmp:
            out["diagnose"] = diagnose(ctx, tmp)
    return out


BENCHMARK = Benchmark(
    name="trainer_overhead",
    summary="nightshift Trainer vs a bare torch loop and a nanoGPT-style reference, interleaved (transformer:small, "
            "fp32 CPU): loop overhead, run overhead, projection to the recipe run",
    run=run,
    threads=1,
    goal="Trainer overhead <= 3 % at the default cadence; baseline / nanoGPT tokens/s >= 1.0 (issue 3)",
    full={"model": "transformer:small", "steps": 20, "batch_size": 2, "chunk": 2, "train_bytes": 2_000_000,
          "valid_bytes": 4_000, "mode": "run", "reps": 4},
    # toy: the smallest transformer, both parts (the trainer run, then the diagnosis)
    toy={"model": "transformer:debug", "steps": 10, "batch_size": 1, "chunk": 2, "train_bytes": 200_000,
         "valid_bytes": 2_000, "mode": "both", "reps": 2},
)
