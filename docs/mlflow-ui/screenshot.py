"""Screenshot the MLflow UI's run table of an experiment with headless chromium (the README's picture).

    python docs/mlflow-ui/screenshot.py --tracking-uri http://127.0.0.1:5000 --experiment local-pg19 \\
        --out docs/mlflow-ui/runs.png

Needs a running MLflow server (`nightshift ui` starts one on the store's DB)
and chromium (`apt-get install chromium`). The tests call `experiment_view`
and `screenshot` too.

What the picture shows is set the way a user would leave the UI, in the
page's own local storage before its scripts run (`cdp.py` drives chromium
over its DevTools pipe): every sweep parent expanded, so its nested cells are
rows; the Dataset, Source and Models columns plus the `final/val_bpb`
metric; the MLflow Assistant side panel closed. The shot is taken once every
cell's name is on the page.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cdp import Browser

WINDOW = (1600, 900)
COLUMNS = ("attributes.`Dataset`", "attributes.`Source`", "attributes.`Models`", "metrics.`final/val_bpb`")
# Column widths in pixels (the table's own resize grips are dragged: the UI ignores preset widths).
WIDTHS = {"attributes.`Run Name`": 250, "attributes.`Dataset`": 470, "attributes.`Source`": 150,
          "attributes.`Models`": 110, "metrics.`final/val_bpb`": 130}
PARENT_TAG = "mlflow.parentRunId"


@dataclass(frozen=True)
class View:
    """One experiment's run table: where it is, which parents to expand, which run names must show."""

    url: str
    experiment_id: str
    parents: tuple[str, ...]  # run ids of runs with nested children (sweeps)
    names: tuple[str, ...] = field(default=())  # every run's name: all must be rendered before the shot


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def experiment_view(tracking_uri: str, experiment: str) -> View:
    """The UI page of `experiment`'s runs, its sweeps and the names of its runs (looked up by name)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} at {tracking_uri}")
    runs = client.search_runs([found.experiment_id], max_results=1000)
    parents = sorted({r.data.tags[PARENT_TAG] for r in runs if PARENT_TAG in r.data.tags})
    names = tuple(r.info.run_name for r in runs  # the top-level runs and the sweeps' cells: all visible
                  if PARENT_TAG not in r.data.tags or r.data.tags[PARENT_TAG] in parents)
    return View(url=f"{tracking_uri.rstrip('/')}/#/experiments/{found.experiment_id}/runs",
                experiment_id=found.experiment_id, parents=tuple(parents), names=names)


def ui_state(view: View, columns: tuple[str, ...] = COLUMNS) -> dict[str, str]:
    """The local-storage entries MLflow 3.17's UI reads: the experiment page's state and the assistant's.

    Keys and shapes as the UI itself writes them (`MLflowLocalStorage-1.1-ExperimentPage-["<id>"]-...`,
    `mlflow.assistant.panelOpen_v1`); a UI version that renames them shows its defaults instead.
    """
    page = {"searchFilter": "", "orderByKey": "attributes.start_time", "orderByAsc": True, "startTime": "ALL",
            "lifecycleFilter": "Active", "datasetsFilter": [], "modelVersionFilter": "All Runs",
            "selectedColumns": list(columns), "columnOrder": [], "columnWidths": {},
            "runsExpanded": {run_id: True for run_id in view.parents}, "runsPinned": [], "runsHidden": [],
            "runsVisibilityMap": {}, "runsHiddenMode": "SHOW_ALL", "viewMaximized": False, "runListHidden": False,
            "groupBy": None, "groupsExpanded": {}, "autoRefreshEnabled": False}
    key = f"MLflowLocalStorage-1.1-ExperimentPage-{json.dumps([view.experiment_id])}-ReactComponentState"
    return {key: json.dumps(page), "mlflow.assistant.panelOpen_v1": "false",
            "mlflow.assistant.fab.autoOpenedOnFirstLoad_v1": "true",
            f"MLflowLocalStorage-1.1-ExperimentView-{view.experiment_id}-expandRows": "false"}


def screenshot(view: View, out: Path, *, browser: str | None = None, timeout_s: float = 120.0) -> tuple[Path, str]:
    """PNG of the run table once every run name in `view` is rendered, and the rendered DOM."""
    browser = browser or chromium()
    if browser is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = Path(tempfile.mkdtemp(prefix="nightshift-ui-shot-"))
    preset = "".join(f"localStorage.setItem({json.dumps(k)}, {json.dumps(v)});" for k, v in ui_state(view).items())
    try:
        with Browser(browser, profile, WINDOW, timeout_s=timeout_s) as page:
            page.call("Page.enable")  # without it the script below is not injected
            page.before_every_page(f"try {{ {preset} }} catch (e) {{}}")
            page.navigate(view.url)
            shown = json.dumps(list(view.names))
            page.wait_for(f"document.body && {shown}.every(n => document.body.innerText.includes(n))"
                          " && document.body.innerText.includes('matching runs')", timeout_s)
            page.wait_for("document.fonts.status === 'loaded'", timeout_s)
            for column, width in WIDTHS.items():
                _resize(page, column, width)
            page.evaluate("document.querySelector('button[aria-label=\"Toggle sidebar\"]')?.click()")  # room
            _settle(page)
            page.screenshot(out)
            dom = page.evaluate("document.documentElement.outerHTML")
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return out, dom


def _settle(page: Browser, timeout_s: float = 10.0) -> None:
    """Wait until the table header stops moving (the sidebar's slide, a column's re-layout)."""
    probe = "JSON.stringify([...document.querySelectorAll('.ag-header-cell')].map(e => e.getBoundingClientRect().x))"
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        now = page.evaluate(f"new Promise(r => setTimeout(() => r({probe}), 250))")
        if now == last:
            return
        last = now


def _resize(page: Browser, column: str, width: int) -> None:
    """Drag column `column`'s resize grip until the column is `width` pixels wide (no-op if not shown).

    The events go to the grip itself (the header's label overlaps it, so a mouse at its
    coordinates would move the column instead); the grid follows them on the document.
    """
    page.evaluate(f"""(() => {{
        const cell = document.querySelector('.ag-header-cell[col-id={json.dumps(column)}]');
        const grip = cell && cell.querySelector('.ag-header-cell-resize');
        if (!grip) return;
        const g = grip.getBoundingClientRect(), y = g.y + g.height / 2;
        const x = g.x + g.width / 2, to = x + {width} - cell.getBoundingClientRect().width;
        const at = (type, target, cx) => target.dispatchEvent(new MouseEvent(type, {{
            bubbles: true, cancelable: true, clientX: cx, clientY: y, button: 0,
            buttons: type === 'mouseup' ? 0 : 1}}));
        at('mousedown', grip, x);
        for (let i = 1; i <= 8; i++) at('mousemove', document, x + (to - x) * i / 8);
        at('mouseup', document, to);
    }})()""")
    _settle(page)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", required=True, help="the MLflow server (its UI)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("runs.png"))
    args = p.parse_args(argv)
    path, _ = screenshot(experiment_view(args.tracking_uri, args.experiment), args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
