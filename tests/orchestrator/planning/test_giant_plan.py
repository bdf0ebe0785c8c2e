"""The giant run as its users type it: Option A's exact flags, in the original's units, and every refusal."""

from __future__ import annotations

import logging

import pytest

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.planning import figures
from nightshift.orchestrator.planning.preflight import plan_giant
from nightshift.orchestrator.planning.whole_run import Launcher
from nightshift.orchestrator.runs.giant import GiantFlags, giant_run_config, tokenizer_for
from nightshift.orchestrator.runs.positions import counts, positions_per_row

OPTION_A = dict(dataset="pg19", max_samples=100_000_000, vocab_size=100_000, context_size=4096,
                max_attractors=100_000_000, noise_std=0.3, log_every=100_000, deep_log_every=5_000_000,
                generate_every=1_000_000, sleep_every=1_000_000, episodic_buffer_size=50_000, rem_cycles=3)
MODAL = Launcher("Modal", 24, 11)


def test_option_a_means_100_million_predicted_positions_and_its_cadences() -> None:
    config, ignored = giant_run_config(GiantFlags(**OPTION_A), "x")
    t = config.train
    assert ignored == [] and t.cadence_unit == "positions"
    per_row = positions_per_row(config)
    assert per_row == 4096 * 8 - 4096 + 1  # the full 4096-token windows of one row
    assert t.batch_size * per_row <= 100_000  # one step never holds two log lines
    c = counts(t.steps, t.batch_size * per_row, log_every=t.log_every, eval_every=t.eval_every,
               sample_every=t.sample_every, sleep_every=t.sleep_every)
    assert 100_000_000 <= c.positions < 100_000_000 + t.batch_size * per_row
    assert (c.sleeps, c.log_lines, c.evaluations + 1, c.generations + 1) == (100, 1000, 20, 100)


def test_option_a_on_h100_is_planned_whole_and_either_fits_a_day_or_says_what_to_change() -> None:
    plan = plan_giant(GiantFlags(**OPTION_A), "H100", launcher=MODAL)
    text = plan.render()
    assert "100,040,097 predicted positions" in text and "100 sleeps, 1,000 log lines, 20 evaluations" in text
    assert plan.memory.store_on == "device"  # store_device=auto: 10 GB fits the H100 with room
    phases = {p.name for p in plan.run.phases}
    assert {"train", "sleep", "evaluation", "final eval", "ablations", "generation", "checkpoints"} <= phases
    if plan.problems:  # one line that names the flag to change
        assert len(plan.problems) == 1 and "--final-eval-bytes" in plan.problems[0]
        with pytest.raises(UserError, match="--final-eval-bytes"):
            plan.check()
        capped = plan_giant(GiantFlags(**OPTION_A, final_eval_bytes=plan.problems[0].rsplit(" ", 1)[1]), "H100",
                            launcher=MODAL)
        capped.check()
        plan = capped
    assert plan.run.seconds is not None and plan.run.seconds < 24 * 3600


def test_the_final_evaluation_is_estimated_from_queries_times_the_store() -> None:
    if figures.HOST_PAIRS_PER_S is None:
        pytest.skip("no recorded rehearsal calibration")
    small = plan_giant(GiantFlags(**{**OPTION_A, "max_attractors": 1_000_000}), "H100").run.phase("final eval")
    big = plan_giant(GiantFlags(**OPTION_A), "H100").run.phase("final eval")
    assert big.seconds > 10 * small.seconds  # 100x the rows: the scan dominates


def test_more_than_four_epochs_is_refused_unless_allowed() -> None:
    flags = GiantFlags(**{**OPTION_A, "max_samples": 2_000_000_000, "max_attractors": 1_000_000})  # ~9 epochs of 1 GB
    with pytest.raises(UserError, match=r"epochs over the same text .*--allow-epochs"):
        plan_giant(flags, "H100").check()
    assert not any("epochs" in p for p in plan_giant(flags, "H100", allow_epochs=True).problems)


def test_a_run_longer_than_the_launcher_allows_is_refused_in_one_line() -> None:
    flags = GiantFlags(model="transformer", max_samples=10**13, max_bytes="100TB")
    plan = plan_giant(flags, "H100", launcher=MODAL)
    with pytest.raises(UserError, match=r"more than Modal allows \(24 h x 11 attempts = 264 h\)"):
        plan.check()


def test_checkpoints_over_the_disk_are_refused_and_the_disk_figure_follows_retention() -> None:
    with pytest.raises(UserError, match=r"more than --disk 5.0 GB"):
        plan_giant(GiantFlags(**OPTION_A, final_eval_bytes="3MB"), "H100", disk=5e9).check()
    three = plan_giant(GiantFlags(**OPTION_A, final_eval_bytes="3MB"), "H100")
    one = plan_giant(GiantFlags(**OPTION_A, final_eval_bytes="3MB", sets=("keep_checkpoints=1",)), "H100")
    assert one.kept < three.kept <= 4 and one.checkpoint_disk <= three.checkpoint_disk


def test_vocab_sizes_map_to_the_nearest_lossless_tokenizer_with_one_line(caplog) -> None:
    with caplog.at_level(logging.WARNING):
        assert tokenizer_for(GiantFlags(vocab_size=100_000), say=True) == "cl100k_base"
    assert len(caplog.records) == 1 and "nearest, cl100k_base (100277)" in caplog.records[0].getMessage()
    assert [tokenizer_for(GiantFlags(vocab_size=v)) for v in (257, 256, 50257, 100277, 200019, 32000)] == [
        "bytes", "bytes", "gpt2", "cl100k_base", "o200k_base", "gpt2"]
    with pytest.raises(UserError, match="--vocab-size 1: must be >= 2"):
        tokenizer_for(GiantFlags(vocab_size=1))


def test_a_cadence_shorter_than_a_row_shortens_the_row_and_untyped_cadences_keep_the_recipe() -> None:
    config, _ = giant_run_config(GiantFlags(**{**OPTION_A, "log_every": 100, "max_samples": 100_000}), "x")
    assert positions_per_row(config) == 100 and config.model.config.row_positions == 100
    assert config.train.batch_size == 1 and config.train.steps == 1000
    plain, _ = giant_run_config(GiantFlags(max_samples=1000), "x")  # no cadence typed: the recipe's, in positions
    per_step = plain.train.batch_size * positions_per_row(plain)
    assert plain.train.log_every == 10 * per_step and plain.train.sleep_every == 1_000_000 * positions_per_row(plain)


def test_the_batch_splits_over_the_gpus() -> None:
    config, _ = giant_run_config(GiantFlags(**OPTION_A), "x", world=2)
    assert config.train.batch_size % 2 == 0


@pytest.mark.parametrize(("flag", "value"), [("max_samples", 0), ("log_every", -1), ("batch_size", 0)])
def test_bad_counts_are_one_line_errors(flag: str, value: int) -> None:
    with pytest.raises(UserError, match=f"--{flag.replace('_', '-')} {value}: must be"):
        giant_run_config(GiantFlags(**{**OPTION_A, flag: value}), "x")
