"""`--set key=value` on frozen config dataclasses: typed, checked, with close-match hints."""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from typing import Any

from nightshift.models.errors import ModelConfigError

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def field_names(config: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(config)]


def coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a CLI string to the field's declared type, or say what was expected."""
    if not isinstance(value, str):
        return value
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if value.lower() in {"none", "null"} and type(None) in typing.get_args(annotation):
            return None
        errors = []
        for arg in args:
            try:
                return coerce(value, arg, key)
            except ModelConfigError as exc:
                errors.append(str(exc))
        raise ModelConfigError(f"--set {key}={value!r}: expected {annotation}")
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        for choice in choices:
            if str(choice) == value:
                return choice
        raise ModelConfigError(f"--set {key}={value!r}: expected one of {', '.join(map(str, choices))}")
    if annotation is bool:
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ModelConfigError(f"--set {key}={value!r}: expected a boolean (true/false)")
    if annotation is int:
        try:
            return int(value)
        except ValueError:
            raise ModelConfigError(f"--set {key}={value!r}: expected an integer") from None
    if annotation is float:
        try:
            return float(value)
        except ValueError:
            raise ModelConfigError(f"--set {key}={value!r}: expected a number") from None
    if annotation is str:
        return value
    if origin is tuple:
        inner = typing.get_args(annotation)
        parts = [p for p in value.split(",") if p]
        elem = inner[0] if inner else str
        return tuple(coerce(p, elem, key) for p in parts)
    raise ModelConfigError(f"--set {key}: fields of type {annotation} cannot be set from the command line")


def apply_overrides(config: Any, overrides: dict[str, Any], *, what: str = "config") -> Any:
    """Return a copy of `config` with `overrides` applied; unknown keys list close matches."""
    if not overrides:
        return config
    hints = typing.get_type_hints(type(config))
    names = field_names(config)
    changes = {}
    for key, value in overrides.items():
        if key not in names:
            close = difflib.get_close_matches(key, names, n=3, cutoff=0.5)
            hint = f"did you mean {', '.join(close)}?" if close else f"known: {', '.join(names)}"
            raise ModelConfigError(f"--set {key}: no such {what} field; {hint}")
        changes[key] = coerce(value, hints[key], key)
    return dataclasses.replace(config, **changes)
