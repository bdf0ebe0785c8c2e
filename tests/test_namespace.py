"""One import namespace: `nightshift.*` everywhere, no module under two names, and a user's own `models/` is safe.

The folders models/, pipelines/ and orchestrator/ sit at the top of the
checkout, so their bare names are one `sys.path` entry away from colliding
with a user's packages of the same name (and with each other's copies in an
MLflow model's bundled code). These tests hold the tree and the runtime to
the namespace.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import nightshift
from tests.helpers.paths import ROOT

BARE = "|".join(nightshift.LAYERS)
# A bare import (python, or a snippet in the docs), `python -m orchestrator...`, a bare Modal source.
BARE_USES = (
    re.compile(rf"^\s*(?:>>>\s*)?(?:from|import)\s+(?:{BARE})(?:\.|\s|,|$)", re.M),
    re.compile(rf"-m\s+(?:{BARE})\."),
    re.compile(rf"add_local_python_source\([^)]*[\"'](?:{BARE})[\"']"),
    re.compile(rf"import_module\(f?[\"'](?:{BARE})\."),
)
TEXT_SUFFIXES = (".py", ".md", ".sh", ".yaml", ".yml", ".toml", ".txt", ".cfg")


def tracked_files() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return [ROOT / f for f in out if (f.endswith(TEXT_SUFFIXES) or Path(f).name.startswith("Dockerfile"))
            and (ROOT / f).is_file()]


def run_python(code: str, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_no_bare_layer_import_anywhere_in_code_tests_jobs_benchmarks_or_docs() -> None:
    found = []
    for path in tracked_files():
        if path == Path(__file__).resolve():  # its own examples of what is refused
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        for pattern in BARE_USES:
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: {m.group(0).strip()}")
    assert not found, "bare layer names (use nightshift.<layer>):\n" + "\n".join(found)


def test_the_checker_catches_a_bare_import() -> None:
    assert any(p.search("from models.protocol import Vocab") for p in BARE_USES)
    assert any(p.search('python -m orchestrator.cli train') for p in BARE_USES)
    assert not any(p.search("from nightshift.models.protocol import Vocab") for p in BARE_USES)


LOAD_ALL = """
import importlib, json, pkgutil, sys
import nightshift
loaded = []
for layer in nightshift.LAYERS:
    pkg = importlib.import_module(f"nightshift.{layer}")
    loaded.append(pkg.__name__)
    for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg.__name__ + "."):
        importlib.import_module(info.name)
        loaded.append(info.name)
refused = {}
for layer in nightshift.LAYERS:
    try:
        importlib.import_module(layer)
    except ImportError as exc:
        refused[layer] = str(exc)
bare = sorted(m for m in sys.modules if m.split(".")[0] in nightshift.LAYERS)
files = {}
for name in loaded:
    f = getattr(sys.modules[name], "__file__", None)
    files.setdefault(f, []).append(name)
print(json.dumps({"loaded": len(loaded), "bare": bare, "refused": refused,
                  "twice": {f: n for f, n in files.items() if len(n) > 1}}))
"""


@pytest.mark.slow
def test_every_module_imports_once_under_its_nightshift_name_and_bare_names_are_refused() -> None:
    """From the checkout's root (on sys.path, as in `python -c` or a notebook there): every module of the
    three layers imports under `nightshift.*`, no file is loaded under a second name, and `import models`
    is refused rather than loading a second copy."""
    proc = run_python(LOAD_ALL, ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["loaded"] > 100
    assert report["twice"] == {}
    assert set(report["refused"]) == set(nightshift.LAYERS)
    assert all("import nightshift." in why for why in report["refused"].values())
    assert report["bare"] == []


def test_python_dash_m_nightshift_and_version() -> None:
    proc = subprocess.run([sys.executable, "-m", "nightshift", "--version"], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"nightshift {nightshift.__version__} ({nightshift.DISTRIBUTION})"


def test_a_plain_checkout_on_sys_path_imports_its_own_code(tmp_path: Path) -> None:
    """Ray's --working-dir upload or `python jobs/train.py` from a clone: the layers come from the checkout
    that `nightshift` itself came from, never from another install."""
    copy = tmp_path / "checkout"
    skip = shutil.ignore_patterns("__pycache__")
    for name in ("nightshift", *nightshift.LAYERS):
        shutil.copytree(ROOT / name, copy / name, ignore=skip)
    code = ("import sys; sys.path.insert(0, sys.argv[1]); import nightshift.models.protocol as p, "
            "nightshift.orchestrator.cli as c; print(p.__file__); print(c.__file__)")
    proc = run_python(code, tmp_path, str(copy))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(Path(line).is_relative_to(copy) for line in proc.stdout.split())


USER_PROJECT = {
    "models/__init__.py": 'MARK = "user models"\n',
    "models/errors.py": 'MARK = "user errors"\n',
    "pipelines/__init__.py": 'MARK = "user pipelines"\n',
    "orchestrator/__init__.py": 'MARK = "user orchestrator"\n',
}

USER_SESSION = """
import sys
import models, models.errors, pipelines, orchestrator  # the user's own packages, first on sys.path
from nightshift.orchestrator.cli import build_parser
import nightshift.models.registry as registry
build_parser()
assert models.MARK == "user models" and models.errors.MARK == "user errors", models.__file__
assert pipelines.MARK == "user pipelines" and orchestrator.MARK == "user orchestrator"
assert set(registry.available_families()) == {"transformer", "attractor", "holographic", "macro_unit"}
if len(sys.argv) > 1:  # an MLflow pyfunc model of a run, loaded beside the user's packages
    import mlflow.pyfunc, pandas as pd
    loaded = mlflow.pyfunc.load_model(sys.argv[1])
    out = loaded.predict(pd.DataFrame({"prompt": ["Once upon a time"]}), params={"max_tokens": 5, "seed": 1})
    assert len(out) == 1 and isinstance(out["completion"][0], str)
    assert models.MARK == "user models", "the model's bundled code replaced the user's models package"
    assert not [m for m in sys.modules if m.startswith("models.") and m != "models.errors"]
print("ok")
"""


def _user_project(tmp_path: Path) -> Path:
    project = tmp_path / "user-project"
    for rel, text in USER_PROJECT.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(text)
    return project


def test_a_user_project_with_its_own_models_package_imports_both(tmp_path: Path) -> None:
    proc = run_python(USER_SESSION, _user_project(tmp_path))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.slow
def test_a_logged_pyfunc_model_loads_in_a_user_project_with_its_own_models(tmp_path: Path) -> None:
    from nightshift.orchestrator.runs.config import build_run_config
    from nightshift.orchestrator.runs.vocab import vocab_of
    from nightshift.orchestrator.serving.package import save_model_folder
    from nightshift.pipelines.tokenizers import load_tokenizer

    tokenizer = load_tokenizer("bytes")
    config = build_run_config("local-pg19-100kb-bytes-0123456789abcdef", "transformer:debug", {})
    model = config.model.config.build(vocab_of(tokenizer)).eval()
    folder = save_model_folder(model, config, tokenizer, 3, str(tmp_path / "model"))
    bundled = sorted(p.name for p in (Path(folder) / "code").iterdir())
    assert bundled == ["nightshift"]  # only the namespace joins the loader's sys.path
    assert {p.name for p in (Path(folder) / "code" / "nightshift").iterdir()} >= set(nightshift.LAYERS)
    proc = run_python(USER_SESSION, _user_project(tmp_path), folder)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("ok")
