"""Never two writers on one checkpoint trail: the run lease, on a local disk and on S3 (moto).

Two processes starting the same run: one trains, the other waits and stops with
one line. A holder killed with -9 stops renewing; its lease expires and the
same command resumes the run. A holder that stalls past its ttl loses the lease
and refuses to write again.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from nightshift.orchestrator.checkpointing.lease import (
    LEASE_FILE,
    MACHINE_ENV,
    LeaseHeld,
    RunLease,
)
from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.runs.folders import find_run
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.store import Store
from tests.faults.helpers import (
    STEPS,
    TRAIN_FLAGS,
    Reference,
    kill9,
    run_config,
    same_weights,
    spawn,
    wait_for,
    weights,
)
from tests.helpers.paths import ROOT

RUN = ("runs", "d-0123456789ab", "m-0123456789ab", "r-0123456789ab")


@pytest.fixture(params=["local", pytest.param("s3", marks=pytest.mark.s3)])
def any_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "local":
        yield str(tmp_path / "store")
    else:
        s3 = request.getfixturevalue("s3_env")
        yield s3.make_bucket(f"lease-{abs(hash(str(tmp_path))) % 10**8}") + "/store"


HOLDER = textwrap.dedent("""
    import sys, time
    from nightshift.orchestrator.checkpointing.lease import LeaseLost, RunLease
    from nightshift.pipelines.store import Store
    lease = RunLease(Store.open(sys.argv[1]), tuple(sys.argv[2].split("/")), ttl=float(sys.argv[3]))
    lease.acquire(wait_s=0)
    print("held", flush=True)
    while True:
        time.sleep(0.1)
        try:
            lease.ensure()
        except LeaseLost as exc:
            print("lost:", exc, flush=True)
            sys.exit(3)
""")


def _holder(store_url: str, ttl: float, machine: str | None = None) -> subprocess.Popen:
    """A process holding the lease (renewing it) until killed; `machine`: it seems to run elsewhere."""
    env = {**os.environ, **({MACHINE_ENV: machine} if machine else {})}
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, store_url, "/".join(RUN), str(ttl)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held", proc.stderr.read()
    return proc


def test_racing_starts_get_exactly_one_owner(any_store: str) -> None:
    store = Store.open(any_store)
    won, held = [], []

    def start() -> None:
        lease = RunLease(store, RUN, ttl=5.0)
        try:
            lease.acquire(wait_s=0.5)
            won.append(lease)
        except LeaseHeld as exc:
            held.append(str(exc))

    threads = [threading.Thread(target=start) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(held) == 3, held
    assert "being trained by another process" in held[0] and "wait for it to finish" in held[0]
    won[0].release()
    again = RunLease(store, RUN, ttl=5.0)
    again.acquire(wait_s=0)  # released: free at once
    again.release()


def test_lease_of_a_killed_holder_expires_and_a_stalled_one_is_lost(any_store: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    store = Store.open(any_store)
    for machine, why in (("another-machine", "not renewed for a whole ttl"), (None, "no longer exists")):
        holder = _holder(any_store, ttl=1.0, machine=machine)
        with pytest.raises(LeaseHeld):  # alive and renewing: others give up after waiting
            RunLease(store, RUN, ttl=1.0).acquire(wait_s=1.0)
        kill9(holder)  # no release. Elsewhere: only expiry frees it; here: its pid is visibly gone
        taker = RunLease(store, RUN, ttl=1.0)
        with caplog.at_level(logging.WARNING, logger="nightshift.orchestrator.checkpointing.lease"):
            taker.acquire()
        assert why in caplog.text, caplog.text
        assert json.loads(store.read_bytes(*RUN, LEASE_FILE))["owner"] == taker.owner
        taker.release()
        caplog.clear()

    stalled = _holder(any_store, ttl=1.0)
    stalled.send_signal(signal.SIGSTOP)  # a paused VM / a long GC: it stops renewing but is not dead
    other = RunLease(store, RUN, ttl=1.0)
    other.acquire()
    stalled.send_signal(signal.SIGCONT)
    out, _ = stalled.communicate(timeout=60)
    assert stalled.returncode == 3 and "lost its lease" in out and "stopping without writing" in out
    other.ensure()  # the new owner is unaffected
    other.release()


def _writers(store_url: str, run_id: str) -> set[str]:
    store = Store.open(store_url)
    return {m.get("writer") for m in CheckpointTrail(store, find_run(store, run_id).config.run_path).trail()}


@pytest.mark.slow
def test_two_processes_start_the_same_run_on_local_disk(store_copy: tuple[Path, str], reference: Reference) -> None:
    store, dataset_id = store_copy
    args = ("train", "--dataset", dataset_id, *TRAIN_FLAGS, "--store", str(store), "--tracking-uri", "none")
    env = {"NIGHTSHIFT_LEASE_SECONDS": "2", "NIGHTSHIFT_FAULTS": "slow@0:1"}  # each step >= 1 s: the race is real
    procs = [spawn(*args, env=env), spawn(*args, env=env)]
    outs = [p.communicate(timeout=600) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 2], [err[-2000:] for _, err in outs]
    loser = next(err for p, (_, err) in zip(procs, outs) if p.returncode == 2)
    assert loser.strip().splitlines()[-1].startswith("nightshift: error: run ") and \
        "being trained by another process" in loser
    run_id = run_config(dataset_id).run_id
    assert len(_writers(str(store), run_id)) == 1  # one writer on the whole trail
    assert same_weights(weights(store, run_id), reference.weights)


@pytest.mark.slow
@pytest.mark.s3
def test_kill_9_on_s3_then_the_same_command_resumes_after_the_lease_expires(
        s3_env, pg19_dir: Path, reference: Reference) -> None:
    url = s3_env.make_bucket("lease-kill9") + "/store"
    store = Store.open(url)
    dataset_id = prepare(PrepareConfig(source=f"local:{pg19_dir}", max_bytes=200_000, valid_bytes=8_000,
                                       tokenizer="bytes"), store, actors=0, progress=False).dataset_id
    run_id = run_config(dataset_id).run_id
    args = ("train", "--dataset", dataset_id, *TRAIN_FLAGS, "--store", url, "--tracking-uri", "none")
    env = {"NIGHTSHIFT_LEASE_SECONDS": "3"}
    first = spawn(*args, env={**env, "NIGHTSHIFT_FAULTS": "slow@0:0.5", MACHINE_ENV: "a-preempted-node"})

    def checkpointed() -> bool:
        try:
            trail = CheckpointTrail(Store.open(url), find_run(Store.open(url), run_id).config.run_path)
            return (trail.latest() or {}).get("step", 0) >= 2
        except Exception:  # noqa: BLE001 - not there yet
            return False

    wait_for(checkpointed, 300, "the first checkpoint on S3", first)
    kill9(first)
    second = spawn(*args, env=env)  # at once: the dead owner's lease is still there
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-3000:]
    assert "took over the lease" in err and "not renewed for a whole ttl" in err  # it waited out the expiry
    assert json.loads(out)["step"] == STEPS and same_weights(weights(url, run_id), reference.weights)


@pytest.mark.slow
def test_a_stalled_trainer_that_lost_its_lease_writes_nothing_more(store_copy: tuple[Path, str],
                                                                   reference: Reference) -> None:
    """A run paused past its lease (a frozen VM) is taken over; when it wakes it stops before its next write."""
    store, dataset_id = store_copy
    run_id = run_config(dataset_id).run_id
    args = ("train", "--dataset", dataset_id, *TRAIN_FLAGS, "--store", str(store), "--tracking-uri", "none")
    env = {"NIGHTSHIFT_LEASE_SECONDS": "2"}
    stalled = spawn(*args, env={**env, "NIGHTSHIFT_FAULTS": "slow@0:0.5"})
    def first_checkpoint() -> bool:
        return any(store.glob("runs/*/*/*/checkpoints/latest.json"))

    wait_for(first_checkpoint, 300, "the first checkpoint", stalled)
    stalled.send_signal(signal.SIGSTOP)
    trail_of = lambda: CheckpointTrail(Store.open(str(store)),  # noqa: E731
                                       find_run(Store.open(str(store)), run_id).config.run_path).trail()
    frozen = max(m["step"] for m in trail_of())  # what the stalled process wrote before it froze
    taker = spawn(*args, env=env)  # waits one ttl (the holder is alive but silent), then takes over
    out, err = taker.communicate(timeout=600)
    assert taker.returncode == 0 and "took over the lease" in err, err[-3000:]
    stalled.send_signal(signal.SIGCONT)
    _, stalled_err = stalled.communicate(timeout=600)
    assert stalled.returncode == 2 and "lost its lease" in stalled_err.strip().splitlines()[-1], stalled_err[-3000:]
    writers = _writers(str(store), run_id)
    assert len(writers) <= 2 and json.loads(out)["step"] == STEPS
    trail = trail_of()
    late = [m["step"] for m in trail if m["writer"] != trail[-1]["writer"]]
    assert all(step <= frozen for step in late), (late, frozen)  # nothing from the stalled one after the take-over
    assert same_weights(weights(store, run_id), reference.weights)
    assert json.loads((next(store.glob(f"runs/*/*/{run_id}")) / "status.json").read_text())["state"] == "finished"
