"""Feature transforms: conditional instance norm, AdaIN and WCT.

Every function takes feature maps ``N×C×H×W`` (float) and returns the same shape, unless stated otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
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
    if x.shape[0] == 1:  # one sample: the fused kernel applies the affine part too
        return F.instance_norm(x, weight=gamma[0], bias=beta[0], eps=eps)
    return F.instance_norm(x, eps=eps) * gamma[:, :, None, None] + beta[:, :, None, None]


# -- AdaIN (Huang & Belongie 2017) ---------------------------------------------------------------------------


def _as_weights(mask: Tensor | None, feat: Tensor) -> Tensor | None:
    """A mask ``N×1×h×w`` / ``1×1×h×w`` / ``h×w`` (weights in 0..1) resized bilinearly to ``feat``'s H×W."""
    if mask is None:
        return None
    while mask.dim() < 4:
        mask = mask.unsqueeze(0)
    mask = mask.to(dtype=feat.dtype, device=feat.device)
    if mask.shape[-2:] != feat.shape[-2:]:
        mask = F.interpolate(mask, size=feat.shape[-2:], mode="bilinear", align_corners=False)
    return mask.clamp(0.0, 1.0)


def calc_mean_std(feat: Tensor, eps: float = EPS, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Channel mean and standard deviation of ``feat`` (``N×C×H×W``) over H×W: two ``N×C×1×1`` tensors.

    The variance is the biased one (as in :func:`instance_norm`) and ``std = sqrt(var + eps)``. With ``mask``
    (``N×1×h×w`` weights in 0..1, resized to H×W) the statistics are those of the weighted region.
    """
    w = _as_weights(mask, feat)
    if w is None:
        mean = feat.mean(dim=(2, 3), keepdim=True)
        var = feat.var(dim=(2, 3), keepdim=True, unbiased=False)
    else:
        total = w.sum(dim=(2, 3), keepdim=True).clamp_min(1e-8)
        mean = (feat * w).sum(dim=(2, 3), keepdim=True) / total
        var = ((feat - mean) ** 2 * w).sum(dim=(2, 3), keepdim=True) / total
    return mean, torch.sqrt(var + eps)


def adaptive_instance_normalization(
    content: Tensor,
    style: Tensor,
    eps: float = EPS,
    content_mask: Tensor | None = None,
    style_mask: Tensor | None = None,
    content_stats: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """AdaIN: give ``content`` (``N×C×H×W``) the channel mean and standard deviation of ``style`` (``N×C×h×w``).

    ``AdaIN(x, y) = σ(y) · (x − μ(x)) / σ(x) + μ(y)``. Masks restrict where each side's statistics are measured;
    the whole content map is transformed. ``content_stats``: the content's ``(mean, std)`` (``N×C×1×1``) measured
    elsewhere (over the whole image, for tiled rendering). Returns ``N×C×H×W``.
    """
    c_mean, c_std = content_stats if content_stats is not None else calc_mean_std(content, eps, content_mask)
    s_mean, s_std = calc_mean_std(style, eps, style_mask)
    return (content - c_mean) / c_std * s_std + s_mean


adain = adaptive_instance_normalization


# -- WCT (Li et al. 2017) ----------------------------------------------------------------------------------


def _moments(f: Tensor, w: Tensor | None) -> tuple[Tensor, Tensor]:
    """Mean ``C×1`` and covariance ``C×C`` of the columns of ``f`` (``C×L``), optionally weighted by ``w`` (``L``)."""
    if w is None:
        mean = f.mean(dim=1, keepdim=True)
        centred = f - mean
        return mean, centred @ centred.T / max(f.shape[1] - 1, 1)
    total = w.sum().clamp_min(1e-8)
    mean = (f * w).sum(dim=1, keepdim=True) / total
    centred = f - mean
    unbiased = (total - (w * w).sum() / total).clamp_min(1e-8)  # reliability weights: L − 1 for a 0/1 mask
    return mean, (centred * w) @ centred.T / unbiased


def _sym_power(cov: Tensor, power: float, eps: float) -> Tensor:
    """``cov^power`` of a symmetric positive semi-definite ``C×C`` matrix, regularised by ``eps·I``."""
    cov = cov + eps * torch.eye(cov.shape[0], dtype=cov.dtype, device=cov.device)
    values, vectors = torch.linalg.eigh(cov)
    return vectors @ torch.diag(values.clamp_min(eps) ** power) @ vectors.T


def whiten_color(
    content: Tensor,
    style: Tensor,
    eps: float = EPS,
    content_mask: Tensor | None = None,
    style_mask: Tensor | None = None,
    content_stats: tuple[Tensor, Tensor] | None = None,
    style_stats: tuple[Tensor, Tensor] | None = None,
) -> Tensor:
    """WCT: whiten ``content`` (``N×C×H×W``), then colour it with the mean and covariance of ``style`` (``N×C×h×w``).

    ``f̂ = E_s D_s^{1/2} E_sᵀ · E_c D_c^{-1/2} E_cᵀ (f_c − μ_c) + μ_s``, with covariances ``(1/(L−1)) f fᵀ``
    regularised by ``eps·I``. Computed in float64. Masks restrict where each side's moments are measured;
    ``content_stats`` / ``style_stats`` give that side's ``(mean C×1, covariance C×C)`` measured elsewhere (over a
    whole image rendered in tiles).
    Returns ``N×C×H×W`` with the style's channel mean and covariance.
    """
    n, c, h, w = content.shape
    cw, sw = _as_weights(content_mask, content), _as_weights(style_mask, style)
    out = []
    for i in range(n):
        fc = content[i].reshape(c, -1).double()
        fs = style[i if style.shape[0] == n else 0].reshape(c, -1).double()
        wc = None if cw is None else cw[i if cw.shape[0] == n else 0].reshape(-1).double()
        ws = None if sw is None else sw[i if sw.shape[0] == n else 0].reshape(-1).double()
        mc, cov_c = content_stats if content_stats is not None else _moments(fc, wc)
        ms, cov_s = style_stats if style_stats is not None else _moments(fs, ws)
        transform = _sym_power(cov_s, 0.5, eps) @ _sym_power(cov_c, -0.5, eps)
        out.append((transform @ (fc - mc) + ms).reshape(c, h, w))
    return torch.stack(out).to(content.dtype)


wct = whiten_color


# -- blending, several styles, masks -----------------------------------------------------------------------


def blend(content: Tensor, stylized: Tensor, alpha: float = 1.0) -> Tensor:
    """``alpha · stylized + (1 − alpha) · content``: alpha 0 keeps the content features, 1 the stylized ones."""
    return alpha * stylized + (1.0 - alpha) * content


def _region_masks(masks: Tensor, k: int, feat: Tensor) -> Tensor:
    """Masks ``K×h×w`` / ``N×K×h×w`` (one region per style, weights 0..1) → ``N×K×H×W`` at ``feat``'s size.

    Where the weights sum to more than 1 they are normalised; where they sum to less, the rest stays content.
    """
    if masks.dim() == 2:
        masks = masks[None]
    if masks.dim() == 3:
        masks = masks[None]
    if masks.shape[1] != k:
        raise ValueError(f"expected one mask per style ({k}), got {masks.shape[1]}")
    m = _as_weights(masks.reshape(-1, 1, *masks.shape[-2:]), feat).reshape(masks.shape[0], k, *feat.shape[-2:])
    return m / m.sum(dim=1, keepdim=True).clamp_min(1.0)


def transfer(
    content: Tensor,
    styles: Sequence[Tensor],
    *,
    method: str = "adain",
    alpha: float = 1.0,
    style_weights: Sequence[float] | None = None,
    masks: Tensor | None = None,
    eps: float = EPS,
    content_stats: Sequence[tuple[Tensor, Tensor]] | None = None,
) -> Tensor:
    """Move content features (``N×C×H×W``) towards one or several styles' features (each ``N×C×h×w`` or ``1×C×h×w``).

    - ``method``: ``"adain"`` (:func:`adaptive_instance_normalization`) or ``"wct"`` (:func:`whiten_color`).
    - ``style_weights``: interpolation between styles (normalised to sum 1; default equal), as the weighted sum of
      the features stylized by each style (pytorch-AdaIN's interpolation).
    - ``masks``: ``K×h×w`` or ``N×K×h×w``, one region per style (weights 0..1, resized to H×W). Style k is fitted to
      the content statistics inside region k and applied there; uncovered pixels keep the content features.
      Not combined with ``style_weights``.
    - ``alpha``: :func:`blend` between the content (0) and the stylized features (1).
    - ``content_stats``: the content statistics, one per style region with masks (else one), measured over the
      whole image (tiled rendering; see :class:`ContentMoments`) instead of over ``content``.

    Returns ``N×C×H×W``.
    """
    fn = {"adain": adaptive_instance_normalization, "wct": whiten_color}.get(method)
    if fn is None:
        raise ValueError(f"unknown transform {method!r}; choose adain or wct")
    if not styles:
        raise ValueError("at least one style is needed")
    if masks is not None:
        if style_weights is not None:
            raise ValueError("give either style weights or masks, not both")
        m = _region_masks(masks, len(styles), content)
        out = content * (1.0 - m.sum(dim=1, keepdim=True))
        for k, style in enumerate(styles):
            region = m[:, k : k + 1]
            stats = content_stats[k] if content_stats is not None else None
            out = out + region * fn(content, style, eps, content_mask=region, content_stats=stats)
    else:
        weights = [1.0] * len(styles) if style_weights is None else [float(w) for w in style_weights]
        if len(weights) != len(styles):
            raise ValueError(f"expected {len(styles)} style weights, got {len(weights)}")
        total = sum(weights)
        if total <= 0 or any(w < 0 for w in weights):
            raise ValueError("style weights must be non-negative and not all zero")
        stats = content_stats[0] if content_stats is not None else None
        out = sum(
            w / total * fn(content, style, eps, content_stats=stats) for w, style in zip(weights, styles, strict=True)
        )
    return blend(content, out, alpha)


class ContentMoments:
    """Content feature statistics accumulated over tiles (float64): per region (one per style with masks, else
    one) the weight sums and first and second moments, finished as :func:`transfer`'s ``content_stats``."""

    def __init__(self, method: str, regions: int, channels: int) -> None:
        self.method = method
        self.total = torch.zeros(regions, dtype=torch.float64)
        self.total2 = torch.zeros(regions, dtype=torch.float64)
        self.first = torch.zeros(regions, channels, dtype=torch.float64)
        shape = (regions, channels, channels) if method == "wct" else (regions, channels)
        self.second = torch.zeros(shape, dtype=torch.float64)

    def add(self, feat: Tensor, weights: Tensor | None) -> None:
        """``feat`` ``1×C×h×w``; ``weights`` ``1×K×h×w`` region weights at the same size, or None."""
        f = feat[0].reshape(feat.shape[1], -1).double()
        for k in range(self.total.shape[0]):
            w = None if weights is None else weights[0, k].reshape(-1).double()
            wf = f if w is None else f * w
            self.total[k] += f.shape[1] if w is None else w.sum()
            self.total2[k] += f.shape[1] if w is None else (w * w).sum()
            self.first[k] += wf.sum(1)
            self.second[k] += wf @ f.T if self.method == "wct" else (wf * f).sum(1)

    def stats(self, masked: bool, eps: float = EPS) -> list[tuple[Tensor, Tensor]]:
        out = []
        for k in range(self.total.shape[0]):
            total = self.total[k].clamp_min(1e-8) if masked else self.total[k]
            mean = self.first[k] / total
            if self.method == "wct":
                scatter = self.second[k] - total * torch.outer(mean, mean)
                if masked:
                    unbiased = (total - self.total2[k] / total).clamp_min(1e-8)
                else:
                    unbiased = max(float(self.total[k]) - 1, 1.0)
                out.append((mean[:, None], scatter / unbiased))
            else:
                var = (self.second[k] / total - mean * mean).clamp_min(0.0)
                out.append((mean.float()[None, :, None, None], torch.sqrt(var + eps).float()[None, :, None, None]))
        return out


def wct_cascade(
    image: Tensor,
    styles: Sequence[Tensor],
    levels: Sequence[tuple[Callable[[Tensor], Tensor], Callable[[Tensor], Tensor]]],
    **kwargs: Any,
) -> Tensor:
    """Multi-level WCT (Li et al. 2017): coarse-to-fine whitening and colouring through several autoencoders.

    ``image`` ``N×3×H×W``; ``styles`` images ``1×3×h×w``; ``levels`` a list of ``(encode, decode)`` pairs ordered
    from the deepest layer (e.g. relu5_1) to the shallowest (relu1_1). At each level the current image is encoded,
    transformed with :func:`transfer` (``method="wct"``; ``kwargs`` such as ``alpha``, ``style_weights``, ``masks``
    are passed on) and decoded, and the result feeds the next level. Returns ``N×3×H×W``.
    """
    kwargs.setdefault("method", "wct")
    x = image
    for encode, decode in levels:
        x = decode(transfer(encode(x), [encode(s) for s in styles], **kwargs))
    return x


# -- colour preservation ------------------------------------------------------------------------------------


def match_color(
    source: Tensor, target: Tensor, eps: float = EPS, target_stats: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """Recolour ``source`` (``N×3×h×w``, 0..1) to the colour mean and covariance of ``target`` (``N×3×H×W``).

    The colour transfer (CORAL, as in pytorch-AdaIN's ``--preserve_color``) is :func:`whiten_color` on RGB
    pixels. Applied to the style image before stylizing, it keeps the content photo's colours. Returns
    ``N×3×h×w`` clipped to 0..1. ``target_stats``: the target's colour mean and covariance measured elsewhere
    (``target`` is then not read).
    """
    return whiten_color(source, target, eps, style_stats=target_stats).clamp(0.0, 1.0)
