"""A latent space of styles: mix, sample, interpolate and map style codes through a style VAE.

A *style code* is the style predictor's 100-d vector for an image (:func:`brushwork.methods.fast.style_vector`);
the transformer renders any code on a photo (:func:`brushwork.methods.fast.render`). A :class:`StyleSpace` is a
trained :class:`~brushwork.nets.vae.StyleVAE` over those codes: it encodes a code to a small latent and decodes any
latent back to a code, so that new codes can be drawn from the prior (:func:`sample`), blended on the learned
manifold (:func:`mix`), walked between (:func:`interpolate`) and laid out in 2-D (:func:`style_map`).

Exact endpoints. A VAE does not reproduce its inputs exactly, so a latent mix of one style alone would be the
style's *reconstruction*, not the style. Blends therefore decode the mixed latent and add back the same mix of the
styles' own reconstruction residuals::

    code(w) = decode(Σ w_i μ_i) + Σ w_i (c_i − decode(μ_i))

With one-hot weights this is ``c_i`` (and the code snaps to ``c_i`` exactly, without rounding error), while in
between the path follows the decoder's manifold. ``mode="average"`` is the plain average ``Σ w_i c_i`` for
comparison.

The shipped models (``style-vae`` and the conditional ``style-cvae``, files in ``brushwork/assets/models``) are
registered in the model store when this module is imported.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from brushwork import io, store
from brushwork.errors import InputError, ModelUnavailable, OutputError
from brushwork.nets.mobilenet import STYLE_DIM
from brushwork.nets.vae import StyleVAE

if TYPE_CHECKING:
    from torch import Tensor

Progress = Callable[[int, int], None]  # (done, total)
StyleSource = str | os.PathLike | Image.Image | np.ndarray

DEFAULT_MODEL = "style-vae"
CONDITIONAL_MODEL = "style-cvae"
CODE_SIZE = 256  # the style predictor's reference input size
MAX_SIZE = 512  # default longer side of the photo when rendering many styles (sample, interpolate)
MIX_MAX_SIZE = 2048  # ... and one (mix), as ``brushwork stylize``
MIN_SIDE = 16
CODES_VERSION = 1  # bump when the augmentation changes, to invalidate cached codes
MAP_METHODS = ("pca", "tsne")
TSNE_MAX = 1000  # exact t-SNE is O(N²) per iteration
MAX_TEMPERATURE = 10.0  # beyond it the decoded codes overflow the transformer (black pictures)
SEED_LIMIT = 2**63  # seeds are 0 <= seed < 2**63
GIF_FPS = (0.002, 50.0)  # GIF delays are whole centiseconds (at most 65535); below 2 cs browsers ignore them
MP4_MAX_FPS = 240.0

# -- shipped models ----------------------------------------------------------------------------------------------

_MODEL_DIR = "brushwork/assets/models"
_SHIPPED = {
    # name: (sha256, size in bytes, description); written by bench/bench_latent_train.py
    DEFAULT_MODEL: (
        "e0eba9d33b8680e59d9ebe72dd2a6cf64a44fc1846aa90b105e08eeb85adac9e",
        119528,
        "Style VAE over Ghiasi style codes (16-d latent), trained on 186 paintings, drawings and textures",
    ),
    CONDITIONAL_MODEL: (
        "1871de912f4796803b469bc80ac23ec97d16db82531a295ce39c22270c685913",
        130192,
        "Conditional style VAE over Ghiasi style codes, 9 labels of movement or medium",
    ),
}
for _name, (_sha, _size, _description) in _SHIPPED.items():
    store.register(
        store.ModelEntry(
            name=_name,
            description=_description,
            licence="Apache-2.0",
            size=_size,
            sha256=_sha,
            package_file=f"{_MODEL_DIR}/{_name}.safetensors",
            arch=f"brushwork.methods.latent:_arch_{_name.replace('-', '_')}",
            convert="brushwork.methods.latent:_convert_safetensors",
            credit="trained by brushwork on the style codes of 186 paintings, drawings and textures (docs/latent.md)",
        )
    )


def _convert_safetensors(path: Path) -> dict[str, np.ndarray]:
    """The store's converter for shipped models: the file already is a safetensors state dict."""
    from safetensors.numpy import load_file

    return load_file(str(path))


def _shipped_arch(name: str) -> StyleVAE:
    """The architecture of a shipped model, sized from its JSON config (for ``store.load_net``)."""
    config = json.loads(store.source_path(store.entry(name)).with_suffix(".json").read_text())
    return StyleVAE(config["code_dim"], config["latent_dim"], config["hidden"], len(config["labels"]))


def _arch_style_vae() -> StyleVAE:
    return _shipped_arch(DEFAULT_MODEL)


def _arch_style_cvae() -> StyleVAE:
    return _shipped_arch(CONDITIONAL_MODEL)


# -- the style space ---------------------------------------------------------------------------------------------


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
    def encode(self, codes: Tensor, label: str | None = None) -> tuple[Tensor, Tensor]:
        """Raw style codes ``N×D`` → posterior mean and log-variance, ``N×Z`` each."""
        codes = codes.to(self.device, torch.float32)
        return self.net.encode(self.net.standardise(codes), self.label_tensor(label, codes.shape[0]))

    @torch.no_grad()
    def decode(self, z: Tensor, label: str | None = None) -> Tensor:
        """Latents ``N×Z`` → raw style codes ``N×D`` (the decoder's mean)."""
        z = z.to(self.device, torch.float32)
        return self.net.unstandardise(self.net.decode(z, self.label_tensor(label, z.shape[0])))


def resolve_device(device: str = "auto") -> str:
    """``auto``, ``cpu``, ``cuda`` or ``mps`` → a device that exists here (see :func:`fast.resolve_device`)."""
    from brushwork.methods import fast

    return fast.resolve_device(str(device))


def load_style_space(
    model: str | os.PathLike[str] | None = None, *, conditional: bool = False, device: str = "auto"
) -> StyleSpace:
    """Load a style VAE: a shipped model name (``style-vae``, ``style-cvae``) or a ``.safetensors`` file written by
    :func:`brushwork.train.style_vae.train_style_vae` (its ``.json`` config beside it).

    ``model=None`` picks the shipped conditional model when ``conditional`` is true, else the unconditional one.
    """
    from safetensors.torch import load_file

    dev = resolve_device(device)
    if model is None:
        model = CONDITIONAL_MODEL if conditional else DEFAULT_MODEL
    name = os.fspath(model)
    if name in store.REGISTRY:
        # the shipped file is already a small safetensors: load it in place once its checksum holds, rather than
        # through the store's cache (which is keyed by name and would keep an older release's weights)
        path = store.fetch(name)
        state = load_file(str(path))
        config_path = path.with_suffix(".json")
    else:
        path = Path(name)
        if path.suffix != ".safetensors":
            known = ", ".join(n for n in _SHIPPED)
            raise InputError(f"unknown style model {name!r}: give a .safetensors file or one of: {known}")
        if not path.is_file():
            raise InputError(f"cannot read {name}: no such file")
        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises several types for a bad file
            raise InputError(f"cannot read {name}: not a safetensors file ({' '.join(str(exc).split())})") from None
        config_path = path.with_suffix(".json")
    try:
        net = StyleVAE.from_state(state)
    except (KeyError, IndexError, RuntimeError):
        raise InputError(f"{name} is not a brushwork style VAE") from None
    config: dict[str, Any] = {}
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(f"cannot read the config {config_path} ({exc})") from None
    labels = [str(x) for x in config.get("labels", [])]
    if len(labels) != net.num_labels:
        raise ModelUnavailable(
            f"{name} has {net.num_labels} labels but its config {config_path} names {len(labels)}; "
            "keep the .json written by training beside the weights"
        )
    return StyleSpace(net.to(dev).eval().requires_grad_(False), labels, name, config)


# -- style codes ---------------------------------------------------------------------------------------------------


def load_code_file(path: str | os.PathLike[str]) -> Tensor:
    """A style code saved with ``numpy.save`` (e.g. by ``brushwork sample``): ``(100,)`` or ``1×100`` → ``(100,)``."""
    name = os.fspath(path)
    if not Path(path).is_file():
        raise InputError(f"cannot read {name}: no such file")
    try:
        a = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {name}: not a .npy style code ({' '.join(str(exc).split())})") from None
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.shape != (STYLE_DIM,) or a.dtype.kind not in "fiu":
        raise InputError(f"cannot read {name}: expected one style code of shape ({STYLE_DIM},), got {a.shape}")
    if not np.isfinite(a).all():
        raise InputError(f"cannot read {name}: the style code contains values that are not finite")
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def style_code(style: StyleSource, *, device: str = "auto") -> Tensor:
    """The style code ``(D,)`` of an image (path, PIL, H×W×3 array) or of a ``.npy`` code file."""
    if isinstance(style, str | os.PathLike) and Path(style).suffix.lower() == ".npy":
        return load_code_file(style)
    from brushwork.methods import fast

    return fast.style_vector(style, device=resolve_device(device)).detach().float().cpu().reshape(-1)


def random_crops(rgb: np.ndarray, n: int, size: int, rng: np.random.Generator, min_scale: float = 0.5) -> np.ndarray:
    """``n`` random square crops of an H×W×3 image, each ``min_scale``..1 of the shorter side, randomly mirrored,
    resized to ``size``: ``n×size×size×3`` float32 in 0..1."""
    h, w = rgb.shape[:2]
    short = min(h, w)
    out = np.empty((n, size, size, 3), dtype=np.float32)
    for i in range(n):
        side = max(8, min(short, round(rng.uniform(min_scale, 1.0) * short)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = rgb[y : y + side, x : x + side]
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        out[i] = io.resize(np.ascontiguousarray(crop), (size, size))
    return out


def _file_codes(path: Path, digest: str, augment: int, seed: int, device: str) -> np.ndarray:
    from brushwork.methods import fast

    rgb = io.load_image(path).rgb
    codes = [style_code(rgb, device=device).numpy()]
    if augment:
        rng = np.random.default_rng([seed, int(digest[:12], 16)])
        crops = torch.from_numpy(random_crops(rgb, augment, CODE_SIZE, rng).transpose(0, 3, 1, 2).copy())
        codes += list(fast.predict_codes(crops, device=device).float().cpu().numpy())
    return np.stack(codes).astype(np.float32)


def style_codes(
    paths: Sequence[str | os.PathLike[str]],
    *,
    augment: int = 0,
    seed: int = 0,
    device: str = "auto",
    cache: bool = True,
    progress: Progress | None = None,
) -> np.ndarray:
    """Style codes of image files, with augmentation: ``P×(1+augment)×D`` float32.

    Row 0 of each file is its code as :func:`style_code` gives it; rows 1.. are codes of ``augment`` random crops
    (:func:`random_crops`, seeded by ``seed`` and the file's contents). With ``cache``, codes are kept per file
    under ``<BRUSHWORK_HOME>/codes``, keyed by the sha256 of the file's bytes and these parameters.
    """
    dev = resolve_device(device)
    cache_dir = store.home() / "codes"
    out = []
    for i, p in enumerate(paths):
        path = Path(p)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {os.fspath(p)}: {exc.strerror or exc}") from None
        digest = hashlib.sha256(data).hexdigest()
        file = cache_dir / f"{digest[:40]}-v{CODES_VERSION}-a{augment}-r{seed}.npy"
        codes = None
        if cache and file.is_file():
            try:
                codes = np.load(file)
            except (OSError, ValueError):
                codes = None
        if codes is None or codes.shape[0] != 1 + augment:
            codes = _file_codes(path, digest, augment, seed, dev)
            if cache:
                _save_npy(codes, file)
        out.append(codes)
        if progress is not None:
            progress(i + 1, len(paths))
    return np.stack(out)


def _save_npy(a: np.ndarray, path: Path) -> None:
    """``numpy.save`` to a temporary file, then rename (no partial file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp.npy")
    try:
        np.save(tmp, a)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -- operations on codes -----------------------------------------------------------------------------------------


def check_weights(weights: Sequence[float] | None, k: int) -> np.ndarray:
    """Mixing weights for ``k`` styles, normalised to sum 1 (equal when None). InputError for a wrong count,
    a negative or non-finite weight, or all zeros."""
    if weights is None:
        return np.full(k, 1.0 / k)
    w = np.asarray(list(weights), dtype=np.float64)
    if w.shape != (k,):
        raise InputError(f"got {w.size} weights for {k} styles: give one weight per style")
    if not np.isfinite(w).all() or (w < 0).any():
        raise InputError(f"weights must be finite and not negative, got {list(weights)}")
    top = w.max()
    if top <= 0:
        raise InputError("weights must not all be zero")
    w = w / top  # first, so that the sum of huge weights cannot overflow
    return w / w.sum()


def check_seed(seed: int) -> int:
    """A random seed as an int, 0 <= seed < 2**63; InputError otherwise."""
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= int(seed) < SEED_LIMIT:
        raise InputError(f"seed must be a whole number from 0 to 2**63 - 1, got {seed!r}")
    return int(seed)


def check_temperature(temperature: float) -> float:
    """A sampling temperature, 0 < T <= :data:`MAX_TEMPERATURE`; InputError otherwise."""
    if not (math.isfinite(temperature) and 0 < temperature <= MAX_TEMPERATURE):
        raise InputError(f"temperature must be more than 0 and at most {MAX_TEMPERATURE:g}, got {temperature}")
    return float(temperature)


def check_fps(path: str | os.PathLike[str], fps: float) -> float:
    """Frames per second for an animation at ``path``: GIF 0.002..50 (its delays are whole centiseconds, and
    browsers ignore delays under 2 cs), MP4 more than 0 and at most 240; InputError otherwise."""
    fps = float(fps)
    if Path(path).suffix.lower() == ".gif":
        lo, hi = GIF_FPS
        if not (math.isfinite(fps) and lo <= fps <= hi):
            raise InputError(f"fps for a GIF must be between {lo:g} and {hi:g}, got {fps:g}")
    elif not (math.isfinite(fps) and 0 < fps <= MP4_MAX_FPS):
        raise InputError(f"fps must be more than 0 and at most {MP4_MAX_FPS:g}, got {fps:g}")
    return fps


def blend_codes(space: StyleSpace, codes: Tensor, weights: Tensor, label: str | None = None) -> Tensor:
    """Blends of ``K`` raw codes ``K×D`` on the VAE's manifold, for ``F`` weight rows ``F×K`` (rows sum to 1):
    ``F×D`` raw codes, ``decode(W μ) + W (codes − decode(μ))``; a one-hot row gives its code exactly."""
    codes = codes.to(space.device, torch.float32)
    w = weights.to(space.device, torch.float32)
    mu, _ = space.encode(codes, label)
    decoded = space.decode(torch.cat([w @ mu, mu]), label)
    out = decoded[: w.shape[0]] + w @ (codes - decoded[w.shape[0] :])
    for f, row in enumerate(w):  # snap one-hot rows to the style itself, free of rounding
        if int((row == 1.0).sum()) == 1 and int((row == 0.0).sum()) == len(row) - 1:
            out[f] = codes[int(row.argmax())]
    return out


def mix_codes(
    space: StyleSpace, codes: Tensor, weights: Sequence[float] | None = None, label: str | None = None
) -> Tensor:
    """One latent mix of raw codes ``K×D`` → ``(D,)``; weights (``K``) are normalised to sum 1."""
    w = torch.from_numpy(check_weights(weights, codes.shape[0])).float()[None]
    return blend_codes(space, codes, w, label)[0]


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
    are the k of a smaller n).

    Without ``like``, latents come from the prior N(0, I) (for a conditional VAE, the learned Gaussian of
    ``label``), its spread scaled by ``temperature``.
    With ``like`` (raw codes ``K×D``), they come from a Gaussian around those styles: mean the average of their
    latent means, variance the spread of those means plus their average posterior variance (``temperature²``
    times that), so that drawing "near" a region of the style map stays in that region.
    """
    if n < 1:
        raise InputError(f"the number of samples must be at least 1, got {n}")
    check_temperature(temperature)
    rng = np.random.default_rng(check_seed(seed))
    draws = rng.standard_normal((n, space.latent_dim))  # sequential: a prefix is stable
    eps = torch.from_numpy(draws).float().to(space.device) * float(temperature)
    if like is None:  # the prior: N(0, I), or the label's learned Gaussian
        prior_mu, prior_logvar = space.net.prior(eps, space.label_tensor(label, n))
        return space.decode(prior_mu + eps * (0.5 * prior_logvar).exp(), label)
    mu, logvar = space.encode(like.reshape(-1, like.shape[-1]), label)
    var = logvar.exp().mean(0) + (mu.var(0, unbiased=False) if len(mu) > 1 else 0.0)
    return space.decode(mu.mean(0) + eps * var.sqrt(), label)


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


def tsne_2d(x: np.ndarray, *, perplexity: float = 30.0, iterations: int = 750, seed: int = 0) -> np.ndarray:
    """Exact t-SNE (van der Maaten & Hinton 2008) of ``N×K`` points to ``N×2``; for small N (≤ ``TSNE_MAX``:
    about 20 s for 500 points on a CPU core).

    Perplexity is capped at (N−1)/3; early exaggeration 12 for the first 250 iterations; gradient descent with
    momentum and gains. Deterministic for a given ``seed``.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n > TSNE_MAX:
        raise InputError(f"t-SNE here is exact and limited to {TSNE_MAX} styles, got {n}; use --method pca")
    if n < 4:
        return pca_2d(x)[0]
    perplexity = min(perplexity, (n - 1) / 3)
    sq = (x**2).sum(1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2.0 * x @ x.T, 0.0)
    p = np.zeros((n, n))
    target = np.log(perplexity)
    for i in range(n):  # binary search on the precision of each point's Gaussian
        di = np.delete(d2[i], i)
        lo, hi, beta = 0.0, np.inf, 1.0
        for _ in range(64):
            pi = np.exp(-(di - di.min()) * beta)
            s = pi.sum()
            h = np.log(s) + beta * ((di - di.min()) * pi).sum() / s
            if abs(h - target) < 1e-5:
                break
            if h > target:
                lo, beta = beta, beta * 2 if hi == np.inf else (beta + hi) / 2
            else:
                hi, beta = beta, (beta + lo) / 2
        p[i, np.arange(n) != i] = pi / s
    p = np.maximum((p + p.T) / (2 * n), 1e-12)
    rng = np.random.default_rng(seed)
    y = rng.normal(0, 1e-4, (n, 2))
    velocity, gains = np.zeros_like(y), np.ones_like(y)
    lr = max(n / 12 / 4, 50.0)
    for it in range(iterations):
        exaggeration = 12.0 if it < 250 else 1.0
        diff = y[:, None, :] - y[None, :, :]
        num = 1.0 / (1.0 + (diff**2).sum(-1))
        np.fill_diagonal(num, 0.0)
        q = np.maximum(num / num.sum(), 1e-12)
        grad = 4.0 * (((exaggeration * p - q) * num)[:, :, None] * diff).sum(1)
        momentum = 0.5 if it < 250 else 0.8
        gains = np.where(np.sign(grad) != np.sign(velocity), gains + 0.2, gains * 0.8).clip(0.01)
        velocity = momentum * velocity - lr * gains * grad
        y = y + velocity
        y -= y.mean(axis=0)
    return y


def map_coordinates(latents: np.ndarray, method: str = "pca", seed: int = 0) -> np.ndarray:
    """2-D layout ``N×2`` of latent means ``N×Z`` by ``pca`` or ``tsne``."""
    if method == "pca":
        return pca_2d(latents)[0]
    if method == "tsne":
        return tsne_2d(latents, seed=check_seed(seed))
    raise InputError(f"unknown map method {method!r}; use one of: {', '.join(MAP_METHODS)}")


# -- pictures ----------------------------------------------------------------------------------------------------

_PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def square_thumbnail(rgb: np.ndarray, size: int) -> Image.Image:
    """Centre square crop of an H×W×3 image in 0..1, resized to ``size``×``size``."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return _pil(io.resize(np.ascontiguousarray(rgb[y : y + side, x : x + side]), (size, size)))


def _pil(rgb: np.ndarray) -> Image.Image:
    return io.Picture(np.asarray(rgb, dtype=np.float32)).pil()


def contact_sheet(
    images: Sequence[Image.Image], captions: Sequence[str] | None = None, *, cell: int = 256, columns: int = 0
) -> Image.Image:
    """A grid of images with an optional caption under each; cells are ``cell`` pixels wide and shaped like the
    first image (every image is fitted into its cell)."""
    n = len(images)
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    w0, h0 = images[0].size
    cell_w, cell_h = cell, max(1, round(cell * h0 / w0))
    pad, text_h = 8, (24 if captions else 0)
    size = (cols * (cell_w + pad) + pad, rows * (cell_h + pad + text_h) + pad)
    sheet = Image.new("RGB", size, (250, 250, 248))
    draw = ImageDraw.Draw(sheet)
    font = _font(16)
    for i, img in enumerate(images):
        thumb = img.convert("RGB")
        thumb.thumbnail((cell_w, cell_h), Image.Resampling.LANCZOS)
        x0 = pad + (i % cols) * (cell_w + pad)
        y0 = pad + (i // cols) * (cell_h + pad + text_h)
        sheet.paste(thumb, (x0 + (cell_w - thumb.width) // 2, y0 + (cell_h - thumb.height) // 2))
        if captions:
            draw.text((x0 + cell_w // 2, y0 + cell_h + 4), captions[i], fill=(40, 40, 40), font=font, anchor="ma")
    return sheet


def strip(images: Sequence[Image.Image], *, count: int = 8, height: int = 192) -> Image.Image:
    """``count`` evenly spaced images of a sequence (first and last included), side by side at ``height``."""
    idx = np.unique(np.round(np.linspace(0, len(images) - 1, min(count, len(images)))).astype(int))
    picked = [images[i].convert("RGB") for i in idx]
    picked = [
        im.resize((max(1, round(im.width * height / im.height)), height), Image.Resampling.LANCZOS) for im in picked
    ]
    gap = 4
    out = Image.new("RGB", (sum(im.width for im in picked) + gap * (len(picked) - 1), height), (255, 255, 255))
    x = 0
    for im in picked:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def draw_style_map(
    coords: np.ndarray,
    thumbnails: Sequence[Image.Image],
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    size: int = 1200,
) -> Image.Image:
    """Thumbnails placed at 2-D coordinates ``N×2`` on a ``size``-pixel canvas; with labels, each thumbnail gets a
    frame in its label's colour and a legend is drawn."""
    coords = np.asarray(coords, dtype=np.float64)
    thumb = max(t.width for t in thumbnails) if thumbnails else 64
    label_names = sorted(set(labels)) if labels else []
    legend_h = 26 * math.ceil(len(label_names) / 3) + 10 if label_names else 0
    top = 44 if title else 12
    canvas = Image.new("RGB", (size, size + legend_h), (247, 246, 242))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((size // 2, 12), title, fill=(30, 30, 30), font=_font(22), anchor="ma")
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    area = np.array([size - thumb - 24, size - thumb - top - 12], dtype=np.float64)
    pos = (coords - lo) / span * area + np.array([12, top])
    for i in np.argsort(-coords[:, 1]):  # draw from the bottom up so that upper thumbnails do not hide lower ones
        x, y = int(pos[i, 0]), int(size - thumb - pos[i, 1] + top - 12)
        if label_names:
            colour = _PALETTE[label_names.index(labels[i]) % len(_PALETTE)]  # type: ignore[index]
            draw.rectangle((x - 4, y - 4, x + thumb + 3, y + thumb + 3), fill=colour)
        canvas.paste(thumbnails[i].convert("RGB"), (x, y))
    font = _font(18)
    for j, name in enumerate(label_names):
        x, y = 16 + (j % 3) * (size // 3), size + 6 + 26 * (j // 3)
        draw.rectangle((x, y + 2, x + 18, y + 20), fill=_PALETTE[j % len(_PALETTE)])
        draw.text((x + 26, y + 2), name, fill=(30, 30, 30), font=font)
    return canvas


def save_animation(
    frames: Sequence[Image.Image],
    path: str | os.PathLike[str],
    *,
    fps: float = 24.0,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write frames as an animated GIF (Pillow) or an MP4 (OpenCV, mp4v), atomically: a temporary file in the same
    folder, renamed when complete. OutputError for another extension, an unwritable folder or an input file."""
    dest = check_animation_path(path, protect)
    fps = check_fps(dest, fps)
    name = os.fspath(path)
    ext = dest.suffix.lower()
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp{ext}")
    rgb = [f.convert("RGB") for f in frames]
    try:
        if ext == ".gif":
            # one palette for all frames, from the first, middle and last: 20× faster than a palette per frame
            w, h = rgb[0].size
            picks = sorted({0, len(rgb) // 2, len(rgb) - 1})
            montage = Image.new("RGB", (w, h * len(picks)))
            for k, i in enumerate(picks):
                montage.paste(rgb[i], (0, h * k))
            palette = montage.quantize(256, method=Image.Quantize.MEDIANCUT)
            frames_p = [f.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for f in rgb]
            frames_p[0].save(tmp, save_all=True, append_images=frames_p[1:], duration=round(1000 / fps), loop=0)
        else:
            import cv2

            w, h = rgb[0].size
            w2, h2 = w - w % 2, h - h % 2  # mp4v wants even sizes
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (w2, h2))
            if not writer.isOpened():
                raise OutputError(f"cannot write {name}: OpenCV cannot open an mp4v video writer here")
            try:
                for f in rgb:
                    writer.write(cv2.cvtColor(np.asarray(f)[:h2, :w2], cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise OutputError(f"cannot write {name}: OpenCV wrote no video")
        os.replace(tmp, dest)
    except OSError as exc:
        raise OutputError(f"cannot write {name}: {' '.join(str(exc.strerror or exc).split())}") from None
    finally:
        tmp.unlink(missing_ok=True)
    return dest


ANIMATION_EXTENSIONS = (".gif", ".mp4")


def check_animation_path(path: str | os.PathLike[str], protect: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Validate an animation output path (``.gif`` or ``.mp4``) before any work; OutputError otherwise."""
    dest = Path(path)
    name = os.fspath(path)
    if dest.suffix.lower() not in ANIMATION_EXTENSIONS:
        raise OutputError(f"cannot write {name}: an animation must end in .gif or .mp4")
    if not dest.parent.is_dir():
        raise OutputError(f"cannot write {name}: folder {os.fspath(dest.parent)!r} does not exist")
    if not os.access(dest.parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {name}: folder {os.fspath(dest.parent)!r} is not writable")
    if dest.is_dir():
        raise OutputError(f"cannot write {name}: it is a folder")
    if any(_same(dest, p) for p in protect):
        raise OutputError(f"cannot write {name}: it is an input file and would be overwritten")
    return dest


def _same(a: Path, b: str | os.PathLike[str]) -> bool:
    try:
        return a.resolve() == Path(b).resolve()
    except OSError:
        return False


# -- the API: photo in, pictures out ----------------------------------------------------------------------------


class Rendered(NamedTuple):
    """Pictures and the style codes they were rendered with: ``images[i]`` shows ``codes[i]`` (``N×D``)."""

    images: list[Image.Image]
    codes: np.ndarray


def load_photo(content: StyleSource | Tensor, max_size: int | None = MAX_SIZE) -> Tensor:
    """A photo (path, PIL, H×W×3 array or ``1×3×H×W`` tensor) as ``1×3×H×W`` in 0..1 (CPU), its longer side at
    most ``max_size``; InputError if it cannot be read or is too small. Pass the result to :func:`render_codes` to
    check a photo before any work."""
    return _content(content, max_size)


def _content(content: StyleSource | Tensor, max_size: int | None) -> Tensor:
    """A photo as ``1×3×H×W`` in 0..1 (CPU), its longer side at most ``max_size``; InputError if too small."""
    if max_size is not None and max_size < MIN_SIDE:
        raise InputError(f"max size must be at least {MIN_SIDE} pixels, got {max_size}")
    if isinstance(content, torch.Tensor):
        rgb = io.to_numpy(content)
    else:
        rgb = io.load_image(content).rgb
    rgb = io.resize_to_max(rgb, max_size)
    if min(rgb.shape[:2]) < MIN_SIDE:
        raise InputError(f"image is too small ({rgb.shape[1]}×{rgb.shape[0]}): both sides need {MIN_SIDE} px")
    return io.to_tensor(rgb)


def render_codes(
    content: StyleSource | Tensor,
    codes: Tensor | np.ndarray | Sequence[Tensor],
    *,
    max_size: int | None = MAX_SIZE,
    stroke_scale: float = 1.0,
    device: str = "auto",
    progress: Progress | None = None,
) -> list[Image.Image]:
    """Render a photo (path, PIL, H×W×3 array or ``1×3×H×W`` tensor) once per style code (``N×D``)."""
    from brushwork.methods import fast

    dev = resolve_device(device)
    photo = _content(content, max_size)
    codes = torch.stack([torch.as_tensor(np.asarray(c) if not isinstance(c, torch.Tensor) else c) for c in codes])
    images = []
    for i, code in enumerate(codes):
        out = fast.render(photo, code.float().cpu(), stroke_scale=stroke_scale, device=dev)
        images.append(_pil(io.to_numpy(out)))
        if progress is not None:
            progress(i + 1, len(codes))
    return images


def _space(model: str | os.PathLike[str] | StyleSpace | None, conditional: bool, device: str) -> StyleSpace:
    return model if isinstance(model, StyleSpace) else load_style_space(model, conditional=conditional, device=device)


def mixed_codes(
    styles: Sequence[StyleSource],
    weights: Sequence[float] | None = None,
    *,
    label: str | None = None,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    device: str = "auto",
) -> dict[str, Tensor]:
    """The codes ``(D,)`` of a mix of styles: ``{"latent": mix in the latent space, "average": mean of codes}``."""
    if len(styles) < 1:
        raise InputError("give at least one style to mix")
    w = check_weights(weights, len(styles))
    dev = resolve_device(device)
    space = _space(model, label is not None, dev)
    codes = torch.stack([style_code(s, device=dev) for s in styles])
    average = (torch.from_numpy(w).float()[:, None] * codes).sum(0)
    one_hot = np.flatnonzero(w == 1.0)
    if len(one_hot) == 1:
        average = codes[one_hot[0]].clone()
    return {"latent": mix_codes(space, codes, list(w), label).cpu(), "average": average}


def mix(
    content: StyleSource | Tensor,
    styles: Sequence[StyleSource],
    weights: Sequence[float] | None = None,
    *,
    mode: str = "latent",
    label: str | None = None,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    max_size: int | None = MIX_MAX_SIZE,
    stroke_scale: float = 1.0,
    device: str = "auto",
) -> Image.Image:
    """Render ``content`` in a mix of ``styles`` (images or ``.npy`` codes); ``weights`` are normalised to sum 1.

    mode: ``latent`` mixes in the style VAE's latent space (one-hot weights give that style exactly, see the module
    notes); ``average`` averages the raw codes, the usual blend, for comparison.
    """
    if mode not in ("latent", "average"):
        raise InputError(f"unknown mix mode {mode!r}; use latent or average")
    code = mixed_codes(styles, weights, label=label, model=model, device=device)[mode]
    return render_codes(content, code[None], max_size=max_size, stroke_scale=stroke_scale, device=device)[0]


def sample(
    content: StyleSource | Tensor,
    n: int = 8,
    *,
    label: str | None = None,
    like: Sequence[StyleSource] | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    max_size: int | None = MAX_SIZE,
    stroke_scale: float = 1.0,
    device: str = "auto",
    progress: Progress | None = None,
) -> Rendered:
    """``n`` new styles rendered on ``content``: drawn from the style VAE's prior (within ``label``: the shipped
    conditional model is used when a label is given and no model), or near the styles ``like``."""
    dev = resolve_device(device)
    space = _space(model, label is not None, dev)
    near = torch.stack([style_code(s, device=dev) for s in like]) if like else None
    codes = sample_codes(space, n, label=label, like=near, temperature=temperature, seed=seed).cpu()
    images = render_codes(content, codes, max_size=max_size, stroke_scale=stroke_scale, device=dev, progress=progress)
    return Rendered(images, codes.numpy())


def interpolate(
    content: StyleSource | Tensor,
    style_a: StyleSource,
    style_b: StyleSource,
    frames: int = 48,
    *,
    label: str | None = None,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    max_size: int | None = MAX_SIZE,
    stroke_scale: float = 1.0,
    device: str = "auto",
    progress: Progress | None = None,
) -> Rendered:
    """``frames`` renderings of ``content`` along a straight line in the latent space from ``style_a`` to
    ``style_b`` (images or ``.npy`` codes); the first and last frames use exactly the two styles' own codes."""
    if frames < 2:
        raise InputError(f"frames must be at least 2, got {frames}")
    dev = resolve_device(device)
    space = _space(model, label is not None, dev)
    a, b = style_code(style_a, device=dev), style_code(style_b, device=dev)
    codes = interpolate_codes(space, a, b, frames, label).cpu()
    images = render_codes(content, codes, max_size=max_size, stroke_scale=stroke_scale, device=dev, progress=progress)
    return Rendered(images, codes.numpy())


def save_code(code: np.ndarray, path: str | os.PathLike[str]) -> Path:
    """Save one style code ``(D,)`` as ``.npy`` (atomically), for use as a style in mix and interpolate."""
    dest = Path(path)
    if dest.suffix != ".npy":
        raise OutputError(f"cannot write {os.fspath(path)}: a style code is saved as .npy")
    try:
        _save_npy(np.asarray(code, dtype=np.float32).reshape(-1), dest)
    except OSError as exc:
        raise OutputError(f"cannot write {os.fspath(path)}: {exc.strerror or exc}") from None
    return dest


class StyleMap(NamedTuple):
    """A style map: the picture, the 2-D coordinates ``N×2``, the latent means ``N×Z``, the files laid out and
    their labels (sub-folder names, or None)."""

    image: Image.Image
    coords: np.ndarray
    latents: np.ndarray
    paths: list[Path]
    labels: list[str] | None


def find_styles(folder: str | os.PathLike[str]) -> tuple[list[Path], list[str] | None]:
    """Images in ``folder`` and in its immediate sub-folders; the labels are the sub-folder names (``(top)`` for
    images directly in the folder), or None when there are no sub-folders with images."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"cannot read {os.fspath(folder)}: no such folder")

    def images(d: Path) -> list[Path]:
        return [
            p
            for p in sorted(d.iterdir())
            if p.is_file() and p.suffix.lower() in io.IMAGE_EXTENSIONS and not p.name.startswith(".")
        ]

    paths = images(root)
    labels = ["(top)"] * len(paths)
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = images(sub)
        paths += found
        labels += [sub.name] * len(found)
    if not paths:
        raise InputError(f"cannot read {os.fspath(folder)}: no images in it or in its sub-folders")
    return paths, (None if set(labels) == {"(top)"} else labels)


def style_map(
    styles: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    method: str = "pca",
    photo: StyleSource | Tensor | None = None,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    thumb: int = 96,
    size: int = 1200,
    max_size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: Progress | None = None,
) -> StyleMap:
    """Lay a collection of styles out in 2-D: the PCA or t-SNE of their latent means, with thumbnails.

    styles: a folder (images in it and in its sub-folders; sub-folder names become coloured labels) or a list of
    files. Thumbnails are the style images themselves, or, with ``photo``, the photo rendered in each style (at
    ``max_size``, default twice the thumbnail size, then cropped square). ``seed`` seeds t-SNE.
    """
    if method not in MAP_METHODS:
        raise InputError(f"unknown map method {method!r}; use one of: {', '.join(MAP_METHODS)}")
    if not 16 <= thumb <= 512:
        raise InputError(f"thumbnail size must be between 16 and 512 pixels, got {thumb}")
    if isinstance(styles, str | os.PathLike):
        paths, labels = find_styles(styles)
    else:
        paths, labels = [Path(p) for p in styles], None
    if len(paths) < 2:
        raise InputError("a style map needs at least two styles")
    if method == "tsne" and len(paths) > TSNE_MAX:
        raise InputError(f"t-SNE here is exact and limited to {TSNE_MAX} styles, got {len(paths)}; use --method pca")
    check_seed(seed)
    dev = resolve_device(device)
    space = _space(model, False, dev)
    if space.conditional:
        raise InputError(f"a style map needs an unconditional style VAE; {space.name} is conditional")
    total = len(paths) * (2 if photo is not None else 1)

    def step(offset: int) -> Progress | None:
        return None if progress is None else (lambda i, _n: progress(offset + i, total))

    codes = torch.from_numpy(style_codes(paths, device=dev, progress=step(0))[:, 0])
    latents = space.encode(codes)[0].cpu().numpy()
    coords = map_coordinates(latents, method, seed)
    if photo is None:
        thumbs = [square_thumbnail(io.load_image(p).rgb, thumb) for p in paths]
    else:
        rendered = render_codes(photo, codes, max_size=max_size or 2 * thumb, device=dev, progress=step(len(paths)))
        thumbs = [square_thumbnail(np.asarray(im, dtype=np.float32) / 255, thumb) for im in rendered]
    title = f"{len(paths)} styles: {'PCA' if method == 'pca' else 't-SNE'} of their latent means ({space.name})"
    image = draw_style_map(coords, thumbs, labels=labels, title=title, size=size)
    return StyleMap(image, coords, latents, paths, labels)


def save_map_csv(result: StyleMap, path: str | os.PathLike[str]) -> Path:
    """Write a style map's table: file, label, x, y and the latent mean (z0..), one row per style, atomically."""
    import csv
    import io as pyio

    buffer = pyio.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["file", "label", "x", "y"] + [f"z{k}" for k in range(result.latents.shape[1])])
    for i, p in enumerate(result.paths):
        label = result.labels[i] if result.labels else ""
        writer.writerow(
            [str(p), label, *(f"{v:.5g}" for v in result.coords[i]), *(f"{v:.5g}" for v in result.latents[i])]
        )
    return io.write_atomic(path, buffer.getvalue().encode())
