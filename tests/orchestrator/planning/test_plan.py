"""`nightshift plan` and `modal run jobs/giant.py --dry-run`: the pre-flight estimate, refusals before any GPU."""

from __future__ import annotations

import contextlib
import io
import math
import subprocess
import sys

import pytest
import torch

from nightshift.models.holographic import Config as HoloConfig
from nightshift.models.protocol import Vocab
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.planning.memory import estimate_memory
from nightshift.orchestrator.planning.preflight import (
    data_from_bytes,
    device_named,
    plan_run,
)
from nightshift.orchestrator.runs.config import build_run_config
from tests.helpers.paths import ROOT


def nightshift(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "nightshift.orchestrator.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)


def test_plan_refuses_a_store_larger_than_the_host_with_one_line() -> None:
    proc = nightshift("plan", "--model", "holographic:base", "--device", "H100", "--samples", "100000000",
                      "--set", "max_attractors=20000000000")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("nightshift: error: holographic:base needs") and "GB of host memory" in lines[0]
    assert "store" in lines[0] and "--host-memory" in lines[0] and "Traceback" not in proc.stderr
    assert "REFUSED" in proc.stdout  # the plan itself is still printed above the refusal


def test_plan_refuses_activations_larger_than_the_device() -> None:
    proc = nightshift("plan", "--model", "transformer:gpt2-124m", "--device", "A100", "--set", "batch_size=2048",
                      "--set", "grad_accum=1", "--steps", "10")
    assert proc.returncode == 2, proc.stderr
    assert "per device on A100 40GB (40 GB)" in proc.stderr and "activations" in proc.stderr


def test_bad_device_names_what_is_accepted() -> None:
    proc = nightshift("plan", "--model", "holographic", "--device", "TPUv5")
    assert proc.returncode == 2 and "unknown device 'TPUv5'" in proc.stderr and "H100" in proc.stderr


def _giant_main():
    from tests.helpers.giant_app import load_giant

    return load_giant().main.info.raw_f


@pytest.mark.modal
@pytest.mark.parametrize("flags", [
    # the README's command (--gpu H100:8) and the giant run: 100 M episodes of context 4096
    dict(dataset="pg19", max_samples=10_000_000, context_size=64, max_attractors=1_000_000, sleep_every=100_000,
         rem_cycles=3, final_eval_bytes="1MB", gpu="H100:8"),
    dict(dataset="pg19", max_samples=100_000_000, context_size=4096, max_attractors=100_000_000, vocab_size=50257,
         sleep_every=200_000, episodic_buffer_size=8192, rem_cycles=3, max_bytes="11GB", final_eval_bytes="1MB",
         gpu="H100"),
])
def test_giant_dry_run_accepts_the_documented_flags_on_h100_and_starts_nothing(flags: dict, monkeypatch) -> None:
    main = _giant_main()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(**flags, dry_run=True)  # returns before any Modal call (no server is reachable here)
    text = out.getvalue()
    assert "fits: yes" in text and "H100 80GB" in text, text
    # --max-samples counts predicted positions; held-out rows (1 in holdout_every=64) are never stored
    positions = int(text.split("  samples       ")[1].split(" predicted positions")[0].replace(",", ""))
    assert flags["max_samples"] <= positions < flags["max_samples"] * 1.01
    stored = int(text.split(" episodes x 108 B")[0].rsplit("(", 1)[1].replace(",", ""))
    assert stored == pytest.approx(min(flags["max_attractors"], positions * 63 / 64), rel=0.01)
    assert "time   " in text and "tokens/s" in text and "one checkpoint" in text


@pytest.mark.modal
def test_giant_refuses_before_any_gpu_when_the_store_cannot_fit() -> None:
    main = _giant_main()
    with pytest.raises(UserError, match="GB of host memory"):
        main(dataset="pg19", max_samples=10_000_000_000, context_size=64, max_attractors=10_000_000_000,
             max_bytes="60GB", gpu="H100")  # 10 G positions fill the 10 G-episode store


def test_store_estimate_follows_the_family_at_small_scale(pg19_texts) -> None:
    """The plan's store rows and bytes match a real holographic memory after the same training (within 10 %)."""
    cfg = HoloConfig(context_size=8, max_attractors=60_000, episodic_buffer_size=512, holdout_size=256,
                     train_seq_multiple=16)
    vocab = Vocab.bytes_vocab()
    model = cfg.build(vocab)
    width = cfg.train_seq_len + 1
    data = "".join(pg19_texts["train"]).encode()[: 200 * width]
    rows = torch.tensor(list(data)).view(200, width)
    for s in range(0, 200, 8):
        model.observe(rows[s : s + 8])
    config = build_run_config("x" * 16, "holographic:base", {f"model.{k}": str(v) for k, v in dict(
        context_size=8, max_attractors=60_000, episodic_buffer_size=512, holdout_size=256,
        train_seq_multiple=16).items()} | {"batch_size": "8"}, steps=25)
    est = estimate_memory(config, vocab, world=1, on_gpu=False, train_tokens=200 * width)
    store = model.memory.store
    assert math.isclose(est.store_checkpoint_bytes, store.nbytes(), rel_tol=0.10), (est.store_checkpoint_bytes,
                                                                                   store.nbytes())
    assert est.store_appends  # 200 rows never fill 60k episodes: every checkpoint chunk is written once


def test_plan_numbers_are_consistent() -> None:
    config = build_run_config("x" * 16, "holographic:giant", {"max_attractors": "100000000",
                                                              "model.store_device": "host",
                                                              "final_eval_max_bytes": "100000"}, steps=1000)
    plan = plan_run(config, "H100:8", data_from_bytes("gpt2", 11 * 10**9, 10**7))
    d = plan.as_dict()
    assert d["devices"] == 8 and d["device"] == "H100 80GB" and d["fits"]
    assert d["store_on"] == "host" and d["host_bytes"] > 8 * d["store_bytes"] * 0.9  # every DDP rank holds it
    assert d["tokens"] == 1000 * 2 * 16385 and d["rate_source"].startswith("recorded")
    dev, n = device_named("a100-80gb:2")
    assert (dev.memory, n) == (80e9, 2)
