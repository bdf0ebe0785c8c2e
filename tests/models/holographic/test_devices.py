"""The device rule of the holographic family (see models/holographic/__init__.py).

Every op must see tensors of one device; transfers are explicit (.to / .cpu); outputs come back on the
input's device. On a CPU-only machine the "cuda" cases skip and the op check can only confirm that
nothing asks for a device that is absent; on a CUDA machine the same tests check the real rule.
"""

from __future__ import annotations

import pytest
import torch
from torch.overrides import TorchFunctionMode

from nightshift.models.protocol import SleepContext
from tests.models.holographic.helpers import small_config

TRANSFERS = {"to", "cpu", "cuda", "copy_", "__get__", "__set__", "device", "is_cuda", "numel", "dim", "size"}


class OneDevicePerOp(TorchFunctionMode):
    """Fails any torch op whose tensor arguments live on more than one device (explicit transfers pass)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", str(func))
        if name not in TRANSFERS:
            devices = set()
            stack = list(args) + list(kwargs.values())
            while stack:
                a = stack.pop()
                if isinstance(a, torch.Tensor):
                    if a.dim() > 0 or a.device.type != "cpu":  # CPU scalars mix freely with any device
                        devices.add(a.device)
                elif isinstance(a, list | tuple):
                    stack.extend(a)
            assert len(devices) <= 1, f"{name} mixes devices {devices}"
            self.ops += 1
        return func(*args, **kwargs)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA"))]
SUFFIX = dict(context_size=8, key_scales=(1, 2, 4, 8), vote="depth", reading_window=32, reading_k=4,
              train_seq_multiple=8, holdout_every=2)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("store_device", ["auto", "host", "model"])
@pytest.mark.parametrize("flavor", ["faithful", "suffix"])
def test_every_op_on_one_device_and_outputs_on_the_inputs(byte_vocab, pg19_rows, device, store_device, flavor):
    extra = SUFFIX if flavor == "suffix" else {}
    model = small_config(**(extra | {"store_device": store_device})).build(byte_vocab).to(device)
    rows = pg19_rows(model, 12_000).to(device)
    with OneDevicePerOp() as mode:
        for s in range(0, rows.shape[0], 8):
            model.observe(rows[s : s + 8])
        model.sleep(SleepContext(step=1))
        scored = model.score(rows[:2, :40])
        logp = model.log_probs(rows[:2, :20])
        sample = model.generate(rows[0, :10], 3, generator=torch.Generator().manual_seed(0))
    assert mode.ops > 100
    assert scored.device == rows.device and logp.device == rows.device and sample.device == rows.device
    want = torch.device(device) if store_device in ("auto", "model") else torch.device("cpu")  # auto: it fits
    assert model.memory.store.view("key").device.type == want.type
    for name in ("buffer", "holdout"):
        assert model.memory.res[name].view("key").device.type == "cpu"  # the rest of memory: host
    assert all(t.device.type == "cpu" for t in model.memory.state()["store"].values() if isinstance(t, torch.Tensor))


def test_the_checker_catches_an_op_that_mixes_devices():
    """The rule check can fail: a CPU tensor and a tensor on another device (meta) in one op."""
    with pytest.raises(AssertionError, match="mixes devices"), OneDevicePerOp():
        torch.add(torch.ones(2), torch.ones(2, device="meta"))
