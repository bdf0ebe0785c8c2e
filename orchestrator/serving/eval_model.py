"""`nightshift eval RUN`: the checkpoint it scored, as an MLflow model of the run's MLflow run (and `--register`).

Where it goes is settled before any scoring (`eval_model_target`), so a
`--register` that cannot work fails in one line before minutes of
evaluation; without `--register`, a run MLflow never tracked (or a server
that is down) only costs a note. The model is packaged before the online
figure (`--online` changes a memory family's state) and uploaded after the
figures are in.

Which logged model: the run's `model` when the checkpoint is the finished
run's final one (`runs:/<id>/model`, what training logs itself; kept if
already there), else `model-step<N>`, so an eval of an older or unfinished
checkpoint never takes the name the finished run's model resolves by.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.loading import LoadedRun
from nightshift.orchestrator.serving.package import MODEL_NAME, save_model_folder
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EvalModelTarget:
    uri: str  # the tracking URI
    mlflow_run_id: str  # the MLflow run tracking the nightshift run
    register: str | None  # --register NAME


def eval_model_target(flag_uri: str | None, store: Store, run_key: str, register: str | None) -> EvalModelTarget | None:
    """The MLflow run `nightshift eval` logs into, or None (why: logged); a `UserError` when `--register`
    was asked for and cannot happen (bad name, tracking off, server down, run not tracked)."""
    from nightshift.orchestrator.tracking.batching import probe
    from nightshift.orchestrator.tracking.mlflow_outputs import check_model_name
    from nightshift.orchestrator.tracking.uri import is_disabled, resolve_tracking_uri

    if register is not None:
        check_model_name(register)
    uri = resolve_tracking_uri(flag_uri, store)

    def skip(reason: str) -> None:
        if register is not None:
            raise UserError(f"--register {register!r}: {reason}; nothing registered")
        log.info("the evaluated checkpoint is not logged to MLflow: %s", reason)

    if uri is None or is_disabled(uri):
        return skip(f"MLflow tracking is off ({uri or 'remote store without --tracking-uri'})")
    if uri.startswith("sqlite:///") and not os.path.exists(uri[len("sqlite:///"):]):
        return skip(f"run {run_key} is not tracked in {uri} (no such database)")
    if (down := probe(uri)) is not None:
        return skip(f"MLflow at {uri} is unreachable ({down})")
    from nightshift.orchestrator.tracking.mlflow_outputs import find_tracked_run_id
    from nightshift.orchestrator.tracking.mlflow_tracker import open_client

    run_id = find_tracked_run_id(open_client(uri), run_key)
    if run_id is None:
        return skip(f"run {run_key} is not tracked in MLflow at {uri}")
    return EvalModelTarget(uri=uri, mlflow_run_id=run_id, register=register)


def model_name_for(loaded: LoadedRun) -> str:
    """`model` for the finished run's final checkpoint, else `model-step<N>`."""
    result = loaded.run.result()
    final = result is not None and int(result.get("step", -1)) == loaded.step
    return MODEL_NAME if final else f"{MODEL_NAME}-step{loaded.step}"


class EvalModel:
    """Package now (`prepare`: the state as scored), upload and register later (`send`)."""

    def __init__(self, target: EvalModelTarget, loaded: LoadedRun) -> None:
        self.target, self.loaded = target, loaded
        self.name = model_name_for(loaded)
        self._tmp = tempfile.TemporaryDirectory(prefix="nightshift-eval-model-")
        self._folder: str | None = None
        self._existing: str | None = None  # the model id when the run has this logged model already

    def prepare(self) -> None:
        """Write the model folder from the model as loaded (before `--online` changes its memory); nothing
        to write when the run already has this logged model (the final checkpoint's, logged by training)."""
        from nightshift.orchestrator.tracking.mlflow_outputs import find_logged_model
        from nightshift.orchestrator.tracking.mlflow_tracker import open_client

        found = find_logged_model(open_client(self.target.uri), self.target.mlflow_run_id, self.name)
        if found is not None:
            self._existing = found.model_id
            return
        loaded = self.loaded
        self._folder = save_model_folder(loaded.model, loaded.run.config, loaded.tokenizer, loaded.step,
                                         os.path.join(self._tmp.name, self.name))

    def send(self, figures: dict[str, Any]) -> dict[str, Any]:
        """Log the folder as the run's logged model `name` (kept if that name is there already) and register
        it where asked; {run_id, model_id, name, uri[, registered]}."""
        from nightshift.orchestrator.tracking.mlflow_outputs import register_run_model, send_model
        from nightshift.orchestrator.tracking.mlflow_tracker import open_client

        if self._folder is None and self._existing is None:
            raise RuntimeError("EvalModel.send() before prepare()")
        config, target = self.loaded.run.config, self.target
        client = open_client(target.uri)
        try:
            model_id = self._existing or send_model(
                client, target.mlflow_run_id, self._folder, name=self.name, step=self.loaded.step,
                params={"family": config.model.family, "flavor": config.model.flavor, "dataset_id": config.dataset_id,
                        "run_id": config.run_id, "step": self.loaded.step, "source": "nightshift eval", **figures})
            out: dict[str, Any] = {"run_id": target.mlflow_run_id, "model_id": model_id, "name": self.name,
                                   "uri": f"runs:/{target.mlflow_run_id}/{self.name}"}
            if target.register is not None:
                out["registered"] = register_run_model(client, target.mlflow_run_id, target.register, self.name)
            return out
        finally:
            self._tmp.cleanup()

    def close(self) -> None:
        self._tmp.cleanup()
