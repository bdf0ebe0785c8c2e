"""Cl(3,1) as real 4x4 matrices: basis, Grace, witness, stability, embeddings.

Everything works on batched tensors of shape [..., 4, 4] (matrices) or
[..., 16] (coefficients in the Clifford basis). The basis elements are signed
permutation matrices with squared Frobenius norm 4 and are mutually
Frobenius-orthogonal, so coefficients are one matmul: c_k = <M, B_k>_F / 4.

Basis order (index: element, grade):
0: I (0); 1-4: e1..e4 (1); 5-10: e12 e13 e14 e23 e24 e34 (2);
11-14: e123 e124 e134 e234 (3); 15: gamma5 = e1234 (4).
"""

from __future__ import annotations

import math
from functools import lru_cache
from itertools import combinations

import torch
from torch import Tensor

PHI = (1.0 + math.sqrt(5.0)) / 2.0
PHI_INV = 1.0 / PHI
GRADE_OF: tuple[int, ...] = (0, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 4)
# Grace keeps the scalar, damps grades 1..3 by phi^-grade, and the pseudoscalar by
# phi^-1 only (the "Fibonacci exception" of the original).
GRADE_SCALES: tuple[float, ...] = (1.0, PHI**-1, PHI**-2, PHI**-3, PHI**-1)
SCALAR, PSEUDOSCALAR = 0, 15
BIVECTORS = slice(5, 11)


def _generators() -> Tensor:
    """e1..e4 as signed permutation matrices (float64): e1^2 = e2^2 = e3^2 = I, e4^2 = -I."""
    x = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    z = torch.tensor([[1.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    j = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64)  # j^2 = -I
    i2 = torch.eye(2, dtype=torch.float64)
    # x, z, j mutually anticommute, so these four do too.
    return torch.stack([torch.kron(x, i2), torch.kron(z, i2), torch.kron(j, j), torch.kron(j, x)])


@lru_cache(maxsize=8)
def basis(dtype: torch.dtype = torch.float32, device: str = "cpu") -> Tensor:
    """The 16 basis matrices, shape (16, 4, 4), in the grade order of the module docstring."""
    gens = _generators()
    elems = [torch.eye(4, dtype=torch.float64)]
    for grade in range(1, 5):
        for idx in combinations(range(4), grade):
            m = torch.eye(4, dtype=torch.float64)
            for i in idx:
                m = m @ gens[i]
            elems.append(m)
    return torch.stack(elems).to(dtype=dtype, device=device)  # (16, 4, 4)


@lru_cache(maxsize=8)
def grace_scales(dtype: torch.dtype = torch.float32, device: str = "cpu") -> Tensor:
    """Per-coefficient Grace factor, shape (16,)."""
    return torch.tensor([GRADE_SCALES[g] for g in GRADE_OF], dtype=dtype, device=device)


def _flat_basis(like: Tensor) -> Tensor:
    return basis(like.dtype, str(like.device)).reshape(16, 16)  # (16 elements, 16 entries)


def coefficients(m: Tensor) -> Tensor:
    """[..., 4, 4] -> [..., 16]: c_k = <M, B_k>_F / 4."""
    flat = m.reshape(*m.shape[:-2], 16)  # (..., 16 entries)
    return flat @ _flat_basis(m).T / 4.0  # (..., 16 coefficients)


def from_coefficients(c: Tensor) -> Tensor:
    """[..., 16] -> [..., 4, 4]."""
    return (c @ _flat_basis(c)).reshape(*c.shape[:-1], 4, 4)


def grace_coefficients(c: Tensor) -> Tensor:
    return c * grace_scales(c.dtype, str(c.device))


def grace(m: Tensor) -> Tensor:
    """G(M) = sum_k scale(grade k) c_k B_k, on [..., 4, 4]."""
    return from_coefficients(grace_coefficients(coefficients(m)))


def wedge(a: Tensor, b: Tensor) -> Tensor:
    """(AB - BA) / 2: the antisymmetric part of the geometric product."""
    return (a @ b - b @ a) / 2.0


def frobenius_normalize(m: Tensor, eps: float = 1e-30) -> Tensor:
    """Scale each [..., 4, 4] to unit Frobenius norm (direction is all that matters here)."""
    norm = m.flatten(-2).norm(dim=-1).clamp_min(eps)  # (...)
    return m / norm[..., None, None]


def witness(c: Tensor) -> tuple[Tensor, Tensor]:
    """Coefficients [..., 16] -> (s, p): s = tr(M)/4, p = <M, gamma5>_F / 4."""
    return c[..., SCALAR], c[..., PSEUDOSCALAR]


def grace_stability(c: Tensor, eps: float = 1e-30) -> Tensor:
    """sigma = (s^2 + p^2) / (||M||_F^2 / 4) in [0, 1]; ||M||_F^2 / 4 = sum c_k^2."""
    s, p = witness(c)
    return (s * s + p * p) / (c * c).sum(-1).clamp_min(eps)


def enstrophy(c: Tensor) -> Tensor:
    """Sum of squared bivector coefficients (the 'vorticity energy')."""
    return (c[..., BIVECTORS] ** 2).sum(-1)


def salience(c: Tensor) -> Tensor:
    """|s| + phi^-1 |p|: what Grace preserves."""
    s, p = witness(c)
    return s.abs() + PHI_INV * p.abs()


def token_embeddings(vocab_size: int, noise_std: float, seed: int) -> Tensor:
    """Fixed seeded embeddings E_v = normalize_F(cos(theta) I + sin(theta) B + q gamma5), (V, 4, 4).

    B is a unit random combination of the 6 bivectors; theta, q ~ N(0, (2 noise_std)^2).
    """
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(vocab_size, generator=gen, dtype=torch.float64) * (2.0 * noise_std)  # (V,)
    q = torch.randn(vocab_size, generator=gen, dtype=torch.float64) * (2.0 * noise_std)  # (V,)
    bcoef = torch.randn(vocab_size, 6, generator=gen, dtype=torch.float64)  # (V, 6)
    bcoef = bcoef / bcoef.norm(dim=-1, keepdim=True)  # unit in coefficient space
    c = torch.zeros(vocab_size, 16, dtype=torch.float64)
    c[:, SCALAR] = torch.cos(theta)
    c[:, BIVECTORS] = torch.sin(theta)[:, None] * bcoef
    c[:, PSEUDOSCALAR] = q
    return frobenius_normalize(from_coefficients(c)).to(torch.float32)  # (V, 4, 4)


def bind(m: Tensor) -> Tensor:
    """bind(M) = W + phi^-1 w (M - W) w^T with W = s I + phi^-1 p gamma5 and w = W / ||W||_F."""
    c = coefficients(m)  # (..., 16)
    s, p = witness(c)
    b = basis(m.dtype, str(m.device))
    w_mat = s[..., None, None] * b[SCALAR] + PHI_INV * p[..., None, None] * b[PSEUDOSCALAR]  # (..., 4, 4)
    w_unit = frobenius_normalize(w_mat)
    return w_mat + PHI_INV * (w_unit @ (m - w_mat) @ w_unit.transpose(-1, -2))
