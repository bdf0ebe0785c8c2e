"""LR schedules fitted to the planned length, and budgets that count all work (sleep included)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from nightshift.models.transformer.model import Transformer
from nightshift.orchestrator.runs.config import TrainConfig, build_run_config
from nightshift.orchestrator.training.optim import WARMUP_MAX_FRACTION, fit_schedule
from nightshift.orchestrator.training.trainer import Hook, Trainer
from nightshift.pipelines.store import Store

FAST = {"eval_every": "0", "log_every": "5", "sample_tokens": "8"}


def test_a_20_step_run_reaches_its_peak_lr_and_decays_to_its_floor(store_dir: Path, pg19_bytes: str) -> None:
    """The recipe asks 100 warmup steps; a 20-step run gets a fitted warmup, then a full cosine decay."""
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug", {**FAST, "warmup_steps": "100", "lr": "2e-3"},
                              steps=20)
    lrs: list[float] = []
    result = Trainer(config, store, progress_bar=False,
                     hooks=[Hook(lambda t, step: lrs.append(t.optimizer.param_groups[0]["lr"]))]).run()
    assert result["step"] == 20 and result["stop_reason"] == "finished"
    assert max(lrs) == pytest.approx(2e-3)  # the peak is reached ...
    assert lrs.index(max(lrs)) < 20 * WARMUP_MAX_FRACTION  # ... within the first tenth of the run
    assert lrs[-1] == pytest.approx(2e-3 * config.train.min_lr_ratio, rel=1e-6)  # decay ends at the run's end
    schedule = result["schedule"]
    assert schedule["warmup"] == 2 and schedule["planned_steps"] == 20 and schedule["recipe_warmup"] == 100
    assert schedule["planned_by"] == "steps" and schedule["fitted"] is True


def test_fit_schedule_false_keeps_the_warmup_the_user_asked_for() -> None:
    cfg = TrainConfig(steps=20, warmup_steps=100, fit_schedule=False)
    schedule = fit_schedule(cfg, cfg.steps)
    assert schedule.warmup == 100 and schedule.factor(19) == pytest.approx(0.2)  # ends inside warmup, as asked
    long = fit_schedule(TrainConfig(steps=100_000, warmup_steps=100), 100_000)
    assert long.warmup == 100  # a long run keeps the recipe's warmup


def test_budget_counts_sleep_and_the_run_plans_its_schedule_from_measured_steps(
        store_dir: Path, pg19_bytes: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each sleep takes 0.25 s; a 1.2 s budget that counted only train steps would allow hundreds of steps."""
    def slow_sleep(self, ctx):
        time.sleep(0.25)
        return {"seconds": 0.25}

    monkeypatch.setattr(Transformer, "sleep", slow_sleep)
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug",
                              {**FAST, "sleep_every": "8", "budget_minutes": "0.02", "checkpoint_every": "0"},
                              steps=10_000)
    result = Trainer(config, store, progress_bar=False).run()
    assert result["stop_reason"] == "budget"
    assert result["sleeps"] == result["step"] <= 6  # one sleep per step; 1.2 s / 0.25 s
    compute = result["compute"]
    assert compute["sleep"] >= 0.25 * result["sleeps"]
    assert result["compute_seconds"] == pytest.approx(compute["step"] + compute["data"] + compute["sleep"], rel=1e-3)
    assert result["compute_seconds"] >= 1.2 > result["train_seconds"]  # the budget bound all work, not steps alone
    assert compute["final_eval"] > 0 and compute["checkpoint"] > 0  # measured, but outside the budget
    assert result["schedule"]["planned_by"] == "budget" and result["schedule"]["planned_steps"] <= 6
    assert result["train_flops"] > 0  # a gradient family: FLOPs of the train steps


def test_memory_families_record_compute_but_no_flops(store_dir: Path, pg19_bytes: str) -> None:
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "macro_unit:small", {**FAST, "sleep_every": "64"}, steps=6)
    result = Trainer(config, store, progress_bar=False).run()
    assert result["train_flops"] is None and result["schedule"]["kind"] == "none"
    assert result["compute"]["sleep"] > 0 and result["compute_seconds"] > result["train_seconds"] * 0.99


def test_a_budget_that_fits_few_steps_still_gets_a_whole_schedule(
        store_dir: Path, pg19_bytes: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow machine: each step costs ~0.4 s of a 1.2 s budget. The plan comes from the first step, so the
    run ends at the end of a fitted schedule (peak LR reached, decay done), never inside the recipe's warmup."""
    forward = Transformer.forward

    def slow_forward(self, tokens):
        time.sleep(0.4)
        return forward(self, tokens)

    monkeypatch.setattr(Transformer, "forward", slow_forward)
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug",
                              {**FAST, "budget_minutes": "0.02", "warmup_steps": "100", "checkpoint_every": "0"},
                              steps=10_000)
    lrs: list[float] = []
    result = Trainer(config, store, progress_bar=False,
                     hooks=[Hook(lambda t, step: lrs.append(t.optimizer.param_groups[0]["lr"]))]).run()
    schedule = result["schedule"]
    assert result["stop_reason"] == "budget" and schedule["planned_by"] == "budget"
    assert result["step"] == schedule["planned_steps"] <= 3  # the run completed its plan
    assert schedule["warmup"] < schedule["planned_steps"]  # it did not end inside its warmup
    assert max(lrs) == pytest.approx(config.train.lr)


def test_a_slow_first_step_does_not_shrink_the_run_to_two_steps(
        store_dir: Path, pg19_bytes: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first step that costs most of the budget (a compile, a cold cache) plans 2 steps from its cost; at the
    plan's end the later steps' measured cost shows budget left, so the run extends its plan and uses it."""
    forward, calls = Transformer.forward, []

    def cold_first_forward(self, tokens):
        calls.append(1)
        if len(calls) == 1:
            time.sleep(0.9)  # of a 1.2 s budget
        return forward(self, tokens)

    monkeypatch.setattr(Transformer, "forward", cold_first_forward)
    store = Store.open(str(store_dir))
    config = build_run_config(pg19_bytes, "transformer:debug",
                              {**FAST, "budget_minutes": "0.02", "checkpoint_every": "0"}, steps=10_000)
    result = Trainer(config, store, progress_bar=False).run()
    assert result["stop_reason"] == "budget"
    assert result["step"] > 4 and result["schedule"]["replans"] >= 2
    assert result["compute_seconds"] >= 1.0  # the budget was used, not abandoned after the cold step
