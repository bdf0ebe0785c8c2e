"""Config and content ids, the trainer loop, checkpoints, evaluation, tracking, backends, CLI."""

if __name__ != "nightshift.orchestrator":  # the folder is on sys.path (a checkout's root): one name per module
    raise ImportError(f"import nightshift.orchestrator, not {__name__}: nightshift's packages live under one namespace")
