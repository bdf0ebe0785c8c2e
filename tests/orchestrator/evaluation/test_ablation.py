"""Ablations: a part switched off changes the score exactly as scoring without it, through the trainer,
`nightshift eval --ablate --json` and MLflow; and every real family's declared parts do something."""

from __future__ import annotations

import io
import json
import random
from contextlib import redirect_stdout
from pathlib import Path

import pytest
import torch

from nightshift.models.protocol import ablated
from nightshift.models.registry import FAMILIES, family_module
from nightshift.orchestrator.cli import main as nightshift_main
from nightshift.orchestrator.errors import UserError
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.runs.loading import load_run
from nightshift.orchestrator.training.trainer import Trainer
from nightshift.pipelines.prepare import PrepareConfig, prepare
from nightshift.pipelines.store import Store
from tests.helpers import ablation_family
from tests.helpers.ablation_family import family_class

FAST = {"eval_every": "0", "log_every": "5", "sample_tokens": "8"}


def repeats_source(root: Path, *, seed: int = 0, in_document: bool = False) -> str:
    """Train and validation built from the same 40 short passages, each seen many times: memory pays off.

    in_document: each validation document also repeats a passage of its own, never seen in training,
    so mechanisms that read the document's own left context (a cache) have something to find.
    """
    rng = random.Random(seed)
    words = "the of and a to in is was he she it that for on with as his her at by from they".split()
    passages = [" ".join(rng.choice(words) for _ in range(60)) + "." for _ in range(40)]
    root.mkdir(parents=True, exist_ok=True)
    for split, n_docs in (("train", 300), ("validation", 30)):
        with open(root / f"{split}.jsonl", "w") as fh:
            for i in range(n_docs):
                text = " ".join(rng.choice(passages) for _ in range(4))
                if in_document and split == "validation":
                    novel = " ".join(rng.choice(words) for _ in range(25)) + "."
                    text = " ".join([novel, rng.choice(passages), novel, novel])
                fh.write(json.dumps({"id": f"{split}-{i}", "text": text}) + "\n")
    return f"local:{root}"


@pytest.fixture()
def repeats(tmp_path: Path) -> tuple[Store, str]:
    return _prepared(tmp_path, in_document=False)


@pytest.fixture(scope="module")
def repeats_in_document(tmp_path_factory: pytest.TempPathFactory) -> tuple[Store, str]:
    return _prepared(tmp_path_factory.mktemp("repeats_in_document"), in_document=True)


def _prepared(tmp_path: Path, *, in_document: bool) -> tuple[Store, str]:
    store = Store.open(str(tmp_path / "store"))
    source = repeats_source(tmp_path / "src", in_document=in_document)
    manifest = prepare(PrepareConfig(source=source, max_bytes=200_000, valid_bytes=20_000, tokenizer="bytes"),
                       store, actors=0, progress=False)
    return store, manifest.dataset_id


@pytest.mark.mlflow
def test_the_trainer_scores_each_part_off_and_eval_ablate_reports_the_same(
        repeats: tuple[Store, str], monkeypatch: pytest.MonkeyPatch, mlflow_server) -> None:
    from mlflow.tracking import MlflowClient

    from nightshift.orchestrator.tracking import build_tracker

    ablation_family.register(monkeypatch)
    store, dataset_id = repeats
    config = build_run_config(dataset_id, f"{ablation_family.NAME}:tiny", FAST, steps=60)
    tracker = build_tracker(mlflow_server.uri, store, 0, run_prefix=config.run_path)
    result = Trainer(config, store, progress_bar=False, tracker=tracker).run()
    off = result["ablations"]["memory"]
    assert set(result["ablations"]) == {"memory"} and off > result["val_bpb"] + 0.5  # the memory matters here

    loaded = load_run(store, config.run_id)  # the same figure, computed directly with the part off
    with ablated(loaded.model, {"memory"}):
        direct = bits_per_byte(loaded.model, loaded.dataset.validation_docs())
    assert direct.bits_per_byte == pytest.approx(off, rel=1e-12)
    assert loaded.model.ablated_parts == frozenset()

    client = MlflowClient(tracking_uri=mlflow_server.uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (run,) = client.search_runs(experiments, filter_string=f"tags.`run.id` = '{config.run_id}'")
    assert [m.value for m in client.get_metric_history(run.info.run_id, "ablation/memory/val_bpb")] == \
        [pytest.approx(off)]

    out = io.StringIO()
    with redirect_stdout(out):
        code = nightshift_main(["eval", config.run_id, "--ablate", "--json", "--no-references",
                                "--store", store.url])
    report = json.loads(out.getvalue())
    assert code == 0 and report["val_bpb"] == pytest.approx(result["val_bpb"])
    assert report["ablations"] == {"memory": pytest.approx(off)}
    with pytest.raises(UserError, match="ablatable: memory"):
        nightshift_main(["--debug", "eval", config.run_id, "--ablate", "units", "--store", store.url])


def test_online_scoring_learns_from_the_validation_text(repeats: tuple[Store, str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Prequential: validation passages repeat, so observing while scoring beats the frozen model."""
    ablation_family.register(monkeypatch)
    store, dataset_id = repeats
    config = build_run_config(dataset_id, f"{ablation_family.NAME}:tiny", FAST, steps=1)
    Trainer(config, store, progress_bar=False).run()
    out = io.StringIO()
    with redirect_stdout(out):
        nightshift_main(["eval", config.run_id, "--online", "--json", "--no-references", "--store", store.url])
    report = json.loads(out.getvalue())
    assert report["online_bpb"] < report["val_bpb"] - 0.2




ABLATABLE = [f for f in FAMILIES if (cls := family_class(f)) is not None and cls.ablatable]
QUICK_FLAVORS = ("debug", "tiny", "short", "small", "a1")
# (family, part): why switching it off changes nothing today. A finding reported in the README, not hidden:
# strict, so the day the part starts to count this turns red and the README's statement must change.
NO_EFFECT = {
    ("holographic", "prototypes"): "issue 14 finding: the mixture fit gives prototypes weight 0 (their "
                                   "histograms are near the unigram, under the bigram backoff they must beat)",
}


def _parts() -> list:
    cases = [(f, p) for f in ABLATABLE for p in family_class(f).ablatable]
    return [pytest.param(f, p, marks=pytest.mark.xfail(reason=NO_EFFECT[f, p], strict=True))
            if (f, p) in NO_EFFECT else (f, p) for f, p in cases]


@pytest.fixture(scope="module")
def ablated_runs(repeats_in_document: tuple[Store, str]) -> dict[str, dict]:
    """{family: result.json} of one brief training (with sleeps) per ablatable family, on text with repeats."""
    store, dataset_id = repeats_in_document
    out = {}
    for family in ABLATABLE:
        module = family_module(family)
        flavor = next((f for f in QUICK_FLAVORS if f in module.FLAVORS), module.DEFAULT_FLAVOR)
        config = build_run_config(dataset_id, f"{family}:{flavor}", {**FAST, "sleep_every": "32"}, steps=40)
        torch.manual_seed(0)
        out[family] = Trainer(config, store, progress_bar=False).run()
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("family", "part"), _parts())
def test_no_declared_part_of_a_family_is_a_no_op(family: str, part: str, ablated_runs: dict[str, dict]) -> None:
    """Trained briefly (with sleeps) on text with repeats, switching a declared part off changes the score."""
    result = ablated_runs[family]
    assert set(result["ablations"]) == set(family_class(family).ablatable)
    assert abs(result["ablations"][part] - result["val_bpb"]) > 1e-4, f"{family}: ablating {part!r} changes nothing"
