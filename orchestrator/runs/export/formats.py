"""The weights-file formats `nightshift export` writes, by name: one writer and one reader each.

safetensors: tensors only, nothing executable, readable by any safetensors
library; the structure around the tensors (a memory family's nested state)
travels as a JSON skeleton in the file's metadata (tree.py). pt: a plain
`torch.save` of the state dict, nested values as they are, which loads with
`torch.load(weights_only=True)`; the fallback for a state holding a value
JSON cannot carry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.export.tree import UnsupportedValue, flatten, unflatten

SKELETON_KEY = "nightshift.state"  # safetensors metadata: the JSON skeleton of the state


@dataclass(frozen=True, slots=True)
class ExportFormat:
    name: str
    file: str  # the weights file's name inside the export folder
    write: Callable[[dict[str, Any], str], None]  # (compacted state dict, path)
    read: Callable[[str], dict[str, Any]]  # path -> state dict for `load_state_dict`


def _write_safetensors(state: dict[str, Any], path: str) -> None:
    from safetensors.torch import save_file

    try:
        flat = flatten(state)
    except UnsupportedValue as exc:
        raise UserError(f"--format safetensors: the model state holds {exc.what} at {exc.path}, which a "
                        "tensors-and-JSON file cannot carry; use --format pt") from None
    save_file(flat.tensors, path, metadata={SKELETON_KEY: json.dumps(flat.skeleton)})


def _read_safetensors(path: str) -> dict[str, Any]:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(path, framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        return unflatten(json.loads(meta[SKELETON_KEY]), tensors)
    except (SafetensorError, KeyError, ValueError, OSError) as exc:
        raise UserError(f"{path} is not a nightshift safetensors export ({type(exc).__name__}: {exc})") from None


def _write_pt(state: dict[str, Any], path: str) -> None:
    torch.save(state, path)


def _read_pt(path: str) -> dict[str, Any]:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - unpickling errors are varied
        raise UserError(f"{path} cannot be loaded safely ({type(exc).__name__}: {exc})") from None


FORMATS: dict[str, ExportFormat] = {f.name: f for f in (
    ExportFormat(name="safetensors", file="model.safetensors", write=_write_safetensors, read=_read_safetensors),
    ExportFormat(name="pt", file="model.pt", write=_write_pt, read=_read_pt),
)}


def export_format(name: str) -> ExportFormat:
    """The format called `name`; anything else is a one-line error naming the accepted ones."""
    if name not in FORMATS:
        raise UserError(f"--format {name!r}: unknown export format; accepted: {', '.join(FORMATS)}")
    return FORMATS[name]
