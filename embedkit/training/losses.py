"""The VICReg loss: invariance, variance and covariance terms and their weighted sum.

Follows the mission's formula, which differs from the official code (facebookresearch/vicreg) in one place:
the official code halves each view's variance term, `(var(Z) + var(Z')) / 2`; here they are summed, so with the
same `mu` the variance penalty weighs twice as much. The closed-form tests in `tests/test_losses.py` pin this.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F


class VICRegTerms(NamedTuple):
    """The loss and its unweighted parts, each a scalar tensor.

    total = lam * invariance + mu * variance + nu * covariance, where `variance` and `covariance` already hold the
    sum over the two views: var(Z) + var(Z') and cov(Z) + cov(Z').
    """

    total: torch.Tensor
    invariance: torch.Tensor
    variance: torch.Tensor
    covariance: torch.Tensor

    def as_floats(self) -> dict[str, float]:
        """The four values as Python floats, keyed `total`, `inv`, `var`, `cov` (the log's JSON keys)."""
        return {
            "total": float(self.total.detach()),
            "inv": float(self.invariance.detach()),
            "var": float(self.variance.detach()),
            "cov": float(self.covariance.detach()),
        }


def invariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the two views' projections, averaged over batch and dimensions.

    z1, z2: (N, D) float. Returns a scalar.
    """
    return F.mse_loss(z1, z2)


def variance_loss(z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4) -> torch.Tensor:
    """Hinge on each dimension's standard deviation: mean_j max(0, gamma - sqrt(Var(z_j) + eps)).

    z: (N, D) float with N >= 2; Var is the unbiased batch variance, as in the official code. Returns a scalar in
    [0, gamma - sqrt(eps)] for gamma > sqrt(eps); a collapsed batch (all rows equal) gets the maximum.
    """
    std = torch.sqrt(z.var(dim=0) + eps)
    return F.relu(gamma - std).mean()


def covariance_loss(z: torch.Tensor) -> torch.Tensor:
    """Sum of squared off-diagonal entries of the batch covariance of z, divided by the dimension D.

    z: (N, D) float with N >= 2; the covariance is unbiased, (Z - mean)^T (Z - mean) / (N - 1). Returns a scalar.
    """
    n, d = z.shape
    centered = z - z.mean(dim=0)
    cov = centered.T @ centered / (n - 1)
    off_diagonal = cov - torch.diag(torch.diagonal(cov))
    return off_diagonal.pow(2).sum() / d


def vicreg_loss(
    z1: torch.Tensor,
    z2: torch.Tensor,
    lam: float = 25.0,
    mu: float = 25.0,
    nu: float = 1.0,
    gamma: float = 1.0,
    eps: float = 1e-4,
) -> VICRegTerms:
    """The VICReg loss L = lam * inv(Z, Z') + mu * [var(Z) + var(Z')] + nu * [cov(Z) + cov(Z')].

    z1, z2: (N, D) projections of the two views, N >= 2. Computed in float32 even when the projections come from
    mixed precision. Unlike the official code, the variance terms are NOT halved (the mission's formula).

        >>> import torch
        >>> terms = vicreg_loss(torch.zeros(8, 4), torch.zeros(8, 4))   # both views collapsed to one point
        >>> float(terms.invariance), round(float(terms.variance), 4), float(terms.covariance)
        (0.0, 1.98, 0.0)
    """
    z1, z2 = z1.float(), z2.float()
    invariance = invariance_loss(z1, z2)
    variance = variance_loss(z1, gamma, eps) + variance_loss(z2, gamma, eps)
    covariance = covariance_loss(z1) + covariance_loss(z2)
    total = lam * invariance + mu * variance + nu * covariance
    return VICRegTerms(total, invariance, variance, covariance)
