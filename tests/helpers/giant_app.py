"""jobs/giant.py loaded as a module (it is a script Modal runs, not a package)."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from tests.helpers.paths import ROOT


def load_giant() -> ModuleType:
    spec = importlib.util.spec_from_file_location("nightshift_giant_app", ROOT / "jobs" / "giant.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
