"""`--experiment`, `--run-name`, `--tag`: where a run lands in MLflow, from the launcher to every process."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

from nightshift.orchestrator.backends.base import TrainOptions
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.tracking import NoopTracker, default_tracking_uri, query
from nightshift.orchestrator.tracking.naming import EXPERIMENT_ENV, RunNaming, explicit_naming, named, parse_tags
from nightshift.pipelines.store import Store

NAMING = RunNaming(experiment="ablations", run_name="first-try", tags=(("team", "nlp"), ("goal", "baseline")))


def test_the_flag_beats_the_environment_which_beats_the_default() -> None:
    env = {EXPERIMENT_ENV: "from-env"}
    assert explicit_naming("from-flag", environ=env).experiment == "from-flag"
    assert explicit_naming(None, environ=env).experiment == "from-env"
    assert explicit_naming(None, environ={}).experiment is None
    assert RunNaming().experiment_or("pg19", environ={}) == "pg19"
    assert RunNaming().experiment_or("pg19", environ=env) == "from-env"
    assert NAMING.for_cells() == RunNaming(experiment="ablations", tags=NAMING.tags)  # a sweep's cells
    assert RunNaming.from_dict(json.loads(json.dumps(NAMING.to_dict()))) == NAMING  # crosses processes as JSON


@pytest.mark.parametrize(("pairs", "message"), [
    (["team"], "--tag 'team': expected KEY=VALUE"),
    (["=x"], "--tag '=x': expected KEY=VALUE"),
    (["mlflow.runName=x"], "--tag mlflow.runName: tags starting with mlflow. or nightshift. are set by"),
])
def test_bad_tags_are_one_line(pairs: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message.replace(".", r"\.").replace("(", r"\(")):
        parse_tags(pairs)
    assert parse_tags(["a=1", "b=x=y", "a=2"]) == (("a", "2"), ("b", "x=y"))


class Recording(NoopTracker):
    def start(self, run_key, run_name, experiment, tags, params, parent_run_id=None) -> str:
        self.started = (run_name, experiment, dict(tags))
        return ""


def test_a_worker_without_a_naming_still_reads_the_environment_and_keeps_nightshifts_tags() -> None:
    inner = Recording()
    assert named(inner, None, environ={}) is inner  # nothing to name: the tracker as it was
    named(inner, None, environ={EXPERIMENT_ENV: "from-env"}).start("k", "default-name", "pg19", {}, {})
    assert inner.started == ("default-name", "from-env", {})
    named(inner, NAMING, environ={EXPERIMENT_ENV: "from-env"}).start("k", "default-name", "pg19",
                                                                     {"team": "nightshift's"}, {})
    assert inner.started == ("first-try", "ablations", {"team": "nightshift's", "goal": "baseline"})


@pytest.mark.modal
def test_the_naming_reaches_the_deployed_modal_functions(store: Store) -> None:
    from nightshift.orchestrator.backends.modal_backend import modal_args, train_args
    from nightshift.orchestrator.runs.config import build_run_config
    from tests.helpers.giant_app import load_giant

    giant = load_giant()
    config = build_run_config("local-pg19-100kb-bytes-0123456789abcdef", "transformer:debug")
    call = train_args(config, store.url, TrainOptions(tracking_uri="none", naming=NAMING))
    bound = inspect.signature(giant.train_run._get_source_info().raw_f).bind(*call)
    assert RunNaming.from_dict(bound.arguments["naming"]) == NAMING
    [cell] = modal_args([config], store.url, "none", None, NAMING.for_cells())
    bound = inspect.signature(giant.sweep_cell._get_source_info().raw_f).bind(*cell)
    assert RunNaming.from_dict(bound.arguments["naming"]) == NAMING.for_cells()


def test_train_lands_in_the_named_experiment_and_its_paths_survive_sanitizing(
        store_dir: Path, pg19_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    """One tiny real run: experiment, name, tags and config.json in MLflow; `run.uri` under $PWD unmasked;
    the run's config.json as --config is the same run (finished: a no-op)."""
    from nightshift.orchestrator.cli import main
    from tests.helpers.data import prepare_pg19

    dataset = prepare_pg19(store_dir, pg19_dir, max_bytes=20_000, valid_bytes=3_000)  # a small final eval
    monkeypatch.setenv("PWD", str(store_dir.parent))  # the store lies under the current directory
    monkeypatch.setenv(EXPERIMENT_ENV, "from-env")
    argv = ["train", "--dataset", dataset, "--model", "transformer:debug", "--steps", "2",
            "--set", "eval_every=0", "--set", "sample_tokens=4", "--set", "final_ablations=false",
            "--store", str(store_dir), "--no-progress", "--json"]
    assert main([*argv, "--experiment", "ablations", "--run-name", "first-try", "--tag", "team=nlp",
                 "--tag", "backend=mine"]) == 0
    result = json.loads(capsys.readouterr().out)
    uri = default_tracking_uri(str(store_dir))
    [run] = query.runs_of_experiment(uri, "ablations")
    assert run["run_name"] == "first-try" and run["status"] == "FINISHED"
    tracked = query.get_run(uri, run["run_id"])
    assert tracked["tags"]["team"] == "nlp" and tracked["tags"]["run.id"] == result["run_id"]
    assert tracked["tags"]["backend"] == "local"  # a tag nightshift sets keeps nightshift's value
    assert tracked["tags"]["run.uri"].endswith(result["run_id"]) and str(store_dir) in tracked["tags"]["run.uri"]
    assert "[redacted]" not in json.dumps(tracked["tags"])
    assert query.runs_of_experiment(uri, "from-env") == []
    folder = next(store_dir.glob(f"runs/*/*/{result['run_id']}"))
    artifact = Path(tracked["artifact_uri"].removeprefix("file://"), "config.json")
    assert json.loads(artifact.read_text()) == json.loads((folder / "config.json").read_text())
    assert main(["train", "--config", str(folder / "config.json"), "--store", str(store_dir), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"] == result["run_id"]
