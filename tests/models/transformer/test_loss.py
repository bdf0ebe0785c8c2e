"""The chunked tied-head cross-entropy equals the plain one, loss and gradients, whatever the chunking."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from nightshift.models.protocol import Vocab
from nightshift.models.transformer import loss as chunked
from nightshift.models.transformer.config import Config


@pytest.mark.parametrize("chunk_elements", [1 << 24, 3 * 128 + 5])  # one chunk; many uneven chunks
def test_chunked_loss_and_gradients_equal_plain_cross_entropy(chunk_elements: int, monkeypatch) -> None:
    monkeypatch.setattr(chunked, "CHUNK_ELEMENTS", chunk_elements)
    torch.manual_seed(0)
    model = Config(n_layer=2, n_head=2, d_model=32, seq_len=16, pad_vocab_to=64).build(
        Vocab(name="test", size=100, eot_id=99))  # 100 real ids padded to 128: padding must get no mass
    tokens = torch.randint(0, 100, (5, 17))

    def run(fn) -> tuple[float, dict[str, torch.Tensor]]:
        model.zero_grad()
        value = fn()
        value.backward()
        return value.item(), {n: p.grad.clone() for n, p in model.named_parameters()}

    plain = run(lambda: F.cross_entropy(model.padded_logits(tokens[:, :-1]).flatten(0, 1), tokens[:, 1:].flatten()))
    fused = run(lambda: model(tokens)[0])
    assert fused[0] == pytest.approx(plain[0], rel=1e-6)
    for name, grad in plain[1].items():
        torch.testing.assert_close(fused[1][name], grad, rtol=1e-5, atol=1e-7, msg=name)
    assert fused[1]["embed.weight"][100:].abs().max() == 0  # padding rows: zero gradient
