"""Every family's model as an MLflow pyfunc model: saved from code, loaded by MLflow, generating and scoring.

No server: the folder `save_model_folder` writes is what a run logs; here
MLflow's own loader opens it (code/ on sys.path, nothing unpickled) and the
checkpoint inside opens with torch.load(weights_only=True).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from nightshift.models.protocol import LanguageModel, Vocab
from nightshift.orchestrator.evaluation.bits_per_byte import bits_per_byte
from nightshift.orchestrator.runs.config import build_run_config
from nightshift.orchestrator.runs.vocab import vocab_of
from nightshift.orchestrator.serving.bundle import bundle_in
from nightshift.orchestrator.serving.package import save_model_folder
from nightshift.pipelines.reader import ValidationDoc
from nightshift.pipelines.tokenizers import load_tokenizer

DATASET = "local-pg19-100kb-bytes-0123456789abcdef"
FAMILIES = ("transformer:debug", "attractor:debug", "holographic:tiny", "macro_unit:small")


def _trained_a_little(model_name: str, tokenizer, text: str):
    """A model that has seen some text (memory families observe it; gradient families stay untrained)."""
    torch.manual_seed(0)
    config = build_run_config(DATASET, model_name, {"batch_size": "4"})
    model = config.model.config.build(vocab_of(tokenizer))
    if not model.trains_by_gradient:
        ids = np.asarray(tokenizer.encode_batch([text[:20_000]])[0], dtype=np.int64)
        T = model.train_seq_len
        rows = torch.from_numpy(np.stack([ids[i:i + T + 1] for i in range(0, len(ids) - T - 1, T)][:64]))
        model.observe(rows)  # (B, T+1)
    return config, model.eval()


@pytest.mark.parametrize("model_name", FAMILIES)
def test_every_family_logs_as_a_pyfunc_model_that_generates_and_scores(
        model_name: str, tmp_path: Path, pg19_texts: dict[str, list[str]]) -> None:
    import mlflow.pyfunc

    tokenizer = load_tokenizer("bytes")
    config, model = _trained_a_little(model_name, tokenizer, pg19_texts["train"][0])
    folder = save_model_folder(model, config, tokenizer, 7, str(tmp_path / "model"))
    state = torch.load(bundle_in(folder)[0], weights_only=True)  # no pickled code in the checkpoint
    assert state["step"] == 7 and state["config"]["model"]["family"] == config.model.family

    loaded = mlflow.pyfunc.load_model(folder)
    assert loaded.metadata.signature.inputs.input_names() == ["prompt"]
    prompts = pd.DataFrame({"prompt": ["It was a dark and stormy night", "The old man"]})
    out = loaded.predict(prompts, params={"max_tokens": 12, "seed": 3})
    assert list(out.columns) == ["completion", "finish_reason"] and len(out) == 2
    assert all(r in ("length", "stop") for r in out["finish_reason"])
    assert (out["finish_reason"] == "length").any() and out["completion"].str.len().max() > 0
    again = loaded.predict(prompts, params={"max_tokens": 12, "seed": 3})
    assert again["completion"].tolist() == out["completion"].tolist()  # a seed fixes the sample

    text = pg19_texts["validation"][0][:600]
    score = loaded.predict(pd.DataFrame({"prompt": [text]}), params={"task": "score"})
    ids = np.asarray(tokenizer.encode_batch([text])[0], dtype=np.int64)
    direct = bits_per_byte(model, [ValidationDoc(doc_id="x", tokens=ids, n_bytes=len(text.encode()))])
    assert score["bits_per_byte"][0] == pytest.approx(direct.bits_per_byte, rel=1e-5)  # what `eval` computes
    assert math.isfinite(score["bits_per_byte"][0]) and score["bytes"][0] == len(text.encode())


def test_a_bpe_model_carries_its_own_tokenizer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gpt2 ranks travel inside the model: loading needs neither the tiktoken cache nor the network."""
    import mlflow.pyfunc
    import tiktoken

    tokenizer = load_tokenizer("gpt2")
    config = build_run_config(DATASET.replace("bytes", "gpt2"), "transformer:debug", {})
    model = config.model.config.build(vocab_of(tokenizer)).eval()
    folder = save_model_folder(model, config, tokenizer, 1, str(tmp_path / "model"))

    def offline(name: str):
        raise AssertionError(f"tiktoken.get_encoding({name!r}) called: the model should use its own ranks")

    monkeypatch.setattr(tiktoken, "get_encoding", offline)
    loaded = mlflow.pyfunc.load_model(folder)
    bundle = loaded.unwrap_python_model()._bundle
    assert bundle.tokenizer.identity() == tokenizer.identity()  # the very same 50257 ranks
    text = "Once upon a time, nightshift"
    assert bundle.tokenizer.encode_batch([text]) == tokenizer.encode_batch([text])
    out = loaded.predict(pd.DataFrame({"prompt": [text]}), params={"max_tokens": 4})
    assert out["finish_reason"][0] in ("length", "stop")


class Scripted(LanguageModel):
    """Bytes vocabulary; always continues with the same bytes (the sampler, not a model, is under test)."""

    def __init__(self, script: bytes) -> None:
        super().__init__(Vocab.bytes_vocab())
        self.script = torch.tensor(list(script), dtype=torch.long)
        self.prompt_len: int | None = None

    @property
    def context_length(self) -> int:
        return 64

    def generate(self, prompt: torch.Tensor, max_new_tokens: int, **_: object) -> torch.Tensor:
        if self.prompt_len is None:
            self.prompt_len = len(prompt)
        done = len(prompt) - self.prompt_len
        return torch.cat([prompt, self.script[done:done + max_new_tokens]])


@pytest.mark.parametrize("stop", ["\x1e\u04a4", "\u04a4I", "te", "\x1e", "\u07b0\x08"])
def test_stop_strings_cut_at_their_first_occurrence_even_across_a_split_character(stop: str) -> None:
    """A chunk of 8 bytes ends inside the 2-byte character \u04a4: the text before a stop string that ends
    with it must not leak out with the chunk (nor anything after the stop); streamed pieces join up."""
    from nightshift.orchestrator.serving.bundle import Bundle
    from nightshift.orchestrator.serving.complete import CHUNK_TOKENS, Sampling, stream

    text = "b\x04\x07\u07b0\x08\x1e\u04a4I>te\x0cK4de"
    script = text.encode()
    assert script[CHUNK_TOKENS - 1:CHUNK_TOKENS + 1] == "\u04a4".encode()  # the split this test is about
    config = build_run_config(DATASET, "transformer:debug", {})
    bundle = Bundle(model=Scripted(script), tokenizer=load_tokenizer("bytes"), config=config, step=0)
    pieces = list(stream(bundle, "p", Sampling(max_tokens=len(script), stop=(stop,)), seed=0))
    assert "".join(p.text for p in pieces) == text[: text.find(stop)]
    assert pieces[-1].finish_reason == "stop" and all(p.finish_reason is None for p in pieces[:-1])
    whole = list(stream(Bundle(model=Scripted(script), tokenizer=load_tokenizer("bytes"), config=config, step=0),
                        "p", Sampling(max_tokens=len(script)), seed=0))
    assert "".join(p.text for p in whole) == text and whole[-1].finish_reason == "length"
    assert len(whole) > 1  # it streamed in pieces
