"""Turn a trained model into an MLflow model folder, and log it as a run's model at the end of training.

The folder is a standard pyfunc model, saved from code (`model_code.py`:
nothing is pickled): `MLmodel` with a signature and an
input example, `artifacts/checkpoint.pt` (loads with weights_only=True) and
`artifacts/tokenizer/`, pinned pip requirements, and nightshift's own code
(`code/nightshift/`, its layers inside it as in a wheel) so the model loads
in an environment where only the requirements are installed. Only the
`nightshift` name joins the loader's sys.path, so a user's own `models/` or
`pipelines/` package never meets ours. The tracker
uploads it (to the run's artifact store: S3 when the server has one) as the
run's logged model `model`, so `runs:/<run id>/model` resolves to it.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import tempfile
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any

import nightshift
from nightshift.models.protocol import LanguageModel
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.serving.bundle import CHECKPOINT_FILE, TOKENIZER_DIR, write_checkpoint, write_tokenizer

log = logging.getLogger(__name__)

NAMESPACE_DIR = Path(nightshift.__file__).resolve().parent
REQUIREMENTS = ("torch", "numpy", "pandas", "tiktoken", "pyarrow", "fsspec", "mlflow")
MODEL_NAME = "model"


def requirements() -> list[str]:
    """The versions in this environment (a local build suffix like +cpu dropped: it does not resolve on PyPI)."""
    pins = []
    for name in REQUIREMENTS:
        try:
            pins.append(f"{name}=={metadata.version(name).split('+')[0]}")
        except metadata.PackageNotFoundError:
            pins.append(name)
    return pins


def _stage_code(into: str) -> list[str]:
    """`into/nightshift/` laid out as an installed wheel (the layers inside it), .py files only."""
    target = os.path.join(into, "nightshift")
    skip = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(NAMESPACE_DIR, target, ignore=skip)
    for layer in nightshift.LAYERS:
        source = Path(importlib.import_module(f"nightshift.{layer}").__file__).resolve().parent
        if not os.path.exists(os.path.join(target, layer)):  # a source checkout: the layers sit beside it
            shutil.copytree(source, os.path.join(target, layer), ignore=skip)
    return [target]


def save_model_folder(model: LanguageModel, config: RunConfig, tokenizer: Any, step: int, path: str,
                      extra_metadata: dict[str, Any] | None = None) -> str:
    """Write the pyfunc model folder at `path` (must not exist yet); returns `path`."""
    import mlflow.pyfunc

    from nightshift.orchestrator.serving import model_code
    from nightshift.orchestrator.serving.pyfunc import input_example, signature

    with tempfile.TemporaryDirectory(prefix="nightshift-model-") as tmp:
        checkpoint = write_checkpoint(model, config, tokenizer, step, os.path.join(tmp, CHECKPOINT_FILE))
        tok = write_tokenizer(tokenizer, os.path.join(tmp, TOKENIZER_DIR))
        meta = {"nightshift.run_id": config.run_id, "nightshift.family": config.model.family,
                "nightshift.flavor": config.model.flavor, "nightshift.dataset_id": config.dataset_id,
                "nightshift.step": int(step), **(extra_metadata or {})}
        with warnings.catch_warnings():  # MLflow asks for predict() type hints; the signature is explicit
            warnings.simplefilter("ignore", UserWarning)
            mlflow.pyfunc.save_model(
                path, python_model=model_code.__file__, artifacts={"checkpoint": checkpoint, "tokenizer": tok},
                code_paths=_stage_code(os.path.join(tmp, "code")), signature=signature(),
                input_example=input_example(), pip_requirements=requirements(), metadata=meta)
    return path


def log_final_model(tracker: Any, model: LanguageModel, config: RunConfig, tokenizer: Any, step: int,
                    params: dict[str, Any] | None = None) -> None:
    """Log the model as the run's MLflow model `model` (a no-op when nothing tracks models).

    Never raises into the trainer: a model that cannot be packaged costs a
    warning, not the finished run.
    """
    if not tracker.wants_models:
        return
    with tempfile.TemporaryDirectory(prefix="nightshift-model-") as tmp:
        try:
            folder = save_model_folder(model, config, tokenizer, step, os.path.join(tmp, MODEL_NAME))
        except Exception as exc:  # noqa: BLE001 - the run's own results are already saved
            log.warning("could not package the model of run %s for MLflow: %s: %s", config.run_id,
                        type(exc).__name__, exc)
            return
        tracker.log_model(folder, MODEL_NAME, step, {
            "family": config.model.family, "flavor": config.model.flavor, "dataset_id": config.dataset_id,
            "run_id": config.run_id, "step": step, **(params or {})})
        tracker.flush()  # the folder goes away with this block: delivered or spooled first
