"""Optimization-based style transfer (Gatys, Ecker & Bethge 2016): the engine behind ``brushwork optimize``.

The output image itself is optimized so that its features in a backbone network match the content image's
features (content loss) and the style images' feature statistics (style loss: Gram matrices, mean and standard
deviation, or Wasserstein-2 between Gaussians), with a total-variation penalty for smoothness::

    from brushwork.methods.optimize import optimize
    result = optimize(content, [style], iterations=300, size=512, min_size=256)
    result.image        # 1×3×H×W float32 in 0..1 on the CPU

Defaults live in one place, :data:`DEFAULTS` (an :class:`OptimizeOptions`); the CLI reads its defaults from
there. Progress flows out through ``callback(iteration, losses, image)``; a callback returning ``True`` stops
the run, and so does Ctrl-C (KeyboardInterrupt): either way the best image so far is returned.

Each loss term is divided by a constant from its target (:func:`brushwork.losses.style_scale`; the content term
by the mean square of the content features), so a term is a relative error of about 1 at worst and the same
weights work on every backbone. ``content_weight``, ``style_weight`` and ``tv_weight`` are the paper's alpha,
beta and gamma on that scale.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from brushwork.errors import InputError
from brushwork.methods.optimize_large import UNTILED_BYTES_PER_PIXEL as _UNTILED_BYTES_PER_PIXEL
from brushwork.options import MAX_LR, pyramid_sizes
from brushwork.options import OptimizeOptions as _ApiOptions

if TYPE_CHECKING:  # torch is imported inside the functions, so that the CLI can read DEFAULTS without it
    import torch
    from torch import Tensor

    from brushwork.nets.backbone import FeatureExtractor

LOSSES = ("gram", "mean_std", "w2")
OPTIMIZERS = ("lbfgs", "adam")
INITS = ("content", "noise", "style", "fast", "microast")
PRESERVE_COLOR = ("luminance", "histogram")
BACKBONES = ("auto", "vgg19", "vgg16", "mobilenet")
DEVICES = ("auto", "cpu", "cuda", "mps")

BLOWUP = 2.0  # a loss this many times the best so far counts as an overshooting step (see optimize)
MIN_SIDE = 16  # the shorter side of the output, in pixels, and the smallest --size / --min-size
MAX_SIDE = 8192  # the largest --size / --min-size
MAX_SEED = 2**63  # seeds are 0 <= seed < MAX_SEED (torch.Generator.manual_seed's range)

Callback = Callable[[int, dict[str, float], "Tensor"], Any]


_API = _ApiOptions()  # the contract's defaults (brushwork.options), shared by the tensor-level function


@dataclass(frozen=True)
class OptimizeOptions:
    """The defaults of the tensor-level :func:`optimize`; those it shares with ``method="optimize"`` come from
    :class:`brushwork.options.OptimizeOptions` (sizes and iterations are per scale here, over the run there)."""

    content_weight: float = _API.content_weight  # alpha
    style_weight: float = _API.style_weight  # beta (on the relative scale, see the module docstring)
    tv_weight: float = _API.tv_weight  # gamma; the TV term is the mean squared difference of neighbouring pixels (0..1)
    content_layers: tuple[str, ...] | None = _API.content_layers  # None: the backbone's default (VGG: relu4_2)
    style_layers: tuple[str, ...] | None = _API.style_layers  # None: the backbone's default (VGG: relu1_1 … relu5_1)
    style_layer_weights: tuple[float, ...] | None = _API.style_layer_weights  # one per style layer
    loss: str = _API.loss  # gram | mean_std | w2
    optimizer: str = _API.optimizer  # lbfgs | adam
    learning_rate: float | None = _API.learning_rate  # None: 1.0 for L-BFGS, 0.02 for Adam
    iterations: int = 300  # per scale of the pyramid (or one count per scale)
    init: str = "content"  # content | noise | style | fast
    size: int | None = 512  # longer side of the output; None keeps the content image's size
    min_size: int | None = None  # longer side of the first scale; None: a single scale
    style_scale: float = 1.0  # the style images' longer side, relative to the output's at each scale
    preserve_color: str | None = None  # None | luminance | histogram
    backbone: str = _API.backbone  # auto | vgg19 | vgg16 | mobilenet
    weights: str = _API.weights  # imagenet | random | a local file
    pool: str = _API.pool  # max | avg (VGG)
    swag: float | None = _API.swag  # SWAG temperature; None: the backbone's default (MobileNet on, VGG off)
    normalize_gradients: bool = _API.normalize_gradients
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | mps | any torch device string


DEFAULTS = OptimizeOptions()


@dataclass
class OptimizeResult:
    """What :func:`optimize` returns.

    image: ``1×3×H×W`` float32 in 0..1 on the CPU — the lowest-loss image of the last scale reached, resized to
        the output size if the run stopped at a coarser scale.
    history: per iteration, the loss terms (weighted) and their total.
    iterations: iterations run, over all scales. interrupted: stopped by Ctrl-C or the callback.
    sizes: (width, height) of each scale. seconds: wall time of the optimization.
    best_loss: the total loss of ``image`` at its scale. backbone: the backbone's name.
    """

    image: Tensor
    history: list[dict[str, float]] = field(default_factory=list)
    iterations: int = 0
    interrupted: bool = False
    sizes: list[tuple[int, int]] = field(default_factory=list)
    seconds: float = 0.0
    best_loss: float = math.inf
    backbone: str = ""


# ----------------------------------------------------------------------------------------------- helpers


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """:func:`brushwork.device.resolve_device` as a ``torch.device``."""
    import torch

    from brushwork.device import resolve_device as resolve

    return device if isinstance(device, torch.device) else torch.device(resolve(device))


def fit_size(width: int, height: int, longer: int) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is ``longer`` (aspect ratio kept; each side ≥ 1)."""
    scale = longer / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """``N×C×H×W`` → ``N×C×h×w`` for ``size`` = (w, h): antialiased bicubic, clipped to 0..1."""
    import torch.nn.functional as F

    width, height = size
    if image.shape[-1] == width and image.shape[-2] == height:
        return image
    out = F.interpolate(image, size=(height, width), mode="bicubic", align_corners=False, antialias=True)
    return out.clamp(0, 1)


def _style_longer(longer: int, style_scale: float) -> int:
    """The style images' longer side at a scale whose output's longer side is ``longer``."""
    return max(MIN_SIDE, round(longer * style_scale))


def check_sizes(
    width: int,
    height: int,
    size: int,
    style_sizes: Sequence[tuple[int, int]],
    style_scale: float,
    max_pixels: int | None = None,
) -> tuple[int, int]:
    """Check the output and the scaled styles before any work; return the output's (width, height).

    The content (``width``×``height``) scaled to ``size`` on its longer side must keep a shorter side of at least
    :data:`MIN_SIDE` pixels; the output and every style image scaled by ``style_scale`` must stay within
    ``max_pixels`` (default :data:`brushwork.io.DEFAULT_MAX_PIXELS`). Raises InputError.
    """
    from brushwork.io import DEFAULT_MAX_PIXELS

    limit = DEFAULT_MAX_PIXELS if max_pixels is None else int(max_pixels)
    out_w, out_h = fit_size(width, height, size)
    if min(out_w, out_h) < MIN_SIDE:
        raise InputError(
            f"the content image ({width}×{height}) is too thin: at size {size} it would be {out_w}×{out_h}, and both "
            f"sides need at least {MIN_SIDE} px"
        )
    if out_w * out_h > limit:
        raise InputError(f"the output would be {out_w}×{out_h} = {out_w * out_h:,} pixels, more than {limit:,}")
    longer = max(out_w, out_h) * float(style_scale)
    for i, (w, h) in enumerate(style_sizes):
        if not math.isfinite(longer) or longer * longer * min(w, h) / max(w, h) > limit:  # before rounding
            raise InputError(
                f"style image {i + 1} scaled by --style-scale {style_scale:g} would have more than {limit:,} pixels"
            )
        s_w, s_h = fit_size(w, h, _style_longer(max(out_w, out_h), style_scale))
        if s_w * s_h > limit:
            raise InputError(
                f"style image {i + 1} scaled by --style-scale {style_scale:g} would be {s_w}×{s_h} = "
                f"{s_w * s_h:,} pixels, more than {limit:,}"
            )
    return out_w, out_h


def _as_image(value: Any, what: str) -> Tensor:
    """A ``1×3×H×W`` float tensor (0..1) from a tensor, an array, a PIL image, a Picture or a path."""
    import torch

    if isinstance(value, torch.Tensor):
        t = value.detach()
        if t.dim() == 3:
            t = t[None]
        if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] != 3:
            raise InputError(f"{what} must be a 1×3×H×W image tensor, got shape {tuple(value.shape)}")
        return t.float()
    from brushwork import io

    return io.to_tensor(io.in_memory(value, what).rgb)


def _as_mask(value: Any, n_styles: int) -> Tensor:
    """Region weights ``1×K×H×W`` (K = number of styles) from a mask.

    A grey mask (an image file, a PIL image or array, or a ``1×1×H×W`` / ``H×W`` tensor in 0..1; colour is
    reduced to its luminance) is split into K regions by its grey level: level ``round(v·(K−1))`` selects style
    ``k`` (two styles: dark → first style, light → second). With a single style the grey level is the weight of
    the style (white: stylized, black: content only). A ``1×K×H×W`` tensor is taken as soft weights, one map per
    style.
    """
    import torch

    from brushwork import color

    if isinstance(value, torch.Tensor):
        t = value.detach().float()
        t = t[None, None] if t.dim() == 2 else t[None] if t.dim() == 3 else t
        if t.dim() != 4 or t.shape[0] != 1 or t.shape[1] not in (1, 3, n_styles):
            raise InputError(f"the mask must be a grey image or 1×{n_styles}×H×W weights, got shape {tuple(t.shape)}")
        if t.shape[1] == n_styles and n_styles > 1:
            return _finite_mask(t.clamp_min(0))
        grey = color.luminance(t) if t.shape[1] == 3 else t
    else:
        from brushwork import io

        grey = color.luminance(io.to_tensor(io.in_memory(value, "the mask").rgb))
    grey = grey.clamp(0, 1)
    if n_styles == 1:
        return _finite_mask(grey)
    level = torch.round(grey * (n_styles - 1))
    return _finite_mask(torch.cat([(level == k).float() for k in range(n_styles)], dim=1))


def _finite_mask(weights: Tensor) -> Tensor:
    import torch

    if not torch.isfinite(weights).all():
        raise InputError("the mask holds values that are not finite")
    return weights


def _choice(value: Any, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise InputError(f"unknown {what} {value!r}; choose one of {', '.join(allowed)}")
    return value


def _positive(value: float, what: str, allow_zero: bool = True) -> float:
    v = float(value)
    if not math.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
        raise InputError(f"{what} must be a {'non-negative' if allow_zero else 'positive'} number, got {value}")
    return v


def choose_backbone(backbone: str, weights: str | os.PathLike[str]) -> str:
    """Resolve ``auto``: VGG-19 when its weights are given as a file or already in the store (cached or
    downloaded), else the MobileNetV2 trunk that ships with brushwork's dependencies."""
    if backbone != "auto":
        return backbone
    from brushwork import store

    if not (isinstance(weights, str) and weights in ("imagenet", "random")):
        return "mobilenet" if os.fspath(weights).lower().endswith(".onnx") else "vgg19"
    if weights == "imagenet" and store.status("vgg19") in ("cached", "source"):
        return "vgg19"
    return "mobilenet"


# ----------------------------------------------------------------------------------------------- targets


@dataclass
class _StyleTarget:
    stats: tuple[Tensor, ...]  # gram: (G,); mean_std: (mean, std); w2: (mean, cov, cov_sqrt)
    scale: float


def _stats(kind: str, f: Tensor, weight: Tensor | None = None) -> tuple[Tensor, ...]:
    from brushwork import losses

    if kind == "gram":
        return (losses.gram_matrix(f, weight),)
    if kind == "mean_std":
        return losses.mean_std(f, weight)
    return losses.mean_cov(f, weight)


def _blend(kind: str, stats: list[tuple[Tensor, ...]], weights: Sequence[float]) -> tuple[Tensor, ...]:
    """Statistics of the mixture of several styles' feature distributions (weights sum to 1)."""
    import torch

    if len(stats) == 1:
        return stats[0]
    if kind == "gram":  # Gram matrices are second moments: they mix linearly
        return (sum(w * s[0] for w, s in zip(weights, stats, strict=True)),)
    mean = sum(w * s[0] for w, s in zip(weights, stats, strict=True))
    if kind == "mean_std":
        second = sum(w * (s[1] ** 2 + s[0] ** 2) for w, s in zip(weights, stats, strict=True))
        return mean, torch.sqrt((second - mean**2).clamp_min(1e-5))
    outer = [s[0][..., :, None] * s[0][..., None, :] for s in stats]
    second = sum(w * (s[1] + o) for w, s, o in zip(weights, stats, outer, strict=True))
    return mean, second - mean[..., :, None] * mean[..., None, :]


def _target(kind: str, stats: tuple[Tensor, ...]) -> _StyleTarget:
    from brushwork import losses

    if kind == "w2":
        stats = (stats[0], stats[1], losses.sqrtm_psd(stats[1]))
    return _StyleTarget(stats, losses.style_scale(kind, stats))


def _style_term(kind: str, f: Tensor, target: _StyleTarget, weight: Tensor | None = None) -> Tensor:
    from brushwork import losses

    s = target.stats
    if kind == "gram":
        value = losses.gram_loss(f, s[0], weight)
    elif kind == "mean_std":
        value = losses.mean_std_loss(f, s[0], s[1], weight)
    else:
        value = losses.wasserstein2_loss(f, s[0], s[1], weight, target_cov_sqrt=s[2])
    return value / target.scale


def _layer_weight(mask: Tensor, f: Tensor) -> Tensor:
    """Region weights ``1×K×H×W`` at the image's size → ``1×K×h×w`` at a layer's resolution (area average)."""
    import torch.nn.functional as F

    return F.adaptive_avg_pool2d(mask, f.shape[-2:]) if mask.shape[-2:] != f.shape[-2:] else mask


# ----------------------------------------------------------------------------------------------- the engine


def optimize(
    content: Any,
    styles: Any,
    *,
    style_weights: Sequence[float] | None = None,
    content_weight: float = DEFAULTS.content_weight,
    style_weight: float = DEFAULTS.style_weight,
    tv_weight: float = DEFAULTS.tv_weight,
    content_layers: Sequence[str] | None = DEFAULTS.content_layers,
    style_layers: Sequence[str] | Mapping[str, float] | None = DEFAULTS.style_layers,
    style_layer_weights: Sequence[float] | None = DEFAULTS.style_layer_weights,
    loss: str = DEFAULTS.loss,
    optimizer: str = DEFAULTS.optimizer,
    learning_rate: float | None = DEFAULTS.learning_rate,
    iterations: int | Sequence[int] = DEFAULTS.iterations,
    init: str = DEFAULTS.init,
    size: int | None = DEFAULTS.size,
    min_size: int | None = DEFAULTS.min_size,
    style_scale: float = DEFAULTS.style_scale,
    preserve_color: str | bool | None = DEFAULTS.preserve_color,
    mask: Any = None,
    seed: int = DEFAULTS.seed,
    backbone: str | FeatureExtractor = DEFAULTS.backbone,
    weights: str | os.PathLike[str] = DEFAULTS.weights,
    pool: str = DEFAULTS.pool,
    swag: float | None = DEFAULTS.swag,
    normalize_gradients: bool = DEFAULTS.normalize_gradients,
    device: str | torch.device = DEFAULTS.device,
    callback: Callback | None = None,
) -> OptimizeResult:
    """Stylize ``content`` with one or more ``styles`` by optimizing the image (Gatys et al. 2016).

    content: ``1×3×H×W`` tensor in 0..1 (or an array, PIL image, Picture or path, loaded with brushwork.io).
    styles: one style image or a list of them (same forms). style_weights: their mix (normalised to sum 1); with
        a ``mask``, the weight of each style's region term instead.
    content_weight, style_weight, tv_weight: alpha, beta, gamma (relative scale; see the module docstring).
    content_layers, style_layers, style_layer_weights: backbone layer names and per-style-layer weights
        (``style_layers`` may be a ``{layer: weight}`` mapping); None takes the backbone's defaults.
    loss: "gram", "mean_std" or "w2". optimizer: "lbfgs" (one function evaluation per iteration, no line search,
        as in neural-style) or "adam"; learning_rate: None for 1.0 / 0.02.
    iterations: per scale, or a list with one count per scale (coarse to fine).
    init: "content", "noise" (seeded), "style" (the heaviest style, stretched), "fast" (the fast feed-forward
        network's output for the heaviest style) or "microast" (MicroAST's).
    size: longer side of the output (None: the content's). min_size: first scale of a coarse-to-fine pyramid
        (steps of √2; each scale starts from the previous result). style_scale: style size relative to the output.
    preserve_color: None, "luminance" (luminance-only transfer, the photo's chroma kept; True means this) or
        "histogram" (the styles recoloured to the photo's colour mean and covariance first).
    mask: image or tensor assigning styles to regions (see :func:`_as_mask`): a grey image whose dark to light
        levels pick the first to last style, or ``1×K×H×W`` weights. seed: for noise init and random weights.
    backbone: "auto", "vgg19", "vgg16", "mobilenet" or a built FeatureExtractor. weights: "imagenet", "random" or
        a local file. pool: "max"/"avg" (VGG). swag: SWAG temperature (None: the backbone's default).
    normalize_gradients: divide each layer's gradient by its L1 norm (neural-style's option).
    device: "auto", "cpu", "cuda", "mps". callback(iteration, losses, image): after each iteration's evaluation,
        with the 1-based iteration over all scales, the weighted loss terms and their "total", and the current
        image ``1×3×h×w`` in 0..1 (detached, on ``device``); returning True stops the run.

    Raises InputError for bad values, ModelUnavailable for missing weights, DeviceError for a missing device.
    """
    import torch
    import torch.nn.functional as F

    from brushwork import color

    # ---- validate everything before any heavy work
    loss = _choice(loss, LOSSES, "style loss")
    optimizer = _choice(optimizer, OPTIMIZERS, "optimizer")
    init = _choice(init, INITS, "init")
    if preserve_color is True:
        preserve_color = "luminance"
    elif preserve_color is False or preserve_color in ("", "none"):
        preserve_color = None
    if preserve_color is not None:
        _choice(preserve_color, PRESERVE_COLOR, "colour preservation")
    content_weight = _positive(content_weight, "the content weight")
    style_weight = _positive(style_weight, "the style weight")
    tv_weight = _positive(tv_weight, "the TV weight")
    style_scale = _positive(style_scale, "the style scale", allow_zero=False)
    if learning_rate is not None:
        learning_rate = _positive(learning_rate, "the learning rate", allow_zero=False)
    per_scale = list(iterations) if isinstance(iterations, (list, tuple)) else [iterations]
    for n in per_scale:
        if isinstance(n, bool) or not isinstance(n, (int, float)) or not float(n).is_integer() or n < 1:
            raise InputError(f"iterations must be positive whole numbers, got {n}")
    if learning_rate is not None and learning_rate > MAX_LR:
        raise InputError(f"the learning rate must be at most {MAX_LR:g}, got {learning_rate:g}")
    for value, what in ((size, "size"), (min_size, "min-size")):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or not float(value).is_integer()
            or not MIN_SIDE <= value <= MAX_SIDE
        ):  # fmt: skip
            raise InputError(f"{what} must be a whole number of pixels from {MIN_SIDE} to {MAX_SIDE}, got {value}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < MAX_SEED:
        raise InputError(f"the seed must be a whole number from 0 to 2**63-1, got {seed!r}")
    if callback is not None and not callable(callback):
        raise InputError(f"callback must be a function (iteration, losses, image), got {callback!r:.40}")
    dev = resolve_device(device)

    content_t = _as_image(content, "the content image")
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise InputError("at least one style image is needed")
    style_ts = [_as_image(s, f"style image {i + 1}") for i, s in enumerate(style_list)]
    if style_weights is None:
        mix = [1.0] * len(style_ts)
    else:
        mix = [_positive(w, "a style weight") for w in style_weights]
        if len(mix) != len(style_ts):
            raise InputError(f"got {len(mix)} style weights for {len(style_ts)} style images")
        if sum(mix) <= 0:
            raise InputError("the style weights must not all be zero")
    mask_t = _as_mask(mask, len(style_ts)) if mask is not None else None

    # ---- sizes (checked before any network is built)
    height, width = content_t.shape[-2:]
    final = int(size) if size is not None else max(width, height)
    scales = pyramid_sizes(final, int(min_size) if min_size is not None else None)
    sizes = [fit_size(width, height, s) for s in scales]
    check_sizes(width, height, final, [(s.shape[-1], s.shape[-2]) for s in style_ts], style_scale)
    if len(per_scale) == 1:
        per_scale = per_scale * len(sizes)
    elif len(per_scale) != len(sizes):
        raise InputError(
            f"got {len(per_scale)} iteration counts for {len(sizes)} scales ({', '.join(map(str, scales))})"
        )
    per_scale = [int(n) for n in per_scale]

    # ---- the backbone and its layers
    net, c_layers, s_layers = _network(
        backbone, weights, pool, swag, dev, seed, content_layers, style_layers, style_layer_weights, style_weight
    )

    # ---- colour handling: what the network sees
    content_t = content_t.to(dev)
    style_ts = [s.to(dev) for s in style_ts]
    if preserve_color == "luminance":
        work_content = color.luminance_image(content_t)
        work_styles = [color.match_luminance(s, content_t) for s in style_ts]
    elif preserve_color == "histogram":
        work_content = content_t
        work_styles = [color.match_color(s, content_t) for s in style_ts]
    else:
        work_content, work_styles = content_t, style_ts
    mix_sum = sum(mix)
    mix = [w / mix_sum for w in mix] if mask_t is None else mix
    heaviest = max(range(len(mix)), key=lambda i: mix[i])

    gen = torch.Generator().manual_seed(seed)
    lr = learning_rate if learning_rate is not None else (1.0 if optimizer == "lbfgs" else 0.02)
    weights_ = {"content": content_weight, "style": style_weight, "tv": tv_weight}
    result = OptimizeResult(image=content_t.new_zeros(1), sizes=sizes, backbone=net.name)
    started = time.perf_counter()
    step = 0
    best: Tensor | None = None
    best_loss = math.inf
    scale_content = content_t
    try:
        for si, (w_s, h_s) in enumerate(sizes):
            scale_content = resize(content_t, (w_s, h_s))
            c_img = resize(work_content, (w_s, h_s))
            longer = _style_longer(max(w_s, h_s), style_scale)
            s_imgs = [resize(s, fit_size(s.shape[-1], s.shape[-2], longer)) for s in work_styles]
            s_mask = F.interpolate(mask_t.to(dev), size=(h_s, w_s), mode="area") if mask_t is not None else None
            objective = _Objective(
                net, loss, c_img, s_imgs, mix, c_layers, s_layers, weights_, s_mask, normalize_gradients
            )

            fast_styles = style_ts if s_mask is not None else [style_ts[heaviest]]
            x = _start_image(init, best if si > 0 else None, c_img, s_imgs[heaviest], scale_content, fast_styles,
                             s_mask, preserve_color, gen, dev).requires_grad_(True)  # fmt: skip
            best, best_loss = x.detach().clone(), math.inf
            best, best_loss, step = _run_scale(
                objective, x, optimizer, lr, per_scale[si], step, result.history, best, best_loss, callback,
                preserve_color, scale_content,
            )  # fmt: skip
    except _Stop as stop:  # Ctrl-C or the callback: the best image so far is the result
        best, best_loss, step = stop.args
        result.interrupted = True
    except KeyboardInterrupt:  # between scales
        result.interrupted = True
    result.seconds = time.perf_counter() - started
    result.iterations = step
    out = (best if best is not None else resize(work_content, sizes[0])).detach().clamp(0, 1)
    out = resize(out, (scale_content.shape[-1], scale_content.shape[-2]))
    if preserve_color == "luminance":
        out = color.combine_luminance(out, scale_content)
    result.image = resize(out, sizes[-1]).float().cpu()
    result.best_loss = best_loss
    return result


def _network(
    backbone: str | FeatureExtractor,
    weights: str | os.PathLike[str],
    pool: str,
    swag: float | None,
    dev: torch.device,
    seed: int,
    content_layers: Sequence[str] | None,
    style_layers: Sequence[str] | Mapping[str, float] | None,
    style_layer_weights: Sequence[float] | None,
    style_weight: float,
) -> tuple[FeatureExtractor, list[str], dict[str, float]]:
    """The backbone on ``dev``, its content layers and its style layers with their weights (checked)."""
    from brushwork.nets.backbone import FeatureExtractor, build_backbone

    if isinstance(backbone, FeatureExtractor):
        net = backbone.to(dev)
    else:
        name = _choice(choose_backbone(_choice(backbone, BACKBONES, "backbone"), weights), BACKBONES, "backbone")
        net = build_backbone(name, weights, pool=pool, swag=swag, device=dev, seed=seed)
    c_layers = net.check_layers(content_layers if content_layers is not None else net.content_layers)
    if isinstance(style_layers, Mapping):
        s_layers = dict(style_layers)
    else:
        names = list(style_layers) if style_layers is not None else list(net.style_layers)
        if style_layer_weights is None:
            lw = [net.style_layers.get(n, 1.0) for n in names] if style_layers is None else [1.0] * len(names)
        else:
            lw = [_positive(w, "a style layer weight") for w in style_layer_weights]
            if len(lw) != len(names):
                raise InputError(f"got {len(lw)} style layer weights for {len(names)} style layers")
        s_layers = dict(zip(names, lw, strict=True))
    net.check_layers(s_layers)
    if not s_layers and style_weight > 0:
        raise InputError("no style layers given")
    return net, c_layers, s_layers


def _start_image(
    init: str,
    previous: Tensor | None,
    content: Tensor,
    style_image: Tensor,
    scale_content: Tensor,
    fast_styles: list[Tensor],
    mask: Tensor | None,
    preserve_color: str | None,
    gen: torch.Generator,
    dev: torch.device,
) -> Tensor:
    """The image a scale starts from: the previous scale's result upscaled, else ``init``'s choice; a detached copy.

    ``content`` is what the network sees at this scale (grey in luminance mode), ``scale_content`` the photo at
    this scale, ``style_image`` the heaviest style as the network sees it; ``init="fast"`` renders the photo with
    ``fast_styles`` (the heaviest style, or with a mask every style, each region from its own).
    """
    import torch

    from brushwork import color

    w, h = content.shape[-1], content.shape[-2]
    if previous is not None:
        start = resize(previous, (w, h))
    elif init == "content":
        start = content
    elif init == "noise":
        start = torch.rand(content.shape, generator=gen).to(dev)
    elif init == "style":
        start = resize(style_image, (w, h))
    else:
        render = _microast_init if init == "microast" else _fast_init
        if mask is None:
            start = render(scale_content, fast_styles[0], dev)
        else:
            regions = [render(scale_content, s, dev) for s in fast_styles]
            start = sum(mask[:, k : k + 1] * r for k, r in enumerate(regions))
            if len(regions) == 1:
                start = start + (1 - mask) * scale_content
        if preserve_color == "luminance":
            start = color.luminance_image(start)
    return start.detach().clone().contiguous()


def _run_scale(
    objective: _Objective,
    x: Tensor,
    optimizer: str,
    lr: float,
    iterations: int,
    step: int,
    history: list[dict[str, float]],
    best: Tensor,
    best_loss: float,
    callback: Callback | None,
    preserve_color: str | None,
    scale_content: Tensor,
) -> tuple[Tensor, float, int]:
    """``iterations`` steps of one scale, keeping the lowest-loss image; returns it, its loss and the step count.

    A step that overshoots (L-BFGS has no line search) goes back to the best image with fresh curvature memory and
    half the step size. Raises :class:`_Stop` when the callback returns True.
    """
    import torch

    from brushwork import color

    scale_lr = lr
    opt = _make_optimizer(optimizer, x, scale_lr)
    try:
        for _ in range(iterations):
            values, image = _step(opt, objective, x)
            step += 1
            history.append(values)
            total = values["total"]
            if math.isfinite(total) and total < best_loss:
                best_loss, best = total, image
            with torch.no_grad():
                if not (math.isfinite(total) and total <= BLOWUP * best_loss and torch.isfinite(x).all()):
                    x.copy_(best)
                    scale_lr = max(scale_lr / 2, lr / 1024)
                    opt = _make_optimizer(optimizer, x, scale_lr)
                elif optimizer == "adam":
                    x.clamp_(0, 1)
            if callback is not None:
                preview = image.clamp(0, 1)
                if preserve_color == "luminance":
                    preview = color.combine_luminance(preview, scale_content)
                if callback(step, values, preview) is True:
                    raise _Stop(best, best_loss, step)
    except KeyboardInterrupt:
        raise _Stop(best, best_loss, step) from None
    return best, best_loss, step


class _Objective:
    """The loss of one scale: targets computed once from the content and style images, then ``(x) -> (total,
    {term: value})`` for images ``1×3×h×w``."""

    def __init__(
        self,
        net: FeatureExtractor,
        kind: str,
        content: Tensor,
        styles: list[Tensor],
        mix: list[float],
        content_layers: list[str],
        style_layers: dict[str, float],
        weights: dict[str, float],
        mask: Tensor | None,
        normalize_gradients: bool,
    ) -> None:
        import torch

        from brushwork import losses

        self.net, self.kind, self.mix, self.weights, self.mask = net, kind, mix, weights, mask
        self.content_layers, self.style_layers = content_layers, style_layers
        self.layers = list(dict.fromkeys([*content_layers, *style_layers]))
        self.normalize_gradients = normalize_gradients
        with torch.no_grad():
            feats = net(content, content_layers)
            self.content = {n: (feats[n], float(feats[n].pow(2).mean()) + losses.EPS) for n in content_layers}
            per_style = [net(s, style_layers) for s in styles]
            self.style: dict[str, list[_StyleTarget]] = {}
            for n in style_layers:
                stats = [_stats(kind, net.style_transform(f[n])) for f in per_style]
                if mask is None:
                    self.style[n] = [_target(kind, _blend(kind, stats, mix))]
                else:
                    self.style[n] = [_target(kind, s) for s in stats]

    def __call__(self, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        from brushwork import losses

        feats = self.net(x, self.layers)
        grad_norm = losses.normalize_gradient if self.normalize_gradients else (lambda t: t)
        c_loss = x.new_zeros(())
        for n in self.content_layers:
            target, scale = self.content[n]
            c_loss = c_loss + losses.content_loss(grad_norm(feats[n]), target) / scale
        s_loss = x.new_zeros(())
        for n, lw in self.style_layers.items():
            f = grad_norm(self.net.style_transform(feats[n]))
            if self.mask is None:
                s_loss = s_loss + lw * _style_term(self.kind, f, self.style[n][0])
                continue
            region = _layer_weight(self.mask, f)
            for k, target in enumerate(self.style[n]):
                if self.mix[k] > 0 and float(region[:, k].sum()) > 0:
                    s_loss = s_loss + lw * self.mix[k] * _style_term(self.kind, f, target, region[:, k : k + 1])
        terms = {
            "content": self.weights["content"] * c_loss,
            "style": self.weights["style"] * s_loss,
            "tv": self.weights["tv"] * losses.tv_loss(x),
        }
        total = terms["content"] + terms["style"] + terms["tv"]
        values = {k: float(v.detach()) for k, v in terms.items()}
        values["total"] = float(total.detach())
        return total, values


def _step(opt: torch.optim.Optimizer, objective: _Objective, x: Tensor) -> tuple[dict[str, float], Tensor]:
    """One iteration: evaluate the objective at ``x`` (one function evaluation), step. Returns the loss terms at
    the evaluated point and a copy of that image."""
    import torch

    record: dict[str, Any] = {}

    def closure() -> Tensor:
        opt.zero_grad(set_to_none=True)
        total, values = objective(x)
        if torch.isfinite(total):
            total.backward()
        else:
            x.grad = torch.zeros_like(x)
        if not record:  # keep the first evaluation (the point the step starts from)
            record["values"], record["image"] = values, x.detach().clone()
        return total

    opt.step(closure)
    return record["values"], record["image"]


class _Stop(Exception):
    """Raised when the callback asks to stop."""


def _make_optimizer(kind: str, x: Tensor, lr: float) -> torch.optim.Optimizer:
    import torch

    if kind == "lbfgs":
        # one evaluation per iteration and no line search, as neural-style; the history persists across steps
        return torch.optim.LBFGS([x], lr=lr, max_iter=1, history_size=50, tolerance_grad=0.0, tolerance_change=0.0)
    return torch.optim.Adam([x], lr=lr)


def _fast_init(content: Tensor, style: Tensor, device: torch.device) -> Tensor:
    """The fast feed-forward network's stylization of ``content`` (``1×3×H×W``) as a starting image."""
    import torch

    try:
        from brushwork.methods.fast import fast_stylize_tensor
    except ImportError:
        raise InputError("--init fast needs the fast method (brushwork.methods.fast), which is not available") from None
    with torch.no_grad():
        out = fast_stylize_tensor(content, style, device.type)
    return resize(out.to(device).float().clamp(0, 1), (content.shape[-1], content.shape[-2]))


def _microast_init(content: Tensor, style: Tensor, device: torch.device) -> Tensor:
    """MicroAST's stylization of ``content`` (``1×3×H×W``) as a starting image (``init="microast"``)."""
    from brushwork import api, io

    out = api.renderer([io.to_numpy(style.float().cpu())], method="microast", device=device.type).render(
        io.to_numpy(content.float().cpu())
    )
    return resize(io.to_tensor(out).to(device).float().clamp(0, 1), (content.shape[-1], content.shape[-2]))


def options_fields() -> list[str]:
    """Names of the options in :class:`OptimizeOptions` (for interfaces that build their forms from it)."""
    return [f.name for f in fields(OptimizeOptions)]


def split_iterations(total: int, scales: int) -> list[int]:
    """``total`` iterations over ``scales`` scales of a pyramid: equal shares, the remainder to the finest."""
    if isinstance(total, bool) or not isinstance(total, int) or total < scales:
        raise InputError(f"iterations must be a whole number of at least {scales} (one per scale), got {total!r}")
    share = total // scales
    return [share] * (scales - 1) + [total - share * (scales - 1)]


# ------------------------------------------------------------------------------------ video frames (Ruder et al.)

TEMPORAL_WEIGHT = 200.0  # weight of the temporal term (mean squared difference to the warped previous result)
FRAME_ITERATIONS = 20  # iterations of a frame that starts from the warped previous result


class _TemporalObjective(_Objective):
    """:class:`_Objective` plus the temporal loss of Ruder et al. 2016: ``temporal_weight · mean(c · (x − ω)²)``,
    with ω the previous output warped onto this frame and c the per-pixel weight (0 at occlusions). The style
    targets are computed once; :meth:`set_frame` swaps in a new frame's content target and ω."""

    def __init__(self, *args: Any, temporal_weight: float = TEMPORAL_WEIGHT, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.temporal_weight = temporal_weight
        self.previous: Tensor | None = None
        self.trust: Tensor | None = None

    def set_frame(self, content: Tensor, previous: Tensor | None, trust: Tensor | None) -> None:
        import torch

        from brushwork import losses

        with torch.no_grad():
            feats = self.net(content, self.content_layers)
            self.content = {n: (feats[n], float(feats[n].pow(2).mean()) + losses.EPS) for n in self.content_layers}
        self.previous, self.trust = previous, trust

    def __call__(self, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        total, values = super().__call__(x)
        if self.previous is not None and self.trust is not None and self.temporal_weight > 0:
            term = self.temporal_weight * (self.trust * (x - self.previous) ** 2).mean()
            total = total + term
            values["temporal"] = float(term.detach())
            values["total"] = float(total.detach())
        return total, values


class FrameOptimizer:
    """Optimization-based stylization of consecutive video frames (Ruder, Dosovitskiy & Brox 2016).

    The backbone and the style targets are built once (per frame size). :meth:`frame` optimizes one frame: a
    frame with history starts from the previous output warped onto it (``previous``, where ``trust`` > 0; the frame's
    own start image — ``init``, by default the fast network's stylization — elsewhere) and adds the temporal loss
    ``temporal_weight · mean(trust · (x − previous)²)``, for ``frame_iterations`` iterations; a frame without history
    (the first, after a scene cut, or frame by frame) starts from ``init`` and runs ``iterations``. The keyword
    options are those of :func:`optimize` (single scale; no mask).
    """

    def __init__(
        self,
        styles: Any,
        *,
        style_weights: Sequence[float] | None = None,
        content_weight: float = DEFAULTS.content_weight,
        style_weight: float = DEFAULTS.style_weight,
        tv_weight: float = DEFAULTS.tv_weight,
        temporal_weight: float = TEMPORAL_WEIGHT,
        content_layers: Sequence[str] | None = DEFAULTS.content_layers,
        style_layers: Sequence[str] | Mapping[str, float] | None = DEFAULTS.style_layers,
        style_layer_weights: Sequence[float] | None = DEFAULTS.style_layer_weights,
        loss: str = DEFAULTS.loss,
        optimizer: str = DEFAULTS.optimizer,
        learning_rate: float | None = DEFAULTS.learning_rate,
        iterations: int = _API.iterations,
        frame_iterations: int = FRAME_ITERATIONS,
        init: str = _API.init,
        style_scale: float = DEFAULTS.style_scale,
        preserve_color: bool = False,
        seed: int = DEFAULTS.seed,
        backbone: str | FeatureExtractor = DEFAULTS.backbone,
        weights: str | os.PathLike[str] = DEFAULTS.weights,
        pool: str = DEFAULTS.pool,
        swag: float | None = DEFAULTS.swag,
        normalize_gradients: bool = DEFAULTS.normalize_gradients,
        device: str | torch.device = DEFAULTS.device,
    ) -> None:
        import torch

        self.loss = _choice(loss, LOSSES, "style loss")
        self.optimizer = _choice(optimizer, OPTIMIZERS, "optimizer")
        self.init = _choice(init, INITS, "init")
        self.weights = {
            "content": _positive(content_weight, "the content weight"),
            "style": _positive(style_weight, "the style weight"),
            "tv": _positive(tv_weight, "the TV weight"),
        }
        self.temporal_weight = _positive(temporal_weight, "the temporal weight")
        self.style_scale = _positive(style_scale, "the style scale", allow_zero=False)
        for n, what in ((iterations, "iterations"), (frame_iterations, "frame iterations")):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InputError(f"{what} must be a positive whole number, got {n!r}")
        self.iterations, self.frame_iterations = iterations, frame_iterations
        if learning_rate is not None:
            learning_rate = _positive(learning_rate, "the learning rate", allow_zero=False)
            if learning_rate > MAX_LR:
                raise InputError(f"the learning rate must be at most {MAX_LR:g}, got {learning_rate:g}")
        self.lr = learning_rate if learning_rate is not None else (1.0 if self.optimizer == "lbfgs" else 0.02)
        self.preserve_color = bool(preserve_color)
        self.normalize_gradients = normalize_gradients
        self.dev = resolve_device(device)
        style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
        if not style_list:
            raise InputError("at least one style image is needed")
        self.styles = [_as_image(s, f"style image {i + 1}").to(self.dev) for i, s in enumerate(style_list)]
        if style_weights is None:
            mix = [1.0] * len(self.styles)
        else:
            mix = [_positive(w, "a style weight") for w in style_weights]
            if len(mix) != len(self.styles) or sum(mix) <= 0:
                raise InputError(f"give {len(self.styles)} style weights, not all zero")
        self.mix = [w / sum(mix) for w in mix]
        self.heaviest = max(range(len(self.mix)), key=lambda i: self.mix[i])
        self.net, self.c_layers, self.s_layers = _network(
            backbone, weights, pool, swag, self.dev, seed, content_layers, style_layers, style_layer_weights,
            self.weights["style"],
        )  # fmt: skip
        self.gen = torch.Generator().manual_seed(seed)
        self._objectives: dict[tuple[int, int], _TemporalObjective] = {}
        self._fast_code: Any = None

    def _objective(self, content: Tensor) -> _TemporalObjective:
        from brushwork import color

        w, h = content.shape[-1], content.shape[-2]
        objective = self._objectives.get((w, h))
        if objective is None:
            longer = _style_longer(max(w, h), self.style_scale)
            styles = [resize(s, fit_size(s.shape[-1], s.shape[-2], longer)) for s in self.styles]
            if self.preserve_color:
                styles = [color.luminance_image(s) for s in styles]
            objective = _TemporalObjective(
                self.net, self.loss, content, styles, self.mix, self.c_layers, self.s_layers, self.weights, None,
                self.normalize_gradients, temporal_weight=self.temporal_weight,
            )  # fmt: skip
            self._objectives = {(w, h): objective}  # one frame size at a time
        return objective

    def _own_start(self, work: Tensor, photo: Tensor) -> Tensor:
        """The start image of a frame without history (``init``); "fast" renders the heaviest style's code."""
        import torch

        from brushwork import color

        if self.init != "fast":
            style = resize(self.styles[self.heaviest], (work.shape[-1], work.shape[-2]))
            return _start_image(self.init, None, work, style, photo, [], None, None, self.gen, self.dev)
        try:
            from brushwork.methods.fast import get_stylizer, render
        except ImportError:
            raise InputError(
                "init fast needs the fast method (brushwork.methods.fast), which is not available"
            ) from None
        if self._fast_code is None:
            from brushwork import io

            code = get_stylizer(self.dev.type).style_code(io.to_numpy(self.styles[self.heaviest].cpu()))
            self._fast_code = torch.as_tensor(code, dtype=torch.float32).clone()
        with torch.no_grad():
            out = render(photo.cpu(), self._fast_code, device=self.dev.type).to(self.dev).float().clamp(0, 1)
        out = resize(out, (photo.shape[-1], photo.shape[-2]))
        return color.luminance_image(out) if self.preserve_color else out

    def frame(
        self,
        content: Any,
        previous: Any = None,
        trust: Any = None,
        callback: Callback | None = None,
    ) -> OptimizeResult:
        """Optimize one frame. ``content``: the frame (``1×3×H×W`` tensor, or H×W×3 array, 0..1); ``previous``: the
        previous output warped onto this frame (same forms) or None; ``trust``: ``H×W`` (or ``1×1×H×W``) weights
        0..1 of the temporal term (0 at occlusions; the start image takes ``previous`` where it is > 0)."""
        import torch

        from brushwork import color

        photo = _as_image(content, "the frame").to(self.dev)
        work = color.luminance_image(photo) if self.preserve_color else photo
        objective = self._objective(work)
        start = self._own_start(work, photo)
        prev_t = trust_t = None
        if previous is not None and trust is not None:
            prev_t = _as_image(previous, "the previous frame").to(self.dev)
            if prev_t.shape != photo.shape:
                raise InputError(f"the previous frame is {tuple(prev_t.shape)}, the frame {tuple(photo.shape)}")
            if self.preserve_color:
                prev_t = color.luminance_image(prev_t)
            trust_t = torch.as_tensor(trust).float().reshape(1, 1, *photo.shape[-2:]).clamp(0, 1).to(self.dev)
            start = torch.where(trust_t > 0, prev_t, start)
        objective.set_frame(work, prev_t, trust_t)
        iterations = self.frame_iterations if prev_t is not None else self.iterations
        x = start.detach().clone().contiguous().requires_grad_(True)
        result = OptimizeResult(image=photo.new_zeros(1), sizes=[(photo.shape[-1], photo.shape[-2])])
        result.backbone = self.net.name
        started = time.perf_counter()
        try:
            best, best_loss, step = _run_scale(
                objective, x, self.optimizer, self.lr, iterations, 0, result.history, x.detach().clone(), math.inf,
                callback, "luminance" if self.preserve_color else None, photo,
            )  # fmt: skip
        except _Stop as stop:
            best, best_loss, step = stop.args
            result.interrupted = True
        out = best.detach().clamp(0, 1)
        if self.preserve_color:
            out = color.combine_luminance(out, photo)
        result.image, result.best_loss, result.iterations = out.float().cpu(), best_loss, step
        result.seconds = time.perf_counter() - started
        return result


class Engine:
    """The contract's engine of ``method="optimize"`` (see :mod:`brushwork.api`).

    Progress: one ``optimize`` event per iteration with the weighted loss terms, and a preview image every
    ``preview_every`` iterations. ``stroke_scale`` sizes the style images relative to the output (larger
    strokes from larger style images); ``preserve_color`` optimizes the luminance alone.
    """

    native = frozenset({"mask", "preserve_color", "stroke_scale"})

    def __init__(self, styles: list[Any], options: Any, progress: Any = None) -> None:
        from brushwork import io

        self.styles = [io.to_tensor(s) for s in styles]
        self.options = options
        self.progress = progress

    def render(self, rgb: Any, masks: Any = None) -> Any:
        import torch

        from brushwork import io
        from brushwork.api import Reporter

        o = self.options
        scales = pyramid_sizes(max(rgb.shape[:2]), o.min_size)
        per_scale = split_iterations(o.iterations, len(scales))
        reporter = Reporter(self.progress, "optimize", o.iterations)

        def callback(step: int, losses: dict[str, float], image: Tensor) -> None:
            show = o.preview_every and (step % o.preview_every == 0 or step == o.iterations)
            reporter.step(step, losses=losses, preview=io.to_numpy(image.float().cpu()) if show else None)

        result = optimize(
            io.to_tensor(rgb),
            self.styles,
            style_weights=o.style_weights if masks is None else None,
            content_weight=o.content_weight,
            style_weight=o.style_weight,
            tv_weight=o.tv_weight,
            content_layers=o.content_layers,
            style_layers=o.style_layers,
            style_layer_weights=o.style_layer_weights,
            loss=o.loss,
            optimizer=o.optimizer,
            learning_rate=o.learning_rate,
            iterations=per_scale,
            init=o.init,
            size=None,
            min_size=o.min_size if o.min_size is not None and len(scales) > 1 else None,
            style_scale=o.stroke_scale,
            preserve_color="luminance" if o.preserve_color else None,
            mask=None if masks is None else torch.from_numpy(masks)[None],
            seed=o.seed,
            backbone=o.backbone,
            weights=o.weights,
            pool=o.pool,
            swag=o.swag,
            normalize_gradients=o.normalize_gradients,
            device=o.device,
            callback=callback,
        )
        if result.interrupted:  # Ctrl-C: the best image so far is the result, and the last event says so
            reporter.step(result.iterations, message="interrupted")
        return io.to_numpy(result.image)

    # -- large sizes: coarse-to-fine, the finest scale in tiles (brushwork.methods.optimize_large) ---------------

    UNTILED_BYTES_PER_PIXEL = _UNTILED_BYTES_PER_PIXEL  # measured peak of an untiled run per output pixel

    def render_tiled(self, source: Any, masks: Any, sink: Any, tile: int | None, budget: int, fixed_bytes: int) -> Any:
        """Optimise the ``tiling.Source`` coarse-to-fine, its finest scale in tiles with global style statistics;
        ``sink(region, rgb)`` gets the result (called by :func:`brushwork.tiling.render_picture_tiled`)."""
        from brushwork import io
        from brushwork.methods import optimize_large

        optimize_large.check_large(self.options, masks)
        styles = [io.to_numpy(s) for s in self.styles]
        return optimize_large.optimize_tiled(styles, self.options, self.progress, source, sink, tile, budget,
                                             fixed_bytes)  # fmt: skip
