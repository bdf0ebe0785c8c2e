"""nightshift: train experimental language models and compare them honestly in bits per byte.

One import namespace for three layers whose folders stay at the top of the
checkout (the design card puts them there):

    nightshift.pipelines     <- pipelines/     data only: sources, split, tokenizers, shards
    nightshift.models        <- models/        the families behind one protocol
    nightshift.orchestrator  <- orchestrator/  runs, training, backends, tracking, CLI
    nightshift.collectives                     torch.distributed, one device rule (below all three)

Arrows point one way (pipelines <- models <- orchestrator), checked in CI by
import-linter (pyproject's [tool.importlinter]).

How the names resolve: an installed wheel holds `nightshift/models/...`
(setup.py maps each folder into the namespace); an editable install maps
them with setuptools' finder; a checkout that is merely on `sys.path` (Ray's
`--working-dir` upload, `python jobs/train.py` from a clone) gets the same
mapping from `_CheckoutFinder` below, so the code that runs is always the
checkout that `nightshift` itself came from. The bare names (`import models`)
are refused by each layer's `__init__`: no module is importable under two names.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path

__version__ = "0.2.0"

LAYERS: tuple[str, ...] = ("pipelines", "models", "orchestrator")  # bottom to top
DISTRIBUTION = "nightshift-lm"  # the name on the package index ("nightshift" there is another project)

_HERE = Path(__file__).resolve().parent
_CHECKOUT = _HERE.parent


class _CheckoutFinder(importlib.abc.MetaPathFinder):
    """`nightshift.<layer>` -> `<checkout>/<layer>/`, for a source checkout that is not installed."""

    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        root, _, layer = fullname.partition(".")
        if root != __name__ or layer not in LAYERS:
            return None
        init = _CHECKOUT / layer / "__init__.py"
        return importlib.util.spec_from_file_location(fullname, init, submodule_search_locations=[str(init.parent)])


def _is_checkout() -> bool:
    """Imported from the checkout's own `nightshift/` folder (the layers beside it), not from a wheel."""
    return not (_HERE / "models").is_dir() and all((_CHECKOUT / n / "__init__.py").is_file() for n in LAYERS)


if _is_checkout() and not any(isinstance(f, _CheckoutFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _CheckoutFinder())
