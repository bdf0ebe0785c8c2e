"""Runs, training, checkpoints, evaluation, planning, sweeps, backends, tracking, serving and the CLI.

One room per concern, each importing only the rooms below it: the room map is
orchestrator/README.md, and import-linter holds the code to it in CI.
"""

if __name__ != "nightshift.orchestrator":  # the folder is on sys.path (a checkout's root): one name per module
    raise ImportError(f"import nightshift.orchestrator, not {__name__}: nightshift's packages live under one namespace")
