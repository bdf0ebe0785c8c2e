"""Macro-unit family: training and encode throughput on one core, bounded memory, bits per byte.

Run:  .venv/bin/python benchmarks/macro_unit_throughput.py [--mb 40] [--flavor base]

Phase A streams --mb of text (the pg19 train split, topped up with the fineweb
sample when --mb exceeds it) through `observe()` in (32, 2049) byte rows, with
a sleep (MDL consolidation) and a small evaluation every 10 MB, and prints
training MB/s (observe; sleeps timed apart), peak RSS and model memory at each
10 MB mark: flat once the per-order caps bind. Then encode / decode MB/s of
the unit codebook on pg19 text.

Phase B trains the flavor and order-0 / order-2 baselines on the pg19 train
split only and prints bits per byte on the pg19 validation split (each book
scored as [eot] + bytes, full left context), with ratios.

One thread: BLAS/OpenMP pools are set to 1 and the process is pinned to one
CPU before numpy and torch are imported.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ[_var] = "1"
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import math  # noqa: E402
import resource  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
import torch  # noqa: E402

from nightshift.models.macro_unit import FLAVORS  # noqa: E402
from nightshift.models.protocol import SleepContext, Vocab  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MB = 1_000_000
BATCH = 32


def texts(path: Path) -> list[str]:
    return pq.read_table(path, columns=["text"]).column("text").to_pylist()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def batches(data: np.ndarray, row_len: int):
    """(BATCH, row_len) int64 batches made on the fly (a full int64 copy of 40 MB would cost 320 MB RSS)."""
    rows = data[: len(data) // row_len * row_len].reshape(-1, row_len)  # uint8 view
    for i in range(0, len(rows), BATCH):
        yield torch.from_numpy(rows[i : i + BATCH].astype(np.int64))


def bits_per_byte(model, docs: list[bytes]) -> tuple[float, float]:
    nats, n, start = 0.0, 0, time.perf_counter()
    for doc in docs:
        seq = torch.tensor([[model.vocab.eot_id, *doc]], dtype=torch.long)
        nats -= model.score(seq).double().sum().item()
        n += len(doc)
    return nats / math.log(2) / n, n / MB / (time.perf_counter() - start)


def phase_a(config, total_mb: int) -> None:
    stream = "".join(texts(DATA / "pg19" / "train.parquet")).encode()
    source = f"pg19 train ({len(stream) / MB:.1f} MB)"
    if len(stream) < total_mb * MB:
        extra = "\n".join(texts(DATA / "fineweb" / "fineweb_sample10BT_rows.parquet")).encode()
        stream += extra[: total_mb * MB - len(stream)]
        source += " + fineweb sample"
    data = np.frombuffer(stream[: total_mb * MB], dtype=np.uint8)
    val = [t.encode()[:100_000] for t in texts(DATA / "pg19" / "validation.parquet")]
    base_rss = peak_rss_mb()
    model = config.build(Vocab.bytes_vocab())
    print(f"\n== phase A: stream {total_mb} MB of {source}, rows ({BATCH}, {model.train_seq_len + 1}), "
          f"caps {config.max_entries_per_order:,} n-grams/order, order {config.max_order}")
    print(f"{'MB in':>6} {'observe MB/s':>12} {'CPU MB/s':>9} {'sleep s':>8} {'units':>6} {'n-grams':>10} "
          f"{'model MB':>9} {'peak RSS MB':>11} {'bpb(100KB val)':>14}")
    seen = wall = cpu = 0.0
    mark, report = 10, []
    n_batches = -(-(len(data) // (model.train_seq_len + 1)) // BATCH)
    for i, batch in enumerate(batches(data, model.train_seq_len + 1)):
        t0, c0 = time.perf_counter(), time.process_time()
        model.observe(batch)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        seen += batch.numel() / MB
        if seen >= mark or i + 1 == n_batches:
            t0, c0 = time.perf_counter(), time.process_time()
            model._flush()  # count what is buffered, so the mark's speed includes it
            wall += time.perf_counter() - t0
            cpu += time.process_time() - c0
            sleep = model.sleep(SleepContext(step=i))
            bpb, _ = bits_per_byte(model, val)
            report.append((round(seen), seen / wall, seen / cpu, sleep["seconds"], sleep["units"], len(model.counts),
                           model.memory_bytes() / 2**20, peak_rss_mb(), bpb))
            print("{:>6} {:>12.2f} {:>9.2f} {:>8.1f} {:>6.0f} {:>10,} {:>9.0f} {:>11.0f} {:>14.3f}".format(*report[-1]))
            mark += 10
    first, last = report[0], report[-1]
    print(f"training (observe) {last[1]:.2f} MB/s wall, {last[2]:.2f} MB/s CPU  -> goal 1 MB/s: "
          f"x{last[1]:.1f} wall")
    print(f"peak RSS {first[7]:.0f} MB at {first[0]} MB in -> {last[7]:.0f} MB at {last[0]} MB in "
          f"(ratio {last[7] / first[7]:.2f}; {base_rss:.0f} MB of it is the process before the model is built: "
          f"interpreter, torch, pyarrow, the text); model memory {first[6]:.0f} -> {last[6]:.0f} MB")

    book = model.book
    enc_text = stream[: 8 * MB] + b"".join(t.encode() for t in texts(DATA / "pg19" / "validation.parquet"))
    t0, c0 = time.perf_counter(), time.process_time()
    ids = book.encode(enc_text)
    enc_wall, enc_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    back = book.decode(ids)
    dec_wall = time.perf_counter() - t0
    assert back == enc_text
    mb = len(enc_text) / MB
    print(f"encode {mb:.1f} MB with {len(book)} units (mean length "
          f"{np.mean([len(u) for u in book.units]):.2f}): {mb / enc_wall:.2f} MB/s wall, {mb / enc_cpu:.2f} MB/s CPU "
          f"-> goal 5 MB/s: x{mb / enc_wall:.1f}; compression {len(enc_text) / len(ids):.2f} bytes/unit; "
          f"decode {mb / dec_wall:.1f} MB/s; round trip exact")


def phase_b(config) -> None:
    train = np.frombuffer("".join(texts(DATA / "pg19" / "train.parquet")).encode(), dtype=np.uint8)
    val = [t.encode() for t in texts(DATA / "pg19" / "validation.parquet")]
    print(f"\n== phase B: bits per byte on pg19 validation ({sum(map(len, val)) / MB:.2f} MB, 3 books), "
          f"trained on pg19 train ({len(train) / MB:.1f} MB)")
    results = {}
    for name, cfg in (("order-0", dataclasses.replace(config, max_order=0)),
                      ("order-2", dataclasses.replace(config, max_order=2)),
                      (f"order-{config.max_order} (flavor)", config)):
        model = cfg.build(Vocab.bytes_vocab())
        t0 = time.perf_counter()
        for batch in batches(train, model.train_seq_len + 1):
            model.observe(batch)
        model._flush()
        train_s = time.perf_counter() - t0
        bpb, score_mbs = bits_per_byte(model, val)
        results[name] = bpb
        print(f"{name:>22}: bpb {bpb:.4f}   (train {len(train) / MB / train_s:.2f} MB/s, score {score_mbs:.2f} MB/s, "
              f"model {model.memory_bytes() / 2**20:.0f} MB)")
    best = results[f"order-{config.max_order} (flavor)"]
    print(f"ratio flavor / order-0 = {best / results['order-0']:.3f}, flavor / order-2 = "
          f"{best / results['order-2']:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=40, help="MB streamed in phase A")
    parser.add_argument("--flavor", default="base", choices=sorted(FLAVORS))
    parser.add_argument("--skip-bpb", action="store_true", help="phase A only")
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = FLAVORS[args.flavor].model
    print(f"macro_unit:{args.flavor}; 1 thread pinned to CPU {sorted(os.sched_getaffinity(0))}; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs at start")
    phase_a(config, args.mb)
    if not args.skip_bpb:
        phase_b(config)
    print(f"load average {os.getloadavg()[0]:.1f} at end")


if __name__ == "__main__":
    main()
