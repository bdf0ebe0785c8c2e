"""What an export folder holds, by name, and its manifest: shared by the writer and the loader."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from typing import Any

from nightshift.orchestrator.errors import UserError

FORMAT = "nightshift.export/1"
MANIFEST_FILE = "export.json"  # this manifest: which run, which step, which weights file
CONFIG_FILE = "config.json"  # the run's config.json, byte for byte as the run stores it
TOKENIZER_FILE = "tokenizer.json"  # the tokenizer's identity (name, vocab size, end-of-text id, ranks hash)


@dataclass(frozen=True, slots=True)
class Manifest:
    run_id: str
    family: str
    flavor: str
    step: int
    weights_format: str  # a key of formats.FORMATS
    weights_file: str
    weights_sha256: str  # the loader refuses a weights file that changed since the export
    format: str = FORMAT

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> "Manifest":
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            found = data.get("format") if isinstance(data, dict) else type(data).__name__
            raise UserError(f"{where} is not a nightshift export manifest (format {found!r}; expected {FORMAT})")
        try:
            return cls(run_id=str(data["run_id"]), family=str(data["family"]), flavor=str(data["flavor"]),
                       step=int(data["step"]), weights_format=str(data["weights_format"]),
                       weights_file=str(data["weights_file"]), weights_sha256=str(data["weights_sha256"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(f"{where}: manifest field {exc} missing or malformed") from None


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
