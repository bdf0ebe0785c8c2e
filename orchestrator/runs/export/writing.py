"""Write one checkpoint of a run as an export folder: weights, config.json, tokenizer.json, export.json.

The folder appears whole or not at all: everything is written into a hidden
temporary folder beside `out`, which is renamed to `out` last, so a failed or
killed export leaves no half-written folder a loader could mistake for one.
An `out` that exists and holds anything is refused: an export never
overwrites files.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.export.formats import export_format
from nightshift.orchestrator.runs.export.layout import (
    CONFIG_FILE,
    MANIFEST_FILE,
    TOKENIZER_FILE,
    Manifest,
    file_sha256,
)
from nightshift.orchestrator.runs.export.tree import compact
from nightshift.orchestrator.runs.loading import load_run
from nightshift.pipelines.store import Store


@dataclass(frozen=True, slots=True)
class ExportResult:
    out: str
    run_id: str
    step: int
    format: str
    files: tuple[tuple[str, int], ...]  # (name, bytes) of each file written

    @property
    def total_bytes(self) -> int:
        return sum(size for _, size in self.files)

    def summary(self) -> str:
        names = ", ".join(name for name, _ in self.files)
        return (f"{self.run_id} @ step {self.step}: exported as {self.format} to {self.out} "
                f"({names}; {self.total_bytes:,} bytes)")


def check_out(out: Path) -> None:
    """Refuse an `out` that is a file or a folder with anything in it (checked before any work)."""
    if not out.is_symlink() and out.is_dir() and not any(out.iterdir()):
        return
    if out.exists() or out.is_symlink():
        raise UserError(f"--out {out}: already exists and is not an empty folder; name a new folder "
                        "(an export never overwrites files)")


@contextmanager
def staging(out: Path) -> Iterator[Path]:
    """A temporary folder beside `out` (same filesystem), renamed to `out` on success, removed on failure."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.{uuid.uuid4().hex[:12]}.partial"
    tmp.mkdir()  # not mkdtemp: the folder the user gets keeps the umask's permissions, not 0700
    try:
        yield tmp
        check_out(out)  # again: something may have appeared there while the export ran
        if out.is_dir():
            out.rmdir()
        os.rename(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def export_run(store: Store, run_id: str, *, out: str | os.PathLike[str], fmt: str = "safetensors",
               step: int | None = None) -> ExportResult:
    """Export run `run_id` at `step` (default: the newest checkpoint that loads) into the new folder `out`."""
    form = export_format(fmt)
    target = Path(out)
    check_out(target)
    loaded = load_run(store, run_id, step=step)
    config = loaded.run.config
    with staging(target) as tmp:
        form.write(compact(loaded.model.state_dict()), str(tmp / form.file))
        (tmp / CONFIG_FILE).write_bytes(store.read_bytes(*loaded.run.parts, CONFIG_FILE))
        (tmp / TOKENIZER_FILE).write_text(json.dumps(loaded.tokenizer.identity(), indent=1, sort_keys=True) + "\n")
        manifest = Manifest(run_id=config.run_id, family=config.model.family, flavor=config.model.flavor,
                            step=loaded.step, weights_format=form.name, weights_file=form.file,
                            weights_sha256=file_sha256(str(tmp / form.file)))
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest.to_dict(), indent=1, sort_keys=True) + "\n")
        files = tuple((name, (tmp / name).stat().st_size)
                      for name in (form.file, CONFIG_FILE, TOKENIZER_FILE, MANIFEST_FILE))
    return ExportResult(out=str(target), run_id=config.run_id, step=loaded.step, format=form.name, files=files)
