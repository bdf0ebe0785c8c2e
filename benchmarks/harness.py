"""What every benchmark shares: environment, thread pinning, data paths, timing, and one result JSON per run.

A benchmark is a module of this package exposing `BENCHMARK = Benchmark(...)`:
its `run(ctx)` measures and returns figures (plain JSON); `toy` and `full`
are the parameters of the CI-sized run and of the recorded one. The harness
(`python -m benchmarks run NAME`) pins threads before torch loads, points
tokenizers and datasets at the offline samples, gives the run a scratch
folder, and writes `{benchmark, size, params, figures, machine, seconds,
notes}` to one JSON file; `--record` also makes it the recorded result
(`benchmarks/results/NAME.json`) that RESULTS.md tables and the planner read.

Progress goes to stderr (`ctx.log`), so stdout stays one JSON document.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()
RESULTS = ROOT / "benchmarks" / "results"
SIZES = ("toy", "full")
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS")


def prepare_environment(threads: int) -> None:
    """Before torch loads: `threads` OpenMP/BLAS threads that wait passively (idle spinning threads make
    small ops ~100x slower on a busy 2-core box), and offline tokenizer and hub settings."""
    for var in THREAD_VARS:
        os.environ[var] = str(threads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("TIKTOKEN_CACHE_DIR", str(SHARED / "tokenizers" / "tiktoken_cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
    os.environ.setdefault("NIGHTSHIFT_SHARED_DATA", str(SHARED))


@dataclass(frozen=True, slots=True)
class Benchmark:
    name: str
    summary: str  # one line: what is measured, against what
    run: Callable[["Context"], dict[str, Any]]
    toy: Mapping[str, Any] = field(default_factory=dict)  # parameters of the CI smoke run (seconds)
    full: Mapping[str, Any] = field(default_factory=dict)  # parameters of the recorded run
    threads: int = 1  # torch / OpenMP threads the harness pins
    goal: str = ""  # what the figures are held to, where an issue set a goal
    # The recorded result as markdown for RESULTS.md (default: its scalar figures, flattened).
    table: Callable[[dict[str, Any]], str] | None = None


@dataclass(slots=True)
class Context:
    """What a benchmark run gets: its size, parameters, scratch folder and a log for people."""

    benchmark: Benchmark
    size: str
    params: dict[str, Any]
    work: Path
    notes: list[str] = field(default_factory=list)

    @property
    def toy(self) -> bool:
        return self.size == "toy"

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def log(self, message: str) -> None:
        print(f"[{self.benchmark.name}] {message}", file=sys.stderr, flush=True)

    def note(self, message: str) -> None:
        """A caveat recorded with the figures (e.g. a comparison skipped because its original is absent)."""
        self.notes.append(message)
        self.log(f"note: {message}")

    @property
    def shared(self) -> Path:
        if not SHARED.is_dir():
            raise SystemExit(f"benchmarks need the data samples at {SHARED} (../shared/data beside the checkout, "
                             "or $NIGHTSHIFT_SHARED_DATA)")
        return SHARED

    def child(self, function: str, **kwargs: Any) -> dict[str, Any]:
        """`function(**kwargs)` of this benchmark's module in a fresh process (peak RSS, a clean heap,
        compile caches); returns its JSON result."""
        cmd = [sys.executable, "-m", "benchmarks", "child", self.benchmark.name, function, json.dumps(kwargs)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=os.environ.copy())
        if proc.returncode != 0:
            raise RuntimeError(f"{self.benchmark.name}.{function} child failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------ timing
class Clock:
    """`with Clock() as c:` -> c.wall, c.cpu seconds of the block (this process)."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self.wall
        self.cpu = time.process_time() - self.cpu


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def status_bytes(field_name: str) -> int:
    """VmRSS (current) or VmHWM (peak) of this process, in bytes (0 where /proc is absent)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------------------------ results
def machine() -> dict[str, Any]:
    """Where a figure was measured: enough to tell two machines (and two loads) apart."""
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    except (ValueError, OSError):
        mem_gb = None
    import torch

    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"cpu": cpu, "logical_cpus": os.cpu_count(), "memory_gb": round(mem_gb, 1) if mem_gb else None,
            "gpu": cuda, "platform": platform.platform(), "python": platform.python_version(),
            "torch": torch.__version__, "load_1m": round(os.getloadavg()[0], 2), "commit": git_commit()}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


def params_for(bench: Benchmark, size: str, sets: Mapping[str, Any]) -> dict[str, Any]:
    base = dict(bench.toy if size == "toy" else bench.full)
    unknown = sorted(set(sets) - set(bench.full) - set(bench.toy))
    if unknown:
        accepted = ", ".join(sorted(set(bench.full) | set(bench.toy))) or "none"
        raise SystemExit(f"benchmarks: {bench.name} has no parameter {', '.join(unknown)}; accepted: {accepted}")
    return base | dict(sets)


def execute(bench: Benchmark, size: str, sets: Mapping[str, Any], work: Path) -> dict[str, Any]:
    """Run one benchmark; the result document (the caller writes it)."""
    import torch

    torch.set_num_threads(bench.threads)
    work.mkdir(parents=True, exist_ok=True)
    ctx = Context(bench, size, params_for(bench, size, sets), work)
    before = machine()
    ctx.log(f"{size} run, {bench.threads} thread(s), load {before['load_1m']}: {bench.summary}")
    t0 = time.perf_counter()
    figures = bench.run(ctx)
    seconds = time.perf_counter() - t0
    after_load = round(os.getloadavg()[0], 2)
    command = f"python -m benchmarks run {bench.name}" + ("" if size == "full" else " --size toy") + "".join(
        f" --set {k}={v}" for k, v in sets.items())
    return {"benchmark": bench.name, "summary": bench.summary, "goal": bench.goal, "size": size,
            "params": ctx.params, "figures": figures, "notes": ctx.notes, "seconds": round(seconds, 2),
            "machine": before | {"load_1m_end": after_load}, "command": command,
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def write_json(path: Path, doc: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(doc, indent=2, sort_keys=True, default=_plain) + "\n")
    tmp.replace(path)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, (set, tuple)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON: {type(value).__name__}")


def recorded(name: str) -> dict[str, Any] | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None
