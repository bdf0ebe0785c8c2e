"""`nightshift report` on a recorded sweep: by sweep id, by MLflow parent id, by experiment; in a real browser."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.sweeps.report import write_report
from nightshift.orchestrator.tracking.query import list_artifacts
from tests.helpers.cli import nightshift
from tests.orchestrator.sweeps.helpers import Recorded

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _report(recorded: Recorded, out: Path, *which: str) -> dict:
    proc = nightshift("report", *which, "--out", str(out), "--store", recorded.store.url,
                      "--tracking-uri", recorded.uri, "--json")
    return json.loads(proc.stdout)


def test_report_by_mlflow_parent_run_id_is_the_sweeps_report_and_is_logged_there(
        recorded_sweep: Recorded, tmp_path: Path) -> None:
    written = _report(recorded_sweep, tmp_path / "by-parent", "--sweep", recorded_sweep.outcome.parent_run_id)
    assert written["logged_to"] == recorded_sweep.outcome.parent_run_id
    by_parent = json.loads(Path(written["json"]).read_text())
    by_sweep = json.loads((recorded_sweep.report_dir / "report.json").read_text())
    assert by_parent["sweep_id"] == by_sweep["sweep_id"]
    assert [c["val_bpb"] for c in by_parent["cells"]] == [c["val_bpb"] for c in by_sweep["cells"]]
    assert all(c["mlflow_run_id"] for c in by_parent["cells"])  # the tracked runs, found through the parent
    assert "report/report.html" in list_artifacts(recorded_sweep.uri, recorded_sweep.outcome.parent_run_id)


def test_report_by_experiment_covers_every_tracked_cell(recorded_sweep: Recorded, tmp_path: Path) -> None:
    files = write_report(recorded_sweep.store, None, str(tmp_path / "by-experiment"), experiment="local-pg19-sweep",
                         tracking_uri=recorded_sweep.uri)
    report = json.loads(Path(files.json).read_text())
    assert files.logged_to is None  # an experiment has no single parent run to attach to
    assert sorted(c["run_id"] for c in report["cells"]) == sorted(c["run_id"] for c in recorded_sweep.outcome.cells)
    assert report["bound"]["text"] == "6 steps per run"


def test_report_of_an_unknown_sweep_is_a_one_line_error(recorded_sweep: Recorded, tmp_path: Path) -> None:
    with pytest.raises(UserError, match="unknown sweep 'sweep-nope-000000000000'") as caught:
        write_report(recorded_sweep.store, "sweep-nope-000000000000", str(tmp_path / "x"))
    assert recorded_sweep.outcome.sweep_id in str(caught.value)  # names what exists
    assert "\n" not in str(caught.value)


@pytest.mark.browser
def test_report_html_renders_in_headless_chromium(recorded_sweep: Recorded, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    html = recorded_sweep.report_dir / "report.html"
    assert "http://" not in html.read_text() and "https://" not in html.read_text()  # self-contained
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2000"]
    shot = tmp_path / "report.png"
    subprocess.run([*flags, f"--screenshot={shot}", html.as_uri()], check=True, capture_output=True, timeout=120)
    from PIL import Image, ImageStat

    image = Image.open(shot).convert("L")
    assert image.size == (1280, 2000)
    assert ImageStat.Stat(image).stddev[0] > 20  # text, tables and figures, not a blank page
    dom = subprocess.run([*flags, "--dump-dom", html.as_uri()], check=True, capture_output=True, text=True,
                         timeout=120).stdout
    images = re.findall(r"<img [^>]*src=\"data:image/png;base64,", dom)
    report = json.loads((recorded_sweep.report_dir / "report.json").read_text())
    assert len(images) == len(report["plots"]) >= 4
    cells_table = re.search(r"<table id=\"cells\".*?</table>", dom, re.S).group(0)
    assert cells_table.count("<tr") == 1 + len(report["cells"])  # header + one row per cell
    comparison = re.search(r"<table id=\"comparison\".*?</table>", dom, re.S).group(0)
    assert all(f"{name} (adaptive reference)" in comparison for name in ("xz", "zstd", "ppmd"))
    for cell in report["cells"]:
        assert cell["run_id"] in dom and f"{cell['val_bpb']:.4f}" in dom
