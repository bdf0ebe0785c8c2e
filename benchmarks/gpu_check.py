"""Run the GPU check's sections (benchmarks/gpu_sections.py), each in its own process with a timeout.

    python -m benchmarks.gpu_check --out DIR              # on a CUDA machine (gpu_check.sh calls this)
    python -m benchmarks.gpu_check --smoke --out DIR      # tiny versions on the CPU (what the tests run)
    python -m benchmarks.gpu_check --only ddp_nccl,ray_gpu --out DIR
    python -m benchmarks run gpu_check [--size toy]       # the same check in the suite (toy: --smoke)

(from the checkout's root: `benchmarks` is a folder of the checkout, not of the installed package)

The correctness sections (every family through `nightshift train`, NCCL DDP, Ray,
Modal) run side by side first; the throughput sections then run one at a time
with the GPU to themselves. A section that fails or times out is reported and
the others still run. Writes DIR/gpu_check.json (machine, then each section's
status, seconds and figures), DIR/logs/<section>.log, and prints a table.
Exit status: 0 when every section passed, 1 otherwise.

In the suite (`BENCHMARK`, benchmark `gpu_check`) the toy run is the CPU smoke mode (of four sections
unless `only` says otherwise) and the full run the GPU check (without CUDA it says so in one line and
returns); the report is its figures, DIR is under the run's scratch folder.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.harness import ROOT, Benchmark, Context

PARALLEL = ("train:transformer", "train:attractor", "train:holographic", "train:macro_unit", "ddp_nccl",
            "ray_gpu", "modal_local")
SERIAL = ("bench:transformer", "bench:holographic", "bench:attractor")
TIMEOUTS = {"parallel": 200.0, "bench:transformer": 140.0, "bench:holographic": 80.0, "bench:attractor": 120.0}
BUDGET_S = 470.0  # the whole check, data included: under 8 minutes on one GPU
LOG_TAIL = 20_000  # characters of each section's log kept under DIR/logs


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                            "torch_cuda": torch.version.cuda, "cuda_available": torch.cuda.is_available(),
                            "host": platform.node(), "date": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    if torch.cuda.is_available():
        info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        try:
            info["driver"] = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                            capture_output=True, text=True, timeout=30).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            info["driver"] = None
    return info


def start(name: str, work: Path, seed_store: Path, dataset_id: str, smoke: bool, logs: Path) -> tuple:
    """A section in its own process group (so a timeout kills Ray and DDP children too)."""
    result = work / f"{name.replace(':', '_')}.json"
    cmd = [sys.executable, "-m", "benchmarks.gpu_check", "--section", name, "--work", str(work),
           "--seed-store", str(seed_store), "--dataset-id", dataset_id, "--result", str(result)]
    if smoke:
        cmd.append("--smoke")
    log = open(logs / f"{name.replace(':', '_')}.log", "w")  # noqa: SIM115 - closed in finish()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2"),
           "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}  # no spinning next to 6 neighbours
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return proc, log, result, time.perf_counter()


def finish(name: str, running: tuple, timeout: float) -> dict[str, Any]:
    proc, log, result, t0 = running
    try:
        code = proc.wait(timeout=max(1.0, timeout))
        status = "ok" if code == 0 else f"failed (exit {code})"
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        status = f"timeout ({timeout:.0f} s)"
    log.close()
    entry: dict[str, Any] = {"status": status, "seconds": round(time.perf_counter() - t0, 1)}
    if result.exists():
        entry.update(json.loads(result.read_text()))
    log_path = Path(log.name)
    text = log_path.read_text(errors="replace")
    log_path.write_text(text[-LOG_TAIL:])
    if status != "ok" and "error" not in entry:
        entry["error"] = text[-1500:]
    return entry


def _sections():
    from benchmarks import gpu_sections

    return gpu_sections


def check(out: Path, smoke: bool, only: set[str] | None) -> dict[str, Any]:
    sections = _sections()
    slack = 4.0 if smoke else 1.0  # a CPU smoke run on a small, busy machine is slow; only the GPU run has a budget
    deadline = time.perf_counter() + BUDGET_S * slack
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"machine": machine(), "mode": "cpu-smoke" if smoke else "gpu", "sections": {}}
    with tempfile.TemporaryDirectory(prefix="nightshift-gpu-check-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        seed_store, dataset_id = sections.prepare_seed_store(work, smoke)
        report["data_seconds"] = round(time.perf_counter() - t0, 1)
        wanted = [n for n in PARALLEL if only is None or n in only]
        running = {}
        for name in wanted:
            (work / name.replace(":", "_")).mkdir()
            running[name] = start(name, work / name.replace(":", "_"), seed_store, dataset_id, smoke, logs)
        phase_end = min(deadline, time.perf_counter() + TIMEOUTS["parallel"] * slack)
        for name in wanted:
            report["sections"][name] = finish(name, running[name], phase_end - time.perf_counter())
        for name in (n for n in SERIAL if only is None or n in only):
            (work / name.replace(":", "_")).mkdir()
            timeout = min(TIMEOUTS[name] * slack, deadline - time.perf_counter())
            if timeout < 5:
                report["sections"][name] = {"status": "skipped (time budget spent)", "seconds": 0.0}
                continue
            proc = start(name, work / name.replace(":", "_"), seed_store, dataset_id, smoke, logs)
            report["sections"][name] = finish(name, proc, timeout)
    report["all_ok"] = all(s["status"] == "ok" for s in report["sections"].values())
    (out / "gpu_check.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str))
    return report


def table(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [f"gpu_check ({report['mode']}): {', '.join(m.get('gpus') or ['no GPU'])}; torch {m['torch']} "
             f"(CUDA {m['torch_cuda']}), driver {m.get('driver')}, python {m['python']}",
             f"{'section':<20} {'status':<22} {'seconds':>8}  figures"]
    for name, entry in report["sections"].items():
        figures = {k: v for k, v in entry.items() if k not in ("status", "seconds", "error")}
        shown = ", ".join(f"{k}={_fmt(v)}" for k, v in figures.items())
        lines.append(f"{name:<20} {entry['status']:<22} {entry['seconds']:>8.1f}  {shown}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1e4 else f"{v:,.0f}"
    text = str(v).replace("\n", " ")
    return text if len(text) <= 100 else text[:97] + "..."


def run_section(args: argparse.Namespace) -> int:
    """Child process: one section; its figures (or its error) go to --result as JSON."""
    sections = _sections()
    ctx = sections.Ctx(work=Path(args.work), seed_store=Path(args.seed_store), dataset_id=args.dataset_id,
                       smoke=args.smoke)
    try:
        figures = sections.SECTIONS[args.section](ctx)
    except BaseException as exc:  # noqa: BLE001 - reported, then a non-zero exit
        traceback.print_exc()
        Path(args.result).write_text(json.dumps({"error": f"{type(exc).__name__}: {exc}"[-1500:]}))
        return 1
    Path(args.result).write_text(json.dumps(figures, default=str))
    failed = sorted(k for k in figures if k.endswith(".error"))
    if failed:
        print(f"failed measurements: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


def no_cuda() -> str | None:
    """The one line the check says on a machine without CUDA (None where torch sees a CUDA device)."""
    import torch

    if torch.cuda.is_available():
        return None
    return (f"gpu_check: no CUDA device visible to torch {torch.__version__} (CUDA build: {torch.version.cuda}); "
            "nothing to check")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("OUT") or str(ROOT / "gpu_check_out"))
    parser.add_argument("--smoke", action="store_true", help="tiny versions on the CPU (tests)")
    parser.add_argument("--only", default=None, help="comma-separated sections (default: all)")
    parser.add_argument("--section", default=None, help=argparse.SUPPRESS)
    for hidden in ("--work", "--seed-store", "--dataset-id", "--result"):
        parser.add_argument(hidden, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.section:
        return run_section(args)
    if not args.smoke and (line := no_cuda()):
        print(line)
        return 0
    only = set(args.only.split(",")) if args.only else None
    unknown = sorted((only or set()) - set(PARALLEL) - set(SERIAL))
    if unknown:
        parser.error(f"unknown section(s) {', '.join(unknown)}; known: {', '.join(PARALLEL + SERIAL)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = check(out, args.smoke, only)
    print(table(report))
    print(f"figures: {out / 'gpu_check.json'}")
    return 0 if report["all_ok"] else 1


def run(ctx: Context) -> dict[str, Any]:
    """The suite's entry: the CPU smoke mode at toy size, the GPU check at full size (where CUDA is)."""
    if not ctx.toy and (line := no_cuda()):
        ctx.note("no CUDA device: the GPU check needs one; nothing was checked")
        return {"mode": "gpu", "result": line}
    only = set(ctx["only"]) if ctx["only"] else None
    unknown = sorted((only or set()) - set(PARALLEL) - set(SERIAL))
    if unknown:
        raise SystemExit(f"gpu_check: unknown section(s) {', '.join(unknown)}; known: {', '.join(PARALLEL + SERIAL)}")
    out = ctx.work / "gpu_check_out"
    out.mkdir(parents=True, exist_ok=True)
    report = check(out, ctx.toy, only)
    for line in table(report).splitlines():
        ctx.log(line)
    ctx.log(f"figures: {out / 'gpu_check.json'} (logs in {out / 'logs'})")
    if not report["all_ok"]:
        failed = [n for n, s in report["sections"].items() if s["status"] != "ok"]
        raise RuntimeError(f"gpu_check: section(s) {', '.join(failed)} failed; see {out / 'logs'}")
    return report


BENCHMARK = Benchmark(
    name="gpu_check",
    summary="every GPU path on one CUDA machine (each family through `nightshift train`, NCCL DDP, Ray, Modal) "
            "and GPU throughput; toy: the same sections, tiny, on the CPU",
    run=run,
    threads=2,
    full={"only": None},  # every section
    # toy: the driver through the suite with one section (tests/backends/test_gpu_check.py runs six of them);
    # `--set only=null`: every section's CPU smoke (~2 min on 2 cores)
    toy={"only": ["bench:attractor"]},
    goal="every section passes within 8 minutes on one GPU",
)


if __name__ == "__main__":  # gpu_check.sh drives this CLI (python -m benchmarks.gpu_check)
    sys.exit(main())
