"""Config validation and flavors: bad input fails before any compute, with one line naming the value."""

from __future__ import annotations

import dataclasses

import pytest

from nightshift.models import registry
from nightshift.models.attractor import FLAVORS, Config
from nightshift.models.errors import ModelConfigError
from nightshift.models.protocol import Vocab

VOCAB = Vocab(name="syn", size=64, eot_id=0)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"d_model": 30, "n_waves": 4}, "d_model (D)=30 is not divisible by n_waves (H)=4"),
        ({"steps": 0}, "steps (K)=0 must be >= 1"),
        ({"steps": -3}, "steps (K)=-3 must be >= 1"),
        ({"window": 0}, "window=0 must be >= 1"),
        ({"window": 100_000}, "window (W)=100000 exceeds the hard bound"),
        ({"gradients": "sometimes"}, "gradients='sometimes'; accepted: detach, unroll"),
        ({"breaks": "any"}, "breaks='any'; accepted: row, batch, off"),
        ({"readout": "all_positions", "breaks": "batch"}, "cannot be causal"),
        ({"eta": -0.1}, "eta=-0.1 must be a finite number >= 0"),
        ({"tau_init": 0.0}, "tau_init=0.0 must be a finite number > 0"),
        ({"norm_min": 20.0}, "norm_min=20.0 must be < norm_max=12.0"),
        ({"checkpoint_every": -1}, "checkpoint_every=-1 must be >= 0"),
    ],
)
def test_bad_config_is_one_clear_line(change: dict, fragment: str) -> None:
    cfg = dataclasses.replace(FLAVORS["debug"].model, **change)
    with pytest.raises(ModelConfigError) as err:
        cfg.build(VOCAB)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_bad_config_allocates_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Validation runs before the model (and its V x W*D readout) is constructed."""
    import nightshift.models.attractor.model as model_module

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError("model constructed before validation")

    monkeypatch.setattr(model_module.AttractorLM, "__init__", boom)
    with pytest.raises(ModelConfigError):
        Config(d_model=10, n_waves=3).build(VOCAB)


def test_tiny_vocab_rejected() -> None:
    with pytest.raises(ModelConfigError, match="vocabulary of >= 2"):
        Config().build(Vocab(name="one", size=1, eot_id=0))


def test_flavors_resolve_and_build() -> None:
    assert set(FLAVORS) >= {"debug", "a1", "default", "a1-unroll"}
    spec = registry.resolve("attractor:a1-unroll", {"steps": "4"})
    assert spec.config.gradients == "unroll" and spec.config.steps == 4
    assert spec.train["lr"] == 1e-3 and spec.train["grad_clip"] == 1.0
    model = FLAVORS["debug"].model.build(VOCAB)
    assert model.family == "attractor" and model.trains_by_gradient
    assert model.context_length == model.train_seq_len == FLAVORS["debug"].model.window


def test_a1_parameter_count_matches_the_spec() -> None:
    """Spec: 10.5 M parameters at V 8192, 80 % of them in the W*D -> V readout."""
    model = FLAVORS["a1"].model.build(Vocab(name="cap8192", size=8192, eot_id=0))
    total = model.num_parameters()
    assert 10.4e6 < total < 10.6e6
    assert 0.79 < model.readout_window.weight.numel() / total < 0.81


def test_check_dataset_refuses_windows_longer_than_documents() -> None:
    model = FLAVORS["debug"].model.build(VOCAB)  # W = 4
    model.check_dataset(max_doc_tokens=4, total_tokens=5)
    with pytest.raises(ModelConfigError, match=r"window \(W\)=4 is larger than the longest document \(3 tokens\)"):
        model.check_dataset(max_doc_tokens=3)
    with pytest.raises(ModelConfigError, match="needs >= 5 training tokens"):
        model.check_dataset(max_doc_tokens=10, total_tokens=4)
