"""System metrics per node: what a node is, which rank reports it, and the tracker that does on other ranks.

A node is a machine: its host name, or `$NIGHTSHIFT_NODE_ID` where that is set
(a pod name, or tests that make two ranks of one machine look like two nodes).
The first rank of each node (in rank order: `local_rank == 0` under Ray and
torchrun, without depending on a backend setting it) runs MLflow's system-metrics
monitor for that node, so a node's CPU, memory, disk, network and GPUs (one
monitor sees all of a machine's GPUs through NVML) are logged once, not once per
rank. All of it goes into the run rank 0 opened, whose id reaches the other ranks
through a collective (`Trainer._start_tracking`).

Metric keys: a run on one node keeps MLflow's plain `system/<metric>`; a run on
several nodes logs `system/<node>/<metric>` for each (MLflow's own `node_id`),
and its `nightshift.nodes` tag lists the nodes in rank order.
"""

from __future__ import annotations

import logging
import os
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from nightshift.orchestrator.tracking.base import NoopTracker, RunStatus, check_status

logger = logging.getLogger(__name__)

NODE_ENV = "NIGHTSHIFT_NODE_ID"
NODES_TAG = "nightshift.nodes"
_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")  # a metric-key segment: no slashes (they would nest deeper)


def node_name() -> str:
    """This process's node: `$NIGHTSHIFT_NODE_ID`, else the host name, made safe for a metric key."""
    raw = os.environ.get(NODE_ENV, "").strip() or socket.gethostname() or "node"
    return _UNSAFE.sub("_", raw)[:100]


@dataclass(frozen=True, slots=True)
class NodeRole:
    """One rank's part in system metrics, decided from every rank's node name (in rank order)."""

    reports: bool  # the first rank of its node: it runs that node's monitor
    node_id: str | None  # the name in its metric keys; None when the whole run is one node
    nodes: tuple[str, ...]  # the run's distinct nodes, in rank order of first appearance


def node_role(names: Sequence[str], rank: int) -> NodeRole:
    """`names[r]` is rank r's `node_name()`; the same answer on every rank (every rank sees all names)."""
    if not 0 <= rank < len(names):
        raise ValueError(f"rank {rank} is outside the {len(names)} node names gathered")
    nodes = tuple(dict.fromkeys(names))
    mine = names[rank]
    return NodeRole(reports=names.index(mine) == rank, node_id=mine if len(nodes) > 1 else None, nodes=nodes)


class NodeMetricsTracker(NoopTracker):
    """A rank other than 0: logs nothing of the run, except its node's system metrics when it reports a node.

    Rank 0 owns the run (params, metrics, the model); this tracker only knows
    where MLflow is, and starts a monitor into rank 0's run once told its id.
    """

    def __init__(self, uri: str, *, system_metrics_s: float | None = 10.0) -> None:
        self.uri = uri
        self._interval = system_metrics_s
        self._system = None  # mlflow_outputs.SystemMetrics once monitoring

    def monitor_node(self, node_id: str | None, run_id: str = "") -> None:
        if not run_id or not self._interval or self._system is not None:
            return
        from nightshift.orchestrator.tracking.mlflow_outputs import SystemMetrics  # imports mlflow: only when used

        logger.info("logging system metrics of node %s into MLflow run %s", node_id or "(the only one)", run_id)
        self._system = SystemMetrics(self.uri, run_id, sampling_interval_s=self._interval, node_id=node_id)

    def finish(self, status: RunStatus = "FINISHED") -> None:
        check_status(status)
        system, self._system = self._system, None
        if system is not None:
            system.stop()
