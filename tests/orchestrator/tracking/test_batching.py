"""Coalescing logged items into log_batch calls: MLflow's limits hold, order and content are kept."""

from __future__ import annotations

from nightshift.orchestrator.tracking.batching import (
    MAX_ENTITIES,
    MAX_METRICS,
    MAX_PARAMS_OR_TAGS,
    coalesce,
    probe,
)
from tests.helpers.servers import free_port


def test_coalesce_respects_limits_and_order() -> None:
    items = [{"kind": "batch", "metrics": [[f"m{i % 7}", float(i), 0, i]]} for i in range(2500)]
    items.insert(1200, {"kind": "artifact", "local_path": "/x", "artifact_path": None})
    items.append({"kind": "batch", "params": {f"p{i}": str(i) for i in range(250)}, "tags": {"t": "1"}})
    items.append({"kind": "terminate", "status": "FINISHED", "end_time": 0})
    units = coalesce(items)
    for unit in units:
        if unit["kind"] == "batch":
            sizes = len(unit["metrics"]), len(unit["params"]), len(unit["tags"])
            assert sizes[0] <= MAX_METRICS and max(sizes[1:]) <= MAX_PARAMS_OR_TAGS and sum(sizes) <= MAX_ENTITIES
    kinds = [u["kind"] for u in units]
    assert kinds.index("artifact") < kinds.index("terminate") == len(kinds) - 1
    before = [m[3] for u in units[:kinds.index("artifact")] for m in u.get("metrics", [])]
    after = [m[3] for u in units[kinds.index("artifact"):] for m in u.get("metrics", [])]
    assert before == list(range(1200)) and after == list(range(1200, 2500))
    params = {k: v for u in units if u["kind"] == "batch" for k, v in u["params"].items()}
    assert len(params) == 250
    assert len(units) < 10  # 2500 points travel in a handful of requests, not 2500


def test_probe_reports_a_dead_server_at_once_and_skips_non_http() -> None:
    reason = probe(f"http://127.0.0.1:{free_port()}", timeout_s=2)
    assert reason is not None and "refused" in reason.lower()
    assert probe("sqlite:////tmp/x.db") is None
