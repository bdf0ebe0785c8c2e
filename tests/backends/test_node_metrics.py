"""System metrics once per node, into the one MLflow run of a multi-rank run (orchestrator/tracking/nodes.py).

Real gloo ranks through the local backend's rank body, tracked into a real
MLflow server. One machine is one node, so the two-node case makes each rank
its own node through `$NIGHTSHIFT_NODE_ID` (what a test, or a pod whose host
name says nothing, sets); rank 1 then learns rank 0's MLflow run id through a
collective and logs its node's figures there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.tracking.nodes import NODE_ENV, node_name, node_role
from nightshift.pipelines.store import Store
from tests.backends.helpers import copy_datasets

SETS = {f"train.{k}": v for k, v in {
    "batch_size": "8", "eval_every": "0", "eval_max_bytes": "4000", "checkpoint_every": "0", "log_every": "2",
    "sample_every": "0", "sample_tokens": "4", "eval_batch_size": "32", "device": "cpu"}.items()}
CPU = "cpu_utilization_percentage"
MEMORY = "system_memory_usage_megabytes"


def test_the_first_rank_of_each_node_reports_it_and_one_node_keeps_plain_keys(
        monkeypatch: pytest.MonkeyPatch) -> None:
    one = [node_role(["hostA", "hostA"], r) for r in range(2)]
    assert [r.reports for r in one] == [True, False] and {r.node_id for r in one} == {None}
    two = [node_role(["hostA", "hostB", "hostA", "hostB"], r) for r in range(4)]
    assert [r.reports for r in two] == [True, True, False, False]
    assert [r.node_id for r in two] == ["hostA", "hostB", "hostA", "hostB"] and two[3].nodes == ("hostA", "hostB")
    monkeypatch.setenv(NODE_ENV, "pod/7 a")
    assert node_name() == "pod_7_a"  # one metric-key segment: a slash would nest the keys deeper
    monkeypatch.delenv(NODE_ENV)
    assert node_name()  # the host name
    with pytest.raises(ValueError, match="rank 2"):
        node_role(["a", "b"], 2)


def ranks_worker(rank: int, world: int, cases: list[tuple[int, dict, bool]], store_url: str, uri: str,
                 results: Any) -> None:
    """Spawned rank: each case runs `local_ddp._worker` (what `--workers 2` runs), as its own node or not."""
    from nightshift.orchestrator.backends.local_ddp import _worker

    for port, config, own_node in cases:
        if own_node:
            os.environ[NODE_ENV] = f"node{rank}"
        else:
            os.environ.pop(NODE_ENV, None)
        _worker(rank, world, port, config, store_url, uri, False, results)


def _run_id(uri: str, run_key: str) -> str:
    from nightshift.orchestrator.tracking.mlflow_outputs import find_tracked_run_id
    from nightshift.orchestrator.tracking.mlflow_tracker import open_client

    run_id = find_tracked_run_id(open_client(uri), run_key)
    assert run_id, run_key
    return run_id


@pytest.mark.slow
@pytest.mark.mlflow
def test_two_gloo_ranks_log_each_nodes_system_metrics_into_rank_0s_run(
        tiny_data, tmp_path: Path, mlflow_server, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch.multiprocessing as mp
    from mlflow.tracking import MlflowClient

    from nightshift.orchestrator.backends.local_ddp import _free_port

    monkeypatch.delenv(NODE_ENV, raising=False)
    monkeypatch.delenv("MLFLOW_SYSTEM_METRICS_NODE_ID", raising=False)
    store = Store.open(str(copy_datasets(tiny_data, tmp_path / "store")))
    configs = [build_run_config(tiny_data.dataset_id, "transformer:debug", SETS, steps=4, seed=seed)
               for seed in (151, 152)]  # seeds of their own: run keys no other test tracks into this server
    cases = [(_free_port(), configs[0].to_dict(), True), (_free_port(), configs[1].to_dict(), False)]
    ctx = mp.get_context("spawn")
    results = ctx.SimpleQueue()
    mp.start_processes(ranks_worker, args=(2, cases, store.url, mlflow_server.uri, results), nprocs=2,
                       join=True, start_method="spawn")
    assert [results.get()["step"] for _ in cases] == [4, 4]
    client = MlflowClient(tracking_uri=mlflow_server.uri)

    two = client.get_run(_run_id(mlflow_server.uri, configs[0].run_id))
    assert two.data.tags["nightshift.nodes"] == "node0,node1"
    for node in ("node0", "node1"):  # each node's own monitor, both in rank 0's run
        assert {f"system/{node}/{CPU}", f"system/{node}/{MEMORY}"} <= set(two.data.metrics), sorted(two.data.metrics)
        assert two.data.metrics[f"system/{node}/{MEMORY}"] > 0
    assert not any(k.startswith("system/") and k.count("/") == 1 for k in two.data.metrics)  # no unnamed node
    assert "final/val_bpb" in two.data.metrics  # the run itself is rank 0's, as ever

    one = client.get_run(_run_id(mlflow_server.uri, configs[1].run_id))
    system = sorted(k for k in one.data.metrics if k.startswith("system/"))
    assert f"system/{CPU}" in system and all(k.count("/") == 1 for k in system), system  # one node: plain keys
    assert "nightshift.nodes" not in one.data.tags
    history = client.get_metric_history(one.info.run_id, f"system/{MEMORY}")
    assert len({m.step for m in history}) == len(history)  # one monitor, not one per rank
