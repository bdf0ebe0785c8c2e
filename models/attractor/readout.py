"""The readout's matmuls in bfloat16 during training (`Config(readout_precision=...)`).

Why. At `a1` the W*D -> V readout is ~80 % of the parameters and, once the
relaxation is fused, most of a training step: three (64 x 1024) x (1024 x
8192) matmuls. Where the hardware multiplies bfloat16 natively (CUDA sm80+,
CPUs with AVX512-BF16 or AMX) those run 2-3x faster than float32 with float32
accumulation, as in any mixed-precision training: the weights, their gradients
and the optimizer state stay float32; only the matmul operands are rounded.
Evaluation always reads out in float32, so a checkpoint scores the same on any
machine. `benchmarks/attractor_vs_original.py --quality` measures bits/byte at
equal steps with and without it.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx

Precision = Literal["auto", "float32", "bfloat16"]


def native_bf16(device: torch.device) -> bool:
    """True where bfloat16 matmuls are faster than float32 ones, not emulated."""
    return _native_bf16(device.type, device.index)


@lru_cache(maxsize=None)
def _native_bf16(kind: str, index: int | None) -> bool:
    if kind == "cuda":
        with torch.cuda.device(index if index is not None else torch.cuda.current_device()):
            return torch.cuda.is_bf16_supported(including_emulation=False)
    if kind == "cpu":
        cpu = torch.cpu
        return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                    or getattr(cpu, "_is_amx_tile_supported", lambda: False)())
    return False


def resolve(precision: Precision, device: torch.device) -> torch.dtype:
    """The matmul dtype a training readout uses on `device`."""
    if precision == "bfloat16" or (precision == "auto" and native_bf16(device)):
        return torch.bfloat16
    return torch.float32


class LowPrecisionLinear(torch.autograd.Function):
    """y = x @ W^T with bf16 operands and float32 result; gradients in float32 (bf16 matmuls).

    The bf16 copy of W made in forward is reused by backward (one cast per step, not two).
    """

    @staticmethod
    def forward(ctx: FunctionCtx, x: Tensor, weight: Tensor) -> Tensor:
        xb, wb = x.to(torch.bfloat16), weight.to(torch.bfloat16)  # (N, K), (V, K)
        ctx.save_for_backward(xb, wb)
        ctx.x_dtype = x.dtype
        return torch.mm(xb, wb.t()).to(x.dtype)  # (N, V)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, Tensor | None]:
        xb, wb = ctx.saved_tensors
        gb = grad.to(torch.bfloat16)  # (N, V)
        dx = torch.mm(gb, wb).to(ctx.x_dtype) if ctx.needs_input_grad[0] else None  # (N, K)
        dw = torch.mm(gb.t(), xb).to(ctx.x_dtype) if ctx.needs_input_grad[1] else None  # (V, K)
        return dx, dw


def linear(x: Tensor, weight: Tensor, dtype: torch.dtype) -> Tensor:
    """x (..., K) @ weight (V, K)^T with `dtype` operands during training; the plain op otherwise
    (evaluation, float32, and models in another dtype, e.g. float64 in tests)."""
    if dtype != torch.bfloat16 or weight.dtype != torch.float32 or not torch.is_grad_enabled():
        return torch.nn.functional.linear(x, weight)
    return LowPrecisionLinear.apply(x.reshape(-1, x.shape[-1]), weight).view(*x.shape[:-1], weight.shape[0])
