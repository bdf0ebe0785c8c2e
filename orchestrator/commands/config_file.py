"""`--config FILE` (TOML, YAML or JSON) for train, sweep and demo: flag values from a file, under the command line.

    command line  >  --config FILE  >  the command's defaults (under them all, the model's recipe)

Keys are the command's flag names (`model`, `source`, `max_bytes` or `max-bytes`, `steps`...); a `set`
table holds model and trainer fields as `--set KEY=VALUE` does (nested tables are scopes: `[set.train]`,
`[set.model]`, or a family's cells in a sweep: `[set.attractor]`); a `tag` table holds `--tag` pairs. Lists
are the file format's lists (`sizes = ["1MB", "4MB"]`, `betas = [0.9, 0.95]`). `--set` and `--tag` on the
command line add to the file's, winning on the same key. A run's own config.json (in its store folder, or
among its MLflow artifacts) is a valid file for `nightshift train` and gives the same run id.

How "typed on the command line" is known: `install` records each flag's default and replaces it with
`argparse.SUPPRESS`, so the parsed namespace holds only what was typed; the file fills in the rest, then
the recorded defaults. Every file value is turned into what argparse would have made of the same text, so
a command cannot tell a flag from a key.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nightshift.orchestrator.errors import UserError

Run = Callable[[argparse.Namespace], int]
SUFFIXES = (".toml", ".yaml", ".yml", ".json")
# Not keys of a file: --help, --config itself, and --tracking-outage (cli.py turns the typed flag into the
# environment of every process of the run before any command starts).
_NOT_FROM_FILES = frozenset({"help", "config", "tracking_outage"})


@dataclass(frozen=True, slots=True, kw_only=True)
class FileFlags:
    """What `install` learned about one command's flags, and how its files map onto them."""

    actions: Mapping[str, argparse.Action]  # dest -> the flag
    defaults: Mapping[str, Any]  # dest -> the parser's default, as it was before `install`
    required: tuple[str, ...] = ()  # dests argparse required: now checked after the file is merged
    exclusive: tuple[tuple[str, ...], ...] = ()  # flags of one choice: one typed drops the file's others
    lists: frozenset[str] = frozenset()  # comma-list flags (`--sizes 1MB,4MB`): a list in a file is joined
    aliases: Mapping[str, str] = field(default_factory=dict)  # other key -> dest (`sets` of a sweep.json)
    translate: Callable[[dict[str, Any]], dict[str, Any]] | None = None  # a document nightshift wrote -> keys

    @property
    def accepted(self) -> list[str]:
        return sorted(self.actions)

    def flag(self, dest: str) -> str:
        action = self.actions[dest]
        return next((o for o in action.option_strings if o.startswith("--")), f"--{dest.replace('_', '-')}")


def install(parser: argparse.ArgumentParser, run: Run, *, exclusive: Iterable[tuple[str, ...]] = (),
            lists: Iterable[str] = (), aliases: Mapping[str, str] | None = None,
            translate: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> None:
    """Add `--config FILE` to `parser` (after all its flags) and make it run `run` on the merged flags."""
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="flag values from a TOML, YAML or JSON file (a run's config.json too); flags "
                             "typed here win over the file")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in _NOT_FROM_FILES}
    flags = FileFlags(actions=actions, defaults={d: a.default for d, a in actions.items()},
                      required=tuple(d for d, a in actions.items() if a.required), exclusive=tuple(exclusive),
                      lists=frozenset(lists), aliases=dict(aliases or {}), translate=translate)
    for action in actions.values():
        action.default, action.required = argparse.SUPPRESS, False
    parser.set_defaults(func=WithConfigFile(run=run, flags=flags))


@dataclass(frozen=True, slots=True)
class WithConfigFile:
    """A command's `func`: merge the typed flags with the file's values, then run the command on them."""

    run: Run
    flags: FileFlags = field(repr=False)

    def __call__(self, args: argparse.Namespace) -> int:
        return self.run(self.merge(args))

    def merge(self, args: argparse.Namespace) -> argparse.Namespace:
        return merged_args(args, self.flags)


def merged_args(args: argparse.Namespace, flags: FileFlags) -> argparse.Namespace:
    """The command's namespace: what was typed, else the file's value, else the flag's default."""
    typed = vars(args)
    path = typed.get("config")
    from_file = file_values(read_file(path), flags, f"--config {path}") if path else {}
    for group in flags.exclusive:
        if any(dest in typed for dest in group):
            from_file = {k: v for k, v in from_file.items() if k not in group}
    merged = {dest: list(value) if isinstance(value, list) else value for dest, value in flags.defaults.items()}
    merged |= from_file
    for dest, value in typed.items():
        appended = isinstance(flags.actions.get(dest), argparse._AppendAction) and dest in from_file
        merged[dest] = [*from_file[dest], *value] if appended else value
    missing = [flags.flag(d) for d in flags.required if merged.get(d) is None]
    if missing:
        one = len(missing) == 1
        raise UserError(f"{', '.join(missing)} {'is' if one else 'are'} required: give {'it' if one else 'them'} "
                        "on the command line or in --config FILE")
    return argparse.Namespace(**merged)


def read_file(path: str) -> dict[str, Any]:
    """The file's top-level table; a one-line error for a missing, unreadable or malformed file."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SUFFIXES:
        raise UserError(f"--config {path}: unknown file type {suffix or '(none)'}; accepted {', '.join(SUFFIXES)}")
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise UserError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = _LOADERS[suffix](raw)
    except Exception as exc:  # noqa: BLE001 - each parser raises its own error type; all mean "malformed"
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"--config {path}: not valid {suffix[1:].upper()} ({first})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"--config {path}: expected a table of flag names, got a {type(data).__name__}")
    return data


def _toml(raw: bytes) -> Any:
    import tomllib

    return tomllib.loads(raw.decode("utf-8"))


def _yaml(raw: bytes) -> Any:
    import yaml

    return yaml.safe_load(raw)


_LOADERS: dict[str, Callable[[bytes], Any]] = {".toml": _toml, ".yaml": _yaml, ".yml": _yaml, ".json": json.loads}


def file_values(data: Mapping[str, Any], flags: FileFlags, where: str = "--config") -> dict[str, Any]:
    """`{"max-bytes": "4MB", "set": {"lr": 3e-4}}` -> `{"max_bytes": "4MB", "set": ["lr=0.0003"]}`: each key
    a flag's dest, each value what argparse makes of the same text; unknown keys are one-line errors."""
    data = flags.translate(dict(data)) if flags.translate else dict(data)
    out: dict[str, Any] = {}
    for key, value in data.items():
        dest = str(key).replace("-", "_")
        dest = flags.aliases.get(dest, dest)
        if dest not in flags.actions:
            close = difflib.get_close_matches(dest, flags.accepted, n=3, cutoff=0.6)
            hint = f"did you mean {', '.join(close)}? " if close else ""
            raise UserError(f"{where}: unknown key {key!r}; {hint}accepted: {', '.join(flags.accepted)}")
        if value is not None:  # JSON null: as if the key were absent
            out[dest] = _flag_value(str(key), value, flags.actions[dest], dest in flags.lists, where)
    return out


def _flag_value(key: str, value: Any, action: argparse.Action, is_list: bool, where: str) -> Any:
    if isinstance(action, argparse._AppendAction):
        return _pairs(key, value, where)
    if action.nargs == 0:  # --json, --no-progress: the flag's value itself, true or false
        if not isinstance(value, bool):
            raise UserError(f"{where}: {key} = {value!r}: expected true or false")
        return value
    if isinstance(value, list):
        if not is_list:
            raise UserError(f"{where}: {key} = {value!r}: takes one value, not a list")
        text = ",".join(_text(key, v, where) for v in value) + ("," if len(value) == 1 else "")  # `5,`: one item
    else:
        text = _text(key, value, where)
    converted: Any = text
    if action.type is not None:
        try:
            converted = action.type(text)
        except (TypeError, ValueError):
            expected = _EXPECTED.get(action.type, f"a {getattr(action.type, '__name__', 'valid')} value")
            raise UserError(f"{where}: {key} = {value!r}: expected {expected}") from None
    if action.choices is not None and converted not in action.choices:
        raise UserError(f"{where}: {key} = {value!r}: accepted {', '.join(map(str, action.choices))}")
    return converted


_EXPECTED: dict[Any, str] = {int: "an integer", float: "a number"}


def _pairs(key: str, value: Any, where: str, prefix: str = "") -> list[str]:
    """A table (nested tables are dotted scopes) or a list of `K=V` strings -> `K=V` strings."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        if not all(isinstance(v, str) for v in value):
            raise UserError(f"{where}: {key}: a list of KEY=VALUE strings or a table, got {value!r}")
        return list(value)
    if not isinstance(value, dict):
        raise UserError(f"{where}: {key} = {value!r}: a table of KEY = VALUE (or a list of KEY=VALUE strings)")
    out: list[str] = []
    for name, item in value.items():
        full = f"{prefix}{name}"
        if isinstance(item, dict):
            out.extend(_pairs(key, item, where, prefix=f"{full}."))
        elif isinstance(item, list):
            out.append(f"{full}={','.join(_text(full, v, where) for v in item)}")
        else:
            out.append(f"{full}={_text(full, item, where)}")
    return out


def _text(key: str, value: Any, where: str) -> str:
    """A scalar as it is typed on the command line (`true`, `none`, `0.0003`): what `--set` parses."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, (int, float, str)):
        return value if isinstance(value, str) else repr(value)
    raise UserError(f"{where}: {key} = {value!r}: expected a number, a string, true/false or a list of them")


def from_run_config(data: dict[str, Any]) -> dict[str, Any]:
    """A run's config.json (`RunConfig.to_dict`) -> train's keys: its dataset, its model and every field as a
    `set` (which pins all of them); other keys pass through (flags added beside them). Anything else: as is."""
    model, train = data.get("model"), data.get("train")
    if not ("dataset_id" in data and isinstance(model, dict) and "family" in model and isinstance(train, dict)):
        return data
    rest = {k: v for k, v in data.items() if k not in ("dataset_id", "model", "train")}
    sets = {**{f"model.{k}": v for k, v in (model.get("config") or {}).items()},
            **{f"train.{k}": v for k, v in train.items()}}
    extra = rest.pop("set", None)  # a `set` added beside the document's own fields wins over them
    if isinstance(extra, list):
        extra = dict(str(pair).partition("=")[::2] for pair in extra)
    if isinstance(extra, dict):
        sets |= extra
    return {"dataset": data["dataset_id"], "model": f"{model['family']}:{model.get('flavor') or ''}".rstrip(":"),
            **rest, "set": sets}
