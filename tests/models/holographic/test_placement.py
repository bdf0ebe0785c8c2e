"""store_device: one rule (placement.py) places the store for the model and for the planner's footprint."""

from __future__ import annotations

import pytest
import torch

from nightshift.models.footprint import RunShape
from nightshift.models.holographic import Config
from nightshift.models.holographic.placement import full_store_bytes, store_placement

GIB = 2**30


def test_auto_is_the_default_and_places_by_half_the_device_memory(byte_vocab) -> None:
    cfg = Config(max_attractors=1_000_000)  # 108 B a row (faithful key): 0.1 GiB
    assert cfg.store_device == "auto" and full_store_bytes(cfg) == 108_000_000
    need = full_store_bytes(cfg)
    assert store_placement(cfg, byte_vocab, "cuda", 2 * need)[0] == "device"  # exactly half: fits
    where, why = store_placement(cfg, byte_vocab, "cuda", 2 * need - 1)
    assert where == "host" and "exceeds half" in why
    where, why = store_placement(cfg, byte_vocab, torch.device("meta"), None)  # unreadable memory: taken to fit
    assert where == "device" and "unknown" in why
    for choice in ("auto", "host", "model"):  # on the CPU the three are the same memory
        assert store_placement(Config(store_device=choice), byte_vocab, "cpu", None)[0] == "host"
    big = Config(max_attractors=10**9)
    assert store_placement(Config(store_device="model", max_attractors=10**9), byte_vocab, "cuda", GIB)[0] == "device"
    assert store_placement(Config(store_device="host"), byte_vocab, "cuda", None)[0] == "host"
    assert store_placement(big, byte_vocab, "cuda", 80e9)[0] == "host"


@pytest.mark.parametrize(("memory", "want"), [(None, "device"), (80e9, "device"), (1e9, "host")])
def test_the_footprint_says_what_the_rule_chose_and_why(byte_vocab, memory, want) -> None:
    cfg = Config(max_attractors=20_000_000)  # 2.16 GB at full size
    fp = cfg.footprint(byte_vocab, RunShape(steps=10, batch_size=8, on_gpu=True, device_memory=memory))
    assert fp.store_on == want and "store_device=auto" in fp.store_note
    assert ("store" in fp.device_parts) == (want == "device")
    cpu = cfg.footprint(byte_vocab, RunShape(steps=10, batch_size=8, on_gpu=False, device_memory=memory))
    assert cpu.store_on == "host" and "on the CPU" in cpu.store_note
