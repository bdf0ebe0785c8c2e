"""Screenshot the MLflow UI's run table of an experiment with headless chromium (the README's picture).

    python docs/mlflow-ui/screenshot.py --tracking-uri http://127.0.0.1:5000 --experiment local-pg19 \\
        --out docs/mlflow-ui/runs.png

Needs a running MLflow server (`nightshift ui` starts one on the store's DB)
and chromium (`apt-get install chromium`). The tests call `screenshot` too.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

WINDOW = (1600, 900)


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _flags(browser: str, profile: Path, budget_ms: int) -> list[str]:
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
            f"--virtual-time-budget={budget_ms}"]


def experiment_url(tracking_uri: str, experiment: str) -> str:
    """The UI page of `experiment`'s runs (its id looked up by name)."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment)
    if found is None:
        raise SystemExit(f"no experiment {experiment!r} at {tracking_uri}")
    return f"{tracking_uri.rstrip('/')}/#/experiments/{found.experiment_id}/runs"


def screenshot(url: str, out: Path, *, browser: str | None = None, budget_ms: int = 30_000) -> tuple[Path, str]:
    """PNG of the page at `url` after its scripts ran for `budget_ms` (virtual time), and the rendered DOM."""
    browser = browser or chromium()
    if browser is None:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    out.parent.mkdir(parents=True, exist_ok=True)
    profile = out.parent / f".{out.stem}-profile"
    try:
        subprocess.run([*_flags(browser, profile, budget_ms), f"--screenshot={out}", url], check=True,
                       capture_output=True, timeout=240)
        dom = subprocess.run([*_flags(browser, profile, budget_ms), "--dump-dom", url], check=True,
                             capture_output=True, text=True, timeout=240).stdout
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return out, dom


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tracking-uri", required=True, help="the MLflow server (its UI)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("runs.png"))
    args = p.parse_args(argv)
    path, _ = screenshot(experiment_url(args.tracking_uri, args.experiment), args.out)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
