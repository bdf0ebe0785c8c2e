"""`jobs/giant.py`: the Modal app imports offline; its body runs end to end through `.local()`,
including a simulated preemption (the attempt is SIGKILLed) and the retry that resumes."""

from __future__ import annotations

import inspect
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from nightshift.orchestrator.backends.modal_body import run_giant
from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.giant import (
    GiantFlags,
    check_world,
    giant_run_config,
    gpu_count,
    tokenizer_for,
)
from nightshift.pipelines.store import Store
from tests.helpers.giant_app import load_giant
from tests.helpers.paths import ROOT

GIANT_FLAGS = ("dataset", "max_samples", "vocab_size", "context_size", "max_attractors", "noise_std", "log_every",
               "deep_log_every", "generate_every", "sleep_every", "episodic_buffer_size", "rem_cycles", "model")




@pytest.mark.modal
def test_the_app_imports_offline_with_h100_volume_secrets_retries_and_the_giant_flags() -> None:
    giant = load_giant()
    fn_spec = giant.giant._spec_
    assert giant.app.name == "nightshift-giant"
    assert fn_spec.gpus == "H100"
    assert list(fn_spec.volumes) == ["/vol"]
    assert len(fn_spec.secrets) == 2
    for fn in (giant.giant, giant.train_run, giant.sweep_cell):  # Modal's default is 0.125 cores, 128 MiB
        assert (fn._spec_.cpu, fn._spec_.memory, fn._spec_.gpus) == (giant.DEFAULT_CPU, giant.DEFAULT_MEMORY_MIB,
                                                                     "H100")
    assert giant.MAX_TIMEOUT_S == 24 * 3600 and giant.RETRIES.max_retries >= 3
    params = inspect.signature(giant.main.info.raw_f).parameters  # Modal turns these into --flags
    assert set(GIANT_FLAGS) | {"gpu"} <= set(params)
    assert params["model"].default == "holographic"
    torch_pin = next(p for p in giant.pinned() if p.startswith("torch"))
    assert "+cpu" not in torch_pin  # the image gets CUDA wheels, not CI's CPU build


def test_the_image_installs_what_the_code_imports_pinned_with_a_compiler() -> None:
    """Every third-party import of the package resolves to a distribution the image installs (or one they
    depend on), each pinned to CI's version; the image has a C compiler for Triton."""
    import ast
    import importlib.metadata as md
    import re

    giant = load_giant()
    dists = md.packages_distributions()
    imported = set()
    for layer in ("nightshift", "orchestrator", "models", "pipelines"):
        for path in (ROOT / layer).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                    [node.module] if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module else []
                imported |= {n.split(".")[0] for n in names}
    third_party = {m for m in imported if m not in sys.stdlib_module_names and m not in ("nightshift", "__future__")}
    norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()  # noqa: E731
    listed = {norm(re.split(r"[\[=<>]", p)[0]) for p in giant.pinned()}
    closure, todo = set(), list(listed)
    while todo:  # what pip installs for the listed packages (their requirements, as installed here)
        name = todo.pop()
        if name in closure:
            continue
        closure.add(name)
        try:
            requires = md.requires(name) or []
        except md.PackageNotFoundError:  # a platform-only requirement (e.g. waitress on Windows)
            continue
        for req in requires:
            if "extra ==" not in req:
                todo.append(norm(re.split(r"[\s\[=<>;!~(]", req)[0]))
    missing = {m: dists.get(m) for m in third_party if not {norm(d) for d in dists.get(m, [m])} & closure}
    assert not missing, missing
    assert {"psutil", "nvidia-ml-py", "zstandard", "pyppmd", "xxhash"} <= listed  # metrics, references, chunks
    pins = {norm(k): v for k, v in (line.split("==") for line in (ROOT / ".ci" / "constraints.txt").read_text().split()
                                      if "==" in line)}
    for spec in giant.pinned():
        name, version = spec.split("==")
        assert version == pins[norm(name.split("[")[0])] and "+" not in version, spec
    assert {"gcc", "g++"} <= set(giant.APT_PACKAGES)


def test_the_giant_plan_prints_offline_without_a_modal_account(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODAL_")}
    env["HOME"] = str(tmp_path)  # no ~/.modal.toml either
    out = subprocess.run([sys.executable, str(ROOT / "jobs" / "giant.py"), "--dry-run", "--max-samples", "4000",
                          "--context-size", "64"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "plan: holographic" in out.stdout and "container     cpu=8 memory=" in out.stdout
    refused = subprocess.run([sys.executable, str(ROOT / "jobs" / "giant.py"), "--dry-run", "--vocab-size", "1"],
                             cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1 and "--vocab-size 1" in refused.stderr


def test_the_container_request_follows_the_plan() -> None:
    from nightshift.orchestrator.planning.preflight import MIN_MEMORY_MIB, plan_giant

    small = plan_giant(GiantFlags(max_samples=1000), "H100").container_request()
    assert (small.cpu, small.memory_mib) == (8.0, MIN_MEMORY_MIB)
    big = plan_giant(GiantFlags(max_samples=300_000_000, max_attractors=200_000_000, max_bytes="2GB",
                                sets=("model.store_device=host",)), "H100:2")  # a host store: host memory
    request = big.container_request()
    assert request.cpu == 16.0 and request.memory_mib * 2**20 >= 1.5 * big.host_need > MIN_MEMORY_MIB * 2**20


def test_the_container_request_can_be_overridden_but_not_below_the_runs_host_memory() -> None:
    """`--container-cpu` / `--container-memory` reach the entry point's request (checked_plan, as main calls it)."""
    giant = load_giant()
    flags, plan, _ = giant.checked_plan({"max_samples": 1000, "container_cpu": 4.0, "container_memory": "64GB"})
    plan.check()
    assert (plan.container_request().cpu, plan.container_request().memory_mib) == (4.0, 64 * 10**9 // 2**20 + 1)
    assert "--container-cpu / --container-memory" in plan.render()
    _, short, _ = giant.checked_plan({"max_samples": 300_000_000, "max_attractors": 200_000_000, "max_bytes": "2GB",
                                      "sets": "model.store_device=host", "container_memory": "1GB"})
    assert any(p.startswith("--container-memory 954 MiB is less than the run's host memory") for p in short.problems)
    with pytest.raises(UserError):  # the first problem (this run is also too long for Modal's attempts)
        short.check()


def test_giant_flags_map_onto_the_family_and_the_rest_are_ignored_with_a_warning(caplog) -> None:
    flags = GiantFlags(model="transformer:debug", max_samples=100, context_size=32, max_attractors=10,
                       noise_std=0.5, sleep_every=64, deep_log_every=7, generate_every=9, log_every=3)
    with caplog.at_level("WARNING"):
        config, ignored = giant_run_config(flags, "pg19-0123456789abcdef")
    assert config.model.config.seq_len == 32
    # positions: a row predicts 32; the shortest cadence (3) fits no whole row, so one row per step
    assert (config.train.cadence_unit, config.train.batch_size) == ("positions", 1)
    assert config.train.steps == 4  # ceil(100 positions / 32 per step)
    assert (config.train.eval_every, config.train.sample_every, config.train.log_every) == (7, 9, 3)
    assert config.train.sleep_every == 0  # the baseline never sleeps
    assert ignored == ["--max-attractors", "--noise-std", "--sleep-every"]
    assert "--noise-std does not apply to transformer" in caplog.text


def test_giant_flags_reach_the_holographic_fields_of_the_same_name() -> None:
    flags = GiantFlags(max_samples=64, context_size=16, max_attractors=5000, noise_std=0.25, sleep_every=32,
                       episodic_buffer_size=256, rem_cycles=2)
    config, ignored = giant_run_config(flags, "pg19-0123456789abcdef")
    cfg = config.model.config
    assert (config.model.family, cfg.context_size, cfg.max_attractors, cfg.noise_std) == ("holographic", 16, 5000, 0.25)
    assert (cfg.episodic_buffer_size, cfg.rem_cycles, config.train.sleep_every) == (256, 2, 32)
    # a sleep every 32 positions: rows shortened to 32 predicted positions, one per step, 2 steps for 64
    assert (cfg.row_positions, config.train.batch_size, config.train.steps) == (32, 1, 2)
    assert ignored == []


def test_vocab_size_picks_a_lossless_tokenizer_and_gpu_counts_parse() -> None:
    assert [tokenizer_for(GiantFlags(vocab_size=v)) for v in (257, 50257, 100277)] == ["bytes", "gpt2", "cl100k_base"]
    assert tokenizer_for(GiantFlags(vocab_size=50257, tokenizer="bytes")) == "bytes"
    with pytest.raises(UserError, match="--vocab-size 0: must be >= 2; lossless sizes: 257 \\(bytes\\), 50257"):
        tokenizer_for(GiantFlags(vocab_size=0))
    assert [gpu_count(g) for g in ("", "H100", "H100:8")] == [0, 1, 8]
    with pytest.raises(UserError, match="--gpu 'H100:x'"):
        gpu_count("H100:x")
    config, _ = giant_run_config(GiantFlags(model="holographic:giant"), "pg19-0123456789abcdef")  # batch 2
    check_world(config, 2)
    with pytest.raises(UserError, match="batch_size=2 must be divisible by GPUs x grad_accum = 8 x 1"):
        check_world(config, 8)


# ------------------------------------------------------------------ end to end through .local()
COMMON = {"vocab_size": 257, "deep_log_every": 0, "generate_every": 0, "batch_size": 8,
          "max_bytes": "200KB", "valid_bytes": "12KB", "sets": ["checkpoint_every=4", "eval_batch_size=32"]}
# The giant run's own family and flags, scaled down, in predicted positions: 12 steps of 8 rows x 113 windows
# (context 16, rows of 128 tokens), a log line every 2 steps, a sleep every 6 steps.
HOLOGRAPHIC = {**COMMON, "model": "holographic:tiny", "context_size": 16, "max_attractors": 5000, "noise_std": 0.3,
               "max_samples": 12 * 904, "log_every": 2 * 904, "sleep_every": 6 * 904, "episodic_buffer_size": 512,
               "rem_cycles": 1}
# 8 rows x 32 predicted positions a step: a log line every 2 steps
TRANSFORMER = {**COMMON, "model": "transformer:debug", "context_size": 32, "max_samples": 12 * 256,
               "log_every": 2 * 256}

ATTEMPT = textwrap.dedent("""
    import importlib.util, json, sys, warnings
    warnings.simplefilter("ignore")
    spec = importlib.util.spec_from_file_location("giant_app", sys.argv[1])
    app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
    result = app.giant.local(json.loads(sys.argv[2]), store=sys.argv[3], gpus=0, tracking_uri="none")
    print("RESULT " + json.dumps(result, default=str))
""")


def attempt(flags: dict, store: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    """One Modal attempt: `giant.local(...)` in its own process, so it can be killed like a preempted container."""
    return subprocess.Popen([sys.executable, "-c", ATTEMPT, str(ROOT / "jobs" / "giant.py"), json.dumps(flags),
                             str(store)], cwd=ROOT, env={**os.environ, **env}, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, text=True)


@pytest.mark.modal
@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:The giant function is executing locally")
def test_local_body_prepares_trains_checkpoints_and_resumes_after_a_preemption(pg19_dir: Path, tmp_path: Path) -> None:
    store = tmp_path / "vol"
    flags = {**HOLOGRAPHIC, "dataset": f"local:{pg19_dir}"}
    config, _ = giant_run_config(GiantFlags.from_dict({**flags, "dataset": "x"}), "x")
    steps = config.train.steps  # 12
    # First attempt: pauses 60 s after step 6 (checkpoint at 4) and is SIGTERM'd: a preemption.
    first_log, second_log = tmp_path / "attempt-1.log", tmp_path / "attempt-2.log"
    first = attempt(flags, store, {"NIGHTSHIFT_FAULTS": "pause@6:60"}, first_log)
    deadline = time.time() + 240
    trail = None
    while time.time() < deadline and first.poll() is None:
        runs = list(store.glob("runs/*/*/*/checkpoints/latest.json"))
        if runs and json.loads(runs[0].read_text())["step"] >= 4:
            trail = runs[0]
            break
        time.sleep(0.3)
    assert trail is not None, f"no checkpoint before the kill ({first.poll()}): {first_log.read_text()[-2000:]}"
    first.send_signal(signal.SIGTERM)  # what Modal sends at a preemption or the timeout
    first.wait(timeout=120)
    out = first_log.read_text()
    # the attempt checkpoints where it stopped, then FAILS: a returning function would be a success to Modal,
    # and its Retries would never resume the run
    assert first.returncode != 0 and "AttemptInterrupted" in out and "RESULT" not in out, out[-3000:]
    stopped = json.loads(trail.read_text())["step"]
    assert 4 < stopped < steps

    # The retry: the same input again, as Modal re-runs a preempted function.
    second = attempt(flags, store, {"NIGHTSHIFT_FAULTS": ""}, second_log)
    second.wait(timeout=300)
    out = second_log.read_text()
    assert second.returncode == 0, out[-3000:]
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    assert result["stop_reason"] == "finished" and result["step"] == steps == 12
    assert result["modal"]["resumed_from_step"] == stopped
    assert result["modal"]["dataset_status"] == "exists"  # prepared by the first attempt, reused
    assert result["modal"]["ignored_flags"] == []  # every giant flag reached a holographic field
    assert result["sleeps"] == 2  # at steps 6 and 12: the sleep cadence survives the preemption
    # Resume is exact: the same as one uninterrupted attempt (memory, RNG and data cursor restored).
    reference = load_giant().giant.local(flags, store=str(tmp_path / "uninterrupted"), gpus=0, tracking_uri="none")
    assert reference["modal"]["resumed_from_step"] == 0 and reference["step"] == steps
    assert result["memory_bytes"] == reference["memory_bytes"] > 0
    assert result["val_bpb"] == pytest.approx(reference["val_bpb"], rel=1e-6)
    assert result["val_bpb"] is not None and result["val_bpb"] < 8.0


class RecordingVolume:
    """Stands in for modal.Volume (which needs Modal's servers): counts commits."""

    def __init__(self) -> None:
        self.commits = 0

    def commit(self) -> None:
        self.commits += 1


@pytest.mark.modal
@pytest.mark.slow
def test_the_volume_is_committed_after_prepare_each_checkpoint_and_the_end(tiny_data, fresh_store: Path) -> None:
    volume = RecordingVolume()
    flags = GiantFlags.from_dict({**TRANSFORMER, "dataset": tiny_data.dataset_id, "max_samples": 6 * 256})  # 6 steps
    result = run_giant(flags, store_url=str(fresh_store), volume=volume, tracking_uri="none")
    config, _ = giant_run_config(flags, tiny_data.dataset_id)
    checkpoints = CheckpointTrail(Store.open(str(fresh_store)), config.run_path).trail()
    assert [m["step"] for m in checkpoints] == [4, 6]
    assert result["modal"]["dataset_status"] == "given"
    assert volume.commits == result["modal"]["volume_commits"] == 1 + len(checkpoints) + 1


@pytest.mark.modal
@pytest.mark.parametrize(("gpu", "gpus"), [("H100", 1), ("H100:2", 2)])
def test_the_entry_point_calls_the_deployed_function_with_arguments_its_signature_takes(
        gpu: str, gpus: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    giant = load_giant()
    body = giant.giant._raw_f_  # the function Modal deploys
    calls = []

    class Deployed:  # stands in for the hydrated Function: `.remote` needs Modal's servers
        def __init__(self, gpu: str) -> None:
            self.gpu = gpu

        def with_options(self, gpu: str, cpu: float, memory: int) -> "Deployed":
            assert cpu == 8.0 * gpus and memory >= 16 * 1024  # the plan's container request
            return Deployed(gpu)

        def remote(self, *args, **kwargs) -> dict:
            inspect.signature(body).bind(*args, **kwargs)  # a TypeError when the call no longer fits
            calls.append((self.gpu, args, kwargs))
            return {"stop_reason": "finished"}

    monkeypatch.setattr(giant, "giant", Deployed(giant.DEFAULT_GPU))
    giant.main.info.raw_f(dataset="pg19", model="transformer:debug", max_samples=64, gpu=gpu, sets="batch_size=8")
    ((used_gpu, args, kwargs),) = calls
    assert used_gpu == gpu and kwargs["gpus"] == gpus
    flags = GiantFlags.from_dict(args[0])  # the flags travel as a dict the body accepts
    assert (flags.model, flags.max_samples, flags.sets) == ("transformer:debug", 64, ("batch_size=8",))
    assert '"stop_reason": "finished"' in capsys.readouterr().out
