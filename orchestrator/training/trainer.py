"""The trainer loop: the same function on a laptop, in a Ray Train worker and in a Modal function.

step ... step ... [sleep] ... eval (bits per byte) ... checkpoint. The backend
only supplies an `Env` (rank, world size) and the store; everything a run needs
to continue exactly is in its checkpoint.
"""

from __future__ import annotations

import contextlib
import logging
import resource
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from nightshift import collectives
from nightshift.models.protocol import LanguageModel, SleepContext
from nightshift.orchestrator.checkpointing.lease import NO_LEASE, LeaseLost, NullLease, RunLease
from nightshift.orchestrator.checkpointing.retention import Retention
from nightshift.orchestrator.checkpointing.trail import CheckpointTrail, Loaded
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.evaluation.ablation import ablation_metrics, score_ablations
from nightshift.orchestrator.evaluation.bits_per_byte import EvalResult, bits_per_byte
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.runs.folders import RunDir
from nightshift.orchestrator.runs.fork import lineage_of
from nightshift.orchestrator.runs.tags import experiment_name, run_name, run_tags
from nightshift.orchestrator.runs.vocab import vocab_of
from nightshift.orchestrator.tracking.base import NoopTracker, Tracker
from nightshift.orchestrator.tracking.inputs import dataset_inputs
from nightshift.orchestrator.tracking.nodes import NODES_TAG, node_name, node_role
from nightshift.orchestrator.training import budget, flops, runtime
from nightshift.orchestrator.training.cadence import Cadence, Tick
from nightshift.orchestrator.training.divergence import DivergenceGuard
from nightshift.orchestrator.training.faults import FaultDrill
from nightshift.orchestrator.training.optim import build_optimizer, build_scheduler, fit_schedule
from nightshift.orchestrator.training.progress import TrainProgress, sleep_summary
from nightshift.orchestrator.training.sampling import generate_samples
from nightshift.orchestrator.training.signals import StopRequest
from nightshift.pipelines.reader import open_dataset
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Hook:
    """`fn(trainer, step)` after every `every` steps (levanter-style)."""

    fn: Callable[["Trainer", int], None]
    every: int = 1


@dataclass(slots=True)
class Progress:
    """Counters that are part of every checkpoint."""

    step: int = 0
    samples: int = 0
    tokens: int = 0
    positions: int = 0  # predicted positions (windows + next token) observed or trained on
    sleeps: int = 0
    train_seconds: float = 0.0
    rollbacks: int = 0
    last_eval: dict[str, float] = field(default_factory=dict)


class Trainer:
    def __init__(self, config: RunConfig, store: Store, *, env: runtime.Env | None = None,
                 tracker: Tracker | None = None, progress_bar: bool = True,
                 hooks: Sequence[Hook] = (), checkpoint_callback: Callable[[dict], None] | None = None,
                 parent_run_id: str | None = None) -> None:
        self.config, self.store = config, store
        self.parent_run_id = parent_run_id  # a sweep's MLflow run: this run is tracked nested under it
        self.env = env or runtime.Env()
        self.tracker = tracker or NoopTracker()
        self.progress_bar = progress_bar and self.env.is_main
        self.hooks = tuple(hooks)
        self.checkpoint_callback = checkpoint_callback  # Ray Train reports checkpoints through this
        self.run_dir = RunDir(store, config)
        self.cfg = config.train
        self.trail = CheckpointTrail(store, config.run_path,
                                     retention=Retention(keep=self.cfg.keep_checkpoints, every=self.cfg.keep_every))
        self.cadence = Cadence(self.cfg)
        self.device = runtime.resolve_device(self.cfg.device, self.env)
        collectives.bind_device(self.device)  # this rank's GPU is the current one (NCCL, object collectives)
        self.faults = FaultDrill()  # NIGHTSHIFT_FAULTS drills; none in real training
        self.state = Progress()
        self._parent_step: int | None = None
        self.lease: RunLease | NullLease = NO_LEASE
        self._events: list[tuple[str, int, dict]] = []
        self._tracking = False

    # ------------------------------------------------------------------ setup
    def setup(self) -> None:
        cfg, env = self.cfg, self.env
        if env.world_size > 1 and cfg.batch_size % (env.world_size * cfg.grad_accum):
            raise UserError(f"batch_size={cfg.batch_size} must be divisible by world_size x grad_accum "
                            f"= {env.world_size} x {cfg.grad_accum}")
        self.tokenizer = self.dataset.tokenizer()
        self.vocab = vocab_of(self.tokenizer)
        runtime.seed_everything(cfg.seed)
        runtime.enable_tf32(self.device)
        self.model: LanguageModel = self.config.model.config.build(self.vocab).to(self.device)
        # e.g. a window longer than any document: refuse before compute
        self.model.check_dataset(**dataset_shape(self.dataset.manifest))
        self.gradient = self.model.trains_by_gradient
        self.micro_batch = cfg.batch_size // (env.world_size * cfg.grad_accum)
        self.compute = budget.ComputeMeter()  # seconds by kind of work; budgets bound all but evals/checkpoints
        self.reader = budget.TimedReader(self.dataset.train_reader(
            self.model.train_seq_len, self.micro_batch, rank=env.rank, world_size=env.world_size, seed=cfg.seed),
            self.compute)
        self.budget, self._first_step = budget.budget_seconds(cfg, env.world_size), 0.0
        self.schedule = fit_schedule(cfg, cfg.steps, gradient=self.gradient)  # re-planned when a budget binds
        self.optimizer = build_optimizer(self.model, cfg, self.device) if self.gradient else None
        self.scheduler = build_scheduler(self.optimizer, self.schedule) if self.optimizer else None
        self.autocast = runtime.autocast_for(self.device, cfg.precision)
        peak = flops.device_peak_flops(self.device)  # per device; None on CPU or an unknown GPU
        self.flops = flops.FlopsMeter(self.model.train_flops_per_sample() if self.gradient else None,
                                      peak and peak * self.env.world_size)
        self.guard = DivergenceGuard.from_config(cfg)
        self.restore()
        self.forward_model: Any = self.model
        self.ddp: torch.nn.parallel.DistributedDataParallel | None = None
        if self.gradient and env.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            unused = self.model.ddp_find_unused_parameters  # e.g. attractor's detach mode
            self.ddp = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids,
                                                                 find_unused_parameters=unused)
            self.forward_model = self.ddp
        if cfg.compile and self.gradient:  # compile(DDP(model)): DDPOptimizer splits graphs at buckets (overlap)
            self.forward_model = torch.compile(self.forward_model)
        self._window: list[tuple[int, Tensor]] = []  # (step, loss on the device) since the last flush
        self._step_metrics: dict[str, Any] = {}  # the last step's metrics, device tensors until a log step

    def restore(self, step: int | None = None) -> bool:
        """Load the latest (or a given) checkpoint into model, optimizer, reader, RNG and counters.

        The state arrives in host memory; `load_state_dict` copies weights onto the
        model's device, the optimizer casts its state to its parameters' device, and
        each family places its own state (a host store stays on the host).
        """
        found = self.trail.load_newest() if step is None else self.trail.load_step(step)
        if found is None:
            return False
        meta, state = found.meta, found.state
        saved = RunConfig.from_dict(state["config"])
        if saved.run_id != self.config.run_id:
            raise UserError(f"checkpoint {meta['path']} belongs to run {saved.run_id}, not {self.config.run_id}")
        self.model.load_state_dict(state["model"])
        if self.optimizer is not None:
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
        readers = state["reader"]
        self.reader.load_state_dict(readers[self.env.rank] if len(readers) == self.env.world_size else readers[0])
        runtime.set_rng_state(runtime.rank_rng_state(state["rng"], self.env), self.device)
        p = state["progress"]
        positions = p.get("positions", p["samples"] * self.model.positions_per_row)  # older checkpoints: derived
        self.state = Progress(step=p["step"], samples=p["samples"], tokens=p["tokens"], positions=positions,
                              sleeps=p["sleeps"],
                              train_seconds=p["train_seconds"], rollbacks=p.get("rollbacks", 0),
                              last_eval=dict(p.get("last_eval", {})))
        if self.guard is not None and state.get("guard"):
            self.guard.load_state_dict(state["guard"])
        if (p.get("schedule") or {}).get("run_id") == self.config.run_id:  # a fork fits its own schedule
            self.schedule.load(p["schedule"])
        if step is None:  # a resume keeps counting; a rollback does not give back the compute it spent
            self.compute.seconds.update(p.get("compute") or {})
        self._parent_step = meta["step"]
        if found.fell_back:
            self._fell_back(found)
        log.info("resumed %s at step %d", self.config.run_id, self.state.step)
        return True

    # ------------------------------------------------------------------- loop
    def run(self) -> dict[str, Any]:
        self.dataset = open_dataset(self.store, self.config.dataset_id)  # before anything is written
        if self.env.is_main:
            self.run_dir.write_config()
        runtime.barrier(self.env)
        if self.run_dir.status().get("state") == "finished" and self.run_dir.result() is not None:
            log.info("run %s already finished: nothing to do", self.config.run_id)
            return self.run_dir.result()
        self.lease = runtime.acquire_run_lease(self.store, self.config, self.env)  # one writer per checkpoint trail
        try:
            if self.run_dir.status().get("state") == "finished" and self.run_dir.result() is not None:
                return self.run_dir.result()  # finished by the process we waited for
            return self._train()
        finally:
            self.lease.release()

    def _train(self) -> dict[str, Any]:
        self.setup()
        self._start_tracking()
        stop = self._stop = StopRequest.install()
        reason = "finished"
        if self.env.is_main:
            self.run_dir.set_status("running", self.state.step, backend=self.env.backend)
        progress = self._progress()
        last_ckpt_time = time.monotonic()
        window_loss, window_tokens, window_time, window_steps = 0.0, 0, 0.0, 0
        self._window.clear()
        try:
            while self.state.step < self.schedule.planned_steps:
                t0, data0, compile0 = time.perf_counter(), self.compute.seconds["data"], budget.compile_seconds()
                loss, metrics = self.train_step()
                dt = time.perf_counter() - t0
                compiled = budget.compile_seconds() - compile0  # a compile's seconds are not training compute
                self.compute.add_work("step", dt - (self.compute.seconds["data"] - data0), compiled)
                dt -= compiled
                self.state.step += 1
                self.state.train_seconds += dt
                step_tokens = self.cfg.batch_size * self.model.train_seq_len
                positions0 = self.state.positions
                self.state.samples += self.cfg.batch_size
                self.state.tokens += step_tokens
                self.state.positions += self.cfg.batch_size * self.model.positions_per_row
                self._window.append((self.state.step, loss))
                self._step_metrics = metrics
                window_tokens += step_tokens
                window_time += dt
                window_steps += 1
                step = self.state.step
                last = self.schedule.planned_steps
                tick = Tick(step - 1, step, self.state.samples, positions0, self.state.positions)
                log_now = self.cadence.log(tick, last)
                sleep_now = self.cadence.sleeps_due(tick) > self.state.sleeps
                eval_now = self.cadence.eval(tick, last)
                sample_now = self.cadence.sample(tick, last)
                hooks_now = [hook for hook in self.hooks if step % hook.every == 0]
                due = bool(self.cfg.checkpoint_every) and step % self.cfg.checkpoint_every == 0
                replan = bool(self.budget) and step in budget.REPLAN_AT
                flushed = log_now or sleep_now or eval_now or sample_now or bool(hooks_now) or due or replan
                if flushed:
                    # The losses reach the host here, never per step: a GPU runs ahead between these points.
                    # Divergence is judged on every step of the window, before anything uses or saves the weights.
                    losses = self._flush_losses()
                    if losses is None:
                        window_loss, window_tokens, window_time, window_steps = 0.0, 0, 0.0, 0
                        continue  # rolled back: counters and weights restored from the trail
                    window_loss += sum(losses)
                self._plan_budget(step, dt)
                if log_now:
                    rate = window_tokens / max(window_time, 1e-9)
                    n = max(1, window_steps)
                    row = {"train/loss": window_loss / n, "perf/tokens_per_s": rate,
                           "perf/tokens_seen": float(self.state.tokens),
                           "perf/positions_seen": float(self.state.positions), **_host(self._step_metrics),
                           **self.flops.metrics(rate / self.model.train_seq_len),
                           "compute/seconds": self.compute.budgeted * self.env.world_size}
                    if self.scheduler is not None:
                        row["train/lr"] = self.scheduler.get_last_lr()[0]
                    self.tracker.log_metrics(row, step)
                    if progress is not None:
                        progress.logged(window_loss / n if self.gradient else None, rate)
                    window_loss, window_tokens, window_time, window_steps = 0.0, 0, 0.0, 0
                if progress is not None:
                    if progress.total != self.schedule.planned_steps:  # a budget re-plan
                        progress.set_total(self.schedule.planned_steps)
                    progress.update(step, self.state.tokens, self.state.train_seconds)
                if sleep_now:
                    slept = self.sleep()
                    if progress is not None:
                        progress.note(sleep_summary(self.state.sleeps, step, slept))
                if eval_now:
                    scored = self.evaluate(self.cfg.eval_max_bytes)
                    if progress is not None:
                        progress.note(f"step {step:,}: val bits/byte {scored.bits_per_byte:.4f} "
                                      f"over {scored.n_bytes:,} bytes")
                if sample_now:
                    self.write_samples()
                for hook in hooks_now:
                    hook.fn(self, step)
                timed = bool(self.cfg.checkpoint_minutes) and \
                    time.monotonic() - last_ckpt_time > 60 * self.cfg.checkpoint_minutes
                over_budget = bool(self.budget) and self.compute.budgeted > self.budget
                # one collective per step for every rank-wide decision (stop, timed checkpoint, budget)
                stopping, timed, over_budget = runtime.any_ranks((stop.requested, timed, over_budget), self.env)
                if (timed or stopping or over_budget) and not flushed:
                    losses = self._flush_losses()  # nothing unjudged is saved or reported
                    if losses is None:
                        window_loss, window_tokens, window_time, window_steps = 0.0, 0, 0.0, 0
                        continue
                    window_loss += sum(losses)
                if (due or timed or stopping) and step < last:
                    self.checkpoint()
                    last_ckpt_time = time.monotonic()
                if stopping:
                    reason = "interrupted"
                    break
                if over_budget:
                    reason = "budget"
                    break
                self.faults.pause(step, lambda: stop.requested)
            if reason == "finished" and self.state.step < self.cfg.steps:  # stopped where the budget plan ends
                reason = "budget"
        except BaseException:
            if self.env.is_main and self.lease.lost is None:  # a run taken over is the new owner's to mark
                self.run_dir.mark_failed(self.state.step)
            with contextlib.suppress(Exception):  # e.g. a full disk: the error that stopped the run is the one
                self.tracker.finish("FAILED")
            raise
        finally:
            if progress is not None:
                progress.close()
            stop.uninstall()
        return self.finish(reason)

    def train_step(self) -> tuple[Any, dict[str, Any]]:
        """One optimizer step (grad_accum micro-batches) or one memory update per micro-batch.

        Returns this rank's loss and metrics as they come: device tensors for a
        gradient family (no host sync here; the loop reads them at its flush
        points), floats for a memory family (its observe runs on the host).
        """
        total: Any = 0.0
        metrics: dict[str, Any] = {}
        n = self.cfg.grad_accum
        for i in range(n):
            tokens = torch.from_numpy(next(self.reader)).to(self.device, non_blocking=True)  # (b, T+1)
            if self.gradient:
                # DDP all-reduces gradients on the last micro-batch only
                quiet = self.ddp.no_sync() if self.ddp is not None and i < n - 1 else contextlib.nullcontext()
                with quiet:
                    with self.autocast:
                        loss, extra = self.forward_model(tokens)
                    loss = self.faults.loss(loss, self.state.step + 1)
                    (loss / n).backward()
                total = total + loss.detach().float() / n
                metrics.update({k: v.detach() if isinstance(v, Tensor) else v for k, v in extra.items()})
            else:
                extra = self.model.observe(tokens)
                metrics.update({k: float(v) for k, v in extra.items()})
                total += float(extra.get("train/loss", 0.0)) / n
        if self.gradient:
            self._apply_gradients()
        return total, metrics

    def _flush_losses(self) -> list[float] | None:
        """The window's per-step losses on the host (one transfer, one all-reduce), checked by the guard.

        None when a step diverged and the run was rolled back (the window is gone);
        otherwise the mean-over-ranks loss of each step since the last flush.
        """
        window, self._window = self._window, []
        if not window:
            return []
        values = torch.stack([torch.as_tensor(v, dtype=torch.float64).to(self.device) for _, v in window])  # (n,)
        losses = runtime.mean_over_ranks_tensor(values, self.env).tolist()  # every rank: the same
        if self.gradient and self.guard is not None:
            for (step, _), loss in zip(window, losses, strict=True):
                if self.guard.check(loss, self, bad_step=step):
                    return None
        return losses
    def _apply_gradients(self) -> None:
        """Clip, step, schedule; a step whose gradients are not finite leaves weights and moments as they were.

        The test is on the gradient norm (a NaN/inf loss gives one): after DDP's all-reduce it is the
        same on every rank, so no extra collective. Fused AdamW (CPU and CUDA) skips such a step on
        the device through its `found_inf` input (what GradScaler uses): no host sync. Any other
        optimizer (the tests' fake device) reads the flag on the host.
        """
        params = [p for p in self.model.parameters() if p.grad is not None]
        if self.cfg.grad_clip:
            norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        else:
            norm = torch.nn.utils.get_total_norm([p.grad for p in params])
        bad = (~torch.isfinite(norm)).float().reshape(())  # 0-dim, on the device
        if self.optimizer.defaults.get("fused"):
            self.optimizer.found_inf = bad  # read by the fused kernel: found_inf=1 skips every update
            try:
                self.optimizer.step()
            finally:
                del self.optimizer.found_inf
        elif not bool(bad):
            self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.scheduler.step()

    def _optimize(self, loss: Tensor) -> None:
        """Used by sleep phases of gradient families: one update, the trainer's way.

        The loss comes from the unwrapped module (not through DDP's forward), so
        gradients are averaged across ranks here: every rank takes the same step.
        """
        loss.backward()
        if self.env.distributed:
            for p in self.model.parameters():
                if p.grad is None:
                    p.grad = torch.zeros_like(p)
                collectives.all_reduce(p.grad).div_(self.env.world_size)
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    # -------------------------------------------------------------- phases
    def sleep(self) -> dict[str, float]:
        with self.compute.timed("sleep"):
            return self._sleep()

    def _sleep(self) -> dict[str, float]:
        t0 = time.perf_counter()
        if not self.gradient and self.env.world_size > 1:
            self.model.synchronize()
        ctx = SleepContext(step=self.state.step, rank=self.env.rank, world_size=self.env.world_size,
                           optimize=self._optimize if self.gradient else None)
        metrics = self.model.sleep(ctx)
        self.state.sleeps += 1
        if metrics:
            row = {f"sleep/{k}": float(v) for k, v in metrics.items()}
            row.setdefault("sleep/seconds", time.perf_counter() - t0)
            row["sleep/count"] = float(self.state.sleeps)
            self.tracker.log_metrics(row, self.state.step)
        return metrics

    def evaluate(self, max_bytes: int = 0, *, kind: str = "eval") -> EvalResult:
        """Bits per byte on validation (`kind`: the compute meter's book, "final_eval" at the end)."""
        with self.compute.timed(kind):
            result = self._score(max_bytes)
            # the family's own metrics (holographic: the seed's, bounded in cost), beside each evaluation
            seed = {f"seed/{k}": float(v) for k, v in self.model.eval_metrics().items()} if self.env.is_main else {}
        self.state.last_eval = {"bpb": result.bits_per_byte, "bytes": result.n_bytes, "step": self.state.step}
        self.tracker.log_metrics({**result.metrics(), **seed,
                                  "compute/seconds": self.compute.budgeted * self.env.world_size}, self.state.step)
        log.info("step %d: val bits/byte %.4f over %d bytes", self.state.step, result.bits_per_byte, result.n_bytes)
        return result

    def _score(self, max_bytes: int = 0) -> EvalResult:
        if not self.gradient and self.env.world_size > 1:
            self.model.synchronize()
        return bits_per_byte(self.model, self.dataset.validation_docs(), batch_size=self.cfg.eval_batch_size,
                             device=self.device, max_bytes=max_bytes, rank=self.env.rank,
                             world_size=self.env.world_size)  # float32, never the training autocast

    def _final_score(self) -> EvalResult:
        return self._score(self.cfg.final_eval_max_bytes)

    def ablations(self) -> dict[str, float]:
        """Final bits/byte with each ablatable part of the family off (evaluation time, not budgeted)."""
        with self.compute.timed("ablation"):
            scores = {part: r.bits_per_byte for part, r in score_ablations(self.model, self._final_score).items()}
        if scores:
            self.tracker.log_metrics(ablation_metrics(scores), self.state.step)
        return scores

    def _train_tokens(self) -> int:
        return int(self.dataset.manifest["splits"]["train"]["totals"]["tokens"])

    def _plan_budget(self, step: int, dt: float) -> None:
        """Budget-bound runs: the steps that fit, from the measured cost so far (the same on every rank)."""
        if step == 1:
            self._first_step = dt
        if not self.budget or step not in budget.REPLAN_AT or step > self.schedule.planned_steps:
            return
        costs = runtime.gather_objects((self.compute.budgeted, self._first_step), self.env)
        used, first = max(c[0] for c in costs), max(c[1] for c in costs)
        at_end = step == self.schedule.planned_steps
        if at_end and (step >= self.cfg.steps or budget.steps_that_fit(self.budget, used, first, step) <= step):
            return  # the plan's end, and the budget is spent: stop. Else extend (a slow first step, e.g.
            # a compile, had planned too few steps from a cost the later steps do not have)
        self.schedule.replan(budget.planned_steps(self.budget, used, first, step, self.cfg.steps), self.cfg)
        if self.scheduler is not None:  # the next step's LR was set under the old plan
            for group, base in zip(self.optimizer.param_groups, self.scheduler.base_lrs):
                group["lr"] = base * self.schedule.factor(self.scheduler.last_epoch)
        log.info("step %d: budget plan %d steps (warmup %d)", step, self.schedule.planned_steps, self.schedule.warmup)

    def write_samples(self) -> str:
        with self.compute.timed("samples"):
            return self._write_samples()

    def _write_samples(self) -> str:
        if not self.env.is_main:
            return ""
        text = generate_samples(self.model, self.tokenizer, self.cfg.sample_tokens,
                                seed=self.cfg.seed + self.state.step, device=self.device)
        self.run_dir.write_text(text, "samples", f"step_{self.state.step:08d}.txt")
        self.tracker.log_text(text, f"samples/step_{self.state.step:08d}.txt")
        return text

    def checkpoint(self) -> dict[str, Any] | None:
        with self.compute.timed("checkpoint"):
            return self._checkpoint()

    def _checkpoint(self) -> dict[str, Any] | None:
        if runtime.any_rank(not self.lease.renewed(), self.env):  # never write on a trail another process took
            self.lease.ensure()  # rank 0: says who took it; the others stop with it instead of waiting
            raise LeaseLost(f"run {self.config.run_id}: rank 0 lost the run's lease; stopping without writing")
        if not self.gradient and self.env.world_size > 1:
            self.model.synchronize()
        readers = runtime.gather_objects(self.reader.state_dict(), self.env)
        rngs = runtime.gather_objects(runtime.rng_state(self.device), self.env)  # each rank's own streams
        info = None
        if self.env.is_main:
            state = {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict() if self.optimizer else None,
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "reader": readers,
                "rng": rngs,
                "progress": {"step": self.state.step, "samples": self.state.samples, "tokens": self.state.tokens,
                             "positions": self.state.positions, "sleeps": self.state.sleeps,
                             "train_seconds": self.state.train_seconds,
                             "rollbacks": self.state.rollbacks, "last_eval": self.state.last_eval,
                             "compute": self.compute.state_dict(),
                             "schedule": {**self.schedule.to_dict(), "run_id": self.config.run_id}},
                "config": self.config.to_dict(),
                "dataset_id": self.config.dataset_id,
                "guard": self.guard.state_dict() if self.guard is not None else None,
            }
            slow_write = self.faults.checkpoint_delay()  # drill: widen the write window
            info = self.trail.save(state, self.state.step, self._parent_step, _pause=slow_write,
                                   writer=self.lease.owner)
            self.run_dir.set_status("running", self.state.step)
        self._parent_step = self.state.step
        runtime.barrier(self.env)
        if self.checkpoint_callback is not None:
            self.checkpoint_callback(info or {"step": self.state.step})
        return info

    def finish(self, reason: str) -> dict[str, Any]:
        interrupted = reason == "interrupted"
        final = None if interrupted else self.evaluate(self.cfg.final_eval_max_bytes, kind="final_eval")
        ablations = self.ablations() if final is not None and self.cfg.final_ablations else {}
        if reason != "interrupted":
            self.write_samples()
        info = self.checkpoint()
        result = {
            "run_id": self.config.run_id, "dataset_id": self.config.dataset_id, "model_id": self.config.model_id,
            "family": self.config.model.family, "flavor": self.config.model.flavor, "seed": self.cfg.seed,
            "stop_reason": reason, "stop_signal": self._stop_signal() if reason == "interrupted" else None,
            "step": self.state.step, "samples": self.state.samples, "positions": self.state.positions,
            "tokens": self.state.tokens, "epochs": self.state.tokens / max(self._train_tokens(), 1),
            "train_seconds": self.state.train_seconds,
            "tokens_per_s": self.state.tokens / max(self.state.train_seconds, 1e-9),
            "parameters": self.model.num_parameters(), "memory_bytes": self.model.memory_bytes(),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "device": str(self.device),
            **self.flops.result(self.state.samples, self.state.train_seconds),
            "sleeps": self.state.sleeps, "rollbacks": self.state.rollbacks,
            "val_bpb": final.bits_per_byte if final else None, "val_bytes": final.n_bytes if final else None,
            **self.compute.summary(self.env.world_size),
            "train_flops": budget.train_flops(self.model, self.state.samples),
            "schedule": self.schedule.to_dict(), "ablations": ablations,
            "checkpoint": self.store.uri(info["path"]) if info else None, "run_uri": self.run_dir.uri,
        }
        if self.env.is_main:
            state = "finished" if reason in ("finished", "budget") else reason
            if reason in ("finished", "budget"):
                self.run_dir.write_result(result)
            self.run_dir.set_status(state, self.state.step)
            self.tracker.log_metrics({"final/val_bpb": result["val_bpb"] or float("nan"),
                                      "final/tokens_per_s": result["tokens_per_s"],
                                      "final/compute_seconds": result["compute_seconds"]}, self.state.step)
            self.tracker.set_tags({"nightshift.stop_reason": reason,
                                   "nightshift.checkpoint": result["checkpoint"] or ""})
            self.tracker.log_text(_json(result), "result.json")
            if final is not None:  # the run's MLflow model: any MLflow user can load, serve and register it
                from nightshift.orchestrator.serving.package import log_final_model

                log_final_model(self.tracker, self.model, self.config, self.tokenizer, self.state.step,
                                {"val_bpb": result["val_bpb"]})
        self.tracker.finish("KILLED" if reason == "interrupted" else "FINISHED")
        return result

    # ------------------------------------------------------------- helpers
    def _stop_signal(self) -> str | None:
        """The signal that stopped the run (SIGTERM, SIGINT), or None for a stop asked in-process."""
        import signal

        stop = getattr(self, "_stop", None)
        return signal.Signals(stop.signum).name if stop is not None and stop.signum else None

    def _start_tracking(self) -> None:
        tags = run_tags(self.config, self.dataset.manifest, backend=self.env.backend, run_uri=self.run_dir.uri)
        lineage = lineage_of(self.store, self.config)
        if lineage:  # a fork: the UI shows where it came from
            tags.update({"nightshift.parent_run": lineage["parent_run_id"],
                         "nightshift.parent_step": str(lineage["parent_step"])})
        # System metrics once per node, into rank 0's run (tracking.nodes: what a node is, who reports it).
        role = node_role(runtime.gather_objects(node_name(), self.env), self.env.rank)
        if len(role.nodes) > 1:
            tags[NODES_TAG] = ",".join(role.nodes)
        if self.env.is_main:
            self.tracker.monitor_node(role.node_id)
        self.tracker.start(run_key=self.config.run_id, run_name=run_name(self.config, self.dataset.manifest),
                           experiment=experiment_name(self.dataset.source), tags=tags,
                           params=self.config.to_dict(), parent_run_id=self.parent_run_id)
        run_id = runtime.gather_objects(self.tracker.run_id, self.env)[0]  # rank 0's MLflow run, on every rank
        if role.reports and not self.env.is_main and run_id:
            self.tracker.monitor_node(role.node_id, run_id)
        self.tracker.log_inputs(dataset_inputs(self.dataset.manifest, self.store))  # the UI's Dataset column
        for name, step, detail in self._events:  # what happened before tracking started (a fallback)
            self.tracker.log_event(name, step, detail)
        self._events.clear()
        self._tracking = True

    def _fell_back(self, found: Loaded) -> None:
        """Say that the newest checkpoint was unusable, and record it (run folder now, tracker when started)."""
        detail = {"restored_step": found.meta["step"], "skipped": list(found.skipped)}
        log.warning("resuming %s from checkpoint step %d, the newest one that loads; passed over: %s",
                    self.config.run_id, found.meta["step"], " | ".join(found.skipped))
        if self.env.is_main:
            self.run_dir.write_text(_json(detail), "events", f"checkpoint_fallback_{found.meta['step']:08d}.json")
        if self._tracking:
            self.tracker.log_event("checkpoint_fallback", found.meta["step"], detail)
        else:
            self._events.append(("checkpoint_fallback", found.meta["step"], detail))

    def _progress(self) -> TrainProgress | None:
        """The main rank's bar (a terminal, progress on) or periodic lines (anywhere else); None elsewhere."""
        if not self.env.is_main:
            return None
        return TrainProgress(f"{self.config.model.family}:{self.config.model.flavor}", self.schedule.planned_steps,
                             self.state.step, self.state.tokens, self.state.train_seconds, bar=self.progress_bar)


def dataset_shape(manifest: dict[str, Any]) -> dict[str, int]:
    """Longest document (an upper bound where shards did not record it) and total training tokens."""
    shards = manifest["splits"]["train"]["shards"]
    longest = max((s.get("max_doc_tokens", s["tokens"]) for s in shards), default=0)
    return {"max_doc_tokens": int(longest), "total_tokens": int(manifest["splits"]["train"]["totals"]["tokens"])}


def _host(metrics: dict[str, Any]) -> dict[str, float]:
    """Metrics on the host in one transfer (a gradient family's are device tensors until a log step)."""
    tensors = {k: v for k, v in metrics.items() if isinstance(v, Tensor)}
    out = {k: float(v) for k, v in metrics.items() if k not in tensors}
    if tensors:
        values = torch.stack([v.detach().float().reshape(()) for v in tensors.values()]).tolist()
        out.update(zip(tensors, values, strict=True))
    return out


def _json(obj: Any) -> str:
    import json

    return json.dumps(obj, indent=2, sort_keys=True, default=str)
