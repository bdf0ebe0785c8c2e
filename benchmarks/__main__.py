"""`python -m benchmarks list | run NAME | smoke | tables`: the suite's one entry point.

    python -m benchmarks list                          # every benchmark, its summary and goal
    python -m benchmarks run holographic_throughput    # the full (recorded) size; --size toy for seconds
    python -m benchmarks run attractor_throughput --set reps=20 --record   # becomes benchmarks/results/...
    python -m benchmarks smoke [--jobs 2]              # every benchmark at toy size (CI runs this)
    python -m benchmarks tables [--check]              # RESULTS.md tables and the planner's figures, from results/
    python -m benchmarks plots                         # docs/scale/*.png from the recorded scale results

A run prints its result JSON on stdout (progress on stderr) and writes it to
--out (default .nightshift/benchmarks/NAME-SIZE.json); --record also writes
benchmarks/results/NAME.json, the recorded figure every table reads.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from benchmarks.harness import RESULTS, ROOT, SIZES, prepare_environment
from benchmarks.suite import SUITE


def _sets(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep:
            raise SystemExit(f"benchmarks: --set {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", help="every benchmark with its summary")
    run = sub.add_parser("run", help="run one benchmark")
    run.add_argument("name", choices=sorted(SUITE))
    run.add_argument("--size", choices=SIZES, default="full")
    run.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a parameter")
    run.add_argument("--out", type=Path, default=None, help="result JSON (default .nightshift/benchmarks/)")
    run.add_argument("--record", action="store_true", help="also write benchmarks/results/NAME.json")
    smoke = sub.add_parser("smoke", help="every benchmark at toy size")
    smoke.add_argument("--only", default="", help="comma-separated names")
    smoke.add_argument("--jobs", type=int, default=1, help="benchmarks run at once (each pins its own threads)")
    smoke.add_argument("--out", type=Path, default=ROOT / ".nightshift" / "benchmarks" / "smoke")
    tables = sub.add_parser("tables", help="rewrite RESULTS.md tables and the planner's figures from results/")
    tables.add_argument("--check", action="store_true", help="exit 1 if either is out of date (CI)")
    plots = sub.add_parser("plots", help="draw docs/scale/*.png from the recorded scale results")
    plots.add_argument("--out", type=Path, default=ROOT / "docs" / "scale")
    child = sub.add_parser("child")  # a benchmark's function in a fresh process (Context.child)
    child.add_argument("name")
    child.add_argument("function")
    child.add_argument("kwargs")
    args = parser.parse_args(argv)

    if args.command == "list":
        from benchmarks.suite import load

        for name in SUITE:
            bench = load(name)
            print(f"{name:<26} {bench.summary}" + (f"\n{'':<26} goal: {bench.goal}" if bench.goal else ""))
        return 0
    if args.command == "tables":
        from benchmarks.render import render_all

        stale = render_all(check=args.check)
        for path in stale:
            print(f"{'out of date' if args.check else 'rewrote'}: {path.relative_to(ROOT)}")
        return 1 if args.check and stale else 0
    if args.command == "plots":
        from benchmarks.scale_plots import plot_all

        for path in plot_all(RESULTS, args.out):
            print(f"drew {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        return 0
    if args.command == "child":
        import importlib

        prepare_environment(SUITE.get(args.name, 1))
        import torch

        torch.set_num_threads(SUITE.get(args.name, 1))  # as in the parent's run
        module = importlib.import_module(f"benchmarks.{args.name}")
        print(json.dumps(getattr(module, args.function)(**json.loads(args.kwargs)), default=str))
        return 0

    from benchmarks.harness import execute, write_json
    from benchmarks.suite import load

    if args.command == "run":
        prepare_environment(SUITE[args.name])  # before torch loads
        bench = load(args.name)
        work = ROOT / ".nightshift" / "benchmarks" / "work" / args.name
        doc = execute(bench, args.size, _sets(args.set), work)
        write_json(args.out or ROOT / ".nightshift" / "benchmarks" / f"{args.name}-{args.size}.json", doc)
        if args.record:
            write_json(RESULTS / f"{args.name}.json", doc)
        print(json.dumps(doc, indent=2, sort_keys=True, default=str))
        return 0

    names = [n for n in args.only.split(",") if n] or list(SUITE)
    unknown = sorted(set(names) - set(SUITE))
    if unknown:
        raise SystemExit(f"benchmarks: unknown benchmark {', '.join(unknown)}; see `python -m benchmarks list`")
    if args.jobs < 1:
        raise SystemExit(f"benchmarks: --jobs {args.jobs}: must be >= 1")
    from concurrent.futures import ThreadPoolExecutor

    def one(name: str) -> tuple[str, int, float]:
        t0 = time.perf_counter()
        return name, _run_child_process(name, args.out / f"{name}.json"), time.perf_counter() - t0

    failed = []
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # each benchmark is its own process
        for name, code, seconds in pool.map(one, names):
            status = "ok" if code == 0 else f"FAILED (exit {code})"
            print(f"{name:<26} {status:<18} {seconds:6.1f} s", flush=True)
            if code != 0:
                failed.append(name)
    print(f"smoke: {len(names) - len(failed)} of {len(names)} benchmarks ran at toy size")
    return 1 if failed else 0


def _run_child_process(name: str, out: Path) -> int:
    import subprocess

    log = out.with_suffix(".log")
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "benchmarks", "run", name, "--size", "toy", "--out", str(out)],
                              cwd=ROOT, stdout=subprocess.DEVNULL, stderr=fh)
    if proc.returncode != 0:
        print(log.read_text()[-3000:], file=sys.stderr)
    return proc.returncode


if __name__ == "__main__":
    sys.exit(main())
