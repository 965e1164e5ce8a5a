"""Feature transforms: conditional instance norm, AdaIN and WCT.

Every function takes feature maps ``N×C×H×W`` (float) and returns the same shape, unless stated otherwise.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-5


def instance_norm(x: Tensor, eps: float = EPS) -> Tensor:
    """Normalise each channel of each sample to zero mean and unit variance over H×W (biased variance)."""
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), keepdim=True, unbiased=False)
    return (x - mean) * torch.rsqrt(var + eps)


def conditional_instance_norm(x: Tensor, gamma: Tensor, beta: Tensor, eps: float = EPS) -> Tensor:
    """Conditional instance norm (Dumoulin et al. 2017): ``gamma * instance_norm(x) + beta``.

    ``gamma`` and ``beta`` are ``N×C`` (one pair per sample, e.g. predicted from a style vector) or ``C``.
    """
    if gamma.dim() == 1:
        gamma, beta = gamma[None], beta[None]
    return instance_norm(x, eps) * gamma[:, :, None, None] + beta[:, :, None, None]
