"""The Cl(3,1) algebra: generators, basis, Grace, witness, stability, embeddings, bind."""

from __future__ import annotations

import torch

from nightshift.models.holographic import algebra as A


def test_generators_square_and_anticommute():
    g = A._generators()
    eye = torch.eye(4, dtype=torch.float64)
    for i, sign in enumerate([1, 1, 1, -1]):
        assert torch.equal(g[i] @ g[i], sign * eye)
        for j in range(i + 1, 4):
            assert torch.equal(g[i] @ g[j], -(g[j] @ g[i]))
    assert torch.equal(g.abs().sum(-1), torch.ones(4, 4, dtype=torch.float64))  # signed permutations


def test_basis_is_frobenius_orthogonal_with_norm_four():
    b = A.basis(torch.float64)
    gram = torch.einsum("aij,bij->ab", b, b)
    assert torch.equal(gram, 4 * torch.eye(16, dtype=torch.float64))
    assert torch.equal(b[A.PSEUDOSCALAR], b[1] @ b[2] @ b[3] @ b[4])


def test_coefficients_round_trip():
    m = torch.randn(7, 3, 4, 4, dtype=torch.float64)
    assert torch.allclose(A.from_coefficients(A.coefficients(m)), m)


def test_grace_scales_each_grade():
    b = A.basis(torch.float64)
    for k, grade in enumerate(A.GRADE_OF):
        assert torch.allclose(A.grace(b[k]), A.GRADE_SCALES[grade] * b[k])
    assert A.GRADE_SCALES == (1.0, A.PHI**-1, A.PHI**-2, A.PHI**-3, A.PHI**-1)


def test_witness_stability_and_enstrophy():
    b = A.basis(torch.float64)
    witness_only = 0.3 * b[0] - 2.0 * b[A.PSEUDOSCALAR]
    c = A.coefficients(witness_only)
    assert torch.allclose(torch.stack(A.witness(c)), torch.tensor([0.3, -2.0], dtype=torch.float64))
    assert torch.isclose(A.grace_stability(c), torch.tensor(1.0, dtype=torch.float64))
    assert float(A.enstrophy(c)) == 0.0
    bivector = A.coefficients(b[5] + 2 * b[7])
    assert float(A.grace_stability(bivector)) == 0.0
    assert torch.isclose(A.enstrophy(bivector), torch.tensor(5.0, dtype=torch.float64))
    sig = A.grace_stability(A.coefficients(torch.randn(100, 4, 4)))
    assert bool(((sig >= 0) & (sig <= 1)).all())
    assert torch.isclose(A.salience(c), torch.tensor(0.3 + A.PHI_INV * 2.0, dtype=torch.float64))


def test_wedge_is_antisymmetric():
    a, b = torch.randn(2, 5, 4, 4).unbind(0)
    assert torch.allclose(A.wedge(a, b), -A.wedge(b, a))
    assert torch.allclose(A.wedge(a, a), torch.zeros_like(a))


def test_embeddings_are_seeded_unit_and_shaped_by_noise():
    e = A.token_embeddings(300, 0.3, seed=1)
    assert e.shape == (300, 4, 4)
    assert torch.allclose(e.flatten(1).norm(dim=1), torch.ones(300), atol=1e-6)
    assert torch.equal(e, A.token_embeddings(300, 0.3, seed=1))
    assert not torch.equal(e, A.token_embeddings(300, 0.3, seed=2))
    c = A.coefficients(e.double())
    # only scalar, bivector and pseudoscalar parts
    others = torch.cat([c[:, 1:5], c[:, 11:15]], 1)
    assert float(others.abs().max()) < 1e-6
    # small noise: embeddings near the identity direction (sigma near 1)
    calm = A.grace_stability(A.coefficients(A.token_embeddings(300, 0.01, seed=1)))
    assert float(calm.min()) > 0.99


def test_bind_keeps_a_pure_scalar_and_mixes_the_rest():
    b = A.basis(torch.float64)
    s = 0.7 * b[0]
    assert torch.allclose(A.bind(s), s)  # W = s I, nothing left to sandwich
    m = torch.randn(4, 4, dtype=torch.float64)
    assert A.bind(m).shape == (4, 4)
    assert not torch.allclose(A.bind(m), m)
