"""Saved activations grow with K; checkpointing over relaxation steps bounds them."""

from __future__ import annotations

import dataclasses

import torch

from nightshift.models.attractor import Config
from nightshift.models.protocol import Vocab

VOCAB = Vocab(name="syn", size=64, eot_id=0)


def saved_bytes(cfg: Config) -> int:
    """Bytes of distinct tensors autograd keeps for backward during one training forward."""
    torch.manual_seed(0)
    model = cfg.build(VOCAB)
    x = torch.randint(0, VOCAB.size, (16, cfg.window + 1), generator=torch.Generator().manual_seed(0))
    seen: dict[tuple[int, int], int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        seen[(storage.data_ptr(), storage.nbytes())] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss, _ = model(x)
    loss.backward()  # the graph is usable
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    return sum(seen.values()) - params  # parameters are saved too; they are not activations


def test_saved_activations_grow_with_steps_and_checkpointing_bounds_them() -> None:
    base = Config(d_model=32, n_waves=4, window=8, steps=4, gradients="unroll")
    k4, k16 = saved_bytes(base), saved_bytes(dataclasses.replace(base, steps=16))
    assert k16 > 2.5 * k4  # linear in K plus the fixed readout part
    ckpt = saved_bytes(dataclasses.replace(base, steps=16, checkpoint_every=4))
    assert ckpt < 0.6 * k16
