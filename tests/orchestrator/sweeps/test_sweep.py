"""A recorded sweep against a real MLflow server: datasets once, one parent with nested children, no-op re-run."""

from __future__ import annotations

import json

import pytest

from nightshift.orchestrator.backends import launch
from nightshift.orchestrator.runs.folders import find_run
from nightshift.orchestrator.sweeps.record import read_sweep
from nightshift.orchestrator.sweeps.run import run_sweep
from nightshift.orchestrator.sweeps.spec import plan_sweep
from nightshift.orchestrator.tracking.query import (
    child_runs,
    get_run,
    list_artifacts,
    runs_of_experiment,
)
from nightshift.pipelines.store import Store
from tests.helpers.ablation_family import family_class as _family_class
from tests.helpers.data import alias_source
from tests.orchestrator.sweeps.helpers import MODELS, SIZES, Recorded, tiny_spec

pytestmark = [pytest.mark.mlflow, pytest.mark.slow]


def test_each_size_is_prepared_once_and_all_sizes_share_the_validation_bytes(recorded_sweep: Recorded) -> None:
    store = recorded_sweep.store
    datasets = store.listdir("datasets")
    assert len(datasets) == len(SIZES)
    manifests = [store.read_json("datasets", d, "manifest.json") for d in datasets]
    assert sorted(m["config"]["max_bytes"] for m in manifests) == sorted(SIZES)
    validation = [m["splits"]["validation"] for m in manifests]
    assert validation[0]["text_sha256"] == validation[1]["text_sha256"]
    assert [s["sha256"] for s in validation[0]["shards"]] == [s["sha256"] for s in validation[1]["shards"]]
    assert manifests[0]["splits"]["train"]["totals"]["bytes"] != manifests[1]["splits"]["train"]["totals"]["bytes"]
    # every cell of one size trains on that size's dataset
    sweep = read_sweep(store, recorded_sweep.outcome.sweep_id)
    for cell in sweep["cells"]:
        dataset = store.read_json("datasets", cell["dataset_id"], "manifest.json")
        assert dataset["config"]["max_bytes"] == cell["size_bytes"]


def test_every_cell_finished_and_is_listed_in_the_sweep_manifest(recorded_sweep: Recorded) -> None:
    outcome, store = recorded_sweep.outcome, recorded_sweep.store
    assert outcome.trained == len(SIZES) * len(MODELS) and outcome.failed == 0 and not outcome.interrupted
    sweep = read_sweep(store, outcome.sweep_id)
    assert sweep["sweep_id"] == recorded_sweep.spec.sweep_id and sweep["bound"]["kind"] == "steps"
    assert {(c["size_bytes"], c["model"]) for c in sweep["cells"]} == {(s, m) for s in SIZES for m in MODELS}
    for cell in sweep["cells"]:
        run = find_run(store, cell["run_id"])
        result = run.result()
        assert cell["state"] == "finished" and result["step"] == 6
        assert cell["val_bpb"] == result["val_bpb"]
        assert run.config.train.eval_every == 3  # 6 steps / 2 evals: the curve has two points


def test_parent_run_with_one_nested_child_per_cell_carrying_the_spine_tags(recorded_sweep: Recorded) -> None:
    uri, outcome = recorded_sweep.uri, recorded_sweep.outcome
    parent = get_run(uri, outcome.parent_run_id)
    assert parent["status"] == "FINISHED" and parent["run_key"] == outcome.sweep_id
    assert parent["tags"]["nightshift.kind"] == "sweep" and parent["tags"]["sweep.id"] == outcome.sweep_id
    assert parent["tags"]["sweep.bound"].startswith("6 steps")
    children = child_runs(uri, outcome.parent_run_id)
    by_run = {c["tags"]["run.id"]: c for c in children}
    assert len(children) == len(outcome.cells) == len(by_run)
    for cell in outcome.cells:
        child = by_run[cell["run_id"]]
        tags = child["tags"]
        assert child["status"] == "FINISHED"
        assert tags["model.family"] == cell["family"] and tags["model.variant"] == cell["flavor"]
        assert tags["dataset.id"] == cell["dataset_id"] and tags["model.id"] == cell["model_id"]
        assert tags["dataset.size_bytes"] == str(cell["size_bytes"]) and tags["backend"] == "local"
        assert child["metrics"]["final/val_bpb"] == pytest.approx(cell["val_bpb"])
    assert parent["metrics"]["sweep/cells_finished"] == len(outcome.cells)
    names = list_artifacts(uri, outcome.parent_run_id)
    assert {"report/report.html", "report/report.json", "report/bpb_vs_size.png", "sweep.json"} <= set(names)


def test_rerunning_the_sweep_skips_finished_cells_without_new_runs(recorded_sweep: Recorded) -> None:
    store, uri = recorded_sweep.store, recorded_sweep.uri
    experiment = get_run(uri, recorded_sweep.outcome.parent_run_id)["experiment_id"]
    before = {r["run_id"]: r for r in runs_of_experiment_by_id(uri, experiment)}
    results = {c["run_id"]: find_run(store, c["run_id"]).result() for c in recorded_sweep.outcome.cells}
    again = run_sweep(recorded_sweep.spec, store, tracking_uri=uri, progress=False)
    assert again.sweep_id == recorded_sweep.outcome.sweep_id
    assert again.parent_run_id == recorded_sweep.outcome.parent_run_id  # the same parent, found by its key
    assert again.skipped == len(results) and again.trained == 0 and again.failed == 0
    after = {r["run_id"]: r for r in runs_of_experiment_by_id(uri, experiment)}
    assert set(after) == set(before)  # no new MLflow run, for the cells or the parent
    for run_id, result in results.items():
        assert find_run(store, run_id).result() == result
        child = next(r for r in after.values() if r["tags"].get("run.id") == run_id)
        assert child["tags"].get("nightshift.starts", "1") == "1"  # never reopened


def runs_of_experiment_by_id(uri: str, experiment_id: str) -> list[dict]:
    from nightshift.orchestrator.tracking.mlflow_tracker import open_client

    name = open_client(uri).get_experiment(experiment_id).name
    return runs_of_experiment(uri, name)


def test_report_numbers_equal_each_runs_result(recorded_sweep: Recorded) -> None:
    report = json.loads((recorded_sweep.report_dir / "report.json").read_text())
    store = recorded_sweep.store
    assert report["sweep_id"] == recorded_sweep.outcome.sweep_id and report["bound"]["kind"] == "steps"
    assert len(report["cells"]) == len(SIZES) * len(MODELS)
    for cell in report["cells"]:
        result = find_run(store, cell["run_id"]).result()
        for key in ("val_bpb", "tokens_per_s", "parameters", "memory_bytes", "tokens", "train_seconds"):
            assert cell[key] == result[key], key
        assert cell["wall_seconds"] > cell["train_seconds"]  # the cell also evaluated, sampled, checkpointed
        curve = cell["curve"]
        assert [p["step"] for p in curve] == [3, 6]
        assert curve[-1]["bpb"] == result["val_bpb"]
        assert curve[0]["tokens"] == 3 * result["tokens"] / result["step"]
        assert 0 < curve[0]["seconds"] < curve[-1]["seconds"]
        assert 0 < curve[0]["compute"] < curve[-1]["compute"] == result["compute_seconds"]
        # the contract: all work but evaluation, the LR schedule, each ablatable part's score
        assert cell["compute_seconds"] == result["compute_seconds"] >= cell["train_seconds"]
        assert cell["schedule"] == result["schedule"] and cell["schedule"]["planned_steps"] == 6
        assert cell["ablations"] == result["ablations"]
        declared = set(_family_class(result["family"]).ablatable)  # the transformer: none
        assert set(cell["ablations"]) == declared and all(0 < v < 9 for v in cell["ablations"].values())
        assert "'Once upon a time'" in cell["samples"] and cell["samples_step"] == 6
    for variant, sizes in report["mean_val_bpb"].items():
        assert set(sizes) == {"100KB", "200KB"}
        assert {s: row["mean"] for s, row in report["seeds"][variant].items()} == sizes
    assert set(report["references"]) == {"100KB", "200KB"}
    for size, refs in report["references"].items():
        assert set(refs) == {"xz", "zstd", "ppmd"} and all(0 < v < 8 for v in refs.values())
        assert report["references_info"][size]["validation_bytes"] == report["validation"]["bytes"]
    for name in report["plots"]:
        png = (recorded_sweep.report_dir / name).read_bytes()
        assert png.startswith(b"\x89PNG") and len(png) > 5000


def test_rebuilt_training_time_matches_the_trainers_own_count(recorded_sweep: Recorded) -> None:
    """The wall-clock axis is rebuilt from logged throughput windows; at the last step it must be train_seconds."""
    from nightshift.orchestrator.sweeps.report.collect import _elapsed
    from nightshift.orchestrator.tracking.jsonl import read_history

    store = recorded_sweep.store
    for cell in recorded_sweep.outcome.cells:
        result = find_run(store, cell["run_id"]).result()
        steps, seconds, per_step = _elapsed(read_history(store, f"{cell['run_path']}/tracking"))
        assert steps[-1] == result["step"]
        assert seconds[-1] == pytest.approx(result["train_seconds"], rel=1e-6)
        assert per_step * result["step"] == result["tokens"]


def test_a_cell_trained_before_the_sweep_is_skipped_and_nested_under_it(tmp_path, pg19_dir, mlflow_server) -> None:
    store, uri = Store.open(str(tmp_path / "store")), mlflow_server.uri
    spec = tiny_spec(alias_source(tmp_path, pg19_dir, "pg19-adopt"), sizes=(100_000,), models=("macro_unit:small",))
    cell = plan_sweep(spec, store, progress=False).cells[0]
    alone = launch(cell.config, store, tracking_uri=uri, progress=False)  # `nightshift train`, no sweep yet
    outcome = run_sweep(spec, store, tracking_uri=uri, progress=False)
    assert outcome.skipped == 1 and outcome.trained == 0 and outcome.cells[0]["val_bpb"] == alone["val_bpb"]
    children = child_runs(uri, outcome.parent_run_id)
    assert [c["tags"]["run.id"] for c in children] == [cell.run_id]
    assert children[0]["tags"]["sweep.id"] == outcome.sweep_id
