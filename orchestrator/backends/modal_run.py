"""The body of the Modal giant run, as a plain function.

`jobs/giant.py` calls it inside a Modal container (H100s, a Volume mounted at
/vol); tests call the same function through `.local()`. Everything a retry
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

from nightshift.orchestrator.backends.giant import GiantFlags, check_world, giant_run_config, tokenizer_for
from nightshift.orchestrator.checkpoint import CheckpointTrail
from nightshift.orchestrator.config import RunConfig
from nightshift.orchestrator.runtime import Env
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
    from nightshift.orchestrator.launch import train_in_process

    store = Store.open(store_url)
    commits = VolumeCommits(volume)
    dataset_id, dataset_status = ensure_dataset(flags, store, actors=prepare_actors, progress=progress)
    commits.commit()  # a preemption during training must not cost the prepared dataset
    config, ignored = giant_run_config(flags, dataset_id)
    check_world(config, gpus)
    latest = CheckpointTrail(store, config.run_path).latest()
    log.info("giant run %s: %s at step %d of %d", config.run_id, "resuming" if latest else "starting",
             latest["step"] if latest else 0, config.train.steps)
    if gpus <= 1:
        result = train_in_process(config, store.url, Env(backend="modal"), tracking_uri, progress,
                                  checkpoint_callback=commits)
    else:
        from nightshift.orchestrator.backends.local_ddp import run_local_ddp

        with commit_on_new_checkpoints(store, config, commits):
            result = run_local_ddp(config, store.url, gpus, tracking_uri, progress)
    commits.commit()
    result["modal"] = {"gpus": gpus, "dataset_status": dataset_status,
                       "resumed_from_step": latest["step"] if latest else 0, "volume_commits": commits.commits,
                       "ignored_flags": ignored}
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
