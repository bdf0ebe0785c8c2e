"""infra/: the YAML parses, has what each deployment needs, and agrees with the code and tools it drives.

No docker daemon or Kubernetes API here: the files are checked against Ray's own
cluster schema, the real `mlflow server` / `ray start` option lists, and
nightshift's own argument parser (for the job entrypoint).
"""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from functools import cache
from pathlib import Path

import mlflow
import ray
import yaml

from nightshift.orchestrator.cli import build_parser
from tests.helpers.paths import ROOT

INFRA = ROOT / "infra"
VENV_BIN = Path(sys.executable).parent


def load(name: str) -> dict:
    return yaml.safe_load((INFRA / name).read_text())


@cache
def cli_options(*command: str) -> frozenset[str]:
    """Every `--option` a real CLI documents in its --help."""
    out = subprocess.run([str(VENV_BIN / command[0]), *command[1:], "--help"], capture_output=True, text=True,
                         timeout=120, env={**os.environ, "RAY_AUTH_MODE": "disabled"})
    return frozenset(re.findall(r"--[a-z][a-z0-9-]*", out.stdout + out.stderr))


def options_in(words: list[str]) -> set[str]:
    return {w.split("=", 1)[0] for w in words if w.startswith("--")}


# ------------------------------------------------------------------------- docker compose
def test_compose_runs_mlflow_on_postgres_with_minio_artifacts_and_creates_the_buckets() -> None:
    compose = load("docker-compose.yml")
    services = compose["services"]
    assert {"minio", "create-buckets", "postgres", "mlflow"} <= set(services)
    mlflow_svc = services["mlflow"]
    command = mlflow_svc["command"]
    assert command[:2] == ["mlflow", "server"]
    assert options_in(command) <= cli_options("mlflow", "server")
    args = dict(zip(command[2::2], command[3::2]))
    assert args["--backend-store-uri"].startswith("postgresql://") and "@postgres:5432/" in args["--backend-store-uri"]
    bucket = re.match(r"s3://([^/]+)/", args["--artifacts-destination"]).group(1)
    buckets_cmd = " ".join(services["create-buckets"]["entrypoint"])
    assert f"mc mb --ignore-existing local/{bucket}" in buckets_cmd  # the artifact bucket exists at start
    assert "local/nightshift" in buckets_cmd  # and the one for an s3:// nightshift store
    assert mlflow_svc["environment"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert "9000:9000" in services["minio"]["ports"] and "5000:5000" in mlflow_svc["ports"]
    assert mlflow_svc["depends_on"]["create-buckets"]["condition"] == "service_completed_successfully"
    assert mlflow_svc["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert {"minio-data", "postgres-data"} <= set(compose["volumes"])
    # The server is built beside the compose file with the MLflow version the client pins.
    dockerfile = (INFRA / mlflow_svc["build"]["context"] / mlflow_svc["build"]["dockerfile"]).read_text()
    assert f'"mlflow=={mlflow.__version__}"' in dockerfile and "psycopg2" in dockerfile and "boto3" in dockerfile


# ------------------------------------------------------------------------------ ray up
def test_ray_cluster_config_passes_rays_own_schema_and_starts_a_head_and_gpu_workers() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load("ray/cluster.yaml")
    validate_config(prepare_config(copy.deepcopy(config)))  # raises on a bad key or a missing one
    assert config["head_node_type"] in config["available_node_types"]
    workers = [t for n, t in config["available_node_types"].items() if n != config["head_node_type"]]
    assert workers and all(t["max_workers"] >= 1 for t in workers)
    head_cmd = " ".join(config["head_start_ray_commands"])
    assert "ray start --head" in head_cmd and "--dashboard-host=0.0.0.0" in head_cmd
    ray_start = cli_options("ray", "start")
    for cmd in config["head_start_ray_commands"] + config["worker_start_ray_commands"]:
        assert options_in(shlex.split(cmd.replace(";", " "))) <= ray_start, cmd
    assert config["file_mounts"]["~/nightshift"] == "."  # the checkout is what runs
    assert any(".ci/constraints.txt" in c for c in config["setup_commands"])


def test_ray_cluster_runs_the_ray_and_python_ci_tests_on_an_ami_with_a_current_driver() -> None:
    config = load("ray/cluster.yaml")
    py = f"py{sys.version_info.major}{sys.version_info.minor}"
    assert config["docker"]["image"] == f"rayproject/ray:{ray.__version__}-{py}-gpu"  # Ray's image, not its old AMI
    for name, node in config["available_node_types"].items():
        image_id = node["node_config"].get("ImageId", "")
        assert image_id.startswith("resolve:ssm:/aws/service/deeplearning/ami/x86_64/"), name
        assert "gpu" in image_id and "18.04" not in image_id, name
    assert not any("+cpu" in c or "venv" in c for c in config["setup_commands"])  # the image's own Python


# ------------------------------------------------------------------------------ KubeRay
def load_jobs_train():
    spec = importlib.util.spec_from_file_location("nightshift_jobs_train", ROOT / "jobs" / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rayjob_runs_jobs_train_with_flags_nightshift_accepts_on_a_matching_cluster() -> None:
    job = load("kuberay/rayjob.yaml")
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    words = shlex.split(spec["entrypoint"])
    assert words[:2] == ["python", "/app/jobs/train.py"]
    args = build_parser().parse_args(load_jobs_train().job_argv(words[2:]))  # exits on an unknown flag
    assert args.command == "train" and args.backend == "ray"
    assert args.store.startswith("s3://") and args.tracking_uri.startswith("http")
    cluster = spec["rayClusterSpec"]
    assert cluster["rayVersion"] == ray.__version__
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    gpu_groups = [g for g in cluster["workerGroupSpecs"]
                  if g["template"]["spec"]["containers"][0]["resources"]["limits"].get("nvidia.com/gpu")]
    assert sum(g["replicas"] for g in gpu_groups) >= args.workers
    per_pod = int(gpu_groups[0]["template"]["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"])
    assert per_pod >= args.gpus_per_worker
    dockerfile = (INFRA / "kuberay" / "Dockerfile").read_text()
    assert f"FROM rayproject/ray:{ray.__version__}-" in dockerfile
    assert ".venv" in (INFRA / "kuberay" / "Dockerfile.dockerignore").read_text()


def test_jobs_train_defaults_to_the_ray_backend_and_keeps_global_flags_first() -> None:
    job_argv = load_jobs_train().job_argv
    assert job_argv(["--dataset", "d", "-v"]) == ["-v", "train", "--dataset", "d", "--backend", "ray",
                                                 "--no-progress"]
    assert job_argv(["--backend", "local", "--no-progress"]) == ["train", "--backend", "local", "--no-progress"]


def test_infra_readme_has_a_section_per_deployment() -> None:
    text = (INFRA / "README.md").read_text()
    for heading in ("docker compose", "ray up", "ray job submit", "KubeRay", "Modal"):
        assert re.search(rf"^##+ .*{re.escape(heading)}", text, flags=re.MULTILINE | re.IGNORECASE), heading


def test_the_ray_jobs_runtime_env_ships_the_pinned_requirements() -> None:
    """infra/ray/requirements.txt is exactly pyproject's dependencies at CI's pins (regenerate it when they
    change), and the runtime env is one Ray accepts (its own validation); the loopback job submits with it."""
    from ray.runtime_env import RuntimeEnv

    from nightshift.orchestrator.backends.requirements import pinned, requirements_txt

    assert (INFRA / "ray" / "requirements.txt").read_text() == requirements_txt()
    listed = [p for p in requirements_txt().splitlines() if not p.startswith("#")]
    assert listed == pinned() and all("==" in p for p in listed) and not any("+cpu" in p for p in listed)
    env = load("ray/runtime_env.yaml")
    cwd = os.getcwd()
    os.chdir(ROOT)  # its paths are relative to where `ray job submit` runs: the checkout
    try:
        parsed = RuntimeEnv(**env)
    finally:
        os.chdir(cwd)
    assert [p for p in parsed["pip"]["packages"] if not p.startswith("#")] == listed and env["working_dir"] == "."
