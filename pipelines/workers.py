"""Who tokenizes: in-process (`actors=0`) or a pool of Ray actors, each writing whole shards.

The driver decides which documents form each shard (so the output never
depends on how many actors ran); actors only tokenize and write. At most two
tasks per actor are in flight, which bounds the driver's memory to a few
shards of text whatever the corpus size.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from collections.abc import Iterable, Iterator

from nightshift import ray_session
from nightshift.pipelines.errors import DataError
from nightshift.pipelines.shards import ShardTask, encode_shard
from nightshift.pipelines.store import Store
from nightshift.pipelines.tokenizers import load_tokenizer

log = logging.getLogger(__name__)

IN_FLIGHT_PER_ACTOR = 2


class ShardWriter:
    """Tokenize one shard task and write it atomically to `<store>/<dataset_dir>/shards/...`."""

    def __init__(self, store_url: str, dataset_dir: str, tokenizer: str, env: dict[str, str] | None = None) -> None:
        if env:  # a Ray worker process does not see env vars set in the driver after Ray started
            os.environ.update(env)
        self.store = Store.open(store_url)
        self.dataset_dir = dataset_dir
        self.tokenizer = load_tokenizer(tokenizer)

    def write(self, task: ShardTask) -> dict:
        start = time.perf_counter()
        data, entry = encode_shard(self.tokenizer, task)
        self.store.write_bytes(data, self.dataset_dir, entry["path"])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        entry["worker"] = {"pid": os.getpid(), "seconds": round(time.perf_counter() - start, 4),
                           "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
        return entry


def run_in_process(tasks: Iterable[ShardTask], writer: ShardWriter) -> Iterator[dict]:
    for task in tasks:
        yield writer.write(task)


def ensure_ray(actors: int):  # noqa: ANN201 - the ray module
    """Ray for the actors (nightshift/ray_session.py: reuse, `$RAY_ADDRESS`, or a private local one), left
    running for the rest of the process."""
    import ray

    ray_session.connect(num_cpus=max(2, actors), quiet=True)
    return ray


class RayPool:
    """`actors` Ray actors, created at once so their start-up overlaps the driver opening the source."""

    def __init__(self, *, actors: int, store_url: str, dataset_dir: str, tokenizer: str) -> None:
        self.ray = ray = ensure_ray(actors)
        cpus = float(ray.cluster_resources().get("CPU", actors))
        per_actor = min(1.0, cpus / actors)  # never ask for more CPUs than exist: that would hang, not fail
        remote = ray.remote(ShardWriter).options(num_cpus=per_actor, max_restarts=0)
        env = ray_session.forwarded_env()
        self.actors = [remote.remote(store_url, dataset_dir, tokenizer, env) for _ in range(actors)]

    def run(self, tasks: Iterable[ShardTask]) -> Iterator[dict]:
        """Send each task to the least-loaded actor; yield entries as shards finish (any order)."""
        ray = self.ray
        load = [0] * len(self.actors)
        pending: dict = {}

        def collect_one() -> dict:
            done, _ = ray.wait(list(pending), num_returns=1)
            ref = done[0]
            load[pending.pop(ref)] -= 1
            try:
                return ray.get(ref)
            except ray.exceptions.RayTaskError as exc:
                cause = getattr(exc, "cause", None)
                if isinstance(cause, DataError):
                    raise DataError(str(cause)) from None
                raise

        try:
            for task in tasks:
                while len(pending) >= IN_FLIGHT_PER_ACTOR * len(self.actors):
                    yield collect_one()
                slot = min(range(len(self.actors)), key=load.__getitem__)
                pending[self.actors[slot].write.remote(task)] = slot
                load[slot] += 1
            while pending:
                yield collect_one()
        except Exception:
            # let shards in flight land before the caller cleans up, so none appears after it
            ray.wait(list(pending), num_returns=len(pending), timeout=120)
            raise

    def close(self) -> None:
        for actor in self.actors:
            self.ray.kill(actor)
        self.actors = []
