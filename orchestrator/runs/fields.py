"""Every field `--set` reaches for one `family:flavor`: its key, type, the flavor's default and its doc.

The defaults are the ones a run of that flavor starts from (the recipe's
model config and its trainer settings over TrainConfig's), computed by the
same `build_run_config` a run uses, so the listing cannot drift from what
`nightshift train` does. A name that both configs have (`seed`) is listed
under the scoped keys `--set` needs for it: `model.seed` and `train.seed`.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any

from nightshift.models.field_docs import field_docs
from nightshift.orchestrator.runs.config import build_run_config

PLACEHOLDER_DATASET = "fields-000000000000"  # no dataset is opened: the id only has to be well formed


@dataclass(frozen=True, slots=True)
class SettableField:
    key: str  # what to write after --set (scoped when the name is in both configs)
    scope: str  # "model" or "train"
    type: str  # as a user reads it: int, float, bool, gelu|swiglu, list of int...
    default: Any  # the flavor's value (tuples as lists: JSON-ready)
    doc: str  # the field's one-line comment in the source, or "-"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def settable_fields(model: str) -> list[SettableField]:
    """The model config's fields, then the trainer's, with the defaults of `model` (`family[:flavor]`)."""
    config = build_run_config(PLACEHOLDER_DATASET, model)
    parts = (("model", config.model.config), ("train", config.train))
    names = [{f.name for f in dataclasses.fields(obj)} for _, obj in parts]
    shared = names[0] & names[1]
    out = []
    for scope, obj in parts:
        hints, docs = typing.get_type_hints(type(obj)), field_docs(type(obj))
        for f in dataclasses.fields(obj):
            value = getattr(obj, f.name)
            out.append(SettableField(key=f"{scope}.{f.name}" if f.name in shared else f.name, scope=scope,
                                     type=type_text(hints[f.name]), doc=docs[f.name],
                                     default=list(value) if isinstance(value, tuple) else value))
    return out


def type_text(annotation: Any) -> str:
    """`Literal["a", "b"]` -> `a|b`, `tuple[int, ...]` -> `list of int`, `int | None` -> `int or none`."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Literal:
        return "|".join(map(str, args))
    if origin in (typing.Union, types.UnionType):
        return " or ".join("none" if a is type(None) else type_text(a) for a in args)
    if origin is tuple:
        inner = [a for a in args if a is not Ellipsis]
        if len(set(inner)) == 1 and (Ellipsis in args or len(inner) > 1):
            count = "" if Ellipsis in args else f"{len(inner)} "
            return f"list of {count}{type_text(inner[0])}"
        return "list"
    return getattr(annotation, "__name__", str(annotation))
