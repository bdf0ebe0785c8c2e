"""`nightshift demo` is a small sweep with laptop defaults that ends with the table, the report and the UI command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nightshift.models.registry import available_families
from nightshift.orchestrator.commands.demo import demo_models
from tests.helpers.cli import nightshift
from tests.helpers.data import alias_source


def test_demo_picks_one_flavor_of_every_family_that_imports() -> None:
    picks = [m.split(":") for m in demo_models().split(",")]
    families = available_families()
    assert [f for f, _ in picks] == [f for f in families]
    assert all(flavor in families[f].FLAVORS for f, flavor in picks)


@pytest.mark.slow
def test_demo_runs_a_sweep_and_ends_with_the_report_and_the_ui_command(tmp_path: Path, pg19_dir: Path) -> None:
    store = tmp_path / "store"
    args = ["demo", "--source", alias_source(tmp_path, pg19_dir, "pg19-demo"), "--sizes", "100KB,150KB",
            "--models", "transformer:debug,macro_unit:small", "--steps", "4", "--valid-bytes", "8KB",
            "--tokenizer", "bytes", "--set", "sample_tokens=8", "--threads", "1", "--store", str(store),
            "--tracking-uri", "none", "--no-progress"]
    out = nightshift(*args).stdout
    lines = out.strip().splitlines()
    assert lines[-1] == f"compare in the MLflow UI:  nightshift ui --store {store}"
    report = Path(lines[-2].removeprefix("report:").strip())
    assert report.name == "report.html" and report.is_file()
    data = json.loads((report.parent / "report.json").read_text())
    # --steps replaces the demo's one-epoch bound; its wall-clock cap stays
    assert data["bound"]["text"].startswith("4 steps per cell; at most 0.5 minutes")
    for cell in data["cells"]:
        assert f"{cell['val_bpb']:.4f}" in out and cell["run_id"] in out
    again = nightshift(*args, "--json")
    assert json.loads(again.stdout)["skipped"] == 4
