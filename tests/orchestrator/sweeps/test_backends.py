"""The Modal backend sends exactly what the deployed `sweep_cell` and `train_run` accept (CPU contract tests),
and the backend seam refuses what cannot work before any work starts."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from nightshift.orchestrator.backends import BACKENDS, TrainOptions, get_backend
from nightshift.orchestrator.backends.modal_backend import modal_args, train_args
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.sweeps.spec import plan_sweep
from nightshift.pipelines.store import Store
from tests.helpers.data import alias_source
from tests.helpers.giant_app import load_giant
from tests.orchestrator.sweeps.helpers import tiny_spec


@pytest.mark.modal
def test_the_argument_tuples_of_starmap_bind_to_the_deployed_sweep_cell_and_run_there(
        tmp_path: Path, pg19_dir: Path) -> None:
    store = Store.open(str(tmp_path / "store"))
    spec = tiny_spec(alias_source(tmp_path, pg19_dir, "pg19-modal"), models=("macro_unit:small",),
                     steps=2)
    plan = plan_sweep(spec, store, progress=False)
    args = modal_args([c.config for c in plan.cells], store.url, "none", "0123456789abcdef0123456789abcdef")
    giant = load_giant()
    signature = inspect.signature(giant.sweep_cell._get_source_info().raw_f)  # the Python function Modal deploys
    assert len(args) == len(plan.cells) == 2
    for call in args:
        bound = signature.bind(*call)  # a TypeError here is every cell failing on Modal
        assert bound.arguments["run"]["model"]["family"] == "macro_unit"
        assert bound.arguments["parent_run_id"] == call[3]
    result = giant.sweep_cell.local(*args[0])  # the deployed body, run here on CPU
    assert result["run_id"] == plan.cells[0].run_id and result["stop_reason"] == "finished"


@pytest.mark.modal
def test_the_argument_tuple_of_train_run_binds_to_the_deployed_function_and_trains_there(
        tmp_path: Path, pg19_dir: Path) -> None:
    """`nightshift train --backend modal` calls the app's `train_run` with `train_args(...)`."""
    store = Store.open(str(tmp_path / "store"))
    plan = plan_sweep(tiny_spec(alias_source(tmp_path, pg19_dir, "pg19-modal-train"), models=("macro_unit:small",),
                                sizes=(100_000,), steps=2), store, progress=False)
    config = plan.cells[0].config
    call = train_args(config, store.url, TrainOptions(tracking_uri="none", workers=1))
    giant = load_giant()
    bound = inspect.signature(giant.train_run._get_source_info().raw_f).bind(*call)
    assert bound.arguments["run"] == config.to_dict() and bound.arguments["gpus"] == 1
    result = giant.train_run.local(*call)  # the deployed body, run here on CPU
    assert result["run_id"] == config.run_id and result["stop_reason"] == "finished"
    assert result["modal"]["gpus"] == 1 and result["modal"]["resumed_from_step"] == 0


def test_every_backend_is_registered_by_name_and_an_unknown_one_is_one_line() -> None:
    assert BACKENDS == ("local", "ray", "modal")
    assert [get_backend(name).name for name in BACKENDS] == list(BACKENDS)
    with pytest.raises(UserError, match=r"--backend 'slurm': accepted local, ray, modal"):
        get_backend("slurm")


def test_modal_refuses_a_store_only_this_machine_reaches_before_any_work(tmp_path: Path) -> None:
    store = Store.open(str(tmp_path / "store"))
    with pytest.raises(UserError, match="needs a store both this machine and Modal reach"):
        get_backend("modal").check(store)
    config = build_run_config("local-pg19-100kb-bytes-0123456789abcdef", "transformer:debug", {})
    with pytest.raises(UserError, match="--workers 0: must be >= 1"):
        get_backend("local").train(config, store, TrainOptions(workers=0))


def test_train_backend_modal_with_a_local_store_is_one_line_and_prepares_nothing(tmp_path: Path) -> None:
    from tests.helpers.cli import nightshift

    store = tmp_path / "store"
    proc = nightshift("train", "--backend", "modal", "--source", "local:/nonexistent", "--model",
                      "transformer:debug", "--store", str(store), check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"nightshift: error: --backend modal needs a store both this machine and Modal reach (s3://...), "
        f"not the local folder {store}"]
    assert not (store / "datasets").exists()
