"""benchmarks/gpu_check.sh: one clear line and exit 0 without a GPU; its sections run (tiny, on CPU).

The script is for a CUDA machine and is not part of CI; what CI can hold is that
it refuses politely here and that the code of its sections runs against the
current code base (`--smoke`: every section's own code path, tiny, on the CPU),
so a GPU session is never spent on a typo.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import ROOT

SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def test_without_a_gpu_the_script_says_so_in_one_line_and_exits_0(tmp_path: Path) -> None:
    fake = tmp_path / "bin"
    fake.mkdir()
    smi = fake / "nvidia-smi"  # a driver install without a GPU, as on a CPU node
    smi.write_text("#!/bin/sh\necho 'No devices were found'\nexit 6\n")
    smi.chmod(0o755)
    for path in (f"{fake}:/usr/bin:/bin", "/usr/bin:/bin"):  # a failing nvidia-smi, and none at all
        if path == "/usr/bin:/bin" and any((Path(d) / "nvidia-smi").exists() for d in ("/usr/bin", "/bin")):
            continue
        out = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True,
                             timeout=60, env={"PATH": path, "HOME": str(tmp_path)})
        assert out.returncode == 0, out.stderr
        assert out.stdout.splitlines() == ["gpu_check: no CUDA device (nvidia-smi lists no GPU); nothing to check"]
        assert out.stderr == ""
    assert not (tmp_path / "out").exists()  # checked nothing, wrote nothing


def test_the_python_driver_without_cuda_also_exits_0_with_one_line(tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: run benchmarks/gpu_check.sh itself")
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert out.returncode == 0 and len(out.stdout.splitlines()) == 1 and "no CUDA device" in out.stdout


SMOKE = ("train:transformer", "ddp_nccl", "modal_local", "bench:transformer", "bench:holographic", "bench:attractor")


@pytest.mark.slow
def test_the_sections_run_tiny_on_the_cpu_and_write_one_json_of_figures(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "benchmarks.gpu_check", "--smoke", "--out",
                          str(tmp_path), "--only", ",".join(SMOKE)],
                         capture_output=True, text=True, timeout=900, cwd=ROOT)
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    failed = {n: s for n, s in report["sections"].items() if s["status"] != "ok"}
    assert out.returncode == 0 and not failed, (failed, out.stdout[-2000:], out.stderr[-2000:])
    assert set(report["sections"]) == set(SMOKE) and report["all_ok"] and report["mode"] == "cpu-smoke"
    train = report["sections"]["train:transformer"]
    assert train["device"] == "cpu" and train["steps"] == 8 and 4 <= train["stopped_at"] < 8  # SIGTERM, resume
    assert train["cpu_eval_bpb"] == pytest.approx(train["val_bpb"], rel=1e-4)
    assert report["sections"]["ddp_nccl"]["collectives[gloo]"] == "ok"
    assert report["sections"]["bench:transformer"]["eager.tokens_per_s"] > 0
    assert all(name in out.stdout for name in SMOKE)  # the table
