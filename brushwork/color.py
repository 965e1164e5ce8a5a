"""Colour: YCbCr conversion, luminance-only transfer and colour matching (Gatys et al. 2016, "Preserving Color in
Neural Artistic Style Transfer").

Images are ``N×3×H×W`` float tensors, RGB in 0..1. YCbCr is the full-range BT.601 (JPEG) form: ``Y`` in 0..1,
``Cb`` and ``Cr`` centred on 0.5.

Two ways to keep a photo's colours:

- luminance-only transfer: stylize the luminance alone (:func:`luminance_image` of the content and of the style,
  the style's luminance matched to the content's mean and deviation with :func:`match_luminance`), then put the
  photo's chroma back with :func:`combine_luminance`;
- colour matching: recolour the style image to the photo's colour statistics before the transfer —
  :func:`match_color` (a linear map matching mean and covariance, Gatys et al.'s choice), :func:`match_mean_std`
  (per channel) or :func:`match_histogram` (per-channel histogram matching).
"""

from __future__ import annotations

import torch
from torch import Tensor

# full-range BT.601 (JPEG): rows give Y, Cb, Cr from R, G, B
_RGB2YCC = ((0.299, 0.587, 0.114), (-0.168736, -0.331264, 0.5), (0.5, -0.418688, -0.081312))
_OFFSET = (0.0, 0.5, 0.5)


def _matrix(x: Tensor) -> Tensor:
    return torch.tensor(_RGB2YCC, dtype=x.dtype, device=x.device)


def _offset(x: Tensor) -> Tensor:
    return torch.tensor(_OFFSET, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)


def rgb_to_ycbcr(rgb: Tensor) -> Tensor:
    """``N×3×H×W`` RGB in 0..1 → YCbCr (Y in 0..1, Cb and Cr in 0..1 centred on 0.5)."""
    return torch.einsum("ij,njhw->nihw", _matrix(rgb), rgb) + _offset(rgb)


def ycbcr_to_rgb(ycc: Tensor) -> Tensor:
    """Inverse of :func:`rgb_to_ycbcr` (not clipped: out-of-gamut combinations can leave 0..1)."""
    inverse = torch.linalg.inv(_matrix(ycc).double()).to(ycc.dtype)
    return torch.einsum("ij,njhw->nihw", inverse, ycc - _offset(ycc))


def luminance(rgb: Tensor) -> Tensor:
    """``N×3×H×W`` RGB → ``N×1×H×W`` luma Y (BT.601 weights) in 0..1."""
    w = _matrix(rgb)[0].view(1, 3, 1, 1)
    return (rgb * w).sum(dim=1, keepdim=True)


def luminance_image(rgb: Tensor) -> Tensor:
    """``N×3×H×W`` RGB → the grey ``N×3×H×W`` image with R = G = B = Y, what networks see in luminance-only mode."""
    return luminance(rgb).expand(-1, 3, -1, -1).contiguous()


def match_luminance(style: Tensor, content: Tensor, eps: float = 1e-6) -> Tensor:
    """Grey ``N×3×H×W`` luminance of ``style`` with its mean and standard deviation matched to ``content``'s
    luminance (Gatys et al. 2016, eq. 1), clipped to 0..1."""
    ys, yc = luminance(style), luminance(content)
    y = (ys - ys.mean()) * (yc.std() / (ys.std() + eps)) + yc.mean()
    return y.clamp(0, 1).expand(-1, 3, -1, -1).contiguous()


def combine_luminance(stylized: Tensor, content: Tensor) -> Tensor:
    """The luminance of ``stylized`` with the chroma (Cb, Cr) of ``content``; both ``N×3×H×W`` of the same size.

    Returns RGB clipped to 0..1. Where the combination is out of gamut the clipping changes the chroma slightly.
    """
    ycc = rgb_to_ycbcr(content)
    ycc = torch.cat([luminance(stylized), ycc[:, 1:]], dim=1)
    return ycbcr_to_rgb(ycc).clamp(0, 1)


def match_mean_std(source: Tensor, reference: Tensor, eps: float = 1e-6) -> Tensor:
    """``source`` (``N×3×H×W``) with each channel's mean and standard deviation set to ``reference``'s; 0..1."""
    dims = (2, 3)
    ms, ss = source.mean(dims, keepdim=True), source.std(dims, keepdim=True)
    mr, sr = reference.mean(dims, keepdim=True), reference.std(dims, keepdim=True)
    return ((source - ms) * (sr / (ss + eps)) + mr).clamp(0, 1)


def _mean_cov(x: Tensor) -> tuple[Tensor, Tensor]:
    """``1×3×H×W`` → mean ``3×1`` and covariance ``3×3`` of the pixels (float64)."""
    p = x[0].flatten(1).double()
    mean = p.mean(dim=1, keepdim=True)
    pc = p - mean
    return mean, pc @ pc.T / p.shape[1]


def _sqrtm(a: Tensor, power: float, eps: float) -> Tensor:
    vals, vecs = torch.linalg.eigh((a + a.T) / 2)
    return (vecs * vals.clamp_min(eps).pow(power)) @ vecs.T


def match_color(
    source: Tensor, reference: Tensor | None, eps: float = 1e-5, reference_stats: tuple[Tensor, Tensor] | None = None
) -> Tensor:
    """Linear colour transfer (Gatys et al. 2016, §2.1; the symmetric "image analogies" form): map the pixels of
    ``source`` (``1×3×H×W``) by ``x' = A (x − μs) + μr`` with ``A = Σr^½ Σs^-½``, so that their mean and covariance
    equal ``reference``'s. Returns ``1×3×H×W`` clipped to 0..1. ``reference_stats``: the reference's mean
    ``3×1`` and covariance ``3×3`` measured elsewhere (a print-size photo streamed in tiles)."""
    ms, cs = _mean_cov(source)
    mr, cr = reference_stats if reference_stats is not None else _mean_cov(reference)
    a = _sqrtm(cr, 0.5, eps) @ _sqrtm(cs, -0.5, eps)
    p = source[0].flatten(1).double()
    out = a @ (p - ms) + mr
    return out.reshape(source.shape).to(source.dtype).clamp(0, 1)


def match_histogram(source: Tensor, reference: Tensor) -> Tensor:
    """Per-channel histogram matching: each channel of ``source`` (``N×3×H×W``) gets the value distribution of the
    same channel of ``reference`` (any size), keeping the order of the values. Returns the shape of ``source``."""
    out = torch.empty_like(source)
    for n in range(source.shape[0]):
        for c in range(source.shape[1]):
            s = source[n, c].flatten()
            r = torch.sort(reference[min(n, reference.shape[0] - 1), c].flatten()).values
            order = torch.argsort(s)
            # rank i of n -> quantile i/(n-1) of the reference
            q = torch.linspace(0, r.numel() - 1, s.numel(), device=s.device)
            lo = q.floor().long()
            hi = q.ceil().long()
            frac = (q - lo).to(r.dtype)
            vals = r[lo] * (1 - frac) + r[hi] * frac
            flat = torch.empty_like(s)
            flat[order] = vals
            out[n, c] = flat.view_as(source[n, c])
    return out
