"""Fused relaxation pieces: forward with no autograd bookkeeping, backward written out by hand.

A relaxation step is ~30 small tensor ops on a (H, W*B, d) state; run
through autograd that is ~80 kernel launches per step, which at K = 16 cost
more than the model's one large matmul. These two `autograd.Function`s do
the same math in ~10 ops forward and ~20 backward, with no graph nodes in
between. `Config(impl="autograd")` runs the plain formulation
(`dynamics.py`); tests check both against each other and against
`torch.autograd.gradcheck` in float64.

Notation (per wave h, rows n = (position, batch)): X the coupled state,
P = X A^T + b, T = tanh(P), G = v * (1 - T^2) = dE/dP, U = X - s G A
(s = eta / W: E is a mean over positions), Y = U / |U|.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.autograd.function import FunctionCtx


def _unit(x: Tensor, eps: float = 1e-12) -> tuple[Tensor, Tensor]:
    """x (..., d) -> (x / |x|, 1 / |x|) per last-dim vector."""
    inv = torch.linalg.vector_norm(x, dim=-1, keepdim=True).clamp_min_(eps).reciprocal_()  # (..., 1)
    return x * inv, inv


def _unit_backward(grad: Tensor, unit: Tensor, inv: Tensor) -> Tensor:
    """Backward of x -> x / |x|: (g - y (g . y)) / |x|."""
    return (grad - unit * (grad * unit).sum(-1, keepdim=True)).mul_(inv)


class EnergyStep(torch.autograd.Function):
    """(X (H, N, d), A, b, v, c) -> (Y = unit(X - s dE/dX) (H, N, d), E (H, N)); N = W * B rows."""

    @staticmethod
    def forward(ctx: FunctionCtx, X: Tensor, A: Tensor, b: Tensor, v: Tensor, c: Tensor, s: float
                ) -> tuple[Tensor, Tensor]:
        T = torch.baddbmm(b.unsqueeze(1), X, A.transpose(1, 2)).tanh_()  # (H, N, d)
        omt = torch.addcmul(torch.ones_like(T), T, T, value=-1.0)  # 1 - tanh^2: (H, N, d)
        G = omt * v.unsqueeze(1)  # dE/dP: (H, N, d)
        U = torch.baddbmm(X, G, A, alpha=-s)  # X - s G A: (H, N, d)
        Y, inv = _unit(U)  # (H, N, d), (H, N, 1)
        E = torch.bmm(T, v.unsqueeze(-1)).squeeze(-1).add_(c.unsqueeze(1))  # (H, N)
        ctx.save_for_backward(X, A, v, T, omt, G, Y, inv)
        ctx.s = s
        return Y, E

    @staticmethod
    def backward(ctx: FunctionCtx, dY: Tensor | None, dE: Tensor | None) -> tuple[Tensor | None, ...]:
        X, A, v, T, omt, G, Y, inv = ctx.saved_tensors
        s = ctx.s
        need_x = ctx.needs_input_grad[0]  # False in `detach` mode: X was cut from the graph
        v1 = v.unsqueeze(1)  # (H, 1, d)
        dT = None
        dX = dA = dv = None
        if dY is not None:
            dU = _unit_backward(dY, Y, inv)  # (H, N, d)
            dX = dU if need_x else None  # U = X - s G A (dU is a fresh tensor: reused in place below)
            dG = torch.bmm(dU, A.transpose(1, 2)).mul_(-s)  # (H, N, d)
            dA = torch.bmm(G.transpose(1, 2), dU).mul_(-s)  # G^T dU: (H, d, d)
            dv = (dG * omt).sum(1)  # G = v * omt: (H, d)
            dT = (T * dG).mul_(v1).mul_(-2.0)  # d omt / dT = -2 T: (H, N, d)
        dc = None
        if dE is not None:  # E = T . v + c
            dT = dE.unsqueeze(-1) * v1 if dT is None else dT.addcmul_(dE.unsqueeze(-1), v1)
            dv_e = torch.bmm(dE.unsqueeze(1), T).squeeze(1)  # (H, d)
            dv = dv_e if dv is None else dv + dv_e
            dc = dE.sum(1)
        if dT is None:
            dT = torch.zeros_like(T)
        dP = dT.mul_(omt)  # through tanh: (H, N, d)
        db = dP.sum(1)  # (H, d)
        if need_x:  # P = X A^T + b
            dX = torch.bmm(dP, A) if dX is None else dX.baddbmm_(dP, A)
        dA_p = torch.bmm(dP.transpose(1, 2), X)  # (H, d, d)
        dA = dA_p if dA is None else dA.add_(dA_p)
        if dv is None:
            dv = torch.zeros_like(v)
        if dc is None:
            dc = torch.zeros(v.shape[0], dtype=v.dtype, device=v.device)
        return dX, dA, db, dv, dc, None


class BreakMove(torch.autograd.Function):
    """(Y, S_prev, alpha (broadcastable, 0 = no break)) -> where(alpha > 0, unit(Y + alpha unit(Y - S_prev)), Y).

    Units are per wave (last dim). alpha is a control signal: no gradient flows into it.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, Y: Tensor, S_prev: Tensor, alpha: Tensor) -> Tensor:
        R, inv_d = _unit(Y - S_prev)  # direction of the last move
        Z, inv_q = _unit(torch.addcmul(Y, alpha, R))  # Y + alpha R, unit: (…, d)
        fire = alpha > 0
        # the common case early in training: no masking needed (checked on the CPU only: on an
        #   accelerator reading the flag would wait for the device)
        ctx.all_fire = Y.device.type == "cpu" and bool(fire.all())
        ctx.save_for_backward(R, inv_d, Z, inv_q, alpha, fire)
        return Z if ctx.all_fire else torch.where(fire, Z, Y)

    @staticmethod
    def backward(ctx: FunctionCtx, grad: Tensor) -> tuple[Tensor | None, ...]:
        R, inv_d, Z, inv_q, alpha, fire = ctx.saved_tensors
        dQ = _unit_backward(grad if ctx.all_fire else grad * fire, Z, inv_q)  # Q = Y + alpha R
        dD = _unit_backward(dQ * alpha, R, inv_d)  # R = unit(D), D = Y - S_prev
        dY = dQ.add_(dD)
        if not ctx.all_fire:
            dY = dY.addcmul_(grad, ~fire)  # windows that did not break pass grad straight through
        dS = -dD if ctx.needs_input_grad[1] else None
        return dY, dS, None


class PairDots(torch.autograd.Function):
    """(S, T) (H, W, B, d), T without gradient -> (S . T, S . roll(T, 1 over B)) per window (B,), (B,).

    The two dot products of the trajectory-contrastive term (positive: the same window one step
    later; negative: the previous window of the batch), with a two-op backward.
    """

    @staticmethod
    def forward(ctx: FunctionCtx, S: Tensor, T: Tensor) -> tuple[Tensor, Tensor]:
        T_neg = T.roll(1, dims=2)  # (H, W, B, d)
        ctx.save_for_backward(T, T_neg)
        return (S * T).sum(dim=(0, 1, 3)), (S * T_neg).sum(dim=(0, 1, 3))

    @staticmethod
    def backward(ctx: FunctionCtx, d_pos: Tensor | None, d_neg: Tensor | None) -> tuple[Tensor | None, None]:
        T, T_neg = ctx.saved_tensors
        shape = (1, 1, -1, 1)
        dS = torch.zeros_like(T) if d_pos is None else T * d_pos.view(shape)
        if d_neg is not None:
            dS.addcmul_(T_neg, d_neg.view(shape))
        return dS, None
