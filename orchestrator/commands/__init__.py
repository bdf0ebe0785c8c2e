"""One module per CLI subcommand; each exposes `register(subparsers)` and sets `func`."""

COMMANDS: tuple[str, ...] = (
    "prepare", "models", "train", "eval", "sample", "demo", "ui", "sweep", "report", "fork", "serve", "plan",
    "export",
)
