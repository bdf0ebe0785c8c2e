"""Where the checkout and the shared data samples are."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("NIGHTSHIFT_SHARED_DATA", ROOT.parent / "shared" / "data")).resolve()


TIKTOKEN_CACHE = SHARED_DATA / "tokenizers" / "tiktoken_cache"
