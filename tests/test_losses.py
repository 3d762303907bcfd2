"""The VICReg loss against closed forms, hand-computed examples and a pinned NumPy re-implementation."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from embedkit.training.losses import covariance_loss, invariance_loss, variance_loss, vicreg_loss


def _t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def _numpy_vicreg(z1: np.ndarray, z2: np.ndarray, lam=25.0, mu=25.0, nu=1.0, gamma=1.0, eps=1e-4):
    """Pinned reference: facebookresearch/vicreg `VICReg.forward`, float64, with the variance halving removed."""
    n, d = z1.shape
    inv = np.mean((z1 - z2) ** 2)
    z1c, z2c = z1 - z1.mean(0), z2 - z2.mean(0)
    std1 = np.sqrt(z1c.var(0, ddof=1) + eps)
    std2 = np.sqrt(z2c.var(0, ddof=1) + eps)
    var = np.mean(np.maximum(0, gamma - std1)) + np.mean(np.maximum(0, gamma - std2))
    cov1, cov2 = z1c.T @ z1c / (n - 1), z2c.T @ z2c / (n - 1)
    off = ~np.eye(d, dtype=bool)
    cov = (cov1[off] ** 2).sum() / d + (cov2[off] ** 2).sum() / d
    return lam * inv + mu * var + nu * cov, inv, var, cov


def test_zero_views_closed_form():
    z = torch.zeros(8, 16)
    terms = vicreg_loss(z, z)
    assert terms.invariance.item() == 0.0
    assert terms.covariance.item() == 0.0
    assert variance_loss(z).item() == pytest.approx(1 - math.sqrt(1e-4))  # 0.99 per view
    assert terms.variance.item() == pytest.approx(2 * 0.99)
    assert terms.total.item() == pytest.approx(25 * 2 * 0.99)


def test_invariance_hand_computed():
    # differences 1, 2, 2, 3 -> squares 1, 4, 4, 9 -> mean 4.5
    assert invariance_loss(_t([[1, 2], [3, 4]]), _t([[0, 0], [1, 1]])).item() == pytest.approx(4.5)


def test_variance_hand_computed():
    # column 0: unbiased variance 2, std above 1 -> 0; column 1: constant, std sqrt(1e-4) -> 0.99; mean 0.495
    assert variance_loss(_t([[1, 0], [-1, 0]])).item() == pytest.approx(0.495)
    # both columns have unbiased variance 1; with gamma = 2 each dimension pays 2 - sqrt(1 + 1e-4)
    z = _t([[1, 2], [2, 0], [3, 1]])
    assert variance_loss(z, gamma=2.0).item() == pytest.approx(2 - math.sqrt(1 + 1e-4))


def test_covariance_hand_computed():
    # centered [[-1, 1], [0, -1], [1, 0]] -> covariance [[1, -0.5], [-0.5, 1]] -> (0.25 + 0.25) / 2
    assert covariance_loss(_t([[1, 2], [2, 0], [3, 1]])).item() == pytest.approx(0.25)
    # perfectly correlated columns: covariance [[2, 2], [2, 2]] -> (4 + 4) / 2
    assert covariance_loss(_t([[1, 1], [-1, -1]])).item() == pytest.approx(4.0)


def test_collapsed_batch_gets_maximum_variance_penalty():
    rng = torch.Generator().manual_seed(0)
    row = torch.randn(1, 32, generator=rng)
    collapsed = row.expand(64, 32)
    spread = torch.randn(64, 32, generator=rng)
    assert variance_loss(collapsed).item() == pytest.approx(1 - math.sqrt(1e-4))
    assert variance_loss(collapsed) > variance_loss(spread)


def test_matches_pinned_numpy_reference(rng):
    z1 = rng.normal(size=(32, 12)) * rng.uniform(0.1, 2.0, size=12)
    z2 = z1 + 0.3 * rng.normal(size=z1.shape)
    weights = dict(lam=5.0, mu=7.0, nu=3.0)
    ours = vicreg_loss(torch.from_numpy(z1), torch.from_numpy(z2), **weights)
    reference = _numpy_vicreg(z1, z2, **weights)
    for got, want in zip((ours.total, ours.invariance, ours.variance, ours.covariance), reference):
        assert got.item() == pytest.approx(want, rel=1e-5)


def test_variance_is_twice_the_official_halved_term(rng):
    """The mission sums the two views' variance terms; the official code averages them (the factor of two)."""
    z1, z2 = torch.from_numpy(rng.normal(size=(16, 8)) * 0.5), torch.from_numpy(rng.normal(size=(16, 8)) * 0.5)

    def official_std_loss(z):  # facebookresearch/vicreg: torch.mean(F.relu(1 - std_x)) / 2
        return torch.relu(1 - torch.sqrt(z.var(0) + 1e-4)).mean() / 2

    official = official_std_loss(z1) + official_std_loss(z2)
    assert vicreg_loss(z1, z2).variance.item() == pytest.approx(2 * official.item())


def test_loss_is_differentiable_and_float32_for_half_inputs():
    z1 = torch.randn(8, 4, dtype=torch.bfloat16, requires_grad=True)
    terms = vicreg_loss(z1, torch.randn(8, 4, dtype=torch.bfloat16))
    assert terms.total.dtype == torch.float32
    terms.total.backward()
    assert z1.grad is not None and torch.isfinite(z1.grad.float()).all()
    assert set(terms.as_floats()) == {"total", "inv", "var", "cov"}
