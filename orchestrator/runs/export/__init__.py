"""`nightshift export`: one checkpoint of a run as a self-contained folder, and the loader that rebuilds it.

The folder: the weights (`model.safetensors` or `model.pt`, formats.py: every
family's whole state, a memory family's memory included), `config.json` (the
run's own, byte for byte), `tokenizer.json` (the tokenizer's identity) and
`export.json` (run, step, weights format and sha256; layout.py). Written
atomically (writing.py); `load_export` (reading.py) builds a fresh model from
the config and loads the weights, so it scores exactly as the run does.
"""

from nightshift.orchestrator.runs.export.formats import FORMATS, export_format
from nightshift.orchestrator.runs.export.reading import LoadedExport, load_export
from nightshift.orchestrator.runs.export.writing import ExportResult, export_run

__all__ = ["FORMATS", "ExportResult", "LoadedExport", "export_format", "export_run", "load_export"]
