"""The transformer baseline: a proper distribution, causality, flavors, learning, bad configs."""

from __future__ import annotations

import math

import pytest
import torch

from nightshift.models.errors import ModelConfigError
from nightshift.models.protocol import Vocab
from nightshift.models.registry import flavors, resolve


@pytest.fixture()
def debug_model() -> torch.nn.Module:
    torch.manual_seed(0)
    return resolve("transformer:debug").config.build(Vocab.bytes_vocab())


def test_log_probs_are_a_distribution_over_the_whole_vocab(debug_model) -> None:
    tokens = torch.randint(0, 257, (3, 40))
    logp = debug_model.log_probs(tokens)
    assert logp.shape == (3, 40, 257)
    assert torch.allclose(logp.logsumexp(-1), torch.zeros(3, 40), atol=1e-5)


def test_score_is_causal_and_matches_log_probs(debug_model) -> None:
    tokens = torch.randint(0, 257, (2, 33))
    full = debug_model.score(tokens)
    changed = tokens.clone()
    changed[:, 20:] = (changed[:, 20:] + 7) % 257  # the future must not change earlier scores
    assert torch.allclose(debug_model.score(changed)[:, :19], full[:, :19], atol=1e-5)
    gathered = debug_model.log_probs(tokens[:, :-1]).gather(-1, tokens[:, 1:, None])[..., 0]
    assert torch.allclose(full, gathered, atol=1e-5)


def test_untrained_loss_is_near_uniform(debug_model) -> None:
    loss, _ = debug_model(torch.randint(0, 257, (4, 65)))
    assert abs(loss.item() - math.log(257)) < 0.3


def test_vocab_padded_to_multiple_of_64_but_never_predicted() -> None:
    gpt2_like = Vocab(name="fake", size=50257, eot_id=50256, token_bytes=tuple(b"x" for _ in range(50257)))
    model = resolve("transformer:debug").config.build(gpt2_like)
    assert model.embed.weight.shape[0] == 50304
    assert model.log_probs(torch.zeros(1, 4, dtype=torch.long)).shape[-1] == 50257


def test_flavors_have_the_spec_shapes() -> None:
    f = flavors("transformer")
    assert {"debug", "tiny", "small", "gpt2-124m"} <= set(f)
    assert (f["small"].model.n_layer, f["small"].model.d_model, f["small"].model.n_head) == (6, 384, 6)
    big = f["gpt2-124m"].model.build(Vocab(name="gpt2", size=50257, eot_id=50256))
    assert 123e6 < big.num_parameters() < 126e6  # GPT-2 small with tied embeddings


@pytest.mark.parametrize("overrides,needle", [
    ({"d_model": "100", "n_head": "3"}, "not divisible"),
    ({"n_layer": "0"}, "n_layer=0"),
    ({"mlp": "relu"}, "gelu, swiglu"),
    ({"n_layr": "2"}, "did you mean n_layer"),
])
def test_bad_configs_are_one_line_errors(overrides, needle) -> None:
    with pytest.raises(ModelConfigError, match=needle):
        spec = resolve("transformer:debug", overrides)
        spec.config.build(Vocab.bytes_vocab())


def test_sequence_beyond_context_is_refused(debug_model) -> None:
    with pytest.raises(ValueError, match="exceeds the model's context of 64"):
        debug_model.log_probs(torch.zeros(1, 65, dtype=torch.long))


def test_learns_a_repeating_pattern(debug_model) -> None:
    text = (b"the cat sat on the mat. " * 40)[:65 * 8]
    data = torch.tensor(list(text)).view(8, 65)
    opt = torch.optim.AdamW(debug_model.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        loss, _ = debug_model(data)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.3 * first
