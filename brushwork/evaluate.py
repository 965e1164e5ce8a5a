"""Metrics of style transfer: how much of the photo survives, how close the style is, how the colours moved.

Style transfer has no ground truth, so every metric here compares the result with one of its two inputs. Images
are ``H×W×3`` float arrays in 0..1 (anything :func:`brushwork.io.load_image` reads is accepted too); every metric
returns a plain float. Before measuring, both images are fitted to a common analysis size (``size``, the longer
side, default :data:`ANALYSIS_SIZE`): a result is resized to its photo's exact shape, so results rendered at any
resolution compare alike. Torch is imported only by the metrics that run a network.

Content preservation (result against the photo; higher = more of the photo kept):

- :func:`ssim` — structural similarity of the luminance (scikit-image), -1..1, 1 for identical images.
- :func:`edge_agreement` — F1 score of the photo's Canny edges against the result's (outlines at a 2-px blur,
  matched within 2 px), 0..1.
- :func:`content_distance` — mean squared difference of MobileNetV2 ``block5`` features, ≥ 0, lower = more kept
  (the content loss of Gatys et al. in the offline backbone).

Style distance (result against the style picture; lower = closer to the style):

- :func:`style_code_distance` — RMS difference of the 100-d codes that the Magenta style predictor (Ghiasi et al.
  2017, the network behind ``method="fast"``) gives the two pictures, in units of the spread of painting codes
  (the shipped style VAE's per-dimension std): ≥ 0, 0 for identical pictures, about 1.4 between two random
  paintings.
- :func:`feature_style_distances` — in the MobileNetV2 trunk's features (pretrained, no SWAG) at
  ``conv, block2, block5, block9, block12``: ``mean_std`` = Σ over layers of the squared differences of channel
  means and standard deviations (what AdaIN matches; Huang & Belongie 2017) and ``gram`` = Σ over layers of the
  mean squared difference of Gram matrices (Gatys et al. 2016). Both ≥ 0, 0 for identical pictures.

Colour (any two pictures; lower = closer colours):

- :func:`color_distance` — Hellinger distance between RGB-uv chroma histograms (Afifi et al., HistoGAN, CVPR 2021),
  0..1, 0 for identical colour distributions; independent of layout (a mirrored image has distance 0).

Optional metrics needing weights that brushwork cannot ship or download — LPIPS (AlexNet/VGG + linear heads) and
ArtFID (Inception-v3) — are available only where their packages and weights are already installed:
:func:`lpips_distance` raises :class:`~brushwork.errors.ModelUnavailable` (one line) otherwise; ArtFID is not
implemented (its Inception weights are not redistributable with brushwork). :func:`optional_metrics` says which
can run here.

Cost helpers: :func:`measure` runs a callable and returns its result, wall time and peak memory
(:class:`PeakMemory`).
"""

from __future__ import annotations

import math
import os
import resource
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from brushwork import io
from brushwork.errors import InputError, ModelUnavailable

if TYPE_CHECKING:
    import torch

ANALYSIS_SIZE = 384  # longer side at which images are compared
STYLE_LAYERS = ("conv", "block2", "block5", "block9", "block12")
CONTENT_LAYER = "block5"
EDGE_TOLERANCE = 2  # pixels an edge may move and still agree
EDGE_SIGMA = 2.0  # blur before edge detection (pixels at the analysis size)
HIST_BINS = 64  # RGB-uv histogram: bins per axis over [-HIST_RANGE, HIST_RANGE]
HIST_RANGE = 3.0
HIST_SIZE = 256  # longer side of the image the colour histogram is computed on
HIST_SIGMA = 0.02  # width of HistoGAN's inverse-quadratic kernel

Image = Any  # an H×W×3 float array in 0..1, or anything io.load_image reads

# name -> (direction, range, one-line definition): the report's column notes, the docs' table
METRICS: dict[str, tuple[str, str, str]] = {
    "ssim": ("higher", "-1..1", "structural similarity of the luminance to the photo (content kept)"),
    "edges": ("higher", "0..1", "F1 of the photo's Canny edges found in the result, within 2 px (content kept)"),
    "content": ("lower", "≥ 0", "MobileNetV2 block5 feature distance to the photo (content lost)"),
    "style_code": ("lower", "≥ 0", "style-predictor code distance to the style, in painting-spread units"),
    "mean_std": ("lower", "≥ 0", "channel mean/std distance to the style in MobileNetV2 features"),
    "gram": ("lower", "≥ 0", "Gram-matrix distance to the style in MobileNetV2 features"),
    "color_style": ("lower", "0..1", "RGB-uv histogram Hellinger distance to the style's colours"),
    "color_photo": ("lower", "0..1", "RGB-uv histogram Hellinger distance to the photo's colours"),
}
COST_COLUMNS = ("seconds", "memory_mb")
COST_NOTES: dict[str, tuple[str, str, str]] = {
    "seconds": ("lower", "s", "wall time of the stylization (networks loaded beforehand)"),
    "memory_mb": ("lower", "MB", "rise of the process's resident memory during the stylization (peak over start)"),
}


# ---------------------------------------------------------------------------------------------- images


def as_rgb(image: Image) -> np.ndarray:
    """An ``H×W×3`` float32 array in 0..1 from an array, a PIL image, a Picture or a path (alpha dropped)."""
    if isinstance(image, np.ndarray) and image.ndim == 3 and image.shape[2] == 3 and image.dtype == np.float32:
        return image
    if isinstance(image, io.Picture):
        return image.rgb
    return io.load_image(image).rgb


def fit(image: Image, size: int | None = ANALYSIS_SIZE) -> np.ndarray:
    """``image`` as RGB, shrunk so that its longer side is at most ``size`` (None: as it is)."""
    return io.resize_to_max(as_rgb(image), size)


def pair(result: Image, photo: Image, size: int | None = ANALYSIS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The photo fitted to ``size`` and the result resized to exactly the photo's fitted shape."""
    p = fit(photo, size)
    r = as_rgb(result)
    if r.shape[:2] != p.shape[:2]:
        r = io.resize(r, (p.shape[1], p.shape[0]))
    return r, p


def luminance(rgb: np.ndarray) -> np.ndarray:
    """BT.601 luma of an ``H×W×3`` array in 0..1 → ``H×W`` float64."""
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


# ------------------------------------------------------------------------------------ content preservation


def ssim(result: Image, photo: Image, *, size: int | None = ANALYSIS_SIZE) -> float:
    """Structural similarity (Wang et al. 2004) of the luminance of ``result`` and ``photo``.

    Range -1..1; 1 for identical images; higher = more of the photo's structure kept. scikit-image's
    ``structural_similarity`` with a 7-px window and data range 1.
    """
    try:
        from skimage.metrics import structural_similarity
    except ImportError:  # pragma: no cover - depends on the installation
        raise ModelUnavailable("SSIM needs scikit-image: pip install 'brushwork[eval]'") from None
    r, p = pair(result, photo, size)
    if min(p.shape[:2]) < 7:
        raise InputError(f"image is too small for SSIM ({p.shape[1]}×{p.shape[0]}): both sides need 7 px")
    return float(structural_similarity(luminance(r), luminance(p), data_range=1.0))


def edges(rgb: np.ndarray) -> np.ndarray:
    """Canny edges of the luminance after a Gaussian blur of σ = 2 px (thresholds 25/50 of 255): ``H×W`` bool.

    The blur keeps the outlines of objects and drops fine texture, so that painted strokes count less than the
    shapes they draw."""
    import cv2

    y = np.clip(luminance(rgb) * 255 + 0.5, 0, 255).astype(np.uint8)
    y = cv2.GaussianBlur(y, (0, 0), EDGE_SIGMA)
    return cv2.Canny(y, 25, 50, L2gradient=True) > 0


def edge_agreement(result: Image, photo: Image, *, size: int | None = ANALYSIS_SIZE) -> float:
    """F1 score of edge agreement: precision = share of the result's edges within 2 px of a photo edge, recall =
    share of the photo's edges within 2 px of a result edge.

    Range 0..1; 1 for identical images (and for two images without edges); higher = more of the photo's outlines
    kept. Blurring loses edges (recall falls); painted texture adds edges of its own (precision falls).
    """
    import cv2

    r, p = pair(result, photo, size)
    er, ep = edges(r), edges(p)
    if not er.any() and not ep.any():
        return 1.0
    if not er.any() or not ep.any():
        return 0.0
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * EDGE_TOLERANCE + 1, 2 * EDGE_TOLERANCE + 1))
    near_p = cv2.dilate(ep.astype(np.uint8), kernel) > 0
    near_r = cv2.dilate(er.astype(np.uint8), kernel) > 0
    precision = float((er & near_p).sum() / er.sum())
    recall = float((ep & near_r).sum() / ep.sum())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


# ---------------------------------------------------------------------------------------------- colour


def rgb_uv_histogram(image: Image, *, bins: int = HIST_BINS, size: int = HIST_SIZE) -> np.ndarray:
    """The RGB-uv histogram of HistoGAN (Afifi et al. 2021): ``3×bins×bins`` float64 summing to 1.

    For each channel c ∈ {R, G, B} the pixel's log-chroma against the other two channels
    (u = log c - log c', v = log c - log c'') is spread over the ``bins``² grid on [-3, 3]² with an
    inverse-quadratic kernel of width 0.02, weighted by the pixel's intensity √(R²+G²+B²); so dark pixels, whose
    chroma is noise, count little. Computed on the image shrunk to ``size`` px.
    """
    rgb = fit(image, size).reshape(-1, 3).astype(np.float32)
    weight = np.sqrt((rgb**2).sum(1))
    logs = np.log(rgb + np.float32(1e-6))
    centres = np.linspace(-HIST_RANGE, HIST_RANGE, bins, dtype=np.float32)
    sigma = np.float32(HIST_SIGMA)
    hist = np.empty((3, bins, bins))
    for c in range(3):
        a, b = (c + 1) % 3, (c + 2) % 3
        u = logs[:, c] - logs[:, a]
        v = logs[:, c] - logs[:, b]
        ku = 1.0 / (1.0 + ((u[:, None] - centres[None]) / sigma) ** 2)  # float32 throughout: 4x faster
        kv = 1.0 / (1.0 + ((v[:, None] - centres[None]) / sigma) ** 2)
        hist[c] = (ku * weight[:, None]).T @ kv
    total = hist.sum()
    return hist / total if total > 0 else np.full_like(hist, 1.0 / hist.size)


def color_distance(a: Image, b: Image) -> float:
    """Hellinger distance between the RGB-uv histograms of two pictures: ``√(1 - Σ √(h_a · h_b))``.

    Range 0..1; 0 for identical colour distributions (whatever the layout); lower = closer colours. Use it
    against the style (did the result take the style's palette?) or the photo (were its colours kept?).
    """
    ha, hb = rgb_uv_histogram(a), rgb_uv_histogram(b)
    return float(math.sqrt(max(0.0, 1.0 - float(np.sqrt(ha * hb).sum()))))


# ----------------------------------------------------------------------------------------- style codes


@lru_cache(maxsize=1)
def _code_spread() -> np.ndarray:
    """Per-dimension std of painting codes, from the shipped style VAE (ones if that file is missing)."""
    from safetensors import safe_open

    from brushwork.samples import ASSETS

    path = ASSETS / "models" / "style-vae.safetensors"
    if not path.is_file():
        return np.ones(100)
    with safe_open(str(path), framework="numpy") as fh:
        return np.asarray(fh.get_tensor("code_std"), dtype=np.float64).clip(1e-6)


def style_code(image: Image, *, device: str = "cpu") -> np.ndarray:
    """The 100-d code of the Magenta style predictor for a picture (its centred square at 256 px)."""
    from brushwork.methods.fast import get_stylizer

    return np.asarray(get_stylizer(device).style_code(as_rgb(image)), dtype=np.float64)


def code_distance(a: np.ndarray, b: np.ndarray) -> float:
    """RMS difference of two style codes in units of the spread of painting codes (see the module docstring)."""
    return float(np.sqrt((((np.asarray(a) - np.asarray(b)) / _code_spread()) ** 2).mean()))


def style_code_distance(result: Image, style: Image, *, device: str = "cpu") -> float:
    """Distance between the style-predictor codes of ``result`` and ``style``: ≥ 0, 0 for identical pictures,
    lower = closer to the style (about 1.4 between two unrelated paintings)."""
    return code_distance(style_code(result, device=device), style_code(style, device=device))


# ------------------------------------------------------------------------------------- backbone features


@lru_cache(maxsize=2)
def feature_net(device: str = "cpu") -> Any:
    """The offline MobileNetV2 trunk (ImageNet-pretrained, without SWAG) the feature metrics use."""
    from brushwork.nets.backbone import build_backbone

    return build_backbone("mobilenet", "imagenet", swag=False, device=device)


def features(image: Image, layers: Sequence[str], *, size: int | None = ANALYSIS_SIZE, device: str = "cpu") -> dict:
    """MobileNetV2 features ``{layer: 1×C×h×w}`` of a picture fitted to ``size``."""
    import torch

    with torch.no_grad():
        return feature_net(device)(io.to_tensor(fit(image, size), device), list(layers))


def style_statistics(feats: Mapping[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, ...]]:
    """Per layer: channel mean, channel std and Gram matrix (the statistics the style distances compare)."""
    from brushwork.losses import gram_matrix, mean_std

    return {k: (*mean_std(f), gram_matrix(f)) for k, f in feats.items()}


def statistics_distances(
    a: Mapping[str, tuple[torch.Tensor, ...]], b: Mapping[str, tuple[torch.Tensor, ...]]
) -> dict[str, float]:
    """``mean_std`` and ``gram`` distances between two :func:`style_statistics` (summed over their layers)."""
    import torch

    ms = gram = 0.0
    for layer in a:
        (am, asd, ag), (bm, bsd, bg) = a[layer], b[layer]
        ms += float(torch.mean((am - bm) ** 2) + torch.mean((asd - bsd) ** 2))
        gram += float(torch.mean((ag - bg) ** 2))
    return {"mean_std": ms, "gram": gram}


def feature_style_distances(
    result: Image, style: Image, *, size: int | None = ANALYSIS_SIZE, device: str = "cpu"
) -> dict[str, float]:
    """``{"mean_std": …, "gram": …}``: style distances of ``result`` to ``style`` in MobileNetV2 features (module
    docstring); ≥ 0, 0 for identical pictures, lower = closer to the style."""
    sa = style_statistics(features(result, STYLE_LAYERS, size=size, device=device))
    sb = style_statistics(features(style, STYLE_LAYERS, size=size, device=device))
    return statistics_distances(sa, sb)


def feature_content_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean squared difference of two feature maps of the same shape (the content loss)."""
    from brushwork.losses import content_loss

    return float(content_loss(a, b))


def content_distance(result: Image, photo: Image, *, size: int | None = ANALYSIS_SIZE, device: str = "cpu") -> float:
    """Mean squared difference of the MobileNetV2 ``block5`` features of ``result`` and ``photo``.

    Range ≥ 0; 0 for identical images; lower = more of the photo's content kept.
    """
    r, p = pair(result, photo, size)
    fr = features(r, [CONTENT_LAYER], size=None, device=device)[CONTENT_LAYER]
    fp = features(p, [CONTENT_LAYER], size=None, device=device)[CONTENT_LAYER]
    return feature_content_distance(fr, fp)


# ------------------------------------------------------------------------------------------- all at once


@dataclass
class Evaluator:
    """Every metric of :data:`METRICS` for (result, photo, style) triples, caching per-photo and per-style work.

    ``size``: analysis size (longer side). ``metrics``: the subset to compute (default: all). Reuse one instance
    for a whole report: a style's code and feature statistics, and a photo's features, are computed once.
    """

    size: int | None = ANALYSIS_SIZE
    metrics: tuple[str, ...] = tuple(METRICS)
    device: str = "cpu"
    # id(image) -> (the image itself, kept so that its id stays unique, and the work done on it)
    _styles: dict[int, tuple[Any, np.ndarray, np.ndarray | None, dict | None]] = field(default_factory=dict, repr=False)
    _photos: dict[int, tuple[Any, np.ndarray, Any]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        unknown = [m for m in self.metrics if m not in METRICS]
        if unknown:
            raise InputError(f"unknown metric {', '.join(unknown)}: choose from {', '.join(METRICS)}")

    def _needs(self, *names: str) -> bool:
        return any(n in self.metrics for n in names)

    @property
    def min_side(self) -> int:
        """The shortest side, in pixels at the analysis size, that the chosen metrics can measure: 16 for the style
        code (the style predictor's minimum), 7 for SSIM (its window), else 1."""
        from brushwork.options import MIN_SIDE

        return MIN_SIDE if self._needs("style_code") else 7 if self._needs("ssim") else 1

    def check_size(self, size: tuple[int, int], name: object) -> None:
        """InputError (one line, naming the picture) when a photo or style of ``size`` (width, height) would be too
        small to measure once fitted to the analysis size: checked from the numbers alone, before any work."""
        width, height = io.bounded_size(size, self.size)
        need = self.min_side
        if min(width, height) >= need:
            return
        if min(size) >= need:
            raise InputError(
                f"{name} ({size[0]}×{size[1]}) is too thin for metric size {self.size}: it would be measured at "
                f"{width}×{height}, and both sides need {need} px (raise the metric size)"
            )
        raise InputError(f"{name} is too small to measure ({size[0]}×{size[1]}): both sides need {need} px")

    def _style(self, style: Image) -> tuple[np.ndarray, np.ndarray | None, dict | None]:
        key = id(style)
        if key not in self._styles:
            rgb = fit(style, self.size)
            code = style_code(rgb, device=self.device) if self._needs("style_code") else None
            stats = None
            if self._needs("mean_std", "gram"):
                stats = style_statistics(features(rgb, STYLE_LAYERS, size=None, device=self.device))
            self._styles[key] = (style, rgb, code, stats)
        return self._styles[key][1:]

    def _photo(self, photo: Image) -> tuple[np.ndarray, Any]:
        key = id(photo)
        if key not in self._photos:
            rgb = fit(photo, self.size)
            feat = None
            if self._needs("content"):
                feat = features(rgb, [CONTENT_LAYER], size=None, device=self.device)[CONTENT_LAYER]
            self._photos[key] = (photo, rgb, feat)
        return self._photos[key][1:]

    def __call__(self, result: Image, photo: Image, style: Image) -> dict[str, float]:
        """The metrics of ``result`` (stylized ``photo`` in ``style``), named as in :data:`METRICS`.

        Pass the same photo and style objects again to reuse their cached work (cached by identity).
        """
        p, p_feat = self._photo(photo)
        s, s_code, s_stats = self._style(style)
        r, _ = pair(result, p, None)
        out: dict[str, float] = {}
        if "ssim" in self.metrics:
            out["ssim"] = ssim(r, p, size=None)
        if "edges" in self.metrics:
            out["edges"] = edge_agreement(r, p, size=None)
        if self._needs("content", "mean_std", "gram"):
            feats = features(r, [CONTENT_LAYER, *STYLE_LAYERS], size=None, device=self.device)
            if p_feat is not None:
                out["content"] = feature_content_distance(feats[CONTENT_LAYER], p_feat)
            if s_stats is not None:
                d = statistics_distances(style_statistics({k: feats[k] for k in STYLE_LAYERS}), s_stats)
                out.update({k: v for k, v in d.items() if k in self.metrics})
        if s_code is not None:
            out["style_code"] = code_distance(style_code(r, device=self.device), s_code)
        if "color_style" in self.metrics:
            out["color_style"] = color_distance(r, s)
        if "color_photo" in self.metrics:
            out["color_photo"] = color_distance(r, p)
        return {m: out[m] for m in self.metrics}


# --------------------------------------------------------------------------------------- optional metrics


def lpips_distance(a: Image, b: Image, *, net: str = "alex", device: str = "cpu") -> float:
    """LPIPS (Zhang et al. 2018) between two pictures, 0 for identical ones, lower = more alike — only where the
    ``lpips`` package and its backbone weights are already installed (brushwork never downloads them).

    Raises :class:`ModelUnavailable` (one line) otherwise.
    """
    try:
        import lpips  # type: ignore[import-not-found]
        import torch
    except ImportError:
        raise ModelUnavailable(
            "LPIPS needs the lpips package and its network weights, which are not installed"
        ) from None
    try:
        model = lpips.LPIPS(net=net, verbose=False).to(device).eval()
    except Exception as exc:  # the backbone's weights would have to be downloaded
        raise ModelUnavailable(f"LPIPS weights are not available here: {' '.join(str(exc).split())[:120]}") from None
    x, y = pair(a, b)
    with torch.no_grad():
        return float(model(io.to_tensor(x, device) * 2 - 1, io.to_tensor(y, device) * 2 - 1).mean())


def optional_metrics() -> dict[str, str]:
    """``{name: "available" | reason}`` for the metrics that need weights brushwork does not ship."""
    import importlib.util

    status = {}
    status["lpips"] = (
        "available (if its backbone weights are cached)"
        if importlib.util.find_spec("lpips") is not None
        else "unavailable: the lpips package and its AlexNet/VGG weights are not installed"
    )
    status["artfid"] = "unavailable: needs Inception-v3 weights, which brushwork cannot ship or download"
    return status


# ------------------------------------------------------------------------------------------ time, memory


def _rss_mb() -> float:
    """Resident memory of this process now (MB), from /proc; the peak so far where /proc is missing."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class PeakMemory:
    """Context manager measuring the peak resident memory (MB) while its block runs.

    A background thread samples the process's resident set every ``interval`` seconds (so a peak shorter than
    that can be missed); ``peak_mb`` is the highest sample, ``delta_mb`` its rise over the start. On CUDA the
    allocator's exact peak is also taken (``cuda_peak_mb``).
    """

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.start_mb = self.peak_mb = 0.0
        self.cuda_peak_mb: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak_mb = max(self.peak_mb, _rss_mb())

    def __enter__(self) -> PeakMemory:
        self.start_mb = self.peak_mb = _rss_mb()
        self._cuda = _cuda_loaded()
        if self._cuda:
            import torch

            torch.cuda.reset_peak_memory_stats()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.peak_mb = max(self.peak_mb, _rss_mb())
        if self._cuda:
            import torch

            self.cuda_peak_mb = torch.cuda.max_memory_allocated() / 2**20

    @property
    def delta_mb(self) -> float:
        return self.peak_mb - self.start_mb


def _cuda_loaded() -> bool:
    import sys

    torch = sys.modules.get("torch")
    return bool(torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized())


T = TypeVar("T")


@dataclass(frozen=True)
class Cost:
    """What :func:`measure` reports: wall seconds, peak resident memory (MB), its rise over the start, and the
    peak of CUDA's allocator (MB) where torch runs on a GPU (else None)."""

    seconds: float
    peak_mb: float
    delta_mb: float
    gpu_peak_mb: float | None = None


def measure(fn: Callable[[], T]) -> tuple[T, Cost]:
    """Run ``fn()`` and return its result with its :class:`Cost`."""
    with PeakMemory() as mem:
        t = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - t
    return value, Cost(seconds, mem.peak_mb, mem.delta_mb, mem.cuda_peak_mb)


# ------------------------------------------------------------------------------------- summaries, Pareto


def describe(values: Iterable[float]) -> dict[str, float]:
    """``mean``, ``median``, ``std`` and ``n`` of the finite values (NaN where there are none)."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return {"mean": math.nan, "median": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(v.mean()), "median": float(np.median(v)), "std": float(v.std()), "n": int(v.size)}


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the points not dominated when both coordinates are to be *maximised*, sorted by the first.

    A point dominates another when it is at least as good in both and better in one. Negate a coordinate that is
    to be minimised (e.g. ``(ssim, -style_distance)``).
    """
    front = []
    for i, (a, b) in enumerate(points):
        dominated = any((c >= a and d >= b) and (c > a or d > b) for j, (c, d) in enumerate(points) if j != i)
        if not dominated and (a, b) not in [points[k] for k in front]:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])


TARGETS = {"balanced": 0.5, "content": 0.75, "style": 0.25}  # weight of content preservation in the choice


def recommend(points: Sequence[tuple[float, float]], target: str = "balanced") -> int:
    """Index of the recommended point of the Pareto front of ``points`` (both maximised): the best weighted sum
    of the two coordinates after scaling each to 0..1 over the points, content weighted by :data:`TARGETS`."""
    if target not in TARGETS:
        raise InputError(f"unknown target {target!r}: use {', '.join(TARGETS)}")
    if not points:
        raise InputError("nothing to recommend from")
    arr = np.asarray(points, dtype=np.float64)
    lo, hi = arr.min(0), arr.max(0)
    scaled = (arr - lo) / np.where(hi > lo, hi - lo, 1.0)
    w = TARGETS[target]
    front = pareto_front([tuple(p) for p in arr])
    return max(front, key=lambda i: w * scaled[i, 0] + (1 - w) * scaled[i, 1])


def read_image_or_none(path: Path) -> np.ndarray | None:
    """An existing result image as RGB, or None when it is missing or unreadable (a re-run makes it again)."""
    try:
        return io.load_image(path).rgb
    except Exception:
        return None
