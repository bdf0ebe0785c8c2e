"""The whole memory is in the state dict; a reload through weights_only=True resumes exactly."""

from __future__ import annotations

import torch

from nightshift.models.protocol import SleepContext
from tests.models.holographic.helpers import small_config


def test_round_trip_through_a_file_resumes_exactly(byte_vocab, pg19_rows, tmp_path):
    cfg = small_config(max_attractors=3_000, episodic_buffer_size=512)  # small store: the reservoir is competing
    model = cfg.build(byte_vocab)
    rows = pg19_rows(model, 40_000)
    half = rows.shape[0] // 2
    for s in range(0, half, 8):
        model.observe(rows[s : min(s + 8, half)])
    model.sleep(SleepContext(step=1))
    probe = rows[-3:, :20]
    before = model.score(probe)
    path = tmp_path / "ckpt.pt"
    torch.save(model.state_dict(), path)
    restored = cfg.build(byte_vocab)
    restored.load_state_dict(torch.load(path, weights_only=True))
    assert torch.equal(restored.score(probe), before)
    assert len(restored.memory.protos) == len(model.memory.protos) > 0
    assert torch.equal(restored.memory.H, model.memory.H)
    # resume: both continue on the same data and stay identical, through another sleep
    for m in (model, restored):
        for s in range(half, rows.shape[0], 8):
            m.observe(rows[s : s + 8])
    ma = model.sleep(SleepContext(step=2))
    mb = restored.sleep(SleepContext(step=2))
    assert {k: v for k, v in ma.items() if k != "seconds"} == {k: v for k, v in mb.items() if k != "seconds"}
    sa, sb = model.state_dict(), restored.state_dict()
    flat_a, flat_b = _flatten(sa), _flatten(sb)
    assert flat_a.keys() == flat_b.keys()
    for key in flat_a:
        a, b = flat_a[key], flat_b[key]
        assert torch.equal(a, b) if isinstance(a, torch.Tensor) else a == b, key
    assert torch.equal(model.score(probe), restored.score(probe))


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out |= _flatten(v, f"{prefix}{k}/")
        return out
    return {prefix: obj}
