"""Bad configurations fail in one line naming the value, before any compute; flavors build."""

from __future__ import annotations

import pytest

from nightshift.models import registry
from nightshift.models.errors import ModelConfigError
from nightshift.models.macro_unit import (
    DEFAULT_FLAVOR,
    FLAVORS,
    SUMMARY,
    Config,
    MacroUnitModel,
)
from nightshift.models.protocol import Vocab


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("max_order", 8, "max_order=8"),
        ("max_order", -1, "0..7"),
        ("max_order", True, "max_order=True"),
        ("smoothing", "witten_bell", "kneser_ney"),
        ("discounts", (0.5, 0.5), "discounts"),
        ("discounts", (1.5,), "0 < D <= 1"),
        ("discounts", (0.5, 2.5, 1.0), "Dj <= j"),
        ("max_entries_per_order", 10, ">= 256"),
        ("prune_keep", 0.0, "prune_keep=0.0"),
        ("prune_keep", 1.5, "(0, 1]"),
        ("min_unit_len", 1, "min_unit_len=1"),
        ("max_unit_len", 1, "max_unit_len=1"),
        ("max_unit_len", 300, "2..255"),
        ("holdout_every", 1, "holdout_every=1"),
        ("cache_orders", (3, 2), "strictly ascending"),
        ("cache_orders", (0, 4), "1..64"),
        ("horizon", 100, "2 x unit_depth x max_unit_len = 192"),
        ("unit_depth", 0, "unit_depth=0"),
        ("unit_beta", 0.0, "unit_beta=0.0"),
        ("mix_prior", -1.0, "mix_prior=-1.0"),
        ("max_candidates", 10, "max_candidates=10"),
        ("min_gain_bits", -1.0, "min_gain_bits"),
        ("generation_first_bytes", 0, "1..256"),
        ("train_seq_len", 0, "train_seq_len=0"),
    ],
)
def test_bad_config_is_one_clear_line(field: str, value: object, needle: str) -> None:
    with pytest.raises(ModelConfigError) as err:
        Config(**{field: value}).build(Vocab.bytes_vocab())
    message = str(err.value)
    assert needle in message and "\n" not in message and field in message


def test_vocab_without_token_bytes_is_refused() -> None:
    with pytest.raises(ModelConfigError, match="token_bytes"):
        Config().build(Vocab(name="gpt2", size=50257, eot_id=50256))


def test_flavors_resolve_and_build_through_the_registry() -> None:
    assert DEFAULT_FLAVOR in FLAVORS and SUMMARY
    for name in FLAVORS:
        spec = registry.resolve(f"macro_unit:{name}")
        model = spec.config.build(Vocab.bytes_vocab())
        assert isinstance(model, MacroUnitModel) and model.family == "macro_unit"
        assert model.trains_by_gradient is False and model.memory_bytes() == 0
    spec = registry.resolve("macro_unit", {"max_order": "3", "smoothing": "absolute"})
    assert spec.config.max_order == 3 and spec.config.smoothing == "absolute"
