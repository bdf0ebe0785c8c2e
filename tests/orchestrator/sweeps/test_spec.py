"""What a sweep *is*: its id, its bound, and the cells it plans (no training here)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.sweeps.spec import plan_sweep
from nightshift.pipelines.store import Store
from tests.helpers.cli import nightshift
from tests.helpers.data import alias_source
from tests.orchestrator.sweeps.helpers import tiny_spec


def test_sweep_id_is_the_content_of_the_spec_not_where_it_runs(tmp_path: Path, pg19_dir: Path) -> None:
    source = alias_source(tmp_path, pg19_dir, "pg19-ids")
    base = tiny_spec(source)
    assert tiny_spec(source).sweep_id == base.sweep_id
    spelled_otherwise = "local:" + str(tmp_path / "." / "pg19-ids" / "..") + "/pg19-ids"
    assert tiny_spec(spelled_otherwise).sweep_id == base.sweep_id
    changed = [tiny_spec(source, sizes=(100_000,)), tiny_spec(source, models=("transformer:debug",)),
               tiny_spec(source, seeds=(0, 1)), tiny_spec(source, steps=7), tiny_spec(source, steps=None, tokens=4096),
               tiny_spec(source, budget_minutes=1.0), tiny_spec(source, sets=("lr=0.01",)),
               tiny_spec(source, valid_bytes=30_000), tiny_spec(source, tokenizer="gpt2"), tiny_spec(source, evals=3)]
    ids = {spec.sweep_id for spec in changed}
    assert base.sweep_id not in ids and len(ids) == len(changed)
    assert base.sweep_id.startswith("sweep-pg19-ids-2x2-")


@pytest.mark.parametrize("fields, message", [
    ({"steps": 5, "tokens": 1000}, "--steps and --tokens: give one of"),
    ({"steps": None, "epochs": 0.0}, "--epochs 0.0: must be > 0"),
    ({"sets": ("attractor.lr=0.1",)}, "--set attractor.lr: no attractor variant"),
    ({"sizes": ()}, "at least one size"),
    ({"models": ("transformer:debug", "transformer:debug")}, "lists a value twice"),
    ({"steps": 0}, "--steps 0: must be > 0"),
    ({"sets": ("lr",)}, "expected key=value"),
])
def test_bad_specs_are_one_line_user_errors(fields: dict, message: str) -> None:
    with pytest.raises(UserError, match=message):
        tiny_spec("local:/nowhere", **fields).validate()


def test_bound_is_stated_for_the_report() -> None:
    assert tiny_spec("local:/x").bound["text"] == "6 steps per cell"
    minutes = tiny_spec("local:/x", steps=None, budget_minutes=2.5).bound
    assert minutes["kind"] == "minutes" and "2.5 minutes" in minutes["text"] and "sleep" in minutes["text"]
    assert tiny_spec("local:/x", steps=None, tokens=10_000).bound["kind"] == "tokens"
    capped = tiny_spec("local:/x", steps=None, epochs=1.0, budget_minutes=3).bound
    assert capped["kind"] == "epochs" and capped["cap_minutes"] == 3
    assert capped["text"] == "1 epoch of each size's training tokens per cell; at most 3 minutes of compute (all " \
                             "work but evaluation and checkpoints; cells stopped by it read 'budget')"


def test_planned_cells_share_one_validation_split_and_honour_each_bound(tmp_path: Path, pg19_dir: Path) -> None:
    store = Store.open(str(tmp_path / "store"))
    source = alias_source(tmp_path, pg19_dir, "pg19-plan")
    spec = tiny_spec(source, steps=None, tokens=20_000, seeds=(0, 1))
    plan = plan_sweep(spec, store, progress=False)
    assert len(plan.cells) == 2 * 2 * 2 and len({d["validation_id"] for d in plan.datasets.values()}) == 1
    assert plan.experiment == "local-pg19-plan"
    for cell in plan.cells:
        train = cell.config.train
        seq_len = cell.config.model.config.build(_bytes_vocab()).train_seq_len
        assert train.steps == max(1, math.ceil(20_000 / (train.batch_size * seq_len)))
        assert train.seed == cell.seed and train.sample_tokens == 8  # the sweep's --set reaches every cell
        assert cell.config.dataset_id == plan.datasets[cell.size_bytes]["dataset_id"]
    steps = {c.model: c.config.train.steps for c in plan.cells}
    assert steps["transformer:debug"] != steps["macro_unit:small"]  # equal tokens, not equal steps
    minutes = plan_sweep(tiny_spec(source, steps=None, budget_minutes=0.5), store, progress=False)
    assert all(c.config.train.budget_minutes == 0.5 for c in minutes.cells)
    epochs = plan_sweep(tiny_spec(source, steps=None, epochs=2.0, budget_minutes=1.0,
                                  sets=("eval_every=5", "macro_unit.eval_every=1", "macro_unit.batch_size=4")),
                        store, progress=False)
    for cell in epochs.cells:
        train, tokens = cell.config.train, plan.datasets[cell.size_bytes]["train_tokens"]
        seq_len = cell.config.model.config.build(_bytes_vocab()).train_seq_len
        assert train.steps == math.ceil(2.0 * tokens / (train.batch_size * seq_len)) and train.budget_minutes == 1.0
        scoped = cell.model.startswith("macro_unit")
        assert (train.eval_every, train.batch_size == 4) == ((1, True) if scoped else (5, False))
    assert store.listdir("datasets") == sorted(d["dataset_id"] for d in plan.datasets.values())  # no re-prepare


def _bytes_vocab():
    from nightshift.models.protocol import Vocab

    return Vocab.bytes_vocab()


def test_cli_refuses_an_unknown_model_before_preparing_anything(tmp_path: Path, pg19_dir: Path) -> None:
    store = tmp_path / "store"
    out = nightshift("sweep", "--source", f"local:{pg19_dir}", "--sizes", "100KB", "--models",
                     "transformer:debug,nosuch:thing", "--steps", "2", "--store", str(store), "--no-progress",
                     check=False)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("nightshift: error: unknown model family 'nosuch'")
    assert not (store / "datasets").exists()


def test_seeds_are_aggregated_with_their_spread_and_overlaps_are_marked() -> None:
    from nightshift.orchestrator.sweeps.report.collect import seed_summary

    def cell(variant: str, seed: int, bpb: float) -> dict:
        return {"variant": variant, "size_bytes": 1_000_000, "seed": seed, "val_bpb": bpb}

    cells = [cell("a", 0, 2.00), cell("a", 1, 2.02), cell("a", 2, 2.04),  # mean 2.02, sd 0.02
             cell("b", 0, 2.03), cell("b", 1, 2.05), cell("b", 2, 2.07),  # mean 2.05: inside the spread of a
             cell("c", 0, 2.50), cell("c", 1, 2.51), cell("c", 2, 2.52),  # clearly worse
             {**cell("d", 0, 2.0), "val_bpb": None}]  # unfinished: left out
    summary = seed_summary(cells)
    a, b, c = (summary[v][1_000_000] for v in "abc")
    assert a["mean"] == pytest.approx(2.02) and a["std"] == pytest.approx(0.02) and a["n"] == 3
    assert a["seeds"] == [0, 1, 2] and (a["min"], a["max"]) == (2.00, 2.04)
    assert a["within_spread_of_best"] is False  # the best itself
    assert b["within_spread_of_best"] is True and c["within_spread_of_best"] is False
    assert "d" not in summary
    single = seed_summary([cell("a", 0, 2.0), cell("b", 0, 2.1)])
    assert single["a"][1_000_000]["std"] is None and single["b"][1_000_000]["within_spread_of_best"] is None


@pytest.mark.parametrize(("text", "seeds"), [("1", (0,)), ("3", (0, 1, 2)), ("0,1,2", (0, 1, 2)), ("5,", (5,))])
def test_seeds_flag_takes_a_count_or_a_list(text: str, seeds: tuple[int, ...]) -> None:
    from nightshift.orchestrator.commands.sweep import parse_seeds

    assert parse_seeds(text) == seeds
    with pytest.raises(UserError, match="--seeds"):
        parse_seeds("0")
