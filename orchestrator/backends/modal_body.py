"""What runs inside a Modal container: the giant run, and one run of `nightshift train --backend modal`.

Plain functions: `jobs/giant.py` calls them inside a Modal container (H100s,
a Volume mounted at /vol); tests call the same functions through `.local()`.
Both train through the local backend (in-process, or one rank per GPU). Everything a retry
needs is in the store: the prepared dataset (prepared on first use, a no-op
afterwards) and the checkpoint trail, so a preempted or failed attempt that
Modal retries simply calls this again and resumes from the latest checkpoint.
A Volume only persists what is committed: it is committed after the dataset
is prepared, after every checkpoint and at the end.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.errors import AttemptInterrupted
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.runs.giant import GiantFlags, check_world, giant_run_config, tokenizer_for
from nightshift.orchestrator.tracking.naming import RunNaming
from nightshift.pipelines.store import Store

log = logging.getLogger(__name__)

COMMIT_POLL_SECONDS = 10.0  # multi-GPU: how often the parent looks for a new checkpoint to commit


@dataclass(slots=True)
class VolumeCommits:
    """Commits a Modal Volume (anything with `.commit()`); a no-op without one (local runs)."""

    volume: Any | None = None
    commits: int = 0

    def commit(self) -> None:
        if self.volume is not None:
            self.volume.commit()
            self.commits += 1

    def __call__(self, info: dict[str, Any]) -> None:
        """Trainer checkpoint callback: every rank calls it; rank 0 (the writer) has the path."""
        if "path" in info:
            self.commit()


def ensure_dataset(flags: GiantFlags, store: Store, *, actors: int = 0, progress: bool = False) -> tuple[str, str]:
    """(dataset id, status): an id as given ("given"), else `--dataset` prepared as a source on first
    use ("prepared") and reused afterwards ("exists")."""
    from nightshift.pipelines.prepare import PrepareConfig, prepare
    from nightshift.pipelines.sizes import parse_size

    name = flags.dataset
    if ":" not in name and "/" not in name and store.exists("datasets", name, "manifest.json"):
        return name, "given"
    config = PrepareConfig(source=name, max_bytes=parse_size(flags.max_bytes, what="--max-bytes"),
                           valid_bytes=parse_size(flags.valid_bytes, what="--valid-bytes"),
                           tokenizer=tokenizer_for(flags))
    manifest = prepare(config, store, actors=actors, progress=progress)
    log.info("giant run: dataset %s (%s)", manifest.dataset_id, manifest.status)
    return manifest.dataset_id, manifest.status


def run_giant(flags: GiantFlags, *, store_url: str, gpus: int = 0, tracking_uri: str | None = None,
              volume: Any | None = None, prepare_actors: int = 0, progress: bool = False) -> dict[str, Any]:
    """Prepare (first use), then train or resume; DDP over `gpus` processes when there are several."""
    store = Store.open(store_url)
    commits = VolumeCommits(volume)
    dataset_id, dataset_status = ensure_dataset(flags, store, actors=prepare_actors, progress=progress)
    commits.commit()  # a preemption during training must not cost the prepared dataset
    config, ignored = giant_run_config(flags, dataset_id, world=max(1, gpus))
    check_world(config, gpus)
    result = train_on_volume(config, store, gpus=gpus, tracking_uri=tracking_uri, commits=commits,
                             progress=progress)
    result["modal"] |= {"dataset_status": dataset_status, "ignored_flags": ignored}
    return result


def train_on_volume(config: RunConfig, store: Store, *, gpus: int = 0, tracking_uri: str | None = None,
                    commits: VolumeCommits | None = None, progress: bool = False,
                    parent_run_id: str | None = None, naming: RunNaming | None = None) -> dict[str, Any]:
    """Train or resume `config` in this container through the local backend, committing the Volume after
    every checkpoint (one rank: the trainer's callback; several: a watcher on the trail) and at the end."""
    from nightshift.orchestrator.backends.base import TrainOptions
    from nightshift.orchestrator.backends.local import LocalBackend

    commits = commits or VolumeCommits()
    latest = CheckpointTrail(store, config.run_path).latest()
    log.info("modal run %s: %s at step %d of %d", config.run_id, "resuming" if latest else "starting",
             latest["step"] if latest else 0, config.train.steps)
    options = TrainOptions(workers=max(1, gpus), tracking_uri=tracking_uri, progress=progress,
                           parent_run_id=parent_run_id, checkpoint_callback=commits, env_backend="modal",
                           naming=naming)
    if options.workers == 1:
        result = LocalBackend().train(config, store, options)
    else:
        with commit_on_new_checkpoints(store, config, commits):
            result = LocalBackend().train(config, store, options)
    commits.commit()
    if result.get("stop_reason") == "interrupted":  # preempted or timed out: fail so Modal's Retries resume it
        raise AttemptInterrupted(config.run_id, int(result["step"]), result.get("stop_signal"))
    result["modal"] = {"gpus": gpus, "resumed_from_step": latest["step"] if latest else 0,
                       "volume_commits": commits.commits}
    return result


@contextmanager
def commit_on_new_checkpoints(store: Store, config: RunConfig, commits: VolumeCommits,
                              every: float = COMMIT_POLL_SECONDS) -> Iterator[None]:
    """Commit when the trail's latest step changes (checkpoints written by DDP child processes)."""
    trail = CheckpointTrail(store, config.run_path)
    stop = threading.Event()

    def watch() -> None:
        seen = (trail.latest() or {}).get("step")
        while not stop.wait(every):
            step = (trail.latest() or {}).get("step")
            if step != seen:
                commits.commit()
                seen = step

    thread = threading.Thread(target=watch, name="volume-commits", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=every + 5)
