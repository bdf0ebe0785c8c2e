"""A quiet, informative terminal: our lines, not third-party INFO logs; progress lines without a TTY.

Third-party libraries log at INFO to say what they are doing (MLflow: creating
tables, starting system metrics, validating input examples; Ray, urllib3,
datasets, alembic...), which buries a run's own lines. They stay at WARNING
unless `-v` (INFO) or `--debug` (DEBUG). MLflow configures its loggers itself
when imported, from MLFLOW_LOGGING_LEVEL, so that variable is set here (and
reaches Ray workers and subprocesses); the others are set by logger name.
"""

from __future__ import annotations

import logging
import os

from nightshift.orchestrator.training.progress import SECONDS_ENV, progress_logger

# Loggers of libraries we call; their own INFO lines are not ours to show unless -v
THIRD_PARTY = ("mlflow", "alembic", "ray", "urllib3", "botocore", "s3fs", "fsspec", "datasets", "huggingface_hub",
               "filelock", "httpx", "matplotlib", "torch._dynamo", "torch._inductor", "PIL", "uvicorn", "modal")
# Environment read by libraries at import (they configure themselves): the level each should start at
LEVEL_ENV = ("MLFLOW_LOGGING_LEVEL", "DATASETS_VERBOSITY", "HF_HUB_VERBOSITY")


def configure(*, verbose: bool, debug: bool, progress_seconds: float | None) -> None:
    """Our loggers at WARNING (INFO with -v, DEBUG with --debug); third parties at WARNING unless asked."""
    level = logging.DEBUG if debug else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    name = logging.getLevelName(level).lower()
    for var in LEVEL_ENV:
        os.environ.setdefault(var, name)
    for logger in THIRD_PARTY:
        logging.getLogger(logger).setLevel(level)
    if progress_seconds is not None:
        os.environ[SECONDS_ENV] = f"{progress_seconds:g}"
    progress_logger()  # the progress lines pass at any level
