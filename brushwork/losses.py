"""Losses of optimization-based style transfer, as small pure functions on feature maps.

Features are ``N×C×H×W`` float tensors (one layer of a backbone). Statistics can be *weighted* by a map ``weight``
``N×1×H×W`` (or ``1×1×H×W``) of non-negative values — a region mask at the layer's resolution — and are then
averages over the region (Gatys et al. 2017, "Controlling Perceptual Factors in Neural Style Transfer").

- content: :func:`content_loss`, the mean squared difference of features (Gatys et al. 2016).
- style: :func:`gram_matrix` / :func:`gram_loss` (Gatys et al. 2016); :func:`mean_std` / :func:`mean_std_loss`
  (the statistics AdaIN matches, Huang & Belongie 2017); :func:`mean_cov` / :func:`wasserstein2_loss`, the squared
  Wasserstein-2 distance between the Gaussians with the features' mean and covariance (Kolkin et al. 2019,
  Mroueh 2019), through a symmetric eigendecomposition (:func:`sqrtm_psd`, :func:`trace_sqrtm_psd`).
- smoothness: :func:`tv_loss`, the total variation of the image (Mahendran & Vedaldi 2015).
- :func:`normalize_gradient`: the identity whose backward divides the gradient by its L1 norm, as
  ``neural-style -normalize_gradients`` does per loss layer.

The engine (:mod:`brushwork.methods.optimize`) divides each term by a constant from its target (see
:func:`style_scale`) so that the same weights work on every backbone.
"""

from __future__ import annotations

import torch
from torch import Tensor

EPS = 1e-8


def _rows(f: Tensor) -> Tensor:
    """``N×C×H×W`` → ``N×HW×C``, one row per position (a view, no copy, for channels-last tensors)."""
    n, c = f.shape[:2]
    return f.permute(0, 2, 3, 1).reshape(n, -1, c)


def _weights(f: Tensor, weight: Tensor | None) -> Tensor | None:
    """Region weights ``N×HW×1``, normalised to sum to 1 over the positions."""
    if weight is None:
        return None
    w = _rows(weight.to(f.dtype)).expand(f.shape[0], -1, 1)
    return w / w.sum(dim=1, keepdim=True).clamp_min(EPS)


def gram_matrix(f: Tensor, weight: Tensor | None = None) -> Tensor:
    """Gram matrix ``N×C×C``: ``F Fᵀ / (H·W)`` with F the ``C×HW`` features (a weighted mean with ``weight``)."""
    x = _rows(f)
    w = _weights(f, weight)
    if w is None:
        return x.transpose(1, 2) @ x / x.shape[1]
    return (x * w).transpose(1, 2) @ x


def mean_std(f: Tensor, weight: Tensor | None = None, eps: float = 1e-5) -> tuple[Tensor, Tensor]:
    """Per-channel mean and standard deviation over positions: two ``N×C`` tensors (``sqrt(var + eps)``)."""
    x = _rows(f)
    w = _weights(f, weight)
    if w is None:
        mean = x.mean(dim=1)
        var = x.var(dim=1, unbiased=False)
    else:
        mean = (x * w).sum(dim=1)
        var = ((x - mean[:, None]) ** 2 * w).sum(dim=1)
    return mean, torch.sqrt(var + eps)


def mean_cov(f: Tensor, weight: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Per-channel mean ``N×C`` and covariance ``N×C×C`` over positions (biased, i.e. divided by H·W)."""
    x = _rows(f)
    w = _weights(f, weight)
    if w is None:
        mean = x.mean(dim=1)
        xc = x - mean[:, None]
        return mean, xc.transpose(1, 2) @ xc / x.shape[1]
    mean = (x * w).sum(dim=1)
    xc = x - mean[:, None]
    return mean, (xc * w).transpose(1, 2) @ xc


def _sym(a: Tensor) -> Tensor:
    return (a + a.transpose(-1, -2)) / 2


def sqrtm_psd(a: Tensor, eps: float = 0.0) -> Tensor:
    """Square root of symmetric positive semi-definite matrices ``…×C×C`` by eigendecomposition.

    Negative eigenvalues (round-off) are clamped to ``eps``. Meant for targets; for a differentiable trace of a
    square root use :func:`trace_sqrtm_psd`, whose gradient stays finite for repeated eigenvalues.
    """
    vals, vecs = torch.linalg.eigh(_sym(a))
    return (vecs * vals.clamp_min(eps).sqrt()[..., None, :]) @ vecs.transpose(-1, -2)


def trace_sqrtm_psd(a: Tensor, eps: float = 1e-8) -> Tensor:
    """``tr(sqrtm(a))`` for symmetric PSD ``…×C×C`` → ``…``: the sum of the square roots of the eigenvalues.

    Differentiable and stable: the gradient ``U diag(1 / (2 √λ)) Uᵀ`` involves no eigenvalue gaps (unlike the
    backward of a full matrix square root), and ``λ`` is clamped to ``eps``.
    """
    return torch.linalg.eigvalsh(_sym(a)).clamp_min(eps).sqrt().sum(dim=-1)


def content_loss(f: Tensor, target: Tensor) -> Tensor:
    """Mean squared difference of features, ``N×C×H×W`` each → scalar."""
    return torch.mean((f - target) ** 2)


def gram_loss(f: Tensor, target_gram: Tensor, weight: Tensor | None = None) -> Tensor:
    """Mean squared difference between the Gram matrix of ``f`` and ``target_gram`` (``N×C×C`` or ``C×C``)."""
    return torch.mean((gram_matrix(f, weight) - target_gram) ** 2)


def mean_std_loss(f: Tensor, target_mean: Tensor, target_std: Tensor, weight: Tensor | None = None) -> Tensor:
    """Squared differences of per-channel means and standard deviations (each ``N×C`` or ``C``), averaged over C."""
    mean, std = mean_std(f, weight)
    return torch.mean((mean - target_mean) ** 2) + torch.mean((std - target_std) ** 2)


def wasserstein2(mean1: Tensor, cov1: Tensor, mean2: Tensor, cov2_sqrt: Tensor, cov2_trace: Tensor) -> Tensor:
    """Squared W2 distance between Gaussians ``N(mean1, cov1)`` and ``N(mean2, cov2)`` → ``N``.

    ``‖m1 − m2‖² + tr(Σ1) + tr(Σ2) − 2 tr((Σ2^½ Σ1 Σ2^½)^½)``, with ``cov2_sqrt = Σ2^½`` (``…×C×C``) and
    ``cov2_trace = tr(Σ2)`` precomputed from the target.
    """
    cross = trace_sqrtm_psd(cov2_sqrt @ cov1 @ cov2_sqrt)
    tr1 = torch.diagonal(cov1, dim1=-2, dim2=-1).sum(-1)
    dist = ((mean1 - mean2) ** 2).sum(-1) + tr1 + cov2_trace - 2 * cross
    return dist.clamp_min(0.0)


def wasserstein2_loss(
    f: Tensor,
    target_mean: Tensor,
    target_cov: Tensor,
    weight: Tensor | None = None,
    target_cov_sqrt: Tensor | None = None,
) -> Tensor:
    """Squared W2 distance between the Gaussian of ``f``'s features and the target Gaussian, divided by C.

    target_mean: ``N×C`` or ``C``; target_cov: ``N×C×C`` or ``C×C``; ``target_cov_sqrt`` its square root if known.
    """
    mean, cov = mean_cov(f, weight)
    root = sqrtm_psd(target_cov) if target_cov_sqrt is None else target_cov_sqrt
    trace = torch.diagonal(target_cov, dim1=-2, dim2=-1).sum(-1)
    return wasserstein2(mean, cov, target_mean, root, trace).mean() / f.shape[1]


def tv_loss(image: Tensor) -> Tensor:
    """Total variation ``N×C×H×W`` → scalar: mean squared difference of vertically and of horizontally
    neighbouring pixels, summed."""
    dy = image[..., 1:, :] - image[..., :-1, :]
    dx = image[..., :, 1:] - image[..., :, :-1]
    return torch.mean(dy**2) + torch.mean(dx**2)


def style_scale(kind: str, stats: tuple[Tensor, ...]) -> float:
    """The constant a style term of ``kind`` is divided by so that it is a relative error: the mean square of the
    target's statistics (Gram: ``mean(G²)``; mean-std: ``mean(μ²) + mean(σ²)``; W2: ``(‖μ‖² + tr Σ) / C``).

    With it, a term is about 1 when the output's statistics are as far from the target as zero is, on any backbone
    and layer, whatever the scale of its activations.
    """
    if kind == "gram":
        value = stats[0].pow(2).mean()
    elif kind == "mean_std":
        value = stats[0].pow(2).mean() + stats[1].pow(2).mean()
    elif kind == "w2":
        mean, cov = stats[0], stats[1]
        value = (mean.pow(2).sum(-1) + torch.diagonal(cov, dim1=-2, dim2=-1).sum(-1)).mean() / mean.shape[-1]
    else:
        raise ValueError(f"unknown style loss {kind!r}")
    return float(value) + EPS


class _NormalizeGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, x: Tensor) -> Tensor:  # type: ignore[override]
        return x.view_as(x)

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad: Tensor) -> Tensor:  # type: ignore[override]
        return grad / (grad.abs().sum() + EPS)


def normalize_gradient(x: Tensor) -> Tensor:
    """Identity in the forward pass; in the backward pass the incoming gradient is divided by its L1 norm.

    Put it between a layer's features and its loss to make every term pull with the same strength
    (``neural-style -normalize_gradients``). The loss values are unchanged; only the gradients are rescaled.
    """
    return _NormalizeGradient.apply(x)
