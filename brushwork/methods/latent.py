"""The latent space of styles, as computation: a style VAE's codes mixed, sampled, walked, projected and rendered.

A *style code* is the style predictor's 100-d vector for a picture (:meth:`FastStylizer.style_code
<brushwork.methods.fast.FastStylizer.style_code>`); the transformer renders any code on a photo. A
:class:`StyleSpace` is a trained :class:`~brushwork.nets.vae.StyleVAE` over those codes: it encodes a code to a
small latent and decodes any latent back to a code, so that new codes can be drawn from the prior
(:func:`sample_codes`), blended on the learned manifold (:func:`mix_codes`), walked between
(:func:`interpolate_codes`) and laid out in 2-D (:func:`project`).

Exact endpoints. A VAE does not reproduce its inputs exactly, so a latent mix of one style alone would be the
style's *reconstruction*, not the style. Blends therefore decode the mixed latent and add back the same mix of the
styles' own reconstruction residuals::

    code(w) = decode(Σ w_i μ_i) + Σ w_i (c_i − decode(μ_i))

With one-hot weights this is ``c_i`` (and the code snaps to ``c_i`` exactly, without rounding error), while in
between the path follows the decoder's manifold.

This module takes and returns arrays and tensors only: it reads and writes no file and draws nothing. Loading
models, pictures and ``.npy`` codes, caching codes and the user-facing functions (``mix``, ``sample``,
``interpolate``, ``style_map``) live in :mod:`brushwork.latent`; the shipped models are rows of
:data:`brushwork.store.REGISTRY`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from brushwork import io
from brushwork.api import ProgressFn, Reporter
from brushwork.device import resolve_device
from brushwork.errors import InputError
from brushwork.nets.mobilenet import STYLE_DIM
from brushwork.nets.vae import StyleVAE
from brushwork.validate import check_number, check_seed, normalise_weights

DEFAULT_MODEL = "style-vae"
CONDITIONAL_MODEL = "style-cvae"
CODE_SIZE = 256  # the style predictor's reference input size
CODES_VERSION = 1  # bump when the augmentation changes, to invalidate cached codes
PROJECTIONS = ("pca", "tsne")
MAX_TEMPERATURE = 10.0  # beyond it the decoded codes overflow the transformer (black pictures)
MAX_CODE = 1000.0  # largest magnitude of a style code's entries (real ones stay within ±5; 1e30 renders black)
MIN_SIDE = 16  # both sides of a photo, in pixels (as the fast path)


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


@dataclass
class StyleSpace:
    """A trained style VAE with its label names; encodes and decodes *raw* style codes.

    net: the VAE (standardisation inside); labels: its label names (empty for an unconditional VAE);
    name: model name or file; config: the JSON config written beside the weights.
    """

    net: StyleVAE
    labels: list[str] = field(default_factory=list)
    name: str = DEFAULT_MODEL
    config: dict[str, Any] = field(default_factory=dict)

    @property
    def device(self) -> torch.device:
        return self.net.code_mean.device

    @property
    def conditional(self) -> bool:
        return self.net.num_labels > 0

    @property
    def latent_dim(self) -> int:
        return self.net.latent_dim

    def label_index(self, label: str) -> int:
        """Index of ``label`` (matched case-insensitively, punctuation ignored); InputError if unknown."""
        for i, known in enumerate(self.labels):
            if _slug(known) == _slug(label):
                return i
        if not self.labels:
            raise InputError(f"model {self.name} has no labels (use a conditional model, e.g. {CONDITIONAL_MODEL})")
        raise InputError(f"unknown label {label!r} for {self.name}; known labels: {', '.join(self.labels)}")

    def label_tensor(self, label: str | None, n: int) -> Tensor | None:
        """``n`` label indices for the net (None for an unconditional VAE); InputError for a missing or bad label."""
        if not self.conditional:
            if label is not None:
                raise InputError(f"model {self.name} has no labels (use a conditional model, e.g. {CONDITIONAL_MODEL})")
            return None
        if label is None:
            raise InputError(f"model {self.name} is conditional: give a label, one of: {', '.join(self.labels)}")
        return torch.full((n,), self.label_index(label), dtype=torch.long, device=self.device)

    @torch.no_grad()
    def encode(self, style_codes: Tensor, label: str | None = None) -> tuple[Tensor, Tensor]:
        """Raw style codes ``N×D`` → posterior mean and log-variance, ``N×Z`` each."""
        codes = style_codes.to(self.device, torch.float32)
        return self.net.encode(self.net.standardise(codes), self.label_tensor(label, codes.shape[0]))

    @torch.no_grad()
    def decode(self, z: Tensor, label: str | None = None) -> Tensor:
        """Latents ``N×Z`` → raw style codes ``N×D`` (the decoder's mean)."""
        z = z.to(self.device, torch.float32)
        return self.net.unstandardise(self.net.decode(z, self.label_tensor(label, z.shape[0])))


# -- style codes ---------------------------------------------------------------------------------------------------


def check_codes(style_codes: Any, dim: int, name: str = "style code") -> np.ndarray:
    """Style codes as float32 ``N×dim`` (a single ``(dim,)`` or ``1×dim`` code gives ``1×dim``): InputError for
    another shape, values that are not finite, or values beyond ±:data:`MAX_CODE` (which render black)."""
    if isinstance(style_codes, Tensor):
        style_codes = style_codes.detach().cpu().numpy()
    elif isinstance(style_codes, Sequence) and style_codes and not isinstance(style_codes[0], int | float):
        style_codes = np.stack([c.detach().cpu().numpy() if isinstance(c, Tensor) else c for c in style_codes])
    a = np.asarray(style_codes)
    if a.dtype.kind not in "fiu":
        raise InputError(f"{name}: expected numbers, got {a.dtype}")
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != dim or a.shape[0] == 0:
        raise InputError(f"{name}: expected style codes of {dim} numbers, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"{name}: the style code contains values that are not finite")
    top = float(np.abs(a).max())
    if top > MAX_CODE:
        raise InputError(f"{name}: style code values must lie within ±{MAX_CODE:g}, got {top:.3g}")
    return np.ascontiguousarray(a, dtype=np.float32)


def random_crops(rgb: np.ndarray, n: int, size: int, rng: np.random.Generator, min_scale: float = 0.5) -> np.ndarray:
    """``n`` random square crops of an H×W×3 image, each ``min_scale``..1 of the shorter side, randomly mirrored,
    resized to ``size``: ``n×size×size×3`` float32 in 0..1."""
    h, w = rgb.shape[:2]
    short = min(h, w)
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        side = max(1, min(short, round(rng.uniform(min_scale, 1.0) * short)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = rgb[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = io.resize(np.ascontiguousarray(crop), (size, size))
    return out


def image_codes(
    rgb: np.ndarray, augment: int = 0, rng: np.random.Generator | None = None, *, device: str = "auto"
) -> np.ndarray:
    """Style codes of one picture (H×W×3 float32 in 0..1): ``(1+augment)×D`` float32, row 0 the whole picture's
    code, rows 1.. the codes of ``augment`` random crops (:func:`random_crops`, drawn from ``rng``)."""
    from brushwork.methods import fast

    dev = resolve_device(device)
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise InputError(f"image is too small ({rgb.shape[1]}×{rgb.shape[0]}): both sides need {MIN_SIDE} px")
    codes = [fast.get_stylizer(dev).style_code(rgb)]
    if augment:
        crops = random_crops(rgb, augment, CODE_SIZE, rng or np.random.default_rng(0))
        codes += list(fast.predict_codes(torch.from_numpy(crops.transpose(0, 3, 1, 2).copy()), device=dev).numpy())
    return np.stack(codes).astype(np.float32)


def render_codes(
    rgb: np.ndarray,
    style_codes: np.ndarray,
    *,
    stroke_scale: float = 1.0,
    device: str = "auto",
    progress: ProgressFn | None = None,
) -> list[np.ndarray]:
    """Render a photo (H×W×3 float32 in 0..1) once per style code (``N×D``): N H×W×3 float32 arrays in 0..1.
    Reports a ``render`` :class:`~brushwork.api.Progress` event per picture."""
    from brushwork.methods import fast

    stylizer = fast.get_stylizer(resolve_device(device))
    codes = check_codes(style_codes, STYLE_DIM)
    rep = Reporter(progress, "render", len(codes))
    out = []
    for i, code in enumerate(codes):
        out.append(stylizer.render(rgb, ("code", code), stroke_scale))
        rep.step(i + 1)
    return out


# -- operations on codes -----------------------------------------------------------------------------------------


def check_temperature(temperature: float) -> float:
    """A sampling temperature, 0 < T <= :data:`MAX_TEMPERATURE`; InputError otherwise."""
    return check_number(temperature, "temperature", low=0.0, high=MAX_TEMPERATURE, low_open=True)


def blend_codes(space: StyleSpace, style_codes: Tensor, weights: Tensor, label: str | None = None) -> Tensor:
    """Blends of ``K`` raw codes ``K×D`` on the VAE's manifold, for ``F`` weight rows ``F×K`` (rows sum to 1):
    ``F×D`` raw codes, ``decode(W μ) + W (codes − decode(μ))``; a one-hot row gives its code exactly."""
    codes = style_codes.to(space.device, torch.float32)
    w = weights.to(space.device, torch.float32)
    mu, _ = space.encode(codes, label)
    decoded = space.decode(torch.cat([w @ mu, mu]), label)
    out = decoded[: w.shape[0]] + w @ (codes - decoded[w.shape[0] :])
    for f, row in enumerate(w):  # snap one-hot rows to the style itself, free of rounding
        if int((row == 1.0).sum()) == 1 and int((row == 0.0).sum()) == len(row) - 1:
            out[f] = codes[int(row.argmax())]
    return out


def mix_codes(
    space: StyleSpace, style_codes: Tensor, style_weights: Sequence[float] | None = None, label: str | None = None
) -> Tensor:
    """One latent mix of raw codes ``K×D`` → ``(D,)``; ``style_weights`` (``K``) are normalised to sum 1."""
    w = torch.from_numpy(normalise_weights(style_weights, style_codes.shape[0])).float()[None]
    return blend_codes(space, style_codes, w, label)[0]


def interpolate_codes(space: StyleSpace, a: Tensor, b: Tensor, frames: int, label: str | None = None) -> Tensor:
    """``frames`` codes ``F×D`` walking linearly through the latent space from code ``a`` to code ``b`` (both
    ``(D,)``); the first frame is ``a`` and the last is ``b``, exactly."""
    if frames < 2:
        raise InputError(f"frames must be at least 2, got {frames}")
    t = torch.linspace(0.0, 1.0, frames)
    w = torch.stack([1.0 - t, t], dim=1)
    return blend_codes(space, torch.stack([a.reshape(-1), b.reshape(-1)]), w, label)


def sample_codes(
    space: StyleSpace,
    n: int,
    *,
    label: str | None = None,
    like: Tensor | None = None,
    temperature: float = 1.0,
    seed: int = 0,
) -> Tensor:
    """``n`` new raw codes ``n×D`` drawn with ``seed`` (the same seed gives the same codes, and the first k of n
    are the k of a smaller n, up to float rounding).

    Without ``like``, latents come from the prior N(0, I) (for a conditional VAE, the learned Gaussian of
    ``label``), its spread scaled by ``temperature``.
    With ``like`` (raw codes ``K×D``), they come from a Gaussian around those styles: mean the average of their
    latent means, variance the spread of those means plus their average posterior variance (``temperature²``
    times that), so that drawing "near" a region of the style map stays in that region.
    """
    if n < 1:
        raise InputError(f"the number of samples must be at least 1, got {n}")
    temperature = check_temperature(temperature)
    rng = np.random.default_rng(check_seed(seed))
    draws = rng.standard_normal((n, space.latent_dim))  # sequential: a prefix is stable
    eps = torch.from_numpy(draws).float().to(space.device) * temperature
    if like is None:  # the prior: N(0, I), or the label's learned Gaussian
        prior_mu, prior_logvar = space.net.prior(eps, space.label_tensor(label, n))
        return space.decode(prior_mu + eps * (0.5 * prior_logvar).exp(), label)
    mu, logvar = space.encode(like.reshape(-1, like.shape[-1]), label)
    var = logvar.exp().mean(0) + (mu.var(0, unbiased=False) if len(mu) > 1 else 0.0)
    return space.decode(mu.mean(0) + eps * var.sqrt(), label)


# -- 2-D projections -------------------------------------------------------------------------------------------------


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project ``N×K`` points on their first two principal components: (``N×2``, explained variance ratio ``2``).
    Signs are fixed so that each component's largest loading is positive."""
    x = np.asarray(x, dtype=np.float64)
    centred = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    vt = vt[:2] * np.sign(vt[:2][np.arange(min(2, len(vt))), np.abs(vt[:2]).argmax(axis=1)])[:, None]
    coords = centred @ vt.T
    if coords.shape[1] < 2:
        coords = np.pad(coords, ((0, 0), (0, 2 - coords.shape[1])))
    var = s**2
    ratio = var[:2] / var.sum() if var.sum() > 0 else np.zeros(2)
    return coords, np.pad(ratio, (0, 2 - len(ratio)))


def tsne_2d(x: np.ndarray, *, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """t-SNE (scikit-learn, Barnes–Hut, PCA initialisation) of ``N×K`` points to ``N×2``; deterministic for a
    given ``seed``. Perplexity is capped at (N−1)/3; fewer than 4 points fall back to PCA."""
    from sklearn.manifold import TSNE

    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 4:
        return pca_2d(x)[0]
    state = int(np.random.default_rng(check_seed(seed)).integers(2**32))  # scikit-learn wants a 32-bit seed
    tsne = TSNE(2, perplexity=min(perplexity, (n - 1) / 3), init="pca", learning_rate="auto", random_state=state)
    return tsne.fit_transform(x)


def project(latents: np.ndarray, projection: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D layout ``N×2`` of latent means ``N×Z`` by ``pca`` or ``tsne`` (``seed`` seeds t-SNE)."""
    if projection == "pca":
        return pca_2d(latents)[0]
    if projection == "tsne":
        return tsne_2d(latents, seed=seed)
    raise InputError(f"unknown projection {projection!r}; use one of: {', '.join(PROJECTIONS)}")
