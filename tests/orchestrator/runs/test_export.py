"""`nightshift export`: a finished run of every family, exported, reloaded into a fresh model, scores the same.

One module-scoped store: 20 KB of raw-byte pg19 (4 KB validation) and a 4-step run of each family with a
checkpoint every 2 steps, so `--step` has two kept steps to choose from.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from nightshift.models.registry import FAMILIES
from nightshift.orchestrator.checkpointing.trail import CheckpointTrail
from nightshift.orchestrator.cli import main as nightshift_main
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.runs.export import FORMATS, export_run, load_export
from nightshift.orchestrator.runs.folders import find_run
from nightshift.orchestrator.tracking import build_tracker
from nightshift.orchestrator.training.trainer import Trainer
from nightshift.pipelines.reader import open_dataset
from nightshift.pipelines.store import Store
from tests.helpers.data import prepare_pg19

MODELS = {"transformer": "transformer:debug", "attractor": "attractor:debug", "holographic": "holographic:tiny",
          "macro_unit": "macro_unit:small"}
SETS = {"eval_every": "0", "log_every": "5", "sample_tokens": "8", "final_ablations": "false",
        "train.checkpoint_every": "2", "batch_size": "8"}


@dataclass(frozen=True)
class Trained:
    store_dir: Path
    dataset_id: str
    runs: dict[str, dict]  # family -> the trainer's result (run_id, val_bpb over the whole validation split)

    @property
    def store(self) -> Store:
        return Store.open(str(self.store_dir))


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, pg19_dir: Path) -> Trained:
    store_dir = tmp_path_factory.mktemp("export") / "store"
    dataset_id = prepare_pg19(store_dir, pg19_dir, max_bytes=20_000, valid_bytes=4_000)
    store = Store.open(str(store_dir))
    runs = {}
    for family, model in MODELS.items():
        config = build_run_config(dataset_id, model, SETS, steps=4)
        tracker = build_tracker("none", store, rank=0, run_prefix=config.run_path)
        runs[family] = Trainer(config, store, progress_bar=False, tracker=tracker).run()
        assert runs[family]["stop_reason"] == "finished"
    return Trained(store_dir=store_dir, dataset_id=dataset_id, runs=runs)


def test_every_family_is_exercised() -> None:
    assert set(MODELS) == set(FAMILIES)


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("family", list(MODELS))
def test_an_export_loads_into_a_fresh_model_that_scores_what_the_run_scored(
        trained: Trained, family: str, fmt: str, tmp_path: Path) -> None:
    result = trained.runs[family]
    out = tmp_path / "export"
    written = export_run(trained.store, result["run_id"], out=out, fmt=fmt)
    assert written.step == 4 and {name for name, _ in written.files} == \
        {FORMATS[fmt].file, "config.json", "tokenizer.json", "export.json"}
    assert sorted(p.name for p in out.iterdir()) == sorted(name for name, _ in written.files)  # nothing else
    loaded = load_export(out)
    assert loaded.step == 4 and loaded.config.run_id == result["run_id"] and not loaded.model.training
    score = bits_per_byte(loaded.model, open_dataset(trained.store, trained.dataset_id).validation_docs())
    assert score.n_bytes == result["val_bytes"]
    assert score.bits_per_byte == pytest.approx(result["val_bpb"], rel=1e-9, abs=0)


def test_the_folder_carries_the_runs_own_config_and_tokenizer_identity(trained: Trained, tmp_path: Path) -> None:
    result = trained.runs["holographic"]
    export_run(trained.store, result["run_id"], out=tmp_path / "x")
    run = find_run(trained.store, result["run_id"])
    assert (tmp_path / "x" / "config.json").read_bytes() == trained.store.read_bytes(*run.parts, "config.json")
    tokenizer = json.loads((tmp_path / "x" / "tokenizer.json").read_text())
    assert {k: tokenizer[k] for k in ("name", "vocab_size", "eot_id")} == {"name": "bytes", "vocab_size": 257,
                                                                           "eot_id": 256}
    # a memory family's state is tensors plus a JSON skeleton in the metadata: nothing pickled
    with safe_open(str(tmp_path / "x" / "model.safetensors"), framework="pt") as f:
        skeleton = json.loads(f.metadata()["nightshift.state"])
        assert "_extra_state" in skeleton and any(k.startswith("_extra_state.memory.") for k in f.keys())


def test_a_gradient_familys_safetensors_is_a_plain_state_dict(trained: Trained, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    result = trained.runs["transformer"]
    export_run(trained.store, result["run_id"], out=tmp_path / "x")
    weights = load_file(str(tmp_path / "x" / "model.safetensors"))
    state = CheckpointTrail(trained.store, find_run(trained.store, result["run_id"]).parts).load()["model"]
    assert set(weights) == set(state) and all(torch.equal(weights[k], state[k]) for k in state)


def test_the_cli_exports_an_older_step_into_an_empty_folder(trained: Trained, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    run_id = trained.runs["transformer"]["run_id"]
    out = tmp_path / "empty"
    out.mkdir()
    code = nightshift_main(["export", run_id, "--step", "2", "--format", "pt", "--out", str(out),
                            "--store", str(trained.store_dir)])
    stdout = capsys.readouterr().out
    assert code == 0 and stdout.count("\n") == 1
    assert f"{run_id} @ step 2: exported as pt to {out}" in stdout and "model.pt" in stdout and " bytes)" in stdout
    step2 = CheckpointTrail(trained.store, find_run(trained.store, run_id).parts).load(2)["model"]
    loaded = load_export(out)
    assert loaded.step == 2
    assert all(torch.equal(v, step2[k]) for k, v in loaded.model.state_dict().items())


def refused(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = nightshift_main(list(argv))
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("nightshift: error: "), err
    return err


def test_a_bad_format_is_one_line_naming_the_accepted_ones(trained: Trained, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, "export", trained.runs["macro_unit"]["run_id"], "--format", "onnx",
                  "--out", str(tmp_path / "x"), "--store", str(trained.store_dir))
    assert "'onnx'" in err and "safetensors, pt" in err
    assert list(tmp_path.iterdir()) == []


def test_a_missing_step_is_one_line_listing_the_kept_steps(trained: Trained, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    err = refused(capsys, "export", trained.runs["holographic"]["run_id"], "--step", "3",
                  "--out", str(tmp_path / "x"), "--store", str(trained.store_dir))
    assert "no checkpoint at step 3" in err and "[2, 4]" in err
    assert list(tmp_path.iterdir()) == []


def test_an_existing_non_empty_out_is_refused_untouched(trained: Trained, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "taken"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    err = refused(capsys, "export", trained.runs["transformer"]["run_id"], "--out", str(out),
                  "--store", str(trained.store_dir))
    assert f"--out {out}" in err and "not an empty folder" in err
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"


def test_a_failed_export_leaves_no_folder_behind(trained: Trained, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(state: dict, path: str) -> None:
        Path(path).write_bytes(b"half")
        raise OSError("disk gone")

    monkeypatch.setitem(FORMATS, "pt", replace(FORMATS["pt"], write=boom))
    with pytest.raises(OSError, match="disk gone"):
        export_run(trained.store, trained.runs["attractor"]["run_id"], out=tmp_path / "x", fmt="pt")
    assert list(tmp_path.iterdir()) == []  # neither the folder nor its hidden staging folder


def test_the_loader_refuses_weights_changed_after_the_export(trained: Trained, tmp_path: Path) -> None:
    export_run(trained.store, trained.runs["transformer"]["run_id"], out=tmp_path / "x")
    weights = tmp_path / "x" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(UserError, match="changed since the export"):
        load_export(tmp_path / "x")
    with pytest.raises(UserError, match="no export.json"):
        load_export(tmp_path)
