"""The command line as a new user meets it: help for every flag, suggestions for a mistyped one, completion."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nightshift.orchestrator.cli import build_parser, main


def _subparsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def test_every_flag_of_every_command_says_what_it_does() -> None:
    missing = [f"{name} {a.option_strings or a.dest}" for name, sub in _subparsers().items() for a in sub._actions
               if not a.help and not isinstance(a, argparse._HelpAction)]
    assert missing == []


@pytest.mark.parametrize("argv,hint", [
    (["train", "--stesp", "3"], "--stesp: did you mean --steps"),
    (["sample", "r", "--temprature", "0.5"], "--temprature: did you mean --temperature"),
    (["eval", "r", "--max-btyes=10"], "--max-btyes=10: did you mean --max-bytes"),
])
def test_a_mistyped_flag_gets_the_commands_usage_and_the_closest_flag(argv, hint, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith(f"usage: nightshift {argv[0]}")  # the command's usage, not the top-level one
    assert hint in err.splitlines()[-1]


def test_shell_completion_lists_a_commands_flags(tmp_path: Path) -> None:
    def complete(line: str) -> set[str]:
        out = tmp_path / "completions"
        env = {**os.environ, "_ARGCOMPLETE": "1", "COMP_LINE": line, "COMP_POINT": str(len(line)),
               "_ARGCOMPLETE_STDOUT_FILENAME": str(out), "_ARGCOMPLETE_IFS": "\n"}
        subprocess.run([sys.executable, "-m", "nightshift.orchestrator.cli"], env=env, check=True, timeout=120,
                       capture_output=True)
        return set(out.read_text().split())

    assert "--temperature" in complete("nightshift sample r --temp")  # one start of the CLI: CI has no slack
