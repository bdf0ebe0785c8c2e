"""Option A rehearsed end to end: the giant body itself (`giant.local`, what Modal runs) on this CPU, with the
original's flags scaled down by one factor in every count; the plan's estimate beside the measured time,
phase by phase, and the counts beside what the flags ask.

Option A (the giant-run spec): `--max-samples 100000000 --vocab-size 100000 --context-size 4096
--max-attractors 100000000 --noise-std 0.3 --log-every 100000 --deep-log-every 5000000 --generate-every
1000000 --sleep-every 1000000 --episodic-buffer-size 50000 --rem-cycles 3`. Scaled by 1/1000 (the recorded
run): 100,000 samples (predicted positions), 100,000 attractors, log every 100, deep-log every 5,000, generate
every 1,000, sleep every 1,000, buffer 50; context 4096 and rem cycles 3 stay (they are shapes, not counts).
The pg19 sample is ~1 MB, so the rehearsal reads it many times (`--allow-epochs`): it rehearses the counts and
the costs, not what 100 M positions of distinct text would teach.

Calibration first (the same process, same threads): the exact search's (query x row)/s over a store of the
rehearsal's size, the per-query cost beside the scan, the observe cost per row token and per call, the cost
of a generated token, the seed metrics' cost, and a sleep's fixed, buffer^2 and per-held-out-window costs.
These are what the planner records (`holographic_costs` in orchestrator/planning/recorded.json); the
rehearsal then checks the plan built from them against the whole run, measured by the trainer's own compute
meter.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.harness import ROOT, Benchmark, Clock, Context

OPTION_A: dict[str, Any] = {
    "max_samples": 100_000_000, "vocab_size": 100_000, "context_size": 4096, "max_attractors": 100_000_000,
    "noise_std": 0.3, "log_every": 100_000, "deep_log_every": 5_000_000, "generate_every": 1_000_000,
    "sleep_every": 1_000_000, "episodic_buffer_size": 50_000, "rem_cycles": 3,
}
COUNTS = ("max_samples", "max_attractors", "log_every", "deep_log_every", "generate_every", "sleep_every",
          "episodic_buffer_size")
PHASES = {"train": ("step", "data"), "sleep": ("sleep",), "evaluation": ("eval",),
          "final eval": ("final_eval",), "ablations": ("ablation",), "generation": ("samples",),
          "checkpoints": ("checkpoint",)}


def scaled(factor: int) -> dict[str, Any]:
    return {k: (v // factor if k in COUNTS else v) for k, v in OPTION_A.items()}


def load_giant():
    spec = importlib.util.spec_from_file_location("nightshift_giant_app", ROOT / "jobs" / "giant.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------- calibration
def calibrate(ctx: Context, flags: dict[str, Any]) -> dict[str, float]:
    """The planner's holographic costs, measured on a model of the rehearsal's shape (see module docstring)."""
    import pyarrow.parquet as pq

    from nightshift.models.holographic import Config
    from nightshift.models.holographic.store import knn
    from nightshift.models.protocol import SleepContext
    from nightshift.orchestrator.runs.giant import GiantFlags, tokenizer_for
    from nightshift.orchestrator.runs.vocab import vocab_of
    from nightshift.pipelines.tokenizers import load_tokenizer

    DEFAULTS = Config()  # the defaults (holdout size and rate)
    tok = load_tokenizer(tokenizer_for(GiantFlags(**flags)))
    vocab = vocab_of(tok)
    texts = pq.read_table(ctx.shared / "pg19" / "train.parquet", columns=["text"]).column("text").to_pylist()
    ids = torch.tensor([i for t in texts for i in tok.encode_batch([t])[0]])
    C = flags["context_size"]
    row = min(flags[k] for k in ("log_every", "deep_log_every", "generate_every", "sleep_every"))  # as fit_step

    def rows(length: int, n: int, offset: int = 0) -> torch.Tensor:
        starts = [(offset + j * 7919) % (ids.numel() - length) for j in range(n)]
        return torch.stack([ids[s : s + length] for s in starts])

    def build(row_positions: int, buffer: int, holdout_size: int = DEFAULTS.holdout_size):
        return Config(context_size=C, max_attractors=flags["max_attractors"], row_positions=row_positions,
                      episodic_buffer_size=buffer, rem_cycles=flags["rem_cycles"], holdout_size=holdout_size,
                      noise_std=flags["noise_std"]).build(vocab)

    # observe: seconds = call + row tokens x per-token, fitted over three row lengths
    points = []
    for r in (row, 1024, 4096):
        m = build(r, 64)
        batch = rows(C + r, 4)
        m.observe(batch[:1])
        with Clock() as c:
            for i in range(1, 4):
                m.observe(batch[i : i + 1])
        points.append((C - 1 + r, c.wall / 3))
    xs, ys = torch.tensor([p[0] for p in points], dtype=torch.float64), torch.tensor([p[1] for p in points],
                                                                                   dtype=torch.float64)
    slope = float(((xs - xs.mean()) * (ys - ys.mean())).sum() / ((xs - xs.mean()) ** 2).sum())
    call = max(0.0, float(ys.mean()) - slope * float(xs.mean()))
    ctx.log(f"observe: {slope * 1e6:.2f} us per row token + {call * 1e3:.1f} ms per call")

    # a store of the rehearsal's size, from real observe
    r = row
    target = min(flags["max_attractors"], flags["max_samples"])
    held = min(DEFAULTS.holdout_size, target // (DEFAULTS.holdout_every - 1))  # held-out windows at the end
    small = build(r, flags["episodic_buffer_size"])
    fewer = build(r, flags["episodic_buffer_size"], holdout_size=max(8, held // 4))
    i = 0
    while small.memory.store.size < target and i < 100_000:
        batch = rows(C + r, 8, offset=i * 104_729)
        small.observe(batch)
        fewer.observe(batch)
        i += 1
    n_rows = small.memory.store.size
    bank = small.memory.store.view("key")
    q = bank[torch.randperm(n_rows, generator=torch.Generator().manual_seed(0))[:1024]].clone()
    knn(q[:64], bank, small.config.knn_k)
    with Clock() as c:
        knn(q, bank, small.config.knn_k)
    pairs = q.shape[0] * n_rows / c.wall
    ctx.log(f"exact search: {pairs:.3g} (query x row)/s over {n_rows:,} rows")

    # one prediction's cost beside the scan: score rows of validation-like text
    probe = rows(C + 257, 2, offset=17)
    small.ensure_fitted()
    small.score(probe[:1])
    with Clock() as c:
        small.score(probe)
    per_query = c.wall / (probe.shape[0] * (probe.shape[1] - 1))
    query_s = max(0.0, per_query - n_rows / pairs)
    ctx.log(f"score: {per_query * 1e3:.3f} ms per query ({query_s * 1e3:.3f} ms beside the scan)")

    prompt = ids[:64].clone()
    small.generate(prompt, 2)
    with Clock() as c:
        small.generate(prompt, 16)
    token_s = max(0.0, c.wall / 16 - per_query)
    ctx.log(f"generate: {c.wall / 16 * 1e3:.1f} ms per token ({token_s * 1e3:.1f} ms beside one query)")

    # the seed metrics beside their queries' share (SEED_QUERIES predictions, counted with the evaluation's)
    from nightshift.orchestrator.planning.whole_run import SEED_QUERIES

    small.eval_metrics()
    with Clock() as c:
        small.eval_metrics()
    seed_s = max(0.0, c.wall - SEED_QUERIES * per_query)
    ctx.log(f"seed metrics: {c.wall:.2f} s per evaluation ({seed_s:.2f} s beside {SEED_QUERIES} queries)")

    # sleep = fixed + pair x buffer^2 + per held-out window (each held-out window is searched over the store, the
    # scan the plan counts apart, and the mixture refit scores it over the whole vocabulary). The clustering is
    # timed on its own (nrem over store rows, the buffer's columns, at the run's and Option A's buffer); `fewer` saw
    # the same rows with a quarter of the held-out windows, so the two whole sleeps differ in that term alone.
    from nightshift.models.holographic import sleep as dreaming

    def nrem_s(b: int) -> float:
        st = small.memory.store
        args = (st.view("key")[:b], st.view("norm")[:b], st.view("sig")[:b].float(), st.view("target")[:b],
                small.config.prototype_targets, small.layout)
        dreaming.nrem(*args)
        with Clock() as c:
            dreaming.nrem(*args)
        return c.wall

    b1 = small.config.episodic_buffer_size
    b2 = min(n_rows, OPTION_A["episodic_buffer_size"])  # up to Option A's own buffer: no extrapolation there
    pair_s = max(0.0, (nrem_s(b2) - nrem_s(b1)) / (b2 * b2 - b1 * b1))
    rest = []
    for m in (small, fewer):
        h = m.memory.holdout.size
        with Clock() as c:
            m.sleep(SleepContext(step=1, rank=0, world_size=1, optimize=None))
        rest.append((h, c.wall - pair_s * m.memory.buffer.size ** 2))
    (h1, t1), (h2, t2) = rest
    held_s = max(0.0, (t1 - t2) / (h1 - h2) - per_query) if h1 != h2 else 0.0
    fixed = max(0.0, t1 - h1 * (held_s + per_query))
    ctx.log(f"sleep: {fixed:.2f} s + {pair_s * 1e9:.2f} ns x buffer^2 + {held_s * 1e3:.2f} ms per held-out window "
            f"beside its search ({h1:,} and {h2:,} held out)")
    return {"host_pairs_per_s": pairs, "query_s": query_s, "observe_call_s": call, "observe_token_s": slope,
            "generate_token_s": token_s, "sleep_fixed_s": fixed, "sleep_pair_s": pair_s, "sleep_held_s": held_s,
            "seed_metrics_s": seed_s,
            "calibration_rows": float(n_rows)}


# ---------------------------------------------------------------------------------------------- the rehearsal
def plan_with(flags_dict: dict[str, Any], costs: dict[str, float]):
    """The plan of these flags on this CPU with this run's calibration in place of the recorded one."""
    from nightshift.orchestrator.planning import figures
    from nightshift.orchestrator.planning.preflight import plan_giant
    from nightshift.orchestrator.runs.giant import GiantFlags

    saved = {name: getattr(figures, name) for name in figures.COST_NAMES.values()}
    try:
        for key, name in figures.COST_NAMES.items():
            setattr(figures, name, costs.get(key, saved[name]))
        figures.REHEARSAL_SOURCE = "this run's calibration"
        return plan_giant(GiantFlags.from_dict(flags_dict), "CPU", allow_epochs=True)
    finally:
        for name, value in saved.items():
            setattr(figures, name, value)


def counted(tracking_db: Path, run_dir: Path) -> dict[str, int]:
    """What the run did, read back from MLflow (the researcher's view) and the run folder."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{tracking_db}")
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    run = next(r for r in runs if "train/loss" in r.data.metrics or "sleep/count" in r.data.metrics)

    def history(key: str) -> list:
        return client.get_metric_history(run.info.run_id, key)

    samples = sorted((run_dir / "samples").glob("step_*.txt")) if (run_dir / "samples").exists() else []
    protos = history("sleep/prototypes")
    schemas = history("sleep/schemas")
    return {"log_lines": len(history("train/loss")), "evaluations": len(history("val/bpb")),
            "generations": len(samples), "sleeps": len(history("sleep/count")),
            "prototypes": int(protos[-1].value) if protos else 0, "schemas": int(schemas[-1].value) if schemas else 0,
            "seed_metrics": len([k for k in run.data.metrics if k.startswith("seed/")])}


def run(ctx: Context) -> dict[str, Any]:
    import logging
    import os

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # our lines, not MLflow's bars
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    factor = ctx["factor"]
    flags = {**scaled(factor), "context_size": ctx["context_size"], "vocab_size": ctx["vocab_size"],
             "dataset": f"local:{ctx.shared / 'pg19'}", "max_bytes": ctx["max_bytes"],
             "valid_bytes": ctx["valid_bytes"], "sets": [f"sample_tokens={ctx['sample_tokens']}",
                                                         f"eval_max_bytes={ctx['eval_max_bytes']}"]}
    ctx.log(f"Option A / {factor:,}: {json.dumps({k: flags[k] for k in COUNTS})}")
    costs = calibrate(ctx, flags)
    plan = plan_with(flags, costs)
    ctx.log(plan.render())
    giant = load_giant()
    with tempfile.TemporaryDirectory(prefix="rehearsal-", dir=ctx.work) as tmp:  # fresh: never a finished run
        store, db = Path(tmp) / "store", Path(tmp) / "mlflow.db"
        t0 = time.perf_counter()
        result = giant.giant.local(flags, store=str(store), gpus=0, tracking_uri=f"sqlite:///{db}")
        wall = time.perf_counter() - t0
        got = counted(db, Path(result["run_uri"].removeprefix("file://")))
    compute = result["compute"]
    measured = {phase: sum(compute.get(k, 0.0) for k in kinds) for phase, kinds in PHASES.items()}
    c = plan.run.counts
    asked = {"sleeps": c.sleeps, "log_lines": c.log_lines, "evaluations": c.evaluations + 1,
             "generations": c.generations + 1, "positions": c.positions, "steps": c.steps}
    got |= {"positions": result["positions"], "steps": result["step"]}
    phases = {p.name: {"estimate_s": p.seconds, "measured_s": measured.get(p.name), "count": p.count,
                       "ratio": (measured.get(p.name) or 0.0) / p.seconds if p.seconds else None}
              for p in plan.run.phases}
    for name, row in phases.items():
        ctx.log(f"{name:<12} estimate {row['estimate_s'] or 0:8.1f} s  measured {row['measured_s'] or 0:8.1f} s  "
                f"ratio {row['ratio'] or 0:5.2f}")
    ctx.log(f"counts asked {asked}\n       got   {got}")
    return {"factor": factor, "flags": {k: flags[k] for k in (*COUNTS, "context_size", "rem_cycles")},
            "asked": asked, "got": got, "phases": phases, "wall_s": wall, "threads": torch.get_num_threads(),
            "val_bpb": result["val_bpb"], "planner": {"holographic_costs": costs}}


def table(doc: dict[str, Any]) -> str:
    f = doc["figures"]
    lines = [f"Option A scaled by 1/{f['factor']:,} through `giant.local` on {f['threads']} CPU threads, "
             f"{f['wall_s']:,.0f} s in all; val bits/byte {f['val_bpb']:.3f}.", "",
             "| phase | runs | plan estimate (s) | measured (s) | measured / estimate |", "|---|---:|---:|---:|---:|"]
    for name, row in f["phases"].items():
        est = "-" if row["estimate_s"] is None else f"{row['estimate_s']:,.1f}"
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        lines.append(f"| {name} | {row['count']:,} | {est} | {row['measured_s'] or 0:,.1f} | {ratio} |")
    lines += ["", "| count | the flags ask | the run did |", "|---|---:|---:|"]
    for key, value in f["asked"].items():
        lines.append(f"| {key} | {value:,} | {f['got'].get(key, 0):,} |")
    lines.append(f"| prototypes at the end | - | {f['got']['prototypes']:,} |")
    lines.append(f"| schemas at the end | - | {f['got']['schemas']:,} |")
    return "\n".join(lines)


BENCHMARK = Benchmark(
    name="giant_rehearsal",
    summary="Option A scaled down through giant.local: the plan's phase estimates vs measured, counts vs flags",
    run=run,
    # toy (CI: it runs and every count is as asked) also shrinks the shapes; the recorded run keeps Option A's
    toy={"factor": 10_000, "max_bytes": "2MB", "valid_bytes": "100KB", "eval_max_bytes": 10_000,
         "sample_tokens": 4, "context_size": 512, "vocab_size": 256},
    full={"factor": 1_000, "max_bytes": "32MB", "valid_bytes": "600KB", "eval_max_bytes": 100_000,
          "sample_tokens": 64, "context_size": OPTION_A["context_size"], "vocab_size": OPTION_A["vocab_size"]},
    threads=2,
    goal="every phase's estimate within 2x of measured; every count as the flags ask",
    table=table,
)
