"""Run ids are content hashes of the whole config, minus where/how often it runs."""

from __future__ import annotations

import pytest

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import (
    OPERATIONAL_FIELDS,
    RunConfig,
    build_run_config,
    parse_sets,
)

DATASET = "pg19-0123456789abcdef"


def run_id(**sets: str) -> str:
    return build_run_config(DATASET, "transformer:debug", {k: str(v) for k, v in sets.items()}).run_id


def test_every_result_changing_field_changes_the_run_id() -> None:
    base = run_id()
    for key, value in {"lr": "1e-4", "seed": "1", "steps": "7", "n_layer": "3", "batch_size": "4",
                       "warmup_steps": "3", "sleep_every": "100", "precision": "bf16", "spike_factor": "2"}.items():
        assert run_id(**{key: value}) != base, key
    assert build_run_config("pg19-1111111111111111", "transformer:debug").run_id != base
    assert build_run_config(DATASET, "transformer:tiny").run_id != base


def test_operational_fields_do_not_change_the_run_id() -> None:
    assert OPERATIONAL_FIELDS == {"device", "compile", "log_every", "checkpoint_every", "checkpoint_minutes",
                                  "eval_batch_size", "final_ablations", "keep_checkpoints", "keep_every"}
    base = run_id()
    assert run_id(device="cpu", log_every=3, checkpoint_every=2, checkpoint_minutes=1, eval_batch_size=2,
                  compile="true", final_ablations="false", keep_checkpoints=5, keep_every=10) == base
    assert run_id(fit_schedule="false") != base and run_id(budget_device_seconds="60") != base


def test_ids_are_readable_and_long_enough() -> None:
    cfg = build_run_config(DATASET, "transformer:debug", seed=3)
    slug, _, digest = cfg.run_id.rpartition("-")
    assert slug == "transformer-debug-s3" and len(digest) >= 12
    assert cfg.model_id.startswith("transformer-debug-")


def test_round_trip_through_json_keeps_the_id() -> None:
    cfg = build_run_config(DATASET, "transformer:debug", {"lr": "3e-4", "betas": "0.8,0.9"})
    again = RunConfig.from_dict(cfg.to_dict())
    assert again.run_id == cfg.run_id and again.train.betas == (0.8, 0.9)


@pytest.mark.parametrize("sets,needle", [
    ({"lrr": "1"}, "did you mean lr"),
    ({"lr": "fast"}, "expected a number"),
    ({"steps": "0"}, "steps=0 must be >= 1"),
    ({"batch_size": "10", "grad_accum": "3"}, "divisible by grad_accum"),
    ({"precision": "fp8"}, "auto, fp32, bf16"),
    ({"seq_len": "-4"}, "seq_len=-4"),
])
def test_bad_sets_are_one_line_errors(sets, needle) -> None:
    with pytest.raises(ValueError, match=needle):
        build_run_config(DATASET, "transformer:debug", sets)


def test_parse_sets_rejects_pairs_without_equals() -> None:
    assert parse_sets(["a=1", "model.b=x=y"]) == {"a": "1", "model.b": "x=y"}
    with pytest.raises(UserError, match="expected key=value"):
        parse_sets(["lr"])


def test_unknown_family_and_flavor_list_what_exists() -> None:
    with pytest.raises(ValueError, match="known: transformer, attractor"):
        build_run_config(DATASET, "lstm")
    with pytest.raises(ValueError, match="known: debug, tiny, small, gpt2-124m"):
        build_run_config(DATASET, "transformer:huge")
