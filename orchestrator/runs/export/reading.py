"""Rebuild a model from an export folder: a fresh model from its config, then its weights.

No nightshift store is needed, only the folder (and, for a tiktoken
vocabulary, tiktoken's encoding file: cache or download). The tokenizer is
checked against the identity the export recorded and the weights file
against the manifest's sha256, so a folder assembled from two runs is refused
instead of scoring garbage.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from nightshift.models.protocol import LanguageModel
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import RunConfig
from nightshift.orchestrator.runs.export.formats import FORMATS
from nightshift.orchestrator.runs.export.layout import (
    CONFIG_FILE,
    MANIFEST_FILE,
    TOKENIZER_FILE,
    Manifest,
    file_sha256,
)
from nightshift.orchestrator.runs.vocab import vocab_of
from nightshift.pipelines.tokenizers import load_tokenizer


@dataclass(frozen=True, slots=True)
class LoadedExport:
    """The model in eval mode, with the config, tokenizer and checkpoint step it was exported from."""

    model: LanguageModel
    config: RunConfig
    tokenizer: Any
    step: int


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"{path.parent} is not a complete nightshift export: no {path.name}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from None


def load_export(folder: str | os.PathLike[str], *, device: str = "cpu") -> LoadedExport:
    """The model exported into `folder` by `export_run`, loaded into a freshly built model."""
    root = Path(folder)
    manifest = Manifest.from_dict(_read_json(root / MANIFEST_FILE), str(root / MANIFEST_FILE))
    if manifest.weights_format not in FORMATS:
        raise UserError(f"{root / MANIFEST_FILE}: unknown weights format {manifest.weights_format!r}; this "
                        f"nightshift reads {', '.join(FORMATS)}")
    form = FORMATS[manifest.weights_format]
    weights = root / manifest.weights_file
    if not weights.is_file():
        raise UserError(f"{root} is not a complete nightshift export: no {manifest.weights_file}")
    if file_sha256(str(weights)) != manifest.weights_sha256:
        raise UserError(f"{weights} changed since the export (sha256 differs from {MANIFEST_FILE})")
    try:
        config = RunConfig.from_dict(_read_json(root / CONFIG_FILE))
    except (KeyError, TypeError) as exc:
        raise UserError(f"{root / CONFIG_FILE} is not a run config ({type(exc).__name__}: {exc})") from None
    identity = _read_json(root / TOKENIZER_FILE)
    tokenizer = load_tokenizer(str(identity.get("name")) if isinstance(identity, dict) else "?")
    if tokenizer.identity() != identity:
        raise UserError(f"tokenizer {tokenizer.name!r} here is not the one {root} was exported with "
                        f"({root / TOKENIZER_FILE})")
    model = config.model.config.build(vocab_of(tokenizer))
    try:
        model.load_state_dict(form.read(str(weights)))
    except (KeyError, RuntimeError, TypeError, AttributeError, ValueError) as exc:
        raise UserError(f"{weights} does not fit a {config.model.name} model ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:300]})") from None
    model.to(torch.device(device)).eval()
    return LoadedExport(model=model, config=config, tokenizer=tokenizer, step=manifest.step)
