"""Samples during training: a private, seeded stream on the device that samples.

Each family draws from a generator of its own (`LanguageModel.sampling_device`),
so a sample depends on its seed only and never moves the training RNG stream
(on CUDA the old code passed no generator at all: GPU samples ignored the seed).
"""

from __future__ import annotations

import pytest
import torch

from nightshift.models.protocol import Vocab
from nightshift.models.registry import resolve
from nightshift.orchestrator.training.sampling import generate_text, private_generator
from nightshift.pipelines.tokenizers import load_tokenizer


@pytest.mark.parametrize("name", ["transformer:debug", "holographic:tiny", "macro_unit:small"])
def test_samples_follow_their_seed_and_leave_the_training_stream_alone(name: str) -> None:
    model = resolve(name).config.build(Vocab.bytes_vocab())
    tokenizer = load_tokenizer("bytes")
    torch.manual_seed(123)
    before = torch.get_rng_state()
    a = generate_text(model, tokenizer, "It was a dark", 24, seed=7)
    assert torch.equal(torch.get_rng_state(), before)  # the training stream did not move
    assert generate_text(model, tokenizer, "It was a dark", 24, seed=7) == a
    assert generate_text(model, tokenizer, "It was a dark", 24, seed=8) != a


def test_the_generator_lives_where_the_family_samples() -> None:
    holo = resolve("holographic:tiny").config.build(Vocab.bytes_vocab())
    transformer = resolve("transformer:debug").config.build(Vocab.bytes_vocab())
    assert holo.sampling_device(torch.device("cuda", 0)) == torch.device("cpu")  # host sampling, CPU generator
    assert transformer.sampling_device(torch.device("cuda", 0)) == torch.device("cuda", 0)
    assert private_generator(torch.device("cpu"), 3).initial_seed() == 3
    assert private_generator(torch.device("meta"), 3) is None  # no generators there: the global stream
