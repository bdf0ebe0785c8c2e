"""The giant run on Modal: H100s, a Volume for the store, retries that resume from the last checkpoint.

    modal run jobs/giant.py --dataset pg19 --max-samples 100000000 --vocab-size 100000 --context-size 4096 \\
        --max-attractors 100000000 --noise-std 0.3 --log-every 100000 --deep-log-every 5000000 \\
        --generate-every 1000000 --sleep-every 1000000 --episodic-buffer-size 50000 --rem-cycles 3 \\
        --final-eval-bytes 4MB
    modal run -d jobs/giant.py ... --gpu H100:8     # detached: keeps running after you disconnect
    python jobs/giant.py --dry-run [the same flags]  # the whole run's plan, offline

That is the original's "Option A" as its users type it: `--max-samples` and every
cadence count predicted positions (one context window and its next token), as in
the original; `--vocab-size 100000` maps to the nearest lossless tokenizer
(cl100k_base, 100,277), said in one line. Without `--final-eval-bytes` the plan
refuses it: scoring all 10 MB of validation over 100 M stored windows would take
longer than the training.

`--model` picks any family (default holographic); flags a family has no field
for are ignored with a warning. The body is `nightshift.orchestrator.backends.modal_body.run_giant`,
a plain function: `giant.local(...)` runs it here, on CPU, without Modal.
Secrets (created once with `modal secret create`): `nightshift-s3` (AWS_* for an
s3:// store) and `nightshift-mlflow` (MLFLOW_TRACKING_URI and credentials); set
NIGHTSHIFT_MODAL_SECRETS to other names, or to "" for none.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import modal

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # `modal run jobs/giant.py` from a checkout
    sys.path.insert(0, str(ROOT))

APP_NAME = "nightshift-giant"
VOLUME_NAME = "nightshift"
VOLUME_MOUNT = "/vol"
STORE_ON_VOLUME = f"{VOLUME_MOUNT}/nightshift"
CODE_ROOT = "/root"  # the container's working directory, first on its sys.path
DEFAULT_GPU = "H100"
MAX_TIMEOUT_S = 24 * 60 * 60  # Modal's maximum; a longer run continues in a retry from its checkpoint
MAX_RETRIES = 10
# Reserved per container when a launch gives no plan (train_run, sweep_cell): Modal's default is 0.125 cores
# and 128 MiB. `modal run jobs/giant.py` asks for its own plan's figures instead (Plan.container_request).
DEFAULT_CPU = 8.0
DEFAULT_MEMORY_MIB = 32 * 1024
RETRIES = modal.Retries(max_retries=MAX_RETRIES, backoff_coefficient=1.0, initial_delay=30.0)
APT_PACKAGES = ("gcc", "g++")  # Triton compiles its launchers with the host C compiler (torch.compile on CUDA)
CONSTRAINTS_IN_IMAGE = "/root/.ci-constraints.txt"


def image_packages() -> list[str]:
    """The project's own dependencies (pyproject.toml), the list a wheel install would pull."""
    from nightshift.orchestrator.backends.requirements import project_dependencies

    return project_dependencies(ROOT)


def pinned(packages: list[str] | None = None) -> list[str]:
    """Each package at the version CI tests (.ci/constraints.txt); the image also installs under the whole
    file as constraints, so every transitive package is CI's too. PyPI's torch wheel: the CUDA build. The same
    list a Ray job installs (orchestrator/backends/requirements.py, infra/ray/requirements.txt)."""
    from nightshift.orchestrator.backends import requirements

    return requirements.pinned(packages, ROOT)


def secret_names() -> list[str]:
    raw = os.environ.get("NIGHTSHIFT_MODAL_SECRETS", "nightshift-s3,nightshift-mlflow")
    return [s.strip() for s in raw.split(",") if s.strip()]


def launcher_env() -> dict[str, str]:
    """Commit, entry point and user of the launcher, baked into the image's environment: the container has
    no .git and runs as root, yet its runs carry the commit of the code the image holds (and who launched it).
    Inside the container the same call reads them back from that environment, so the image is unchanged."""
    from nightshift.orchestrator.runs.tags import SOURCE_ENV
    from nightshift.orchestrator.runs.tags import launcher_env as here

    return {**here(), SOURCE_ENV: os.environ.get(SOURCE_ENV) or "jobs/giant.py"}


def with_source(base: modal.Image) -> modal.Image:
    """nightshift at /root/nightshift laid out as in a wheel (its layers inside it); /root is on the
    container's sys.path, so only the name `nightshift` is added there."""
    from nightshift import LAYERS

    skip = ["**/__pycache__", "**/*.pyc"]
    image = base.add_local_dir(ROOT / "nightshift", f"{CODE_ROOT}/nightshift", ignore=skip)
    for layer in LAYERS:
        image = image.add_local_dir(ROOT / layer, f"{CODE_ROOT}/nightshift/{layer}", ignore=skip)
    return image


app = modal.App(APP_NAME)
image = with_source(
    modal.Image.debian_slim(python_version="3.11")
    .apt_install(*APT_PACKAGES)
    .add_local_file(ROOT / ".ci" / "constraints.txt", CONSTRAINTS_IN_IMAGE, copy=True)  # no +cpu pins: PyPI CUDA
    .pip_install(*pinned(), extra_options=f"-c {CONSTRAINTS_IN_IMAGE}")
    .env({"HF_HOME": f"{VOLUME_MOUNT}/hf-cache", "TIKTOKEN_CACHE_DIR": f"{VOLUME_MOUNT}/tiktoken-cache",
          **launcher_env()})
)
# Lazy references: nothing here talks to Modal until `modal run` deploys the app.
volume = modal.Volume.from_name(VOLUME_NAME, create_if_missing=True)
secrets = [modal.Secret.from_name(name) for name in secret_names()]


@app.function(image=image, gpu=DEFAULT_GPU, volumes={VOLUME_MOUNT: volume}, secrets=secrets,
              timeout=MAX_TIMEOUT_S, retries=RETRIES, cpu=DEFAULT_CPU, memory=DEFAULT_MEMORY_MIB)
def giant(flags: dict, store: str | None = None, gpus: int = 1, tracking_uri: str | None = None) -> dict:
    """One attempt of the giant run; Modal calls it again (same input) after a preemption or failure."""
    from nightshift.orchestrator.backends.modal_body import run_giant
    from nightshift.orchestrator.runs.giant import GiantFlags
    from nightshift.orchestrator.tracking.uri import explicit_tracking_uri
    from nightshift.pipelines.store import default_store_url

    on_modal = not modal.is_local()
    store_url = store or (STORE_ON_VOLUME if on_modal else default_store_url())
    uses_volume = on_modal and store_url.startswith(VOLUME_MOUNT)
    return run_giant(GiantFlags.from_dict(flags), store_url=store_url, gpus=gpus,
                     tracking_uri=explicit_tracking_uri(tracking_uri),  # flag > the secret's env > the store's DB
                     volume=volume if uses_volume else None, prepare_actors=0, progress=False)


@app.function(image=image, gpu=DEFAULT_GPU, volumes={VOLUME_MOUNT: volume}, secrets=secrets,
              timeout=MAX_TIMEOUT_S, retries=RETRIES, cpu=DEFAULT_CPU, memory=DEFAULT_MEMORY_MIB)
def train_run(run: dict, store_url: str, tracking_uri: str | None, parent_run_id: str | None, gpus: int = 1,
              naming: dict | None = None) -> dict:
    """One run of `nightshift train --backend modal` (its `.remote()` target); resumes after preemption."""
    from nightshift.orchestrator.backends.modal_body import VolumeCommits, train_on_volume
    from nightshift.orchestrator.runs.config import RunConfig
    from nightshift.orchestrator.tracking.naming import RunNaming
    from nightshift.pipelines.store import Store

    uses_volume = not modal.is_local() and store_url.startswith(VOLUME_MOUNT)
    return train_on_volume(RunConfig.from_dict(run), Store.open(store_url), gpus=gpus, tracking_uri=tracking_uri,
                           commits=VolumeCommits(volume if uses_volume else None), parent_run_id=parent_run_id,
                           naming=RunNaming.from_dict(naming))


@app.function(image=image, gpu=DEFAULT_GPU, volumes={VOLUME_MOUNT: volume}, secrets=secrets,
              timeout=MAX_TIMEOUT_S, retries=RETRIES, cpu=DEFAULT_CPU, memory=DEFAULT_MEMORY_MIB)
def sweep_cell(run: dict, store_url: str, tracking_uri: str | None, parent_run_id: str | None,
               naming: dict | None = None) -> dict:
    """One cell of `nightshift sweep --backend modal` (its `starmap` target); resumes after preemption."""
    from nightshift.orchestrator.backends.body import sweep_cell as body

    return body(run, store_url, tracking_uri, parent_run_id, backend="modal", naming=naming)


@app.local_entrypoint()
def main(dataset: str = "pg19", model: str = "holographic", max_samples: int | None = None,
         vocab_size: int | None = None, context_size: int | None = None, max_attractors: int | None = None,
         noise_std: float | None = None, log_every: int | None = None, deep_log_every: int | None = None,
         generate_every: int | None = None, sleep_every: int | None = None,
         episodic_buffer_size: int | None = None, rem_cycles: int | None = None, batch_size: int | None = None,
         tokenizer: str | None = None, max_bytes: str = "1GB", valid_bytes: str = "10MB",
         final_eval_bytes: str = "", seed: int = 0, sets: str = "", gpu: str = DEFAULT_GPU,
         store: str | None = None, tracking_uri: str | None = None, dry_run: bool = False, host_memory: str = "",
         container_cpu: float | None = None, container_memory: str = "", disk: str = "",
         allow_epochs: bool = False) -> None:
    """Validate the flags here (seconds), then run on Modal (hours); `--sets "lr=3e-4;n_layer=8"`.

    Units, as in the original run (a sample = one predicted position: a context window and its next token):
      --max-samples N        predicted positions to train on
      --log-every N          positions between metric logs
      --deep-log-every N     positions between evaluations (bits per byte over eval_max_bytes of validation)
      --generate-every N     positions between generated samples
      --sleep-every N        positions between sleep (consolidation) phases
      --batch-size N         rows per step (default: fitted so one step holds no more than the shortest cadence)
      --context-size N       tokens per context window
      --max-attractors N     episodes the store keeps; --episodic-buffer-size N episodes between sleeps
      --rem-cycles N         REM rounds per sleep; --noise-std X the token embeddings' spread
      --vocab-size N         257 | 50257 | 100277 | 200019 (lossless tokenizers); any other: the nearest
      --max-bytes / --valid-bytes / --final-eval-bytes SIZE   text prepared / validation / final-eval cap
      --disk SIZE            volume size: refuse checkpoints that would not fit; --allow-epochs: allow > 4 epochs

    The pre-flight plan (orchestrator/planning/preflight.py, whole_run.py) runs first: `--dry-run` prints it and
    stops; without it a run that cannot fit the device (or `--host-memory`, e.g. 200GB), cannot finish within
    Modal's 24 h x 11 attempts, reads the text more than 4 times, overflows `--disk`, or whose final evaluation
    outlasts its training, is refused before any GPU starts. The container reserves the plan's cores and host
    memory (its `container` line); `--container-cpu 16` and `--container-memory 64GB` ask for other figures.
    """
    import json

    flags, plan, gpus = checked_plan(locals())
    if dry_run:
        print(plan.render())
    plan.check()
    if dry_run:
        return
    request = plan.container_request()  # one source: the plan's host figure (and its cores per GPU)
    fn = giant.with_options(gpu=gpu, cpu=request.cpu, memory=request.memory_mib)
    result = fn.remote(flags.to_dict(), store=store, gpus=gpus, tracking_uri=tracking_uri)
    print(json.dumps(result, indent=2, sort_keys=True, default=str))


def checked_plan(args: dict):  # noqa: ANN201 - (GiantFlags, Plan, gpu count)
    """The entry point's flags checked (seconds, no Modal account) and the run's pre-flight plan."""
    from nightshift.orchestrator.planning.preflight import plan_giant
    from nightshift.orchestrator.planning.whole_run import Launcher
    from nightshift.orchestrator.runs.giant import GiantFlags, check_world, giant_run_config, gpu_count, tokenizer_for
    from nightshift.pipelines.sizes import parse_size

    sets = tuple(s for s in (args.get("sets") or "").split(";") if s.strip())
    flags = GiantFlags(**{k: v for k, v in args.items() if k in GiantFlags.__dataclass_fields__ and k != "sets"},
                       sets=sets)
    tokenizer_for(flags, say=True)
    gpu = args.get("gpu") or DEFAULT_GPU
    gpus = gpu_count(gpu)
    config, _ = giant_run_config(flags, "flag-check-000000000000", world=gpus)  # bad flags fail before any GPU
    check_world(config, gpus)
    host, disk = args.get("host_memory"), args.get("disk")
    plan = plan_giant(flags, gpu, host_memory=parse_size(host, what="--host-memory") if host else None,
                      launcher=Launcher("Modal", MAX_TIMEOUT_S / 3600, MAX_RETRIES + 1),
                      disk=parse_size(disk, what="--disk") if disk else None,
                      allow_epochs=bool(args.get("allow_epochs")))
    memory = args.get("container_memory")
    plan.override_container(args.get("container_cpu"),
                            parse_size(memory, what="--container-memory") if memory else None)
    return flags, plan, gpus


def offline_main(argv: list[str] | None = None) -> int:
    """`python jobs/giant.py --dry-run [the same flags]`: the plan with no Modal account, token or image build
    (`modal run` starts an app on Modal's servers before the entry point runs)."""
    import argparse
    import inspect

    parser = argparse.ArgumentParser(prog="python jobs/giant.py", description=(
        "The giant run's plan, offline. Launching needs Modal: modal run jobs/giant.py [the same flags]."))
    for name, param in inspect.signature(main.info.raw_f).parameters.items():
        flag = "--" + name.replace("_", "-")
        if param.annotation in (bool, "bool"):
            parser.add_argument(flag, action="store_true")
            continue
        kind = {"int | None": int, "float | None": float, "int": int, "float": float}.get(str(param.annotation), str)
        parser.add_argument(flag, type=kind, default=param.default)
    args = parser.parse_args(argv)
    if not args.dry_run:
        parser.error("only --dry-run runs here; launch with: modal run jobs/giant.py [the same flags]")
    from nightshift.orchestrator.errors import USER_ERRORS

    try:
        _, plan, _ = checked_plan(vars(args))
        print(plan.render())
        plan.check()
    except USER_ERRORS as exc:
        print(f"giant: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(offline_main())
