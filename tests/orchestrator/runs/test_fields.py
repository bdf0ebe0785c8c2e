"""`nightshift models FAMILY:FLAVOR --fields`: every field --set reaches, with that flavor's defaults and docs."""

from __future__ import annotations

import json

from nightshift.orchestrator.cli import main
from nightshift.orchestrator.runs.config import TrainConfig
from nightshift.orchestrator.runs.fields import settable_fields


def by_key(model: str) -> dict[str, dict]:
    return {f.key: f.to_dict() for f in settable_fields(model)}


def test_fields_carry_the_flavors_defaults_their_types_and_the_sources_comments() -> None:
    small = by_key("transformer:small")
    assert small["n_layer"] == {"key": "n_layer", "scope": "model", "type": "int", "default": 6,
                                "doc": "transformer blocks"}
    assert small["lr"]["default"] == 6e-4 and small["batch_size"]["default"] == 32  # the recipe's, not TrainConfig's
    assert TrainConfig().batch_size != 32
    assert small["mlp"]["type"] == "gelu|swiglu" and small["betas"]["type"] == "list of 2 float"
    assert small["betas"]["default"] == [0.9, 0.95] and small["rope_base"]["doc"] == "-"  # no comment: "-"
    assert small["precision"]["doc"] == "auto: bf16 autocast on CUDA, fp32 on CPU"
    assert by_key("transformer:debug")["n_layer"]["default"] == 2
    holo = by_key("holographic:base")
    assert "seed" not in holo and holo["model.seed"]["scope"] == "model" and holo["train.seed"]["scope"] == "train"
    assert holo["key_scales"]["doc"].startswith("Key function (see keys.py):")  # the comment block above it
    assert holo["key_scales"]["type"] == "list of int" and holo["sleep_every"]["default"] == 1_000_000


def test_the_command_lists_them_as_json_and_as_a_table(capsys) -> None:
    assert main(["models", "transformer:debug", "--fields", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert {r["key"] for r in rows} >= {"n_layer", "d_model", "lr", "steps", "eval_every"}
    assert main(["models", "transformer:debug", "--fields"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("transformer:debug: --set KEY=VALUE")
    line = next(x for x in out.splitlines() if x.split()[:1] == ["d_model"])
    assert line.split()[1:4] == ["int", "64", "residual"]
    assert main(["models", "transformer", "--fields"]) == 0 and "transformer:tiny" in capsys.readouterr().out
