"""Progress without a terminal: periodic lines with step, loss, tokens/s and ETA, and a line per phase."""

from __future__ import annotations

import logging

import pytest

from nightshift.orchestrator.training import progress as p


@pytest.fixture()
def lines(caplog: pytest.LogCaptureFixture):
    """A function returning the progress lines written so far."""
    logger = p.progress_logger()  # propagates nowhere: capture its records directly
    logger.addHandler(caplog.handler)
    yield lambda: [r.getMessage() for r in caplog.records if r.name == p.LOGGER]
    logger.removeHandler(caplog.handler)


def test_lines_every_n_seconds_with_step_loss_rate_and_eta(lines, monkeypatch) -> None:
    clock = iter(float(t) for t in range(0, 1000, 10))  # every call of the clock: 10 s later
    monkeypatch.setattr(p.time, "monotonic", lambda: next(clock))
    bar = p.TrainProgress("attractor:a1", 100, 0, 0, 0.0, bar=True, every=30)  # no TTY under pytest: lines
    for step in range(1, 8):
        if step == 3:
            bar.logged(3.25, 1000.0)
        bar.update(step, tokens=step * 1000, train_seconds=step * 0.5)
    bar.note(p.sleep_summary(1, 7, {"seconds": 1.25, "prototypes": 40.0}))
    out = lines()
    assert out[0] == "attractor:a1 step 3/100 (3%)  loss 3.2500  2,000 tok/s  eta 16m10s"
    assert out[1].startswith("attractor:a1 step 6/100 (6%)  loss 3.2500  2,000 tok/s")  # 30 s later
    assert out[2] == "attractor:a1 sleep 1 at step 7: 1.2 s, prototypes 40"
    assert len(out) == 3


def test_the_last_step_always_gets_a_line_and_memory_families_show_no_loss(lines) -> None:
    bar = p.TrainProgress("holographic:tiny", 2, 0, 0, 0.0, bar=False, every=3600)
    bar.logged(None, 5e4)
    bar.update(1, 100, 0.01)
    bar.update(2, 200, 0.02)
    out = lines()
    assert len(out) == 1 and out[0].startswith("holographic:tiny step 2/2 (100%)  10,000 tok/s")


def test_zero_seconds_means_no_lines_and_a_bad_value_the_default(lines, monkeypatch, caplog) -> None:
    monkeypatch.setenv(p.SECONDS_ENV, "0")
    quiet = p.TrainProgress("t", 1, 0, 0, 0.0, bar=False)
    quiet.update(1, 10, 1.0)
    assert lines() == []
    monkeypatch.setenv(p.SECONDS_ENV, "soon")
    with caplog.at_level(logging.WARNING):
        assert p.progress_seconds() == p.DEFAULT_SECONDS
    assert "'soon' is not a number of seconds" in caplog.text
