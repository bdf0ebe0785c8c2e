"""Bridge: a pipelines tokenizer -> the models' `Vocab` (models and pipelines never import each other)."""

from __future__ import annotations

from typing import Any

from nightshift.models.protocol import Vocab


def vocab_of(tokenizer: Any) -> Vocab:
    return Vocab(name=tokenizer.name, size=tokenizer.vocab_size, eot_id=tokenizer.eot_id,
                 token_bytes=tuple(tokenizer.token_bytes()), lossless=bool(getattr(tokenizer, "lossless", True)))
