"""The real CLI in a subprocess, as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.helpers.paths import ROOT


def nightshift(*args: str, env: dict[str, str] | None = None, check: bool = True,
               timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess, as a user would."""
    proc = subprocess.run([sys.executable, "-m", "nightshift.orchestrator.cli", *args], cwd=ROOT, capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"nightshift {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc
