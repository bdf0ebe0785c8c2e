"""The whole run, phase by phase: training, sleeps, evaluations, the final evaluation and ablations,
generation, checkpoints; total hours and device-hours; and what a launcher cannot allow.

The pre-flight plan (preflight.py) knows memory and the training rate; a long run
also spends hours in what is not training. For a memory family whose every
prediction is a kNN over the store (holographic), evaluation, generation and the
sleep's held-out fit each cost queries x stored rows at the store's search rate: on
the host, the rate recorded by benchmarks/giant_rehearsal.py; on a GPU, an assumed
rate (labelled so until a GPU run is recorded). Each phase names its source.
The plan refuses, in one line, before any GPU starts: a run longer than its
launcher allows, more epochs than `MAX_EPOCHS` unless allowed, checkpoints over
`--disk`, and a final evaluation longer than the run unless it is capped.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from nightshift.orchestrator.planning import figures
from nightshift.orchestrator.runs.positions import Counts, counts

if TYPE_CHECKING:
    from nightshift.orchestrator.planning.preflight import Plan

MAX_EPOCHS = 4.0  # more passes over the same text than this is refused unless --allow-epochs
SHORT_FINAL_S = 600.0  # a final evaluation under 10 minutes is never refused, whatever the run's length
GB = 1e9
SEED_QUERIES = 512  # the seed metrics' retrieval and generalization windows, beside each evaluation


@dataclass(frozen=True, slots=True)
class Launcher:
    """Where the run is launched and how long it may take there: one attempt's timeout x attempts."""

    name: str
    timeout_h: float
    attempts: int

    @property
    def hours(self) -> float:
        return self.timeout_h * self.attempts


@dataclass(frozen=True, slots=True)
class Phase:
    name: str
    count: int  # how many times it runs
    seconds: float | None  # all of them together; None: no estimate
    source: str


@dataclass(slots=True)
class WholeRun:
    counts: Counts
    phases: list[Phase]
    epochs: float
    text_bytes: float  # training text the run reads
    final_eval_bytes: float
    devices: int
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        known = [p.seconds for p in self.phases]
        return None if any(s is None for s in known) else sum(known)

    def phase(self, name: str) -> Phase:
        return next(p for p in self.phases if p.name == name)

    def render(self, batch: int, per_row: int) -> list[str]:
        c = self.counts
        lines = [f"  samples       {c.positions:,} predicted positions (windows + next token) = "
                 f"~{self.text_bytes / 1e6:,.0f} MB of text ({self.epochs:,.2f} epochs) = {c.steps:,} steps x "
                 f"batch {batch} x {per_row:,} positions; {c.sleeps:,} sleeps, {c.log_lines:,} log lines, "
                 f"{c.evaluations + 1:,} evaluations, {c.generations + 1:,} generations (each count with the "
                 "final one)"]
        for p in self.phases:
            took = "unknown" if p.seconds is None else _duration(p.seconds)
            lines.append(f"  {p.name:<13} {p.count:>6,} x, {took:>9} in all ({p.source})")
        total = self.seconds
        if total is not None:
            lines.append(f"  whole run     {total / 3600:,.2f} h on {self.devices} device(s) = "
                         f"{total * self.devices / 3600:,.2f} device-hours")
        return lines


def _duration(s: float) -> str:
    return f"{s / 3600:,.2f} h" if s >= 3600 else (f"{s / 60:,.1f} min" if s >= 60 else f"{s:,.1f} s")


def _ablatable(family: str) -> tuple[str, ...]:
    from nightshift.models.protocol import LanguageModel

    module = importlib.import_module(f"nightshift.models.{family}")
    for value in vars(module).values():
        if isinstance(value, type) and issubclass(value, LanguageModel) and value is not LanguageModel:
            return tuple(value.ablatable)
    return ()


@dataclass(frozen=True, slots=True)
class Retrieval:
    """Seconds per (query x stored row) of the exact search, where the store lives, and its source."""

    pair_s: float | None
    source: str


def retrieval_for(plan: "Plan") -> Retrieval:
    if plan.memory.store_on == "device":
        return Retrieval(1 / figures.ASSUMED_GPU_PAIRS_PER_S,
                         f"assumed {figures.ASSUMED_GPU_PAIRS_PER_S:.0e} (query x row)/s exact search on the GPU; "
                         "no GPU run recorded")
    rate = figures.HOST_PAIRS_PER_S
    if not rate:
        return Retrieval(None, "no recorded host search rate (benchmarks/giant_rehearsal.py)")
    return Retrieval(1 / rate, f"recorded host search {rate:.2e} (query x row)/s, {figures.REHEARSAL_SOURCE}")


def whole_run(plan: "Plan", *, launcher: Launcher | None = None, disk: float | None = None,
              allow_epochs: bool = False, valid_bytes: float | None = None) -> WholeRun:
    """The phases of `plan`'s run (a cadence_unit="positions" config, or steps: counted the same way)."""
    from nightshift.orchestrator.runs.positions import positions_per_row

    cfg, t = plan.config, plan.config.train
    per_row = positions_per_row(cfg)
    if t.cadence_unit == "positions":
        step_positions = t.batch_size * per_row
        c = counts(t.steps, step_positions, log_every=t.log_every, eval_every=t.eval_every,
                   sample_every=t.sample_every, sleep_every=t.sleep_every)
    else:  # steps cadences: count them in steps (sleep in sequences), positions only reported
        c0 = counts(t.steps, 1, log_every=t.log_every, eval_every=t.eval_every, sample_every=t.sample_every,
                    sleep_every=0)
        sleeps = t.steps * t.batch_size // t.sleep_every if t.sleep_every else 0
        c = Counts(t.steps, t.batch_size * per_row, t.steps * t.batch_size * per_row, sleeps, c0.log_lines,
                   c0.evaluations, c0.generations)
    data = plan.data
    bpt = figures.BYTES_PER_TOKEN.get(data.tokenizer, 4.0)
    text_tokens = plan.samples * plan.seq_tokens
    epochs = text_tokens / max(1, data.train_tokens)
    valid = valid_bytes if valid_bytes is not None else data.valid_tokens * bpt
    final_bytes = min(valid, t.final_eval_max_bytes) if t.final_eval_max_bytes else valid
    periodic_bytes = min(valid, t.eval_max_bytes) if t.eval_max_bytes else valid
    family = cfg.model.family
    holographic = family == "holographic"
    r = retrieval_for(plan) if holographic else Retrieval(None, "")
    train_s = plan.hours * 3600 if plan.hours is not None else None

    def rows_at(positions: float) -> float:
        """Stored episodes after `positions` (held-out rows are never stored; the store caps at its size)."""
        mc = cfg.model.config
        return min(float(mc.max_attractors), positions * (1 - 1 / mc.holdout_every))

    def query_s(rows: float) -> float | None:
        """One prediction: the store scan, plus the per-query cost measured beside it (backoff, mixing)."""
        if not holographic:
            return None
        if r.pair_s is None or figures.QUERY_S is None:
            return None
        return rows * r.pair_s + figures.QUERY_S

    def over(n: int, every: int, cost) -> float | None:  # noqa: ANN001 - cost(rows) -> seconds
        if n == 0:
            return 0.0
        parts = [cost(rows_at(i * every)) for i in range(1, n + 1)]
        return None if any(p is None for p in parts) else sum(parts)

    end_rows = rows_at(c.positions) if holographic else 0.0
    phases = [Phase("train", c.steps, train_s, plan.rate_source)]
    if holographic and figures.OBSERVE_TOKEN_S is not None and figures.OBSERVE_CALL_S is not None:
        row_tokens = plan.seq_tokens - 1
        each = t.batch_size * row_tokens * figures.OBSERVE_TOKEN_S + figures.OBSERVE_CALL_S
        where = "the host CPU's; no GPU run recorded" if plan.device.memory is not None else "this CPU"
        phases[0] = Phase("train", c.steps, c.steps * each,
                          f"{figures.OBSERVE_TOKEN_S * 1e6:.2f} us per row token x {t.batch_size} x {row_tokens:,} "
                          f"+ {figures.OBSERVE_CALL_S * 1e3:.1f} ms per observe call ({where}; "
                          f"{figures.REHEARSAL_SOURCE})")
    if holographic:
        mc = cfg.model.config
        every = t.sleep_every if t.cadence_unit == "positions" else max(1, t.sleep_every * per_row)

        def sleep_cost(rows: float) -> float | None:
            q = query_s(rows)
            if q is None or figures.SLEEP_PAIR_S is None:
                return None
            held = min(mc.holdout_size, rows / max(1, mc.holdout_every - 1))  # held-out windows, never stored
            return (figures.SLEEP_FIXED_S + figures.SLEEP_PAIR_S * mc.episodic_buffer_size ** 2
                    + held * (q + figures.SLEEP_HELD_S))

        phases.append(Phase("sleep", c.sleeps, over(c.sleeps, every, sleep_cost),
                            f"per sleep: buffer^2 clustering + up to {mc.holdout_size:,} held-out windows, each "
                            f"searched over the store and refitted over the vocabulary ({r.source})"))
        queries = periodic_bytes / bpt + SEED_QUERIES
        eval_every = t.eval_every if t.cadence_unit == "positions" else t.eval_every * c.step_positions
        phases.append(Phase("evaluation", c.evaluations,
                            over(c.evaluations, eval_every,
                                 lambda rows: _plus(_times(queries, query_s(rows)), figures.SEED_METRICS_S)),
                            f"{queries:,.0f} queries each (eval_max_bytes={t.eval_max_bytes:,}, + {SEED_QUERIES} of "
                            "the seed metrics) x the store, + the seed metrics' own cost"))
        final_q = final_bytes / bpt + SEED_QUERIES
        final = _times(final_q, query_s(end_rows))  # each ablation: this evaluation again, without seed metrics
        phases.append(Phase("final eval", 1, _plus(final, figures.SEED_METRICS_S),
                            f"{final_q:,.0f} queries ({final_bytes / 1e6:,.1f} MB) x {end_rows:,.0f} rows"))
        parts = _ablatable(family) if t.final_ablations else ()
        # with "memory" off no query scans the store (what is left is the per-query cost); every other part off
        # still scans it: a full final evaluation
        scanless = _times(final_q, query_s(0.0))
        cost = [scanless if part == "memory" else final for part in parts]
        total = None if None in cost else sum(cost)
        phases.append(Phase("ablations", len(parts), total,
                            f"one final evaluation per part off ({', '.join(parts) or 'none'}); with memory off "
                            "no store scan"))
        from nightshift.orchestrator.training.sampling import PROMPTS

        tokens = len(PROMPTS) * t.sample_tokens
        gen_every = t.sample_every if t.cadence_unit == "positions" else t.sample_every * c.step_positions

        def gen_cost(rows: float) -> float | None:
            q = query_s(rows)
            return None if q is None or figures.GENERATE_TOKEN_S is None else tokens * (q + figures.GENERATE_TOKEN_S)

        periodic = over(c.generations, gen_every, gen_cost)
        last = gen_cost(end_rows)
        phases.append(Phase("generation", c.generations + 1,
                            None if periodic is None or last is None else periodic + last,
                            f"{len(PROMPTS)} prompts x {t.sample_tokens} tokens, each a query over the store "
                            "+ the recorded per-token cost"))
    first, later = plan.checkpoint_write_s
    phases.append(Phase("checkpoints", plan.checkpoints, first + later * max(0, plan.checkpoints - 1),
                        "recorded chunked write rate, local disk"))
    run = WholeRun(c, phases, epochs, text_tokens * bpt, final_bytes, max(1, plan.count))
    _judge(run, plan, launcher, disk, allow_epochs, t.cadence_unit == "positions")
    return run


def _times(n: float, each: float | None) -> float | None:
    return None if each is None else n * each


def _plus(seconds: float | None, more: float) -> float | None:
    return None if seconds is None else seconds + more


def _judge(run: WholeRun, plan: "Plan", launcher: Launcher | None, disk: float | None, allow_epochs: bool,
           positions: bool) -> None:
    t = plan.config.train
    if run.epochs > MAX_EPOCHS and not allow_epochs:
        run.problems.append(f"{run.epochs:,.1f} epochs over the same text (more than {MAX_EPOCHS:g}): "
                            "lower --max-samples, raise --max-bytes, or pass --allow-epochs")
    total = run.seconds
    if launcher is not None and total is not None and total / 3600 > launcher.hours:
        run.problems.append(f"the run needs ~{total / 3600:,.1f} h, more than {launcher.name} allows "
                            f"({launcher.timeout_h:g} h x {launcher.attempts} attempts = {launcher.hours:g} h): "
                            "lower --max-samples or use more GPUs")
    if disk is not None and plan.checkpoint_disk > disk:
        run.problems.append(f"checkpoints need {plan.checkpoint_disk / GB:,.1f} GB, more than --disk "
                            f"{disk / GB:,.1f} GB: lower keep_checkpoints (--sets keep_checkpoints=1) or the store")
    final = next((p for p in run.phases if p.name == "final eval"), None)
    train = run.phase("train").seconds
    if final is not None and final.seconds is not None and train is not None and not t.final_eval_max_bytes:
        if final.seconds > max(train, SHORT_FINAL_S):
            fitting = run.final_eval_bytes * max(train, SHORT_FINAL_S) / final.seconds
            mb = max(1, int(fitting / 1e6))
            run.problems.append(f"the final evaluation takes ~{final.seconds / 3600:,.2f} h, longer than the run's "
                                f"training ({train / 3600:,.2f} h): cap it with --final-eval-bytes {mb}MB")
    if positions:
        step = run.counts.step_positions
        for name, every in (("log_every", t.log_every), ("eval_every", t.eval_every),
                            ("sample_every", t.sample_every), ("sleep_every", t.sleep_every)):
            if every and step > every:
                run.warnings.append(f"one step holds {step:,} positions, more than {name}={every:,}: it fires at "
                                    "most once per step, so the run does it fewer times than asked")
