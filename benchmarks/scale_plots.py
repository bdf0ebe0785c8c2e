"""Scaling plots from the recorded results of the scale benchmarks (a helper, not a benchmark).

    python -m benchmarks plots     # after `python -m benchmarks run scale_memory --record` (and the others)

Reads the harness's result documents `<results_dir>/<name>.json` (their "figures") of scale_memory
(checkpoints.png, holographic.png), scale_prepare (prepare_reader.png), prepare_throughput
(prepare_throughput.png) and scale_macro_unit (macro_unit.png). A plot whose result file is absent is
skipped, so a partial re-run still plots what it measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

GB = 1e9


def load(results_dir: Path, name: str) -> dict | None:
    """The figures of `results_dir/name.json` (a harness result document), or None when it is absent."""
    path = Path(results_dir) / f"{name}.json"
    return json.loads(path.read_text())["figures"] if path.exists() else None


def checkpoints(mem: dict, out: Path) -> Path:
    results = mem["results"]
    sizes = [r["memory"]["store_rows"] for r in results]
    names = [(n, s) for n, s in (("original", "o--"), ("chunked", "s-")) if all(n in r["checkpoints"] for r in results)]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for i, phase in enumerate(("first", "append", "full")):
        for name, style in names:
            secs = [r["checkpoints"][name][i]["save_s"] + r["checkpoints"][name][i]["state_dict_s"] for r in results]
            axes[0].plot(sizes, secs, style, label=f"{name}, {phase}")
            written = [r["checkpoints"][name][i]["written_bytes"] / GB for r in results]
            axes[1].plot(sizes, written, style, label=f"{name}, {phase}")
    for name, style in names:
        loads = [min(x["load_s"] for x in r["checkpoints"][name][3:]) for r in results]
        axes[2].plot(sizes, loads, style, label=name)
    titles = ("checkpoint seconds (state_dict + save)", "bytes written per checkpoint (GB)", "restore seconds")
    for ax, title in zip(axes, titles, strict=True):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("stored episodes (holographic, context 64)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7)
    axes[2].legend(fontsize=7)
    fig.suptitle("Incremental checkpoints: first save, +1 % appended, +2 % into a full reservoir "
                 f"(load {results[-1]['load_before'][0]:.0f} on 2 cores)")
    fig.tight_layout()
    path = out / "checkpoints.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def holographic(mem: dict, out: Path) -> Path:
    results = mem["results"]
    sizes = [r["memory"]["store_rows"] for r in results]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(sizes, [r["observe"]["episodes_per_s"] for r in results], "o-", label="wall")
    axes[0].plot(sizes, [r["observe"]["episodes_per_cpu_s"] for r in results], "s--", label="per CPU-second")
    axes[0].set_title("observe episodes/s")
    axes[0].legend()
    axes[1].plot(sizes, [r["knn"]["queries_per_s"] for r in results], "o-")
    axes[1].set_title("exact kNN queries/s (k = 32)")
    axes[2].plot(sizes, [r["memory"]["store_bytes"] / GB for r in results], "o-", label="store")
    axes[2].plot(sizes, [r["memory"]["rss_after"] / GB for r in results], "s-", label="RSS after fill")
    axes[2].plot(sizes, [r["memory"]["peak_rss"] / GB for r in results], "^--", label="peak RSS (incl. saves)")
    axes[2].set_title("memory (GB)")
    axes[2].legend()
    for ax in axes:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("stored episodes")
        ax.grid(True, which="both", alpha=0.3)
    fig.suptitle("holographic at scale (2-core CPU, shared)")
    fig.tight_layout()
    path = out / "holographic.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def prepare(prep: dict, out: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    keys = [("prepare_small_local", "200 MB local"), ("prepare_big_local", "2 GB local"),
            ("prepare_big_s3", "2 GB S3 (moto)")]
    axes[0].bar([k[1] for k in keys], [prep[k[0]]["bytes"] / prep[k[0]]["seconds"] / 1e6 for k in keys])
    raws = sorted(prep[k]["bytes"] / prep[k]["seconds"] / 1e6
                  for k in ("raw_small", "raw_small_after", "raw_big_after"))
    axes[0].axhline(2 * raws[1], color="k", ls="--", label="2 x raw tiktoken (1 thread, median of 3)")
    axes[0].set_title("prepare MB/s, 2 Ray actors")
    axes[0].legend(fontsize=8)
    small, big = prep["prepare_small_local"], prep["prepare_big_local"]
    x = ["driver", "actor"]
    axes[1].bar([i - 0.2 for i in range(2)], [small["driver_rss_mb"], small["worker_rss_mb"]], 0.4, label="200 MB")
    axes[1].bar([i + 0.2 for i in range(2)], [big["driver_rss_mb"], big["worker_rss_mb"]], 0.4, label="2 GB")
    axes[1].set_xticks(range(2), x)
    axes[1].set_title("peak RSS (MB)")
    axes[1].legend()
    names = ["reader local", "reader S3"] + list(prep["reader_local"].get("families", {}))
    rates = [prep["reader_local"]["tokens_per_s"], prep["reader_s3"]["tokens_per_s"]] + [
        f["tokens_per_s"] for f in prep["reader_local"].get("families", {}).values()]
    axes[2].bar(names, rates)
    axes[2].set_yscale("log")
    axes[2].set_title("tokens/s: reader vs what families consume")
    axes[2].tick_params(axis="x", labelrotation=20)
    fig.suptitle(f"prepare and reader at 2 GB (load {prep['load_start'][0]:.0f} -> {prep['load_end'][0]:.0f})")
    fig.tight_layout()
    path = out / "prepare_reader.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def prepare_throughput(pt: dict, out: Path) -> Path:
    """prepare_throughput: MB/s of each row against raw tiktoken, and peak RSS of the small vs the big corpus."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    rows = pt["rows"]
    names = list(rows)
    axes[0].bar(names, [r["bytes"] / r["seconds"] / 1e6 for r in rows.values()], label="wall")
    axes[0].bar(names, [r["bytes"] / r["cpu_seconds"] / 1e6 for r in rows.values()], width=0.3,
                label="per CPU-second")
    axes[0].set_title("MB/s: raw tiktoken gpt2 vs prepare")
    axes[0].tick_params(axis="x", labelrotation=20)
    axes[0].legend(fontsize=8)
    rss = pt["rss_small_vs_big"]
    labels = [f"{name.removeprefix('prepare ')}, {who}" for name in rss for who in ("driver", "worker")]
    small = [rss[name][f"{who}_small_mb"] for name in rss for who in ("driver", "worker")]
    big = [rss[name][f"{who}_big_mb"] for name in rss for who in ("driver", "worker")]
    axes[1].bar([i - 0.2 for i in range(len(labels))], small, 0.4,
                label=f"{pt['corpus']['small_train_bytes'] / 1e6:.0f} MB")
    axes[1].bar([i + 0.2 for i in range(len(labels))], big, 0.4,
                label=f"{pt['corpus']['big_train_bytes'] / 1e6:.0f} MB")
    axes[1].set_xticks(range(len(labels)), labels)
    axes[1].set_title("peak RSS (MB)")
    axes[1].legend()
    fig.suptitle("prepare throughput and memory vs corpus size")
    fig.tight_layout()
    path = out / "prepare_throughput.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def macro_unit(mu: dict, out: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    q = mu["quality"]
    axes[0].plot([e["mb"] for e in q], [e["bpb"] for e in q], "o-")
    axes[0].set_title("bits/byte vs distinct text (pg19 validation)")
    axes[0].set_xlabel("MB of distinct text")
    m = mu["memory"]
    mbs = [e["mb"] for e in m]
    axes[1].plot(mbs, [e["peak_rss_mb"] for e in m], "o-", label="peak RSS")
    axes[1].plot(mbs, [e["model_mb"] for e in m], "s-", label="model memory")
    axes[1].plot(mbs, [e["plan_host_mb"] for e in m], "k--", label="plan estimate")
    axes[1].set_title("memory (MB) vs MB in (repeated past the distinct text)")
    axes[1].legend()
    axes[2].plot(mbs, [e["observe_mb_s"] for e in m], "o-", label="wall")
    axes[2].plot(mbs, [e["observe_mb_cpu_s"] for e in m], "s--", label="CPU")
    axes[2].set_title("observe MB/s")
    axes[2].legend()
    for ax in axes[1:]:
        ax.set_xlabel("MB of text in")
    for ax in axes:
        ax.grid(True, alpha=0.3)
    fig.suptitle(f"macro_unit:{mu['flavor']} at scale")
    fig.tight_layout()
    path = out / "macro_unit.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_all(results_dir: Path, out_dir: Path) -> list[Path]:
    """Every plot whose recorded result exists in `results_dir`, written to `out_dir`; the files drawn."""
    out_dir = Path(out_dir)
    drawn: list[Path] = []
    for name, draws in (("scale_memory", (checkpoints, holographic)), ("scale_prepare", (prepare,)),
                        ("prepare_throughput", (prepare_throughput,)), ("scale_macro_unit", (macro_unit,))):
        figures = load(results_dir, name)
        if figures is None:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        drawn += [draw(figures, out_dir) for draw in draws]
    return drawn
