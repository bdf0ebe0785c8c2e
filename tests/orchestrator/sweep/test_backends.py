"""The sweep's Modal runner sends exactly what the deployed `sweep_cell` accepts (a CPU contract test)."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from nightshift.orchestrator.backends.sweep_cells import modal_args
from nightshift.orchestrator.sweep import plan_sweep
from nightshift.pipelines.store import Store
from tests.engines.test_modal_giant import load_giant
from tests.orchestrator.sweep.conftest import alias_source, tiny_spec


@pytest.mark.modal
def test_the_argument_tuples_of_starmap_bind_to_the_deployed_sweep_cell_and_run_there(
        tmp_path: Path, pg19_dir: Path) -> None:
    store = Store.open(str(tmp_path / "store"))
    spec = tiny_spec(alias_source(tmp_path, pg19_dir, "pg19-modal"), models=("macro_unit:small",),
                     steps=2)
    plan = plan_sweep(spec, store, progress=False)
    args = modal_args(plan.cells, store.url, "none", "0123456789abcdef0123456789abcdef")
    giant = load_giant()
    signature = inspect.signature(giant.sweep_cell._get_source_info().raw_f)  # the Python function Modal deploys
    assert len(args) == len(plan.cells) == 2
    for call in args:
        bound = signature.bind(*call)  # a TypeError here is every cell failing on Modal
        assert bound.arguments["run"]["model"]["family"] == "macro_unit"
        assert bound.arguments["parent_run_id"] == call[3]
    result = giant.sweep_cell.local(*args[0])  # the deployed body, run here on CPU
    assert result["run_id"] == plan.cells[0].run_id and result["stop_reason"] == "finished"
