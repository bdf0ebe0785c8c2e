"""`--config FILE` for train, sweep and demo: command line > file > recipe, a run's config.json reruns it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from nightshift.models.registry import available_families
from nightshift.orchestrator.cli import build_parser, main
from nightshift.orchestrator.commands.sweep import spec_from_args
from nightshift.orchestrator.commands.train import run_config_from_args
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.sweeps.spec import SweepConfig

DATASET = "local-pg19-200kb-bytes-0123456789abcdef"
PARSER = build_parser()


def merged(*argv: str) -> argparse.Namespace:
    """What the command runs on: the typed flags merged with --config's file by the command's own `func`."""
    args = PARSER.parse_args(list(argv))
    return args.func.merge(args)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


TOML = f"""
model = "transformer:debug"
dataset = "{DATASET}"
steps = 20
seed = 2
no-progress = true
tag = {{ team = "nlp" }}

[set]
lr = 3e-4
betas = [0.9, 0.99]
fit_schedule = false

[set.model]
n_layer = 3
"""

YAML = f"""
model: transformer:debug
dataset: {DATASET}
steps: 20
seed: 2
no_progress: true
tag: [team=nlp]
set:
  lr: 3.0e-4
  betas: [0.9, 0.99]
  fit_schedule: false
  model: {{n_layer: 3}}
"""


def test_a_toml_file_sits_under_the_command_line_and_over_the_recipe(tmp_path: Path) -> None:
    path = write(tmp_path, "run.toml", TOML)
    args = merged("train", "--config", path, "--steps", "7", "--set", "lr=0.01", "--tag", "goal=x")
    config = run_config_from_args(args, None)
    recipe = build_run_config(DATASET, "transformer:debug")
    assert config.train.steps == 7 and config.train.lr == 0.01  # typed flags win over the file
    assert config.train.seed == 2 and config.train.betas == (0.9, 0.99) and config.train.fit_schedule is False
    assert config.model.config.n_layer == 3 and config.model.config.d_model == recipe.model.config.d_model
    assert config.train.batch_size == recipe.train.batch_size  # untouched: the recipe's
    assert args.no_progress is True and args.tag == ["team=nlp", "goal=x"] and args.backend == "local"
    # the same run written as YAML, or typed as flags, is the same run
    from_yaml = run_config_from_args(merged("train", "--config", write(tmp_path, "run.yaml", YAML)), None)
    typed = run_config_from_args(merged(
        "train", "--dataset", DATASET, "--model", "transformer:debug", "--steps", "20", "--seed", "2",
        "--set", "lr=3e-4", "--set", "betas=0.9,0.99", "--set", "fit_schedule=false", "--set", "n_layer=3"), None)
    assert from_yaml.run_id == typed.run_id == run_config_from_args(merged("train", "--config", path), None).run_id


def test_a_runs_config_json_is_a_config_file_that_gives_the_same_run(tmp_path: Path) -> None:
    flavors = [f"{family}:{flavor}" for family, module in available_families().items() for flavor in module.FLAVORS]
    assert len(flavors) >= 8
    for name in flavors:  # every field type of every family survives the trip through a file
        original = build_run_config(DATASET, name, {"train.lr": "0.002"}, steps=9)
        path = write(tmp_path, "config.json", json.dumps(original.to_dict()))
        again = run_config_from_args(merged("train", "--config", path), None)
        assert again.run_id == original.run_id and again.to_dict() == original.to_dict(), name
    reseeded = run_config_from_args(merged("train", "--config", path, "--seed", "5"), None)
    assert reseeded.train.seed == 5 and reseeded.train.lr == 0.002


def test_a_source_on_the_command_line_replaces_the_files_dataset(tmp_path: Path) -> None:
    args = merged("train", "--config", write(tmp_path, "run.toml", TOML), "--source", "tinystories")
    assert args.source == "tinystories" and args.dataset is None


@pytest.mark.parametrize(("text", "message"), [
    ('modle = "transformer:tiny"', "unknown key 'modle'; did you mean model? accepted: actors, backend"),
    ("steps = 'many'", "steps = 'many': expected an integer"),
    ('backend = "slurm"', "backend = 'slurm': accepted local, ray, modal"),
    ("json = 1", "json = 1: expected true or false"),
    ("model = ['a', 'b']", "takes one value, not a list"),
    ("steps = [", "not valid TOML"),
])
def test_a_bad_file_is_one_line_naming_the_key(tmp_path: Path, capsys, text: str, message: str) -> None:
    path = write(tmp_path, "bad.toml", text)
    assert main(["train", "--config", path]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"nightshift: error: --config {path}") and message in err and err.count("\n") == 1, err


def test_unknown_file_types_and_missing_files_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"unknown file type \.ini; accepted \.toml, \.yaml, \.yml, \.json"):
        merged("train", "--config", write(tmp_path, "run.ini", "x=1"))
    with pytest.raises(UserError, match="cannot read it"):
        merged("train", "--config", str(tmp_path / "absent.toml"))


SWEEP = """
source = "tinystories"
sizes = ["1MB", "4MB"]
models = ["transformer:debug", "macro_unit:small"]
seeds = [3]
steps = 40
[set]
log_every = 5
[set.macro_unit]
sleep_every = 64
"""


def test_sweep_files_take_lists_and_family_tables_and_flags_still_win(tmp_path: Path) -> None:
    path = write(tmp_path, "sweep.toml", SWEEP)
    spec = spec_from_args(merged("sweep", "--config", path))
    assert spec.sizes == (1_000_000, 4_000_000) and spec.models == ("transformer:debug", "macro_unit:small")
    assert spec.seeds == (3,) and spec.steps == 40 and spec.sets == ("log_every=5", "macro_unit.sleep_every=64")
    typed = spec_from_args(merged("sweep", "--config", path, "--tokens", "2M", "--seeds", "2"))
    assert typed.tokens == 2_000_000 and typed.steps is None and typed.seeds == (0, 1)  # one bound: the typed one
    with pytest.raises(UserError, match=r"--models is required: give it on the command line or in --config FILE"):
        merged("sweep", "--config", write(tmp_path, "partial.toml", 'source = "tinystories"\nsizes = "1MB"'))


def test_a_sweeps_recorded_spec_reruns_the_same_sweep(tmp_path: Path) -> None:
    spec = SweepConfig(source="tinystories", sizes=(100_000, 200_000), models=("transformer:debug",), seeds=(0,),
                       steps=6, evals=2, valid_bytes=8_000, tokenizer="bytes", sets=("sample_tokens=8",))
    path = write(tmp_path, "config.json", json.dumps(spec.to_dict()))
    assert spec_from_args(merged("sweep", "--config", path)).sweep_id == spec.sweep_id


def test_demo_files_override_the_demos_defaults(tmp_path: Path) -> None:
    args = merged("demo", "--config", write(tmp_path, "demo.toml", 'sizes = ["2MB"]\nevals = 5'))
    assert (args.source, args.sizes, args.evals, args.valid_bytes) == ("pg19", "2MB,", 5, "64KB")
    assert merged("demo", "--config", write(tmp_path, "demo2.toml", "evals = 5"), "--evals", "1").evals == 1
