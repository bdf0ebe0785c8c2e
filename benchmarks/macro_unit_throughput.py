"""Macro-unit family: training and encode throughput on one core, bounded memory, bits per byte.

Run:  python -m benchmarks run macro_unit_throughput [--set mb=40 --set flavor=base]

Phase A streams `mb` MB of text (the pg19 train split, topped up with the fineweb
sample when `mb` exceeds it) through `observe()` in (32, 2049) byte rows, with
a sleep (MDL consolidation) and a small evaluation every 10 MB, and reports
training MB/s (observe; sleeps timed apart), peak RSS and model memory at each
10 MB mark: flat once the per-order caps bind. Then encode / decode MB/s of
the unit codebook on pg19 text.

Phase B (skipped with skip_bpb=true) trains the flavor and order-0 / order-2
baselines on the pg19 train split only and reports bits per byte on the pg19
validation split (each book scored as [eot] + bytes, full left context), with ratios.

One thread (the harness pins BLAS/OpenMP pools to 1 before numpy and torch load).
The planner's macro_unit observe rate is this benchmark's recorded figure: bytes per
CPU-second of the one core (goal: training >= 1 MB/s, encode >= 5 MB/s).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch

from benchmarks.harness import SHARED, Benchmark, Context, peak_rss_mb
from nightshift.models.macro_unit import FLAVORS
from nightshift.models.protocol import SleepContext, Vocab

MB = 1_000_000
BATCH = 32


def texts(path: Path) -> list[str]:
    return pq.read_table(path, columns=["text"]).column("text").to_pylist()


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


def phase_a(ctx: Context, config, total_mb: float) -> dict:
    val_cut, encode_mb = ctx["mark_val_bytes"], ctx["encode_mb"]
    stream = "".join(texts(SHARED / "pg19" / "train.parquet")).encode()
    source = f"pg19 train ({len(stream) / MB:.1f} MB)"
    if len(stream) < total_mb * MB:
        extra = "\n".join(texts(SHARED / "fineweb" / "fineweb_sample10BT_rows.parquet")).encode()
        stream += extra[: int(total_mb * MB) - len(stream)]
        source += " + fineweb sample"
    data = np.frombuffer(stream[: int(total_mb * MB)], dtype=np.uint8)
    val = [t.encode()[:val_cut] for t in texts(SHARED / "pg19" / "validation.parquet")]
    base_rss = peak_rss_mb()
    model = config.build(Vocab.bytes_vocab())
    ctx.log(f"== phase A: stream {total_mb} MB of {source}, rows ({BATCH}, {model.train_seq_len + 1}), "
            f"caps {config.max_entries_per_order:,} n-grams/order, order {config.max_order}")
    ctx.log(f"{'MB in':>6} {'observe MB/s':>12} {'CPU MB/s':>9} {'sleep s':>8} {'units':>6} {'n-grams':>10} "
            f"{'model MB':>9} {'peak RSS MB':>11} {'bpb(val)':>14}")
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
            ctx.log("{:>6} {:>12.2f} {:>9.2f} {:>8.1f} {:>6.0f} {:>10,} {:>9.0f} {:>11.0f} {:>14.3f}".format(
                *report[-1]))
            mark += 10
    first, last = report[0], report[-1]
    ctx.log(f"training (observe) {last[1]:.2f} MB/s wall, {last[2]:.2f} MB/s CPU  -> goal 1 MB/s: "
            f"x{last[1]:.1f} wall")
    ctx.log(f"peak RSS {first[7]:.0f} MB at {first[0]} MB in -> {last[7]:.0f} MB at {last[0]} MB in "
            f"(ratio {last[7] / first[7]:.2f}; {base_rss:.0f} MB of it is the process before the model is built: "
            f"interpreter, torch, pyarrow, the text); model memory {first[6]:.0f} -> {last[6]:.0f} MB")
    keys = ("mb_in", "observe_mb_s", "observe_mb_cpu_s", "sleep_s", "units", "ngrams", "model_mb", "peak_rss_mb",
            "bpb_val")
    out: dict = {"source": source, "streamed_mb": len(data) / MB, "mark_val_bytes_per_book": val_cut,
                 "marks": [dict(zip(keys, r, strict=True)) for r in report],
                 "observe_mb_s": last[1], "observe_mb_cpu_s": last[2], "rss_before_model_mb": base_rss,
                 "peak_rss_ratio": last[7] / first[7]}

    book = model.book
    enc_text = stream[: int(encode_mb * MB)] + b"".join(
        t.encode() for t in texts(SHARED / "pg19" / "validation.parquet"))
    t0, c0 = time.perf_counter(), time.process_time()
    ids = book.encode(enc_text)
    enc_wall, enc_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0 = time.perf_counter()
    back = book.decode(ids)
    dec_wall = time.perf_counter() - t0
    assert back == enc_text
    mb = len(enc_text) / MB
    mean_len = float(np.mean([len(u) for u in book.units]))
    ctx.log(f"encode {mb:.1f} MB with {len(book)} units (mean length "
            f"{mean_len:.2f}): {mb / enc_wall:.2f} MB/s wall, {mb / enc_cpu:.2f} MB/s CPU "
            f"-> goal 5 MB/s: x{mb / enc_wall:.1f}; compression {len(enc_text) / len(ids):.2f} bytes/unit; "
            f"decode {mb / dec_wall:.1f} MB/s; round trip exact")
    out["encode"] = {"mb": mb, "units": len(book), "mean_unit_len": mean_len, "encode_mb_s": mb / enc_wall,
                     "encode_mb_cpu_s": mb / enc_cpu, "bytes_per_unit": len(enc_text) / len(ids),
                     "decode_mb_s": mb / dec_wall, "round_trip_exact": True}
    return out


def phase_b(ctx: Context, config) -> dict:
    train_text = "".join(texts(SHARED / "pg19" / "train.parquet")).encode()
    if ctx["bpb_train_mb"] is not None:
        train_text = train_text[: int(ctx["bpb_train_mb"] * MB)]
    train = np.frombuffer(train_text, dtype=np.uint8)
    val = [t.encode()[: ctx["bpb_val_bytes"]] for t in texts(SHARED / "pg19" / "validation.parquet")]
    ctx.log(f"== phase B: bits per byte on pg19 validation ({sum(map(len, val)) / MB:.2f} MB, {len(val)} books), "
            f"trained on pg19 train ({len(train) / MB:.1f} MB)")
    results, rows = {}, {}
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
        rows[name] = {"bpb": bpb, "train_mb_s": len(train) / MB / train_s, "score_mb_s": score_mbs,
                      "model_mb": model.memory_bytes() / 2**20}
        ctx.log(f"{name:>22}: bpb {bpb:.4f}   (train {len(train) / MB / train_s:.2f} MB/s, score {score_mbs:.2f} "
                f"MB/s, model {model.memory_bytes() / 2**20:.0f} MB)")
    best = results[f"order-{config.max_order} (flavor)"]
    ratios = {"flavor_over_order0": best / results["order-0"], "flavor_over_order2": best / results["order-2"]}
    ctx.log(f"ratio flavor / order-0 = {ratios['flavor_over_order0']:.3f}, flavor / order-2 = "
            f"{ratios['flavor_over_order2']:.3f}")
    return {"train_mb": len(train) / MB, "val_mb": sum(map(len, val)) / MB, "val_books": len(val), "models": rows,
            **ratios}


def differs_from_base(config) -> dict:
    """The config fields that differ from macro_unit:base (the planner's `match`: {} for base itself)."""
    base = FLAVORS["base"].model
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
            if getattr(config, f.name) != getattr(base, f.name)}


def run(ctx: Context) -> dict:
    flavor = ctx["flavor"]
    config = FLAVORS[flavor].model
    ctx.log(f"macro_unit:{flavor}; {torch.get_num_threads()} thread(s)")
    figures: dict = {"flavor": flavor, "threads": torch.get_num_threads(), "phase_a": phase_a(ctx, config, ctx["mb"])}
    if not ctx["skip_bpb"]:
        figures["phase_b"] = phase_b(ctx, config)
    match = differs_from_base(config)
    figures["planner"] = {"rates": [{
        "family": "macro_unit", "match": match, "unit": "bytes/s",
        "value": figures["phase_a"]["observe_mb_cpu_s"] * MB,
        "what": f"macro_unit:{flavor} observe, CPU time of one core"}]}
    return figures


def markdown(doc: dict) -> str:
    """RESULTS.md: phase A's marks, encode, phase B's bits per byte, the planner's rate."""
    from benchmarks.render import flat_table

    f = doc["figures"]
    a = f["phase_a"]
    lines = [f"macro_unit:{f['flavor']}, {a['source']}", "",
             "| MB in | observe MB/s (wall) | observe MB/s (CPU) | sleep s | units | n-grams | model MB | peak RSS MB "
             "| bpb (val) |", "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {m['mb_in']} | {m['observe_mb_s']:.2f} | {m['observe_mb_cpu_s']:.2f} | {m['sleep_s']:.1f} | "
              f"{m['units']:.0f} | {m['ngrams']:,} | {m['model_mb']:.0f} | {m['peak_rss_mb']:.0f} | "
              f"{m['bpb_val']:.3f} |" for m in a["marks"]]
    rest = {"encode": a["encode"], **({"phase_b": f["phase_b"]} if "phase_b" in f else {})}
    rate = f["planner"]["rates"][0]
    return "\n".join(lines) + "\n\n" + flat_table(rest) + (
        f"\n\nplanner: {rate['value'] / 1e6:.2f} MB per CPU-second ({rate['what']}; match {rate['match'] or '{}'})")


BENCHMARK = Benchmark(
    name="macro_unit_throughput",
    summary="macro_unit observe MB/s on one core with peak RSS at each 10 MB mark, unit encode/decode MB/s, "
            "bits/byte against order-0 / order-2 baselines",
    run=run,
    threads=1,
    full={"mb": 40, "flavor": "base", "skip_bpb": False, "mark_val_bytes": 100_000, "encode_mb": 8,
          "bpb_train_mb": None, "bpb_val_bytes": None},
    toy={"mb": 1, "flavor": "small", "skip_bpb": False, "mark_val_bytes": 5_000, "encode_mb": 0.2,
         "bpb_train_mb": 0.5, "bpb_val_bytes": 5_000},
    goal="training (observe) >= 1 MB/s and encode >= 5 MB/s on one core; peak RSS flat from 10 to 40 MB",
    table=markdown,
)
