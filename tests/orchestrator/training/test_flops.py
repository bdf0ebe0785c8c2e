"""MFU: device peaks by name, and the trainer's achieved FLOP/s in its metrics and result.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.tracking import build_tracker
from nightshift.orchestrator.training.flops import (
    FlopsMeter,
    device_peak_flops,
    mfu,
    peak_for_name,
)
from nightshift.orchestrator.training.trainer import Trainer
from nightshift.pipelines.store import Store


@pytest.mark.parametrize(("name", "peak"), [
    ("NVIDIA H100 80GB HBM3", 989e12), ("NVIDIA H100 PCIe", 756e12), ("NVIDIA H100 NVL", 835e12),
    ("NVIDIA H200", 989e12), ("NVIDIA A100-SXM4-80GB", 312e12), ("NVIDIA A100-PCIE-40GB", 312e12),
    ("NVIDIA L40S", 362e12), ("NVIDIA L40", 181e12), ("NVIDIA L4", 121e12), ("NVIDIA A10G", 125e12),
    ("NVIDIA GeForce RTX 4090", None),
])
def test_peaks_are_matched_by_the_name_torch_reports(name: str, peak: float | None) -> None:
    assert peak_for_name(name) == peak


def test_no_peak_means_no_mfu_rather_than_a_guess() -> None:
    assert device_peak_flops("cpu") is None
    assert mfu(1e12, None) is None and mfu(1e12, 4e12) == 0.25


@pytest.mark.slow
def test_the_transformer_logs_achieved_flops_and_puts_them_in_its_result(pg19_bytes: str,
                                                                         store_dir: Path) -> None:
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug", {"eval_every": "0", "log_every": "2",
                                                                "sample_tokens": "4", "eval_max_bytes": "2000"},
                              steps=4)
    trainer = Trainer(config, store, progress_bar=False,
                      tracker=build_tracker("none", store, rank=0, run_prefix=config.run_path))
    result = trainer.run()
    per_sample = trainer.model.train_flops_per_sample()
    assert per_sample > 0
    assert result["flops_per_s"] == pytest.approx(per_sample * result["samples"] / result["train_seconds"])
    assert result["mfu"] is None and result["device"] == "cpu"  # a CPU has no peak in the table
    saved = json.loads(next(store_dir.glob("runs/*/*/*/result.json")).read_text())
    assert saved["flops_per_s"] == pytest.approx(result["flops_per_s"]) and "mfu" in saved
    logged = [json.loads(line) for p in store_dir.glob("runs/*/*/*/tracking/*.jsonl")
              for line in p.read_text().splitlines() if line.strip()]
    rates = [row.get("metrics", row).get("perf/flops_per_s") for row in logged]
    assert any(r and r > 0 for r in rates), logged[:3]
    # With a known peak the same rate becomes MFU, over every rank's devices.
    row = FlopsMeter(trainer.flops.per_sample, 1e12).metrics(samples_per_s=100.0)
    assert row == {"perf/flops_per_s": per_sample * 100.0, "perf/mfu": per_sample * 100.0 / 1e12}
