"""Ray Train backend: the same trainer loop on every worker of a `TorchTrainer` (DDP).

Ray Train starts the workers and initialises torch.distributed (gloo on CPU;
`cpu:gloo,cuda:nccl` on GPUs, the device rule of nightshift/collectives.py);
each worker builds its `Env` from the Ray Train context, with the device Ray
assigned it (`ray.train.torch.get_device()`: a worker sees only its own GPUs),
and runs `train_in_process`, the body every backend shares. The complete state of a
run stays in *our* store (local or s3://), so resume is one code path on every
backend: Ray only receives a small pointer checkpoint (which store checkpoint,
which step) through `ray.train.report`. When a worker dies, `FailureConfig`
restarts the whole worker group, and the trainer resumes from the latest
checkpoint in the store.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from nightshift import ray_session
from nightshift.orchestrator.backends.base import CellOptions, CellResult, TrainOptions, check_workers, error_line
from nightshift.orchestrator.backends.body import sweep_cell
from nightshift.orchestrator.errors import USER_ERRORS, UserError
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.tracking.naming import RunNaming
from nightshift.orchestrator.training.runtime import Env
from nightshift.pipelines.store import FileSpec, Store, StoreFileError, parse_json

log = logging.getLogger(__name__)

POINTER_FILE = "nightshift_checkpoint.json"  # inside each Ray checkpoint directory: which store checkpoint
RESULT_FILE = "nightshift_result.json"  # inside the last one: the run's result dict
MAX_FAILURES_ENV = "NIGHTSHIFT_RAY_MAX_FAILURES"
DEFAULT_MAX_FAILURES = 3
CELL_RETRIES = 2  # a sweep cell whose worker is lost runs again (and resumes from its checkpoint)


@dataclass(frozen=True, slots=True, kw_only=True)
class RayJob:
    """What the driver ships to every worker (plain data: it is pickled once per worker)."""

    run: dict[str, Any]  # RunConfig.to_dict()
    store_url: str
    tracking_uri: str | None
    cpus_per_worker: float
    parent_run_id: str | None = None  # a sweep's tracked run to nest under
    naming: RunNaming | None = None  # the launcher's --experiment / --run-name / --tag


def forwarded_env() -> dict[str, str]:
    """This process's settings plus its git commit, entry point and user (workers' images have no .git)."""
    from nightshift.orchestrator.runs.tags import launcher_env

    return ray_session.forwarded_env(launcher_env())


class RayBackend:
    """Ray Train (TorchTrainer, DDP) for one run; one Ray task per cell for a sweep."""

    name: ClassVar[str] = "ray"

    def check(self, store: Store) -> None:
        _import_ray()

    def train(self, config: RunConfig, store: Store, options: TrainOptions) -> dict[str, Any]:
        check_workers(options.workers)
        return run_on_ray(config, store.url, workers=options.workers, gpus_per_worker=options.gpus_per_worker,
                          tracking_uri=options.tracking_uri, parent_run_id=options.parent_run_id,
                          naming=options.naming)

    def run_cells(self, configs: Sequence[RunConfig], store: Store, options: CellOptions) -> Iterator[CellResult]:
        """One Ray task per cell, as many at once as the cluster's CPUs allow; a lost worker retries (and resumes)."""
        ray = _import_ray()
        cpus = options.cpus_per_cell
        with ray_session.session(num_cpus=cpus, runtime_env={"env_vars": forwarded_env()}):
            task = ray.remote(num_cpus=cpus, max_retries=CELL_RETRIES)(sweep_cell)
            naming = options.naming.to_dict() if options.naming else None
            pending = {task.remote(c.to_dict(), store.url, options.tracking_uri, options.parent_run_id, self.name,
                                   max(1, int(cpus)), naming=naming): i for i, c in enumerate(configs)}
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                index = pending.pop(done[0])
                try:
                    result = ray.get(done[0])
                except Exception as exc:  # noqa: BLE001 - reported per cell, the others go on
                    yield index, None, error_line(getattr(exc, "cause", None) or exc)
                    continue
                yield index, result, None


def max_failures_default() -> int:
    raw = os.environ.get(MAX_FAILURES_ENV, str(DEFAULT_MAX_FAILURES))
    try:
        return int(raw)
    except ValueError:
        raise UserError(f"{MAX_FAILURES_ENV}={raw!r}: expected an integer (-1: retry forever)") from None


# ----------------------------------------------------------------------------- driver
def run_on_ray(config: RunConfig, store_url: str, *, workers: int, gpus_per_worker: float = 0.0,
               tracking_uri: str | None = None, cpus_per_worker: float = 1.0, max_failures: int | None = None,
               address: str | None = None, parent_run_id: str | None = None,
               naming: RunNaming | None = None) -> dict[str, Any]:
    """Train `config` on `workers` Ray Train workers; return rank 0's result dict.

    address: a Ray cluster (default `$RAY_ADDRESS`, which `ray job submit` sets); without one,
    a local Ray is started for this call. max_failures: worker-group restarts before giving up
    (default `$NIGHTSHIFT_RAY_MAX_FAILURES` or 3; -1 retries forever).
    """
    ray = _import_ray()
    from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, ScalingConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    _precheck(config, store_url, workers, gpus_per_worker)
    started = ray_session.connect(num_cpus=workers * cpus_per_worker, address=address, dashboard=True)
    try:
        _warn_if_unschedulable(ray, workers, cpus_per_worker, gpus_per_worker)
        store = Store.open(store_url)
        job = RayJob(run=config.to_dict(), store_url=store_url, tracking_uri=tracking_uri,
                     cpus_per_worker=cpus_per_worker, parent_run_id=parent_run_id, naming=naming)
        resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if gpus_per_worker else {})}
        storage_path, storage_fs = _ray_storage(store)
        trainer = TorchTrainer(
            _train_worker,
            train_loop_config={"job": job},
            torch_config=TorchConfig(backend=backend_for(gpus_per_worker)),
            scaling_config=ScalingConfig(num_workers=workers, use_gpu=gpus_per_worker > 0,
                                         resources_per_worker=resources),
            run_config=RayRunConfig(
                name=config.run_id, storage_path=storage_path, storage_filesystem=storage_fs,
                failure_config=FailureConfig(
                    max_failures=max_failures_default() if max_failures is None else max_failures),
                checkpoint_config=CheckpointConfig(num_to_keep=2),
                worker_runtime_env={"env_vars": forwarded_env()},
                # Ray Train's own per-report INFO lines only with `nightshift -v`.
                logging_config=LoggingConfig(log_level="INFO" if log.isEnabledFor(logging.INFO) else "WARNING"),
            ),
        )
        log.info("ray: %d workers x (%s) for run %s", workers, resources, config.run_id)
        try:
            result = trainer.fit()
        except Exception as exc:  # noqa: BLE001 - re-raised as the user's own error where it is one
            raise (_user_error_from(exc) or exc) from None
        return json.loads(result.metrics["nightshift_result"])
    finally:
        if started:
            ray.shutdown()


def backend_for(gpus_per_worker: float) -> str:
    """The process-group backend of a worker group: the device rule of nightshift/collectives.py."""
    from nightshift.collectives import backend_for as device_backend

    return device_backend("cuda" if gpus_per_worker > 0 else "cpu")


def _import_ray():  # noqa: ANN202 - the ray module
    try:
        import ray
        import ray.train
    except ImportError as exc:
        raise UserError(f"--backend ray needs ray[train] installed ({exc}); pip install 'ray[train]'") from None
    return ray


def _precheck(config: RunConfig, store_url: str, workers: int, gpus_per_worker: float) -> None:
    """User errors found here cost seconds; found inside a worker they would cost every retry."""
    from nightshift.pipelines.reader import open_dataset

    if gpus_per_worker < 0:
        raise UserError(f"--gpus-per-worker {gpus_per_worker}: must be >= 0")
    if 0 < gpus_per_worker < 1 and workers > 1:  # Ray would pack two ranks on one GPU; NCCL refuses that
        raise UserError(f"--gpus-per-worker {gpus_per_worker:g}: a fraction of a GPU puts several NCCL ranks on one "
                        "GPU, which NCCL refuses; accepted: 0 (CPU, gloo) or a whole number >= 1")
    if gpus_per_worker >= 1 and gpus_per_worker != int(gpus_per_worker):
        raise UserError(f"--gpus-per-worker {gpus_per_worker:g}: accepted: 0 or a whole number of GPUs")
    cfg = config.train
    if cfg.batch_size % (workers * cfg.grad_accum):
        raise UserError(f"batch_size={cfg.batch_size} must be divisible by workers x grad_accum "
                        f"= {workers} x {cfg.grad_accum}; pick --workers that divides it or --set batch_size=...")
    open_dataset(Store.open(store_url), config.dataset_id)  # DataError: unknown or incomplete dataset


def _warn_if_unschedulable(ray, workers: int, cpus: float, gpus: float) -> None:  # noqa: ANN001
    have = ray.cluster_resources()
    if have.get("CPU", 0) < workers * cpus or have.get("GPU", 0) < workers * gpus:
        log.warning("ray: asking for %d workers x %s CPU x %s GPU but the cluster has %s CPU and %s GPU now; "
                    "the run waits until an autoscaler adds nodes", workers, cpus, gpus,
                    have.get("CPU", 0), have.get("GPU", 0))


def _ray_storage(store: Store) -> tuple[str, Any]:
    """Ray's own checkpoint records live beside the run in our store (shared storage on a cluster)."""
    if store.is_local:
        return store.path("ray"), None
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return store.path("ray"), PyFileSystem(FSSpecHandler(store.fs))


def _user_error_from(exc: BaseException) -> Exception | None:
    """A WorkerGroupError wrapping a UserError/DataError on a worker -> that error, in one line."""
    failures = getattr(exc, "worker_failures", None) or {}
    for failure in failures.values():
        seen: BaseException | None = failure
        while seen is not None:
            if isinstance(seen, USER_ERRORS):
                return type(seen)(str(seen))
            seen = getattr(seen, "cause", None) or seen.__cause__
    return None


# ----------------------------------------------------------------------------- worker
def _train_worker(loop_config: dict[str, Any]) -> None:
    """Runs on every Ray Train worker (and again on every worker after a restart)."""
    import ray.train
    import ray.train.torch
    import torch

    from nightshift import collectives
    from nightshift.orchestrator.backends.body import train_in_process
    from nightshift.orchestrator.checkpointing.trail import CheckpointTrail

    job: RayJob = loop_config["job"]
    ctx = ray.train.get_context()
    device = ray.train.torch.get_device()  # cuda:i of the GPUs Ray gave this worker, or cpu
    collectives.bind_device(device)
    env = Env(rank=ctx.get_world_rank(), world_size=ctx.get_world_size(), local_rank=ctx.get_local_rank(),
              backend="ray", device=str(device))
    torch.set_num_threads(max(1, int(job.cpus_per_worker)))
    config = RunConfig.from_dict(job.run)
    store = Store.open(job.store_url)
    latest = CheckpointTrail(store, config.run_path).latest()
    pointer = read_pointer(ray.train.get_checkpoint())
    if pointer is not None:
        log.info("ray: worker group restarted; Ray's last checkpoint is step %d, the store's latest is step %s",
                 pointer["step"], latest["step"] if latest else None)
    reporter = RayCheckpointReporter(store, config, env)
    result = train_in_process(config, job.store_url, env, job.tracking_uri, progress=False,
                              checkpoint_callback=reporter, parent_run_id=job.parent_run_id, naming=job.naming)
    result["ray"] = {"world_size": env.world_size, "resumed_from_step": latest["step"] if latest else 0,
                     "ray_checkpoint_step": pointer["step"] if pointer else None,
                     "checkpoints_reported": reporter.count}
    reporter.final(result, CheckpointTrail(store, config.run_path).latest() if env.is_main else None)


@dataclass(slots=True)
class RayCheckpointReporter:
    """Trainer checkpoint callback: tell Ray Train about each checkpoint written to our store.

    Called on every rank after the store checkpoint is complete (the trainer holds a
    barrier first), because `ray.train.report` is a barrier too: every rank reports
    the same number of times. Rank 0 hands Ray a tiny directory with a pointer file;
    the state itself is never copied.
    """

    store: Store
    config: RunConfig
    env: Env
    count: int = 0

    def __call__(self, info: dict[str, Any]) -> None:
        self.count += 1
        self._report({"step": int(info["step"])}, info if "path" in info else None, None)

    def final(self, result: dict[str, Any], last: dict[str, Any] | None) -> None:
        """The result goes out with a checkpoint: Ray keeps only metrics reported beside one."""
        metrics = {"step": int(result["step"]), "nightshift_result": json.dumps(result, default=str)}
        self._report(metrics, last, result)

    def _report(self, metrics: dict[str, Any], info: dict[str, Any] | None, result: dict[str, Any] | None) -> None:
        import ray.train

        if not self.env.is_main:
            ray.train.report(metrics, checkpoint=None)
            return
        with tempfile.TemporaryDirectory(prefix="nightshift-ray-ckpt-") as tmp:
            if info is not None:
                pointer = {"store": self.store.url, "run_id": self.config.run_id, "step": int(info["step"]),
                           "path": info["path"], "uri": self.store.uri(info["path"]), "sha256": info.get("sha256")}
                _write_json(os.path.join(tmp, POINTER_FILE), pointer)
            if result is not None:
                _write_json(os.path.join(tmp, RESULT_FILE), result)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))


def _write_json(path: str, obj: Any) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        json.dump(obj, fh, indent=2, sort_keys=True, default=str)


POINTER_SPEC = FileSpec(what="Ray checkpoint pointer", fix="nothing to do: the run resumes from its store trail",
                        fields={"step": int})


def read_pointer(checkpoint: Any) -> dict[str, Any] | None:
    """The store checkpoint a Ray checkpoint points at (None without one, or when it is damaged: the pointer
    is only a record, the store's own checkpoint trail decides where a restarted group resumes)."""
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as path:
        target = os.path.join(path, POINTER_FILE)
        if not os.path.exists(target):
            return None
        with open(target, "rb") as fh:
            raw = fh.read()
    try:
        return parse_json(raw, target, POINTER_SPEC)
    except StoreFileError as exc:
        log.warning("%s", exc)
        return None
