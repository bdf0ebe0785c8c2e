"""Macro-unit family: what units (and in-context counts) add to bits per byte, against PPMd on the same bytes.

Run:  python -m benchmarks run macro_unit_quality [--set sizes='["1MB","4MB","64MB"]' --set store=/tmp/mu-store]

For each `sizes` entry, a --max-bytes size (64MB takes the whole 31.6 MB pg19 train sample):

1. `nightshift prepare --source local:<shared>/data/pg19 --tokenizer gpt2` (the real pipeline);
2. `nightshift train --model macro_unit:base` for one epoch (steps = train tokens / (batch x seq_len)),
   sleeping once at the end (MDL consolidation: units are promoted); the trainer's final eval is the
   full model's validation bits/byte;
3. the run's checkpoint is loaded and scored again by the evaluator with each ablation
   (`units`, `cache`, both): the same trained state, each with its own mixer fitted on held-out
   training rows (never on validation);
4. PPMd's conditional code length on the same bytes, with `pyppmd` (PPMd var. I, order 8,
   1 GiB model memory): (bits(train + validation) - bits(train)) / validation bytes, where train is
   the dataset's training documents and validation its validation documents, decoded from the shards.
   PPMd adapts on the validation bytes as it codes them; macro_unit does not (its in-context counts
   read only the document's own left context inside the model's context window).

Logs one table (bits/byte, gains, PPMd, memory, MB/s) and which validation split it used
(validation_id, docs, bytes) so figures from different splits are never compared by mistake.
The store defaults to a folder in the benchmark's scratch space (kept between runs).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time

from benchmarks.harness import ROOT, Benchmark, Context

PPMD_ORDER, PPMD_MEM = 8, 1 << 30
ABLATIONS = ((), ("units",), ("cache",), ("units", "cache"))


def nightshift(*args: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "nightshift.orchestrator.cli", *args, "--json"], env=env, cwd=ROOT,
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"nightshift {' '.join(args[:3])} ... exited {out.returncode}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout[out.stdout.index("{"):])


def ppmd_bits(data: bytes) -> int:
    import pyppmd

    enc = pyppmd.Ppmd8Encoder(PPMD_ORDER, PPMD_MEM)
    return 8 * len(enc.encode(data) + enc.flush())


def split_bytes(dataset, split: str) -> bytes:
    """A split's documents as bytes, decoded from the shards through the tokenizer's token -> bytes table."""
    table = dataset.tokenizer().token_bytes()
    out = []
    for entry in dataset.shards(split):
        shard = dataset.load_shard(entry)
        for i in range(len(shard.doc_ids)):
            out.append(b"".join(table[t] for t in shard.tokens[shard.offsets[i]:shard.offsets[i + 1]].tolist()))
            assert len(out[-1]) == int(shard.n_bytes[i])
    return b"".join(out)


def run(ctx: Context) -> dict:
    from nightshift.models.protocol import ablated
    from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
    from nightshift.orchestrator.runs.loading import load_run
    from nightshift.pipelines.store import Store

    flavor, store = ctx["flavor"], ctx["store"] or str(ctx.work / "store")
    valid = ["--valid-bytes", ctx["valid_bytes"]] if ctx["valid_bytes"] else []
    ctx.log(f"macro_unit:{flavor} on pg19 (gpt2 tokens); store {store}")
    rows = []
    for size in ctx["sizes"]:
        ds = nightshift("prepare", "--source", f"local:{ctx.shared / 'pg19'}", "--max-bytes", size, *valid,
                        "--tokenizer", "gpt2", "--store", store, "--actors", "0")
        dataset_id = ds["dataset_id"]
        train_tokens = ds["splits"]["train"]["tokens"]
        steps = math.ceil(train_tokens / (32 * 2048))
        t0 = time.perf_counter()
        res = nightshift("train", "--dataset", dataset_id, "--model", f"macro_unit:{flavor}", "--steps",
                         str(steps), "--set", f"sleep_every={steps * 32}", "--set", "eval_every=0",
                         "--store", store, "--no-progress")
        wall = time.perf_counter() - t0
        loaded = load_run(Store.open(store), res["run_id"])
        model, dataset = loaded.model, loaded.dataset
        bpb = {}
        for parts in ABLATIONS:
            with ablated(model, parts):
                bpb[parts] = bits_per_byte(model, dataset.validation_docs()).bits_per_byte
        train_b, val_b = split_bytes(dataset, "train"), split_bytes(dataset, "validation")
        t1 = time.perf_counter()
        ppmd = (ppmd_bits(train_b + val_b) - ppmd_bits(train_b)) / len(val_b)
        ppmd_s = time.perf_counter() - t1
        v = ds["splits"]["validation"]
        row = dict(size=size, train_mb=dataset.train_bytes / 1e6, steps=steps, trainer_bpb=res["val_bpb"],
                   full=bpb[()], no_units=bpb[("units",)], no_cache=bpb[("cache",)], byte_model=bpb[("units", "cache")],
                   ppmd=ppmd, ppmd_s=ppmd_s, units=len(model.book), memory_mb=res["memory_bytes"] / 2**20,
                   rss_mb=res["peak_rss_mb"], train_mbs=dataset.train_bytes / 1e6 / res["train_seconds"],
                   run_wall_s=wall, val_docs=v["docs"], val_bytes=v["bytes"],
                   validation_id=dataset.manifest["splits"]["validation"].get("validation_id", "?"))
        rows.append(row)
        ctx.log(json.dumps(row))
    for line in table(rows).splitlines():
        ctx.log(line)
    for r in rows:
        assert abs(r["trainer_bpb"] - r["full"]) < 1e-9, "reloaded checkpoint must score as the trainer did"
    return {"flavor": flavor, "ppmd": {"order": PPMD_ORDER, "memory_bytes": PPMD_MEM}, "sizes": rows}


def table(rows: list[dict]) -> str:
    lines = [f"validation split: {rows[0]['validation_id']} ({rows[0]['val_docs']} docs, "
             f"{rows[0]['val_bytes']:,} bytes)",
             f"{'size':>6} {'train MB':>8} {'full':>7} {'-units':>7} {'units add':>9} {'-cache':>7} "
             f"{'bytes only':>10} {'PPMd o8':>7} {'vs PPMd':>8} {'units':>6} {'mem MB':>7} {'RSS MB':>7} "
             f"{'observe MB/s':>12}"]
    for r in rows:
        lines.append(f"{r['size']:>6} {r['train_mb']:>8.1f} {r['full']:>7.4f} {r['no_units']:>7.4f} "
                     f"{r['no_units'] - r['full']:>9.4f} {r['no_cache']:>7.4f} {r['byte_model']:>10.4f} "
                     f"{r['ppmd']:>7.4f} {r['full'] - r['ppmd']:>+8.4f} {r['units']:>6} {r['memory_mb']:>7.0f} "
                     f"{r['rss_mb']:>7.0f} {r['train_mbs']:>12.2f}")
    return "\n".join(lines)


def markdown(doc: dict) -> str:
    """RESULTS.md: bits/byte with each ablation, PPMd on the same bytes, memory and speed."""
    rows = doc["figures"]["sizes"]
    lines = [f"macro_unit:{doc['figures']['flavor']}; validation split {rows[0]['validation_id']} "
             f"({rows[0]['val_docs']} docs, {rows[0]['val_bytes']:,} bytes)", "",
             "| size | train MB | full | no units | units add | no cache | bytes only | PPMd o8 | vs PPMd | units "
             "| memory MB | RSS MB | observe MB/s |", "|---|" + "---:|" * 12]
    lines += [f"| {r['size']} | {r['train_mb']:.1f} | {r['full']:.4f} | {r['no_units']:.4f} | "
              f"{r['no_units'] - r['full']:.4f} | {r['no_cache']:.4f} | {r['byte_model']:.4f} | {r['ppmd']:.4f} | "
              f"{r['full'] - r['ppmd']:+.4f} | {r['units']} | {r['memory_mb']:.0f} | {r['rss_mb']:.0f} | "
              f"{r['train_mbs']:.2f} |" for r in rows]
    return "\n".join(lines)


BENCHMARK = Benchmark(
    name="macro_unit_quality",
    summary="macro_unit validation bits/byte through `nightshift train` with units / in-context counts ablated, "
            "against PPMd order 8 on the same bytes",
    run=run,
    threads=1,
    full={"sizes": ["1MB", "4MB", "64MB"], "store": None, "flavor": "base", "valid_bytes": None},
    toy={"sizes": ["512KB"], "store": None, "flavor": "small", "valid_bytes": "32KB"},
    table=markdown,
)
