"""report.html: one self-contained file (inline CSS, figures as base64 PNG) that opens anywhere, offline."""

from __future__ import annotations

import base64
import html
import time
from typing import Any

from orchestrator.report.collect import ReportData
from pipelines.sizes import format_size

CAPTIONS = {
    "bpb_vs_size.png": "Final validation bits per byte against training-set size (log x), one line per variant. "
                       "Every point is scored on the same validation bytes.",
    "bpb_vs_time.png": "Validation bits per byte over training time per cell (training steps only: evals, "
                       "sleep and checkpoints excluded).",
    "bpb_vs_tokens.png": "Validation bits per byte over tokens seen per cell.",
    "throughput.png": "Training throughput (tokens per second) per variant and dataset size.",
    "sleep.png": "Sleep / consolidation metrics logged by the families that sleep, over training steps.",
}

CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 24px auto; max-width: 1180px;
       color: #1d2330; padding: 0 16px; }
h1 { font-size: 26px; margin-bottom: 4px; }
h2 { margin-top: 32px; border-bottom: 1px solid #dde; padding-bottom: 4px; }
.meta { color: #556; font-size: 13px; } .meta code { background: #f3f4f8; padding: 1px 4px; border-radius: 3px; }
.bound { background: #eef5ff; border-left: 4px solid #3b7ddd; padding: 8px 12px; margin: 14px 0; }
.figs { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 18px; }
figure { margin: 0; border: 1px solid #e4e6ee; border-radius: 6px; padding: 8px; background: #fff; }
figure img { width: 100%; height: auto; } figure.wide { grid-column: 1 / -1; } figcaption { font-size: 12px; color: #445; margin-top: 4px; }
table { border-collapse: collapse; font-size: 12.5px; width: 100%; }
th, td { border-bottom: 1px solid #e4e6ee; padding: 4px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f4f8; position: sticky; top: 0; } td.l, th.l { text-align: left; }
tr.best td { font-weight: 600; background: #f2fbf2; } .scroll { overflow-x: auto; }
td.id { font-family: monospace; font-size: 11px; color: #445; white-space: normal; word-break: break-all; }
.bad { color: #b3261e; } details { margin: 6px 0; } summary { cursor: pointer; font-weight: 600; }
pre { background: #f7f7fa; padding: 8px; white-space: pre-wrap; font-size: 12px; border-radius: 4px; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt_count(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:,.0f}"


def fmt_bytes(n: float | None) -> str:
    return "-" if n is None else format_size(int(n)) if n >= 1000 else f"{int(n)} B"


def _best_runs(data: ReportData) -> set[str]:
    """The lowest-bpb cell of each (size, seed): highlighted in the table."""
    best: dict[tuple[int, int], dict[str, Any]] = {}
    for c in data.finished():
        key = (c["size_bytes"], c["seed"])
        if key not in best or c["val_bpb"] < best[key]["val_bpb"]:
            best[key] = c
    return {c["run_id"] for c in best.values()}


def cells_table(data: ReportData) -> str:
    head = ("variant", "size", "seed", "val bits/byte", "tokens/s", "steps", "tokens", "train s", "wall s",
            "params", "memory", "stop", "run id", "dataset id")  # memory: non-parametric (episodes, counts, units)
    best = _best_runs(data)
    rows = []
    for c in sorted(data.cells, key=lambda c: (c["size_bytes"], c["variant"], c["seed"])):
        bpb = f"{c['val_bpb']:.4f}" if c.get("val_bpb") is not None else f"<span class='bad'>{_e(c['state'])}</span>"
        stop = _e(c.get("stop_reason") or c["state"])
        if c.get("error"):
            stop = f"<span class='bad' title='{_e(c['error'])}'>failed</span>"
        secs = f"{c['train_seconds']:.1f}" if c.get("train_seconds") is not None else "-"
        wall = f"{c['wall_seconds']:.0f}" if c.get("wall_seconds") is not None else "-"
        cells = (f"<td class='l'>{_e(c['variant'])}</td>", f"<td>{_e(c['size'])}</td>", f"<td>{c['seed']}</td>",
                 f"<td>{bpb}</td>", f"<td>{fmt_count(c.get('tokens_per_s'))}</td>", f"<td>{c.get('step') or 0:,}</td>",
                 f"<td>{fmt_count(c.get('tokens'))}</td>", f"<td>{secs}</td>", f"<td>{wall}</td>",
                 f"<td>{fmt_count(c.get('parameters'))}</td>", f"<td>{fmt_bytes(c.get('memory_bytes'))}</td>",
                 f"<td class='l'>{stop}</td>", f"<td class='id l'>{_e(c['run_id'])}</td>",
                 f"<td class='id l'>{_e(c['dataset_id'])}</td>")
        rows.append(f"<tr{' class=best' if c['run_id'] in best else ''}>{''.join(cells)}</tr>")
    header = "".join(f"<th class='l'>{h}</th>" if h in ("variant", "stop", "run id", "dataset id") else f"<th>{h}</th>"
                     for h in head)
    return (f"<div class='scroll'><table id='cells'><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def samples_section(data: ReportData) -> str:
    parts = []
    opened = " open" if len(data.cells) <= 12 else ""  # a small sweep shows them all; a big one on demand
    for c in sorted(data.cells, key=lambda c: (c["size_bytes"], c["variant"], c["seed"])):
        if not c.get("samples"):
            continue
        parts.append(f"<details class='sample'{opened}><summary>{_e(c['variant'])} @ {_e(c['size'])} seed {c['seed']} "
                     f"(step {c.get('samples_step')})</summary><pre>{_e(c['samples'])}</pre></details>")
    return "".join(parts) or "<p>No samples were written.</p>"


def render(data: ReportData, plots: dict[str, bytes]) -> str:
    spec = data.spec or {}
    sizes = ", ".join(format_size(s) for s in data.sizes)
    meta = [f"source <code>{_e(data.source or '?')}</code>", f"sizes {_e(sizes)}",
            f"{len(data.variants)} variants", f"{len(data.cells)} cells"]
    if spec.get("seeds"):
        meta.append(f"seeds {_e(', '.join(map(str, spec['seeds'])))}")
    if data.sweep_id:
        meta.append(f"sweep <code>{_e(data.sweep_id)}</code>")
    if data.parent_run_id:
        meta.append(f"MLflow parent run <code>{_e(data.parent_run_id)}</code>")
    if data.experiment:
        meta.append(f"experiment <code>{_e(data.experiment)}</code>")
    valid = data.validation
    valid_text = (f"Every cell is scored on the same {fmt_bytes(valid['bytes'])} of validation text "
                  f"(validation id <code>{_e(valid.get('validation_id'))}</code>)." if valid.get("bytes") else "")
    figures = "".join(
        f"<figure{' class=wide' if name == 'sleep.png' else ''}><img alt='{_e(name)}' "
        f"src='data:image/png;base64,{base64.b64encode(png).decode('ascii')}'>"
        f"<figcaption>{_e(CAPTIONS.get(name, name))}</figcaption></figure>" for name, png in plots.items())
    if "sleep.png" not in plots:
        figures += "<p class='meta'>No family in this report logged sleep metrics.</p>"
    failed = [c for c in data.cells if c.get("error") or c["state"] not in ("finished",)]
    warn = (f"<p class='bad'>{len(failed)} cell(s) did not finish: "
            f"{_e(', '.join(c['variant'] + '@' + c['size'] for c in failed))}.</p>" if failed else "")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{_e(data.title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{CSS}</style></head>
<body>
<h1>{_e(data.title)}</h1>
<p class="meta">{' &middot; '.join(meta)} &middot; generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}</p>
<div class="bound"><b>Budget:</b> {_e(data.bound.get('text', 'unknown'))}. {valid_text}
Bits per byte = total negative log-likelihood of the validation text in bits / its UTF-8 bytes.</div>
{warn}
<h2>Figures</h2>
<div class="figs">{figures}</div>
<h2>Every cell</h2>
<p class="meta">Bold rows: the lowest bits/byte per dataset size (and seed). Params: trainable parameters;
memory: non-parametric memory (episodes, prototypes, counts, units); train s: training steps only (the budget);
wall s: the whole cell, with evals, sleep and checkpoints.</p>
{cells_table(data)}
<h2>Samples</h2>
<p class="meta">Generated from the same fixed prompts for every cell, at the end of training.</p>
{samples_section(data)}
</body></html>
"""
