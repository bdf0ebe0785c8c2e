"""What `ray job submit` runs: `nightshift train` with the Ray backend, on the cluster it was submitted to.

    ray job submit --address http://HEAD:8265 --runtime-env infra/ray/runtime_env.yaml -- \\
        python jobs/train.py --dataset ID --model transformer:tiny --workers 4 --tracking-uri http://mlflow:5000

Same flags as `nightshift train`; `--backend` defaults to `ray` here. The job's
driver finds the cluster through `$RAY_ADDRESS` (set by the job supervisor), and
the uploaded working directory is the code every worker imports.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from the job's working directory
    sys.path.insert(0, str(ROOT))

from nightshift.orchestrator.cli import main

GLOBAL_FLAGS = ("--debug", "-v", "--verbose")  # options of `nightshift` itself, placed before `train`


def job_argv(argv: list[str]) -> list[str]:
    """`[global flags] train <flags>`, with `--backend ray` unless another backend is chosen."""
    front = [a for a in argv if a in GLOBAL_FLAGS]
    rest = [a for a in argv if a not in GLOBAL_FLAGS]
    if not any(a == "--backend" or a.startswith("--backend=") for a in rest):
        rest += ["--backend", "ray"]
    if "--no-progress" not in rest:
        rest.append("--no-progress")  # job logs are not a terminal: no progress bar redraws
    return [*front, "train", *rest]


if __name__ == "__main__":
    sys.exit(main(job_argv(sys.argv[1:])))
