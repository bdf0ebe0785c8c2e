"""Fixtures: a byte-vocab macro-unit model trained on a slice of pg19 (shared across a module)."""

from __future__ import annotations

import pytest
import tiktoken

from nightshift.models.macro_unit import Config
from nightshift.models.protocol import Vocab
from tests.models.macro_unit.helpers import SMALL, train


@pytest.fixture(scope="module")
def trained(pg19_texts):
    """Order-5 model on 300 KB of a pg19 book, after one sleep (so it has units)."""
    from nightshift.models.protocol import SleepContext

    model = Config(**SMALL).build(Vocab.bytes_vocab())
    train(model, pg19_texts["train"][2].encode()[:300_000])
    model.sleep(SleepContext(step=1))
    return model


@pytest.fixture(scope="session")
def gpt2_vocab() -> tuple[Vocab, tiktoken.Encoding]:
    enc = tiktoken.get_encoding("gpt2")
    vocab = Vocab(name="gpt2", size=enc.n_vocab, eot_id=enc.eot_token,
                  token_bytes=tuple(enc.decode_single_token_bytes(i) for i in range(enc.n_vocab)))
    return vocab, enc
