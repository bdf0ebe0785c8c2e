"""macro_unit at scale: bits/byte vs size on distinct text, then memory and speed to 300 MB of repeated text.

Phase 1 (distinct text only): the pg19 train split (31.6 MB) then the FineWeb rows in
../shared/data/fineweb, through `observe()` in (32, 2049) byte rows; at 10 MB, 20 MB and at the end
of the distinct text: a sleep (MDL consolidation) and bits per byte on the pg19 validation split
(3 books, full left context). Phase 2 (memory and speed only, never quality): the same distinct
stream repeated until 300 MB, a sleep every 50 MB; RSS, model memory and observe MB/s at each mark,
next to the pre-flight plan's host-memory estimate for the same run (orchestrator/planning/preflight.py).

One thread, pinned to one CPU (as benchmarks/macro_unit_throughput.py).

    flock /tmp/nightshift-bench.lock .venv/bin/python benchmarks/scale_macro_unit.py [--mb 300] [--flavor base]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data"))
OUT = ROOT / "docs" / "scale" / "macro_unit.json"
MB = 1_000_000
BATCH = 32


def texts(path: Path) -> list[str]:
    return pq.read_table(path, columns=["text"]).column("text").to_pylist()


def status_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def bits_per_byte(model, docs: list[bytes]) -> float:
    nats, n = 0.0, 0
    for doc in docs:
        seq = torch.tensor([[model.vocab.eot_id, *doc]], dtype=torch.long)
        nats -= model.score(seq).double().sum().item()
        n += len(doc)
    return nats / math.log(2) / n


def plan_host_mb(flavor: str, total_bytes: int, distinct_bytes: int, row: int) -> float:
    from nightshift.orchestrator.planning.preflight import data_from_bytes, plan_run
    from nightshift.orchestrator.runs.config import build_run_config

    steps = math.ceil(total_bytes / (BATCH * row))
    config = build_run_config("x" * 16, f"macro_unit:{flavor}", {"batch_size": str(BATCH)}, steps=steps)
    plan = plan_run(config, "CPU", data_from_bytes("bytes", distinct_bytes, 10**6))
    return plan.host_need / 2**20


def main() -> None:
    from nightshift.models.macro_unit import FLAVORS
    from nightshift.models.protocol import SleepContext, Vocab

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=300)
    parser.add_argument("--flavor", default="base", choices=sorted(FLAVORS))
    parser.add_argument("--replan", action="store_true",
                        help="only recompute the plan column of the recorded JSON with the current plan code")
    args = parser.parse_args()
    if args.replan:
        res = json.loads(OUT.read_text())
        for entry in res["memory"]:
            entry["plan_host_mb"] = plan_host_mb(res["flavor"], int(entry["mb"] * MB), int(res["distinct_mb"] * MB),
                                                 FLAVORS[res["flavor"]].model.train_seq_len + 1)
            print(f"{entry['mb']:6.1f} MB: peak RSS {entry['peak_rss_mb']:.0f} MB, plan {entry['plan_host_mb']:.0f} MB "
                  f"({entry['plan_host_mb'] / entry['peak_rss_mb']:.2f})")
        OUT.write_text(json.dumps(res, indent=2))
        return
    distinct = "".join(texts(DATA / "pg19" / "train.parquet")).encode()
    pg19_mb = len(distinct) / MB
    for name in sorted((DATA / "fineweb").glob("*.parquet")):
        distinct += "\n".join(texts(name)).encode()
    val = [t.encode() for t in texts(DATA / "pg19" / "validation.parquet")]
    config = FLAVORS[args.flavor].model
    model = config.build(Vocab.bytes_vocab())
    row = model.train_seq_len + 1
    rss_before = status_mb("VmRSS")
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "flavor": args.flavor, "load_start": os.getloadavg(),
                 "distinct_mb": len(distinct) / MB, "pg19_mb": pg19_mb, "rss_before_model_mb": rss_before,
                 "quality": [], "memory": []}
    print(f"distinct text {len(distinct) / MB:.1f} MB (pg19 train {pg19_mb:.1f} + fineweb rows); load "
          f"{os.getloadavg()[0]:.1f}")
    data = np.frombuffer(distinct, dtype=np.uint8)
    rows_per_pass = len(data) // row
    rows = data[: rows_per_pass * row].reshape(-1, row)  # (R, row) uint8 view; int64 copies made per batch
    seen = wall = cpu = 0.0
    quality_marks = [10, 20, len(distinct) / MB]
    memory_marks = [m for m in (40, 100, 150, 200, 250, 300) if m <= args.mb]
    i = 0
    while seen < args.mb:
        r = i % rows_per_pass
        batch = torch.from_numpy(rows[r:r + BATCH].astype(np.int64))  # (<=B, row)
        i += batch.shape[0]
        t0, c0 = time.perf_counter(), time.process_time()
        model.observe(batch)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        seen += batch.numel() / MB
        if quality_marks and seen >= quality_marks[0] - 1e-9:
            quality_marks.pop(0)
            model._flush()
            sleep = model.sleep(SleepContext(step=i))
            bpb = bits_per_byte(model, val)
            res["quality"].append({"mb": seen, "bpb": bpb, "units": sleep.get("units"),
                                   "model_mb": model.memory_bytes() / 2**20})
            print(f"distinct {seen:6.1f} MB: bpb {bpb:.4f}, units {sleep.get('units')}, "
                  f"model {model.memory_bytes() / 2**20:.0f} MB")
        if memory_marks and seen >= memory_marks[0]:
            memory_marks.pop(0)
            t0, c0 = time.perf_counter(), time.process_time()
            model._flush()
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            s0 = time.perf_counter()
            if round(seen) % 50 == 0 or seen >= args.mb:
                model.sleep(SleepContext(step=i))
            entry = {"mb": seen, "observe_mb_s": seen / wall, "observe_mb_cpu_s": seen / cpu,
                     "sleep_s": time.perf_counter() - s0, "model_mb": model.memory_bytes() / 2**20,
                     "rss_mb": status_mb("VmRSS"), "peak_rss_mb": status_mb("VmHWM"),
                     "plan_host_mb": plan_host_mb(args.flavor, int(seen * MB), len(distinct), row),
                     "load": os.getloadavg()[0]}
            res["memory"].append(entry)
            print(f"{seen:6.1f} MB in: observe {entry['observe_mb_s']:.2f} MB/s ({entry['observe_mb_cpu_s']:.2f} "
                  f"CPU), model {entry['model_mb']:.0f} MB, RSS {entry['rss_mb']:.0f} MB (peak "
                  f"{entry['peak_rss_mb']:.0f}), plan says {entry['plan_host_mb']:.0f} MB; load {entry['load']:.1f}")
    res["load_end"] = os.getloadavg()
    first, last = res["memory"][0], res["memory"][-1]
    print(f"peak RSS {first['peak_rss_mb']:.0f} MB at {first['mb']:.0f} MB -> {last['peak_rss_mb']:.0f} MB at "
          f"{last['mb']:.0f} MB (x{last['peak_rss_mb'] / first['peak_rss_mb']:.2f}); plan / measured peak at the end "
          f"{last['plan_host_mb'] / last['peak_rss_mb']:.2f}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(res, indent=2))


if __name__ == "__main__":
    main()
