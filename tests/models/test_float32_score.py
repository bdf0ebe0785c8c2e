"""Evaluation is float32 for every family, whatever autocast the caller holds.

The trainer trains under bf16 autocast on CUDA; CPU bf16 autocast casts the same
ops, so scoring under it here shows what a GPU evaluation would compute. Every
family's score must equal its fp32 score exactly, and for holographic:suffix the
gap without the guard is shown to be real (its exact-match keys break in bf16).
"""

from __future__ import annotations

import inspect

import pytest
import torch

from nightshift.models.protocol import SleepContext, Vocab
from nightshift.models.registry import resolve

FLAVOURS = ["transformer:debug", "attractor:debug", "holographic:tiny", "holographic:suffix", "macro_unit:small"]
SMALLER = {"holographic:suffix": {"reading_window": 512, "train_seq_multiple": 32}}  # the same keys, vote, reading


def _rows(text: bytes, rows: int, length: int) -> torch.Tensor:
    data = torch.frombuffer(bytearray(text[: rows * length]), dtype=torch.uint8).long()
    return data.view(rows, length)  # (rows, length)


def _model(name: str, pg19_texts: dict[str, list[str]]):
    torch.manual_seed(0)
    model = resolve(name, SMALLER.get(name)).config.build(Vocab.bytes_vocab())
    text = "\n".join(pg19_texts["train"]).encode()
    if not model.trains_by_gradient:  # a memory family scores from what it stored
        length = model.train_seq_len + 1
        rows = _rows(text, max(8, 100_000 // length), length)
        for s in range(0, rows.shape[0], 8):
            model.observe(rows[s : s + 8])
        model.sleep(SleepContext(step=1))
    model.eval()
    width = min(max(model.eval_window, model.context_length), 4096)
    val = _rows("\n".join(pg19_texts["validation"]).encode(), 2, width + 1)
    return model, val


@pytest.mark.parametrize("name", FLAVOURS)
def test_score_under_bf16_autocast_equals_float32(name: str, pg19_texts) -> None:
    model, val = _model(name, pg19_texts)
    with torch.no_grad():
        fp32 = model.score(val)  # (B, T)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_bf16 = model.score(val)  # (B, T)
    assert under_bf16.dtype == fp32.dtype
    assert torch.equal(under_bf16, fp32)
    if name == "holographic:suffix":  # the guard matters: unguarded, bf16 suffix keys lose their exact matches
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            raw = inspect.unwrap(type(model).score)(model, val)  # (B, T): the method without its guard
        gap = float((fp32.double() - raw.double()).abs().mean())
        assert gap > 0.002, gap
