"""The sweep as the MLflow UI shows it: a parent run with nested cells, each with its datasets, metrics and a
logged model; and the run table itself, rendered by headless chromium (the README's screenshot script)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers.paths import ROOT
from tests.orchestrator.sweeps.helpers import Recorded

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]


def _shooter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nightshift_ui_screenshot", ROOT / "docs" / "mlflow-ui" /
                                                  "screenshot.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_cells_nest_under_the_sweep_with_datasets_metrics_and_a_model(recorded_sweep: Recorded) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=recorded_sweep.uri)
    parent = client.get_run(recorded_sweep.outcome.parent_run_id)
    children = client.search_runs([parent.info.experiment_id],
                                  filter_string=f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(r.data.tags["run.id"] for r in children) == sorted(c["run_id"] for c in recorded_sweep.outcome.cells)
    validation = set()
    for run in children:
        assert {"val/bpb", "final/val_bpb"} <= set(run.data.metrics)
        assert run.data.tags["mlflow.source.git.commit"] == parent.data.tags["mlflow.source.git.commit"]
        [model] = run.outputs.model_outputs
        assert client.get_logged_model(model.model_id).params["family"] == run.data.tags["model.family"]
        by_context = {[t.value for t in d.tags][0]: d.dataset for d in run.inputs.dataset_inputs}
        assert by_context["training"].name == run.data.tags["dataset.id"]
        validation.add(by_context["validation"].digest)
    assert len(validation) == 1  # every size scored on the same validation bytes, visible in the Dataset column


@pytest.mark.browser
def test_the_runs_table_renders_the_cells_with_dataset_source_and_model_columns(recorded_sweep: Recorded,
                                                                                tmp_path: Path) -> None:
    shooter = _shooter()
    if shooter.chromium() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    view = shooter.experiment_view(recorded_sweep.uri, "local-pg19-sweep")
    assert view.parents == (recorded_sweep.outcome.parent_run_id,)
    shot, dom = shooter.screenshot(view, tmp_path / "runs.png")
    from PIL import Image, ImageStat

    image = Image.open(shot).convert("L")
    assert image.size == shooter.WINDOW and ImageStat.Stat(image).stddev[0] > 8  # a table, not a blank page
    rows = dom.count('role="row"')
    assert "sweep 100KB+200KB x 2 variants" in dom and rows >= 1 + 1 + len(recorded_sweep.outcome.cells), rows
    for cell in ("transformer:debug@100KB", "macro_unit:small@200KB"):  # nested cells are rows, not hidden
        assert cell in dom
    for column in ("Dataset", "Source", "Models", "final/val_bpb"):
        assert column in dom
    assert "Ask questions about your experiments" not in dom  # the MLflow Assistant panel is closed
