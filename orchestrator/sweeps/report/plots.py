"""The report's figures as PNG bytes (matplotlib, Agg: no display needed, same pixels everywhere).

One colour per variant in every figure, one marker/line style per dataset
size, so a reader matches lines across figures without a legend hunt.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from typing import Any

from nightshift.orchestrator.sweeps.report.collect import ReportData
from nightshift.pipelines.sizes import format_size

STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P")
MAX_SLEEP_PANELS = 4  # sleep metrics shown per sleeping family (the rest are in report.json)
# Shown first when a family logs them (ARCHITECTURE.md's sleep metrics), then the rest alphabetically.
SLEEP_FIRST = ("prototypes", "schemas", "units", "compression_ratio", "consolidation_ratio", "heldout_dl_bpb",
               "tension_before", "tension_after", "windows_replayed", "episodes", "seconds")


def _plt():  # noqa: ANN202 - the pyplot module, Agg-backed
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _colors(variants: list[str]) -> dict[str, Any]:
    plt = _plt()
    cmap = plt.get_cmap("tab10")
    return {v: cmap(i % 10) for i, v in enumerate(variants)}


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return buf.getvalue()


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


REF_STYLES = {"xz": (0.55, "x"), "zstd": (0.7, "+"), "ppmd": (0.35, "*")}  # grey level, marker


def _reference_lines(ax: Any, data: ReportData, sizes_on_x: bool) -> None:
    """The adaptive compressors: one grey line over sizes, or (curves) a level per size and compressor."""
    if not data.references:
        return
    sizes = sorted(data.references)
    for name, (grey, marker) in REF_STYLES.items():
        values = [data.references[s]["bpb"].get(name) for s in sizes]
        if any(v is None for v in values):
            continue
        color = (grey, grey, grey)
        if sizes_on_x:
            ax.plot(sizes, values, color=color, linestyle="--", marker=marker, linewidth=1,
                    label=f"{name} (adaptive)")
            continue
        for k, (size, value) in enumerate(zip(sizes, values)):
            ax.axhline(value, color=color, linestyle=STYLES[k % len(STYLES)], linewidth=0.8)
            ax.annotate(f"{name} {format_size(size)}", (1.0, value), xycoords=("axes fraction", "data"),
                        fontsize=6, color=color, ha="left", va="center")


def bpb_vs_size(data: ReportData) -> bytes:
    """Final val bits/byte against training bytes (log x), one line per variant, seeds as dots."""
    plt = _plt()
    colors = _colors(data.variants)
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for variant in data.variants:
        by_size: dict[int, list[float]] = defaultdict(list)
        for c in data.finished():
            if c["variant"] == variant:
                by_size[c["size_bytes"]].append(c["val_bpb"])
        if not by_size:
            continue
        sizes = sorted(by_size)
        ax.plot(sizes, [_mean(by_size[s]) for s in sizes], marker="o", color=colors[variant], label=variant)
        for s in sizes:
            if len(by_size[s]) > 1:
                ax.scatter([s] * len(by_size[s]), by_size[s], color=colors[variant], alpha=0.35, s=14)
    _reference_lines(ax, data, sizes_on_x=True)
    ax.set_xscale("log")
    ax.set_xticks(data.sizes, [format_size(s) for s in data.sizes])
    ax.minorticks_off()
    ax.set_xlabel("training data (bytes, log scale)")
    ax.set_ylabel("validation bits / byte (lower is better)")
    ax.set_title("Validation bits per byte vs dataset size")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    return _png(fig)


def bpb_curves(data: ReportData, x: str) -> bytes:
    """val bits/byte over training, per cell; x is "compute" (device-seconds of all work but evaluation)
    or "tokens" (tokens seen); grey levels: the reference compressors at each size."""
    plt = _plt()
    colors = _colors(data.variants)
    sizes = data.sizes
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for c in data.cells:
        points = [p for p in c["curve"] if p[x] > 0 and math.isfinite(p[x])]
        if not points:
            continue
        k = sizes.index(c["size_bytes"]) if c["size_bytes"] in sizes else 0
        seed = f" s{c['seed']}" if len({d["seed"] for d in data.cells}) > 1 else ""
        ax.plot([p[x] for p in points], [p["bpb"] for p in points], color=colors[c["variant"]],
                linestyle=STYLES[k % len(STYLES)], marker=MARKERS[k % len(MARKERS)], markersize=4,
                label=f"{c['variant']} @ {c['size']}{seed}")
    _reference_lines(ax, data, sizes_on_x=False)
    ax.set_xscale("log")
    ax.set_xlabel("compute (device-seconds of all work but evaluation and checkpoints, log scale)"
                  if x == "compute" else "tokens seen (log scale)")
    ax.set_ylabel("validation bits / byte")
    ax.set_title("Validation bits per byte vs " + ("compute" if x == "compute" else "tokens seen"))
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=7, ncol=3, loc="upper center", bbox_to_anchor=(0.5, -0.16), frameon=False)
    return _png(fig)


def throughput(data: ReportData) -> bytes:
    """Training tokens/s per variant (log y: memory families and transformers differ by orders of magnitude)."""
    plt = _plt()
    variants, sizes = data.variants, data.sizes
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    width = 0.8 / max(len(sizes), 1)
    cmap = plt.get_cmap("Blues")
    for k, size in enumerate(sizes):
        values = []
        for variant in variants:
            rates = [c["tokens_per_s"] for c in data.finished() if c["variant"] == variant and c["size_bytes"] == size]
            values.append(_mean(rates) if rates else 0.0)
        xs = [i + (k - (len(sizes) - 1) / 2) * width for i in range(len(variants))]
        ax.bar(xs, values, width=width * 0.95, color=cmap(0.45 + 0.5 * k / max(len(sizes) - 1, 1)),
               label=format_size(size))
    ax.set_xticks(range(len(variants)), variants, rotation=15, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("training tokens / s (log scale)")
    ax.set_title("Throughput per variant")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(title="dataset", fontsize=8)
    return _png(fig)


def sleep_metrics(data: ReportData) -> bytes | None:
    """Sleep metrics over training, one row per family that sleeps; None when none did."""
    by_family: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for c in data.cells:
        if any(len(v) for v in c["sleep"].values()):
            by_family[c["family"]].append(c)
    if not by_family:
        return None
    plt = _plt()
    colors = _colors(data.variants)
    sizes = data.sizes
    rows = []
    for family, cells in by_family.items():
        keys = sorted({k for c in cells for k in c["sleep"] if k != "sleep/count"}, key=_sleep_order)
        keys = keys[:MAX_SLEEP_PANELS]
        rows.append((family, cells, keys))
    ncols = max(len(keys) for _, _, keys in rows) or 1
    fig, axes = plt.subplots(len(rows), ncols, figsize=(3.4 * ncols, 2.8 * len(rows)), squeeze=False)
    for r, (family, cells, keys) in enumerate(rows):
        for j in range(ncols):
            ax = axes[r][j]
            if j >= len(keys):
                ax.axis("off")
                continue
            for c in cells:
                points = c["sleep"].get(keys[j], [])
                k = sizes.index(c["size_bytes"]) if c["size_bytes"] in sizes else 0
                ax.plot([p["step"] for p in points], [p["value"] for p in points], color=colors[c["variant"]],
                        linestyle=STYLES[k % len(STYLES)], marker=MARKERS[k % len(MARKERS)], markersize=3,
                        label=f"{c['variant']} @ {c['size']}")
            ax.set_title(f"{family}: {keys[j][len('sleep/'):]}", fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(alpha=0.3)
        axes[r][0].legend(fontsize=6)
    fig.suptitle("Sleep / consolidation metrics over training")
    fig.tight_layout()
    return _png(fig)


def _sleep_order(key: str) -> tuple[int, str]:
    name = key.removeprefix("sleep/")
    return (SLEEP_FIRST.index(name) if name in SLEEP_FIRST else len(SLEEP_FIRST), name)


def all_plots(data: ReportData) -> dict[str, bytes]:
    """{file name: PNG bytes}, in the order the HTML shows them."""
    plots = {"bpb_vs_size.png": bpb_vs_size(data),
             "bpb_vs_compute.png": bpb_curves(data, "compute"),
             "bpb_vs_tokens.png": bpb_curves(data, "tokens"),
             "throughput.png": throughput(data)}
    sleep = sleep_metrics(data)
    if sleep is not None:
        plots["sleep.png"] = sleep
    return plots
