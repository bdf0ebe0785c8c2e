"""A second device that is not there: catch device mix-ups on a CPU-only machine.

Inside `fake_accelerator()`, tensors placed on the yielded device (labelled
`meta`: a CPU build of torch cannot label a tensor `cuda`, and autograd needs
a device guard, which `meta` has) become `FakeDevice` wrappers around real CPU
tensors, so models compute real numbers. Every aten op is checked the way CUDA
kernels check their operands, raising `DeviceMixup` where a GPU would fail:

- a device tensor and a CPU tensor (not a 0-dim scalar) in one op (`mm`, `cat`, `where`, ...);
  CPU indices into a device tensor and cross-device `copy_` are allowed, as on CUDA;
- `.numpy()` of a device tensor;
- a CPU `torch.Generator` driving a sampling op on the device (`multinomial`, `randint`, ...).

Explicit transfers (`.to(device)`, `.cpu()`) work as they do on a GPU. What it
cannot see: speed, memory, CUDA-only kernels, streams, and code that branches
on `device.type == "cuda"` (it sees the `meta` label and takes its CPU path).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map

DEVICE = torch.device("meta")
# ops that may take CPU operands next to device ones on CUDA too
_CPU_OPERANDS_OK = {"aten.copy_.default", "aten._to_copy.default", "aten.index.Tensor", "aten.index_put_.default",
                    "aten.index_put.default", "aten._index_put_impl_.default", "aten.lift_fresh.default",
                    "aten._local_scalar_dense.default", "aten.set_.source_Tensor", "aten.lift_fresh_copy.default"}


class DeviceMixup(RuntimeError):
    """What CUDA would raise here: the op mixes devices, or reads a device tensor as host memory."""


class FakeDevice(torch.Tensor):
    """A CPU tensor (`elem`) that says it lives on the fake device."""

    elem: torch.Tensor

    @staticmethod
    def __new__(cls, elem: torch.Tensor) -> "FakeDevice":
        return torch.Tensor._make_wrapper_subclass(cls, elem.shape, strides=elem.stride(), dtype=elem.dtype,
                                                   device=DEVICE, requires_grad=elem.requires_grad,
                                                   storage_offset=elem.storage_offset())

    def __init__(self, elem: torch.Tensor) -> None:
        self.elem = elem

    def __repr__(self) -> str:
        return f"FakeDevice({self.elem!r})"

    def __reduce_ex__(self, protocol: int) -> Any:
        """torch.save writes the data as CPU tensors (what loading with map_location="cpu" gives)."""
        return self.elem.__reduce_ex__(protocol)

    @property
    def is_meta(self) -> bool:  # type: ignore[override]
        """Real data: load_state_dict must copy into it (it skips true meta parameters)."""
        return False

    def tolist(self) -> Any:
        return self.elem.tolist()

    def numpy(self, *args: Any, **kwargs: Any) -> Any:
        raise DeviceMixup("can't convert a device tensor to numpy; use Tensor.cpu() to copy it to host memory first")

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        self.numpy()

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


def _on_device(device: Any) -> bool:
    return device is not None and torch.device(device).type == DEVICE.type


def _wrap(x: Any) -> Any:
    if isinstance(x, torch.Tensor) and not isinstance(x, FakeDevice):
        return FakeDevice(x)
    return x


def _same_memory(dst: Any, src: Any) -> bool:
    """Two views of the same elements in the same layout (strides of size-1 dims do not matter)."""
    if not (isinstance(dst, torch.Tensor) and isinstance(src, torch.Tensor)) or dst.shape != src.shape:
        return False
    strides = [(a, b) for n, a, b in zip(dst.shape, dst.stride(), src.stride(), strict=True) if n != 1]
    return (dst.untyped_storage().data_ptr() == src.untyped_storage().data_ptr()
            and dst.storage_offset() == src.storage_offset() and all(a == b for a, b in strides))


def _run(func, args: tuple, kwargs: dict) -> Any:
    name = str(func)
    seen_device, cpu_operands = False, []

    def unwrap(x: Any) -> Any:
        nonlocal seen_device
        if isinstance(x, FakeDevice):
            seen_device = True
            return x.elem
        if isinstance(x, torch.Tensor):
            if x.device.type == DEVICE.type:
                raise DeviceMixup(f"{name}: a real {DEVICE.type} tensor (created outside the fake device)")
            if x.dim() > 0:
                cpu_operands.append(tuple(x.shape))
        if isinstance(x, torch.Generator) and x.device.type == "cpu":
            cpu_operands.append("a CPU torch.Generator")
        return x

    plain_args, plain_kwargs = tree_map(unwrap, args), tree_map(unwrap, kwargs)
    placed = _on_device(plain_kwargs.get("device"))  # a factory or a move onto the device
    if placed:
        plain_kwargs["device"] = torch.device("cpu")
        gens = [a for a in (*plain_args, *plain_kwargs.values()) if isinstance(a, torch.Generator)]
        if any(g.device.type == "cpu" for g in gens):
            raise DeviceMixup(f"{name}: a CPU torch.Generator for a tensor on the device")
    elif seen_device and cpu_operands and name not in _CPU_OPERANDS_OK:
        raise DeviceMixup(f"{name}: expected all tensors on the device, got CPU operand(s) {cpu_operands}")
    if name == "aten.copy_.default" and _same_memory(plain_args[0], plain_args[1]):
        return args[0]  # matmul(..., out=view) copying its result onto itself: the wrapper hid their identity
    out = func(*plain_args, **plain_kwargs)
    if name == "aten._local_scalar_dense.default":
        return out
    if placed or (seen_device and not (name == "aten._to_copy.default" and "device" in kwargs)):
        return tree_map(_wrap, out)
    return out  # a pure CPU op, or a copy off the device


class _Checker(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        return _run(func, args, kwargs or {})


class _Literals(TorchFunctionMode):
    """`torch.tensor(data, device=...)` and `x.new_tensor(data)` build their tensor in C++ without an
    aten factory the dispatch mode could see: build it on the CPU and wrap it instead."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.tensor, torch.as_tensor, torch.asarray) and _on_device(kwargs.get("device")):
            return FakeDevice(func(*args, **{**kwargs, "device": "cpu"}))
        if func is torch.Tensor.new_tensor and isinstance(args[0], FakeDevice) and kwargs.get("device") is None:
            return FakeDevice(args[0].elem.new_tensor(*args[1:], **kwargs))  # `x.new_tensor(data)`: on x's device
        return func(*args, **kwargs)


@contextmanager
def fake_accelerator() -> Iterator[torch.device]:
    """Yield the fake device; inside, placements on it hold real CPU data and every op is checked."""
    with _Literals(), _Checker():
        yield DEVICE
