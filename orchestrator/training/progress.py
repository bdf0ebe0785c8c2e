"""What a person sees while a run trains: a bar on a terminal, a line every N seconds everywhere else.

Without a terminal (nohup, Ray job logs, Modal logs, CI) a bar is noise and
silence is worse: like torchtitan's and levanter's loggers, the run then writes
one line every `NIGHTSHIFT_PROGRESS_SECONDS` seconds (default 30; 0: none) with
step, loss, tokens/s and ETA, plus a line per sleep phase and evaluation. The
lines go through the `nightshift.progress` logger (message only, on stderr),
which gets its own handler in any process that has none, so Ray workers and
Modal containers print them too. The loss is the last one the loop read on the
host (at a log step): a line never forces a device sync.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any

LOGGER = "nightshift.progress"
SECONDS_ENV = "NIGHTSHIFT_PROGRESS_SECONDS"  # the CLI's --progress-seconds; reaches Ray workers and Modal
DEFAULT_SECONDS = 30.0


def progress_seconds() -> float:
    """Seconds between progress lines (0: none); a bad value falls back to the default, said once."""
    raw = os.environ.get(SECONDS_ENV, "")
    try:
        return max(float(raw), 0.0) if raw else DEFAULT_SECONDS
    except ValueError:
        logging.getLogger(__name__).warning("%s=%r is not a number of seconds; using %g", SECONDS_ENV, raw,
                                            DEFAULT_SECONDS)
        return DEFAULT_SECONDS


def progress_logger() -> logging.Logger:
    """The lines' logger, with a plain stderr handler unless one is configured (a Ray worker, a container)."""
    logger = logging.getLogger(LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False  # the lines are ours to format; the root logger stays at WARNING
    return logger


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class TrainProgress:
    """One run's progress: a tqdm bar (terminal, progress on) or periodic log lines (otherwise)."""

    def __init__(self, label: str, total: int, initial: int, tokens: int, train_seconds: float, *, bar: bool,
                 every: float | None = None) -> None:
        self.label, self.total = label, total
        self.every = progress_seconds() if every is None else every
        self.loss: float | None = None
        self._bar: Any = None
        self._t0 = self._last = time.monotonic()
        self._step0 = self._last_step = initial
        self._last_tokens, self._last_train = tokens, train_seconds
        if bar and sys.stderr.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, desc=label)
        self._log = progress_logger() if self._bar is None and self.every > 0 else None

    def set_total(self, total: int) -> None:
        """The planned steps changed (a budget-bound run re-plans its length)."""
        self.total = total
        if self._bar is not None:
            self._bar.total = total
            self._bar.refresh()

    def logged(self, loss: float | None, tokens_per_s: float) -> None:
        """A log step's figures (already on the host); loss None for a family without one (memory families)."""
        self.loss = loss
        if self._bar is not None:
            shown = {"loss": f"{loss:.3f}"} if loss is not None else {}
            self._bar.set_postfix(**shown, tok_s=f"{tokens_per_s:,.0f}", refresh=False)

    def update(self, step: int, tokens: int, train_seconds: float) -> None:
        """After each step; writes a line when `every` seconds passed since the last one (or at the end).
        Tokens/s counts train-step seconds only (evaluations and sleeps between lines are not training)."""
        if self._bar is not None:
            self._bar.update(step - self._bar.n)
            return
        now = time.monotonic()
        if self._log is None or (now - self._last < self.every and step < self.total):
            return
        rate = (tokens - self._last_tokens) / max(train_seconds - self._last_train, 1e-9)
        done = step - self._step0
        eta = (self.total - step) * (now - self._t0) / done if done > 0 else float("nan")
        loss = f"  loss {self.loss:.4f}" if self.loss is not None else ""
        self._log.info("%s step %s/%s (%.0f%%)%s  %s tok/s  eta %s", self.label, f"{step:,}", f"{self.total:,}",
                       100.0 * step / max(self.total, 1), loss, f"{rate:,.0f}",
                       _duration(eta) if eta == eta else "-")
        self._last, self._last_step, self._last_tokens, self._last_train = now, step, tokens, train_seconds

    def note(self, text: str) -> None:
        """A phase's one-line summary (a sleep, an evaluation): above the bar, or as its own line."""
        if self._bar is not None:
            self._bar.write(f"{self.label} {text}", file=sys.stderr)
        elif self._log is not None:
            self._log.info("%s %s", self.label, text)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def sleep_summary(count: int, step: int, metrics: dict[str, float], limit: int = 4) -> str:
    """'sleep 3 at step 120: 1.2 s, prototypes 40, ...': the phase's seconds and its first few figures."""
    seconds = metrics.get("seconds")
    rest = [(k, v) for k, v in metrics.items() if k != "seconds"][:limit]
    figures = ", ".join(f"{k} {v:,.4g}" for k, v in rest)
    head = f"sleep {count} at step {step:,}" + (f": {seconds:.1f} s" if seconds is not None else "")
    return head + (f", {figures}" if figures and seconds is not None else f": {figures}" if figures else "")
