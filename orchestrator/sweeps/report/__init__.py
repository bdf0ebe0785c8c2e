"""Compare runs: report.html (self-contained), report.json and PNG figures for a sweep or an experiment.

`collect` reads the store (results, JSONL histories, samples), `plots` draws,
`html` renders, `write` puts the files in a folder and attaches them to the
sweep's MLflow parent run.
"""

from nightshift.orchestrator.sweeps.report.collect import ReportData, cell_data
from nightshift.orchestrator.sweeps.report.write import ReportFiles, load, write, write_report

__all__ = ["ReportData", "ReportFiles", "cell_data", "load", "write", "write_report"]
