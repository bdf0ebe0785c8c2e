"""report.html: one self-contained file (inline CSS, figures as base64 PNG) that opens anywhere, offline."""

from __future__ import annotations

import base64
import html
import time
from typing import Any

from nightshift.orchestrator.sweeps.report.collect import ReportData
from nightshift.orchestrator.sweeps.report.undertrained import MIN_EPOCHS, MIN_STEPS
from nightshift.pipelines.sizes import format_size

CAPTIONS = {
    "bpb_vs_size.png": "Final validation bits per byte against training-set size (log x), one line per variant; "
                       "grey dashed: the adaptive reference compressors on the same bytes.",
    "bpb_vs_compute.png": "Validation bits per byte over compute per cell: device-seconds of all work but "
                          "evaluation and checkpoints (train steps, data loading, sleep / consolidation); grey "
                          "levels: the reference compressors at each size.",
    "bpb_vs_tokens.png": "Validation bits per byte over tokens seen per cell; grey levels: reference compressors.",
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
figure img { width: 100%; height: auto; } figure.wide { grid-column: 1 / -1; }
figcaption { font-size: 12px; color: #445; margin-top: 4px; }
table { border-collapse: collapse; font-size: 12.5px; width: 100%; }
th, td { border-bottom: 1px solid #e4e6ee; padding: 4px 7px; text-align: right; white-space: nowrap; }
th { background: #f3f4f8; position: sticky; top: 0; } td.l, th.l { text-align: left; }
tr.best td { font-weight: 600; background: #f2fbf2; } tr.ref td { color: #556; font-style: italic; }
.scroll { overflow-x: auto; }
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


def _stop(c: dict[str, Any]) -> str:
    """Which bound stopped a cell: its planned steps, or the compute budget (planned from measured steps)."""
    reason = c.get("stop_reason") or c["state"]
    if c.get("error"):
        return f"<span class='bad' title='{_e(c['error'])}'>failed</span>"
    mark = f"<br><span class='bad'>{_e(c['undertrained'])}</span>" if c.get("undertrained") else ""
    if reason == "budget":
        planned = (c.get("schedule") or {}).get("planned_steps")
        done = "schedule completed" if planned and (c.get("step") or 0) >= planned else "cut short"
        minutes = " " + format(c["budget_minutes"], "g") + " min" if c.get("budget_minutes") else ""
        return f"budget{minutes}: {done}{mark}"
    return _e(reason) + mark


def _compute(c: dict[str, Any]) -> str:
    """Budgeted device-seconds, and beside them the compilation the budget left out (a cold cache shows here)."""
    if c.get("compute_seconds") is None:
        return "-"
    compiled = (c.get("compute") or {}).get("compile") or 0.0
    return f"{c['compute_seconds']:.1f}" + (f" <small>(+{compiled:.1f} compile)</small>" if compiled >= 0.05 else "")


def _schedule(c: dict[str, Any]) -> str:
    sched = c.get("schedule") or {}
    if not sched:
        return "-"
    if sched.get("kind") == "none":
        return f"{sched['planned_steps']:,} planned"
    return f"warmup {sched['warmup']}, {sched['kind']} to {sched['planned_steps']:,}" + \
        (" (budget)" if sched.get("planned_by") == "budget" else "")


def cells_table(data: ReportData) -> str:
    head = ("variant", "size", "seed", "val bits/byte", "ablations (part off)", "compute s", "train s", "wall s",
            "tokens/s", "steps", "schedule", "tokens", "params", "memory", "stop", "run id", "dataset id")
    best = _best_runs(data)
    rows = []
    for c in sorted(data.cells, key=lambda c: (c["size_bytes"], c["variant"], c["seed"])):
        bpb = f"{c['val_bpb']:.4f}" if c.get("val_bpb") is not None else f"<span class='bad'>{_e(c['state'])}</span>"
        ablations = "<br>".join(f"{_e(p)} {v:.4f}" for p, v in (c.get("ablations") or {}).items()) or "-"
        num = {k: (f"{c[k]:.1f}" if c.get(k) is not None else "-") for k in ("train_seconds",)}
        wall = f"{c['wall_seconds']:.0f}" if c.get("wall_seconds") is not None else "-"
        cells = (f"<td class='l'>{_e(c['variant'])}</td>", f"<td>{_e(c['size'])}</td>", f"<td>{c['seed']}</td>",
                 f"<td>{bpb}</td>", f"<td>{ablations}</td>", f"<td>{_compute(c)}</td>",
                 f"<td>{num['train_seconds']}</td>", f"<td>{wall}</td>", f"<td>{fmt_count(c.get('tokens_per_s'))}</td>",
                 f"<td>{c.get('step') or 0:,}</td>", f"<td class='l'>{_schedule(c)}</td>",
                 f"<td>{fmt_count(c.get('tokens'))}</td>", f"<td>{fmt_count(c.get('parameters'))}</td>",
                 f"<td>{fmt_bytes(c.get('memory_bytes'))}</td>", f"<td class='l'>{_stop(c)}</td>",
                 f"<td class='id l'>{_e(c['run_id'])}</td>", f"<td class='id l'>{_e(c['dataset_id'])}</td>")
        rows.append(f"<tr{' class=best' if c['run_id'] in best else ''}>{''.join(cells)}</tr>")
    left = ("variant", "schedule", "stop", "run id", "dataset id")
    header = "".join(f"<th class='l'>{h}</th>" if h in left else f"<th>{h}</th>" for h in head)
    return (f"<div class='scroll'><table id='cells'><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def comparison_table(data: ReportData) -> str:
    """Variants x sizes (mean over seeds, with the spread) and the reference compressors beneath."""
    from nightshift.orchestrator.sweeps.report.collect import seed_summary

    summary, sizes = seed_summary(data.cells), data.sizes
    rows = []
    for variant in data.variants:
        tds = []
        for size in sizes:
            row = summary.get(variant, {}).get(size)
            if row is None:
                tds.append("<td>-</td>")
                continue
            spread = f" &plusmn; {row['std']:.3f}" if row["std"] is not None else ""
            mark = " &asymp;" if row.get("within_spread_of_best") else ""
            tds.append(f"<td>{row['mean']:.4f}{spread}{mark} <span class='meta'>(n={row['n']})</span></td>")
        rows.append(f"<tr><td class='l'>{_e(variant)}</td>{''.join(tds)}</tr>")
    for name in ("xz", "zstd", "ppmd"):
        values = [data.references.get(s, {}).get("bpb", {}).get(name) for s in sizes]
        if any(v is not None for v in values):
            tds = "".join(f"<td>{v:.4f}</td>" if v is not None else "<td>-</td>" for v in values)
            rows.append(f"<tr class='ref'><td class='l'>{name} (adaptive reference)</td>{tds}</tr>")
    header = "<th class='l'>variant</th>" + "".join(f"<th>{_e(format_size(s))}</th>" for s in sizes)
    return (f"<div class='scroll'><table id='comparison'><thead><tr>{header}</tr></thead>"
            f"<tbody>{''.join(rows)}</tbody></table></div>")


def ablations_table(data: ReportData) -> str:
    """Per variant and part: bits/byte with the part off, and the change against the full model."""
    rows = []
    for c in sorted(data.finished(), key=lambda c: (c["variant"], c["size_bytes"], c["seed"])):
        for part, bpb in (c.get("ablations") or {}).items():
            delta = bpb - c["val_bpb"]
            flag = " <span class='bad'>(no effect)</span>" if abs(delta) < 1e-4 else ""
            rows.append(f"<tr><td class='l'>{_e(c['variant'])}</td><td>{_e(c['size'])}</td><td>{c['seed']}</td>"
                        f"<td class='l'>{_e(part)}</td><td>{c['val_bpb']:.4f}</td><td>{bpb:.4f}</td>"
                        f"<td>{delta:+.4f}{flag}</td></tr>")
    if not rows:
        return "<p class='meta'>No family in this report declares ablatable parts (or none was scored).</p>"
    header = "".join(f"<th class='l'>{h}</th>" if h in ("variant", "part") else f"<th>{h}</th>"
                     for h in ("variant", "size", "seed", "part", "full", "part off", "change"))
    body = "".join(rows)
    return (f"<div class='scroll'><table id='ablations'><thead><tr>{header}</tr></thead><tbody>{body}</tbody>"
            "</table></div>")


def samples_section(data: ReportData) -> str:
    parts = []
    opened = " open" if len(data.cells) <= 12 else ""  # a small sweep shows them all; a big one on demand
    for c in sorted(data.cells, key=lambda c: (c["size_bytes"], c["variant"], c["seed"])):
        if not c.get("samples"):
            continue
        parts.append(f"<details class='sample'{opened}><summary>{_e(c['variant'])} @ {_e(c['size'])} seed {c['seed']} "
                     f"(step {c.get('samples_step')})</summary><pre>{_e(c['samples'])}</pre></details>")
    return "".join(parts) or "<p>No samples were written.</p>"


def _ref_text(data: ReportData) -> str:
    used = sorted({r.get("train_bytes_used") for r in data.references.values() if r})
    if not used:
        return " (not available)"
    return f" (the last {', '.join(fmt_bytes(u) for u in used)} of it: xz -9e, zstd -19 --long, PPMd order 8)"


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
<h2>Comparison</h2>
<p class="meta">Mean validation bits/byte over seeds &plusmn; their standard deviation (n seeds); &asymp;: within the
summed spreads of the best variant at that size (the difference is not established). Reference rows: the conditional
code length of the same validation bytes given the training text{_ref_text(data)}; the compressors are adaptive
(they also learn from the validation text while coding it), the models are scored frozen.</p>
{comparison_table(data)}
<h2>Ablations</h2>
<p class="meta">The same trained state scored with one of the family's mechanisms switched off
(models/protocol.py <code>ablatable</code>): what that mechanism adds.</p>
{ablations_table(data)}
<h2>Figures</h2>
<div class="figs">{figures}</div>
<h2>Every cell</h2>
<p class="meta">Bold rows: the lowest bits/byte per dataset size (and seed). Compute s: device-seconds of all work
but evaluation and checkpoints (train steps, data loading, sleep / consolidation; what budgets bound); train s: the
train steps alone; wall s: the whole cell, evaluations and checkpoints included. Compilation (torch.compile's
warm-up, long on a cold cache) is outside the budget and shown beside it. Schedule: the LR schedule fitted to
the planned steps ("budget": planned from the measured cost of the first steps). Params: trainable parameters;
memory: non-parametric memory (episodes, prototypes, counts, units). Undertrained: fewer than {MIN_STEPS} steps and
less than {MIN_EPOCHS:g} epoch of the training tokens; compare such a cell with care.</p>
{cells_table(data)}
<h2>Samples</h2>
<p class="meta">Generated from the same fixed prompts for every cell, at the end of training.</p>
{samples_section(data)}
</body></html>
"""
