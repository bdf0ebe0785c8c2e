"""A model's state as flat tensors plus a JSON skeleton, and back.

Why: a memory family's `state_dict()` is not a flat name -> tensor map; its
`_extra_state` nests dicts, lists, tuples, ints and floats around its tensors
(holographic's episode store, macro_unit's count tables). A tensors-only
file (safetensors) can still carry it whole: every tensor becomes one named
entry, and the structure around them becomes a JSON skeleton in which each
tensor is a reference `{"__tensor__": name}`. A gradient family's state is
flat, so its skeleton maps each state-dict key to the entry of the same name
and the file reads like any other safetensors checkpoint.

`compact` runs first for every format: tensors detached, on the host,
contiguous and owning exactly their own bytes (a view never drags its whole
base storage into the file), with identical views (tied weights) kept as one
tensor, so an alias is stored once and restored as an alias.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

TENSOR = "__tensor__"
TUPLE = "__tuple__"
MARKERS = frozenset({TENSOR, TUPLE})
JSON_SCALARS = (str, int, float, bool, type(None))


class UnsupportedValue(TypeError):
    """A value a JSON skeleton cannot carry (bytes, a numpy array, a dict with non-string keys...)."""

    def __init__(self, path: str, what: str) -> None:
        self.path, self.what = path, what
        super().__init__(f"{what} at {path or '(top)'}")


@dataclass(frozen=True, slots=True)
class FlatState:
    """The tensors of a state under unique names, and the JSON skeleton that places them."""

    tensors: dict[str, torch.Tensor]
    skeleton: Any


def _view_key(t: torch.Tensor) -> tuple[Any, ...]:
    return (t.untyped_storage().data_ptr(), t.storage_offset(), tuple(t.shape), t.stride(), t.dtype)


def compact(state: Any) -> Any:
    """Copy of `state` whose tensors each own their storage; identical views stay one shared tensor."""
    seen: dict[tuple[Any, ...], torch.Tensor] = {}
    storages: set[int] = set()

    def own(t: torch.Tensor) -> torch.Tensor:
        t = t.detach().cpu()
        if t.numel() == 0:  # empty tensors share a null pointer: never aliases of each other
            return torch.empty(t.shape, dtype=t.dtype)
        key = _view_key(t)
        if key in seen:
            return seen[key]
        ptr = key[0]
        whole = (t.is_contiguous() and t.storage_offset() == 0
                 and t.untyped_storage().nbytes() == t.numel() * t.element_size())
        out = t if whole and ptr not in storages else t.contiguous().clone()
        storages.add(out.untyped_storage().data_ptr())
        seen[key] = out
        return out

    return _map(state, own)


def _map(obj: Any, fn: Callable[[torch.Tensor], torch.Tensor]) -> Any:
    if isinstance(obj, torch.Tensor):
        return fn(obj)
    if isinstance(obj, dict):
        return {k: _map(v, fn) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_map(v, fn) for v in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_map(v, fn) for v in obj)
    return obj


def flatten(state: Any) -> FlatState:
    """`state` (compacted) -> named tensors + skeleton; UnsupportedValue names the first value JSON cannot carry.

    Names are the dotted paths of the state-dict convention (`_extra_state.memory.H`); a collision (a key that
    itself holds a dot) gets a `~N` suffix. A tensor reached twice (an alias) is one name.
    """
    tensors: dict[str, torch.Tensor] = {}
    names: dict[int, str] = {}

    def name_of(t: torch.Tensor, path: str) -> str:
        if id(t) in names:
            return names[id(t)]
        name, n = path, 1
        while name in tensors:
            name, n = f"{path}~{n}", n + 1
        tensors[name], names[id(t)] = t, name
        return name

    def walk(obj: Any, path: str) -> Any:
        if isinstance(obj, torch.Tensor):
            return {TENSOR: name_of(obj, path)}
        if isinstance(obj, dict):
            odd = [k for k in obj if not isinstance(k, str) or k in MARKERS]
            if odd:
                raise UnsupportedValue(path, f"a dict key {odd[0]!r}")
            return {k: walk(v, f"{path}.{k}" if path else k) for k, v in obj.items()}
        if isinstance(obj, list):
            return [walk(v, f"{path}.{i}") for i, v in enumerate(obj)]
        if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
            return {TUPLE: [walk(v, f"{path}.{i}") for i, v in enumerate(obj)]}
        if isinstance(obj, JSON_SCALARS):
            return obj
        raise UnsupportedValue(path, f"a {type(obj).__name__} value")

    skeleton = walk(state, "")
    return FlatState(tensors=tensors, skeleton=skeleton)


def unflatten(skeleton: Any, tensors: dict[str, torch.Tensor]) -> Any:
    """The state `flatten` took apart: tuples as tuples, one tensor for every reference to the same name."""
    if isinstance(skeleton, dict):
        if TENSOR in skeleton:
            return tensors[skeleton[TENSOR]]
        if TUPLE in skeleton:
            return tuple(unflatten(v, tensors) for v in skeleton[TUPLE])
        return {k: unflatten(v, tensors) for k, v in skeleton.items()}
    if isinstance(skeleton, list):
        return [unflatten(v, tensors) for v in skeleton]
    return skeleton
