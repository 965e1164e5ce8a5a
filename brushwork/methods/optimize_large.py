"""``method="optimize"`` at print sizes: coarse-to-fine, the finest scale optimised tile by tile in bounded memory.

Called by :meth:`brushwork.methods.optimize.Engine.render_tiled` when the API decides to tile (``tile`` /
``memory_budget``, as for the feed-forward methods; see docs/optimize.md, "Large sizes"):

1. **Start image at full size**: the fast path's output (``init="fast"``, itself tiled when large) or microast's
   (``init="microast"``), kept as 8-bit pixels; the photo for the other inits.
2. **Coarse scales, whole**: the largest size whose untiled optimisation fits the budget (at most half the output's
   longer side; a √2 pyramid from ``min_size`` when given) is optimised as usual, starting from the start image
   shrunk, with ``iterations`` iterations.
3. **Merge**: the full-size image becomes ``start + up(coarse − down(start))``: the coarse optimisation's low
   frequencies (its large-scale structure and colours) over the start image's fine detail.
4. **Finest scale, in tiles**: ``tile_iterations`` iterations per tile, in passes of :data:`TILE_STEPS`. The style
   loss of the whole image is a function of global sums per style layer (count, Σf and Σffᵀ, or Σf² for mean-std):
   a *statistics pass* at the start of each pass streams every tile (with its halo) through the backbone and adds
   its centre's features to those sums (float64). Each tile's visit then optimises its centre pixels, its halo held
   fixed as context, against the style loss of the **global** statistics in which the tile's own contribution is
   the live one (``rest + tile(x)``, ``rest`` = the global sums less the tile's contribution at the visit's start),
   so its gradient is the gradient of the whole image's style loss up to the halo; after the visit the global sums
   take the tile's new contribution (later tiles of the pass see it). The content and total-variation terms are
   local, normalised by the whole image's counts; the TV term includes the differences across the centre's border
   to the fixed halo, which ties neighbouring tiles together (no seams). The style targets at the output's size are
   the style images' statistics, streamed in tiles the same way.

Approximations (measured in docs/optimize.md): features at a tile's centre are computed with a halo of
:data:`HALO` px rather than the deep layers' full receptive field, and a tile's change to its neighbours' features
reaches the global sums at the next statistics pass; the optimiser's state (L-BFGS curvature) is fresh at each visit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from brushwork import tiling
from brushwork.errors import InputError

if TYPE_CHECKING:
    import torch
    from torch import Tensor

    from brushwork.nets.backbone import FeatureExtractor

TILE_STEPS = 5  # optimiser iterations per tile visit; a statistics pass runs before each pass over the tiles
HALO = 64  # context around a tile's centre, image px (rounded up to the backbone's stride)
LARGE_INITS = ("fast", "microast", "content", "noise", "style")
TORCH_BYTES = 400 * 2**20  # interpreter, torch, MobileNetV2 (measured 251 MiB) and the fast path's runtime
UNTILED_BYTES_PER_PIXEL = 3700  # peak of an untiled optimisation per output pixel (MobileNetV2, L-BFGS history 50)
TILE_BYTES_PER_PIXEL = 2400  # a tile's visit (forward + backward, 5 L-BFGS steps) per pixel, halo included
TILE_SHARE = 0.75  # of the memory the budget leaves, what a tile's visit may take
MIN_COARSE = 64  # smallest longer side of the whole (coarse) optimisation


@dataclass
class _Sums:
    """Global sums of one style layer's (transformed) features over positions: count, Σf (C), Σffᵀ (C×C) or Σf²."""

    count: Any
    first: Any
    second: Any

    def __add__(self, other: _Sums) -> _Sums:
        return _Sums(self.count + other.count, self.first + other.first, self.second + other.second)

    def __sub__(self, other: _Sums) -> _Sums:
        return _Sums(self.count - other.count, self.first - other.first, self.second - other.second)

    def detach(self) -> _Sums:
        return _Sums(float(self.count), self.first.detach().double(), self.second.detach().double())


def _sums(kind: str, f: Tensor) -> _Sums:
    """``1×C×h×w`` features → their :class:`_Sums` (differentiable; float32)."""
    x = f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])
    second = (x * x).sum(0) if kind == "mean_std" else x.T @ x
    return _Sums(float(x.shape[0]), x.sum(0), second)


def _stats_from_sums(kind: str, s: _Sums) -> tuple[Tensor, ...]:
    """The statistics :func:`brushwork.methods.optimize._stats` would give for the whole image (batch dim 1)."""
    import torch

    n = max(float(s.count), 1.0)
    mean = s.first / n
    if kind == "gram":
        return ((s.second / n)[None],)
    if kind == "mean_std":
        var = (s.second / n - mean**2).clamp_min(0.0)
        return mean[None], torch.sqrt(var + 1e-5)[None]
    cov = s.second / n - mean[:, None] * mean[None, :]
    return mean[None], cov[None]


def _style_value(kind: str, stats: tuple[Tensor, ...], target: Any) -> Tensor:
    """The style term of statistics ``stats`` against a ``_StyleTarget`` (as ``optimize._style_term``)."""
    import torch

    from brushwork import losses

    t = target.stats
    if kind == "gram":
        value = torch.mean((stats[0] - t[0]) ** 2)
    elif kind == "mean_std":
        value = torch.mean((stats[0] - t[0]) ** 2) + torch.mean((stats[1] - t[1]) ** 2)
    else:
        trace = torch.diagonal(t[1], dim1=-2, dim2=-1).sum(-1)
        value = losses.wasserstein2(stats[0], stats[1], t[0], t[2], trace).mean() / stats[0].shape[-1]
    return value / target.scale


# ----------------------------------------------------------------------------------------------- geometry


@dataclass(frozen=True)
class _Tile:
    """A tile: its centre (image coordinates) and the region read with its halo."""

    centre: tuple[int, int, int, int]
    outer: tuple[int, int, int, int]

    def inner(self) -> tuple[int, int, int, int]:
        """The centre in the outer region's coordinates."""
        (y0, y1, x0, x1), (oy, _, ox, _) = self.centre, self.outer
        return y0 - oy, y1 - oy, x0 - ox, x1 - ox


def _grid(h: int, w: int, side: int, offset: int) -> list[tuple[int, int, int, int]]:
    """Centres of side ``side`` whose grid is shifted by ``offset`` (the first row and column are shorter)."""
    ys = sorted({0, *range(offset % side or side, h, side)} - {h})
    xs = sorted({0, *range(offset % side or side, w, side)} - {w})
    return [(y0, ([*ys[1:], h])[i], x0, ([*xs[1:], w])[j]) for i, y0 in enumerate(ys) for j, x0 in enumerate(xs)]


def _tiles(shape: tuple[int, int], side: int, halo: int, align: int = 16, offset: int = 0) -> list[_Tile]:
    """Tiles of centre ``side`` with a ``halo`` (multiples of ``align``, the backbone's total stride).

    Every outer region's height and width are congruent to the image's modulo ``align`` (the bottom and right halos
    grow by ``height % align`` / ``width % align``): TensorFlow-style SAME padding (MobileNetV2) pads a stride-2
    convolution's input on top only when its size is odd, so a region of another parity would sample its features
    one pixel off the whole image's. Optimised images are sensitive to that phase: without it the tiled statistics
    of a 1024×683 result were 3× off its whole-image style loss."""
    h, w = shape
    ry, rx = h % align, w % align
    return [
        _Tile(
            (y0, y1, x0, x1),
            (max(0, y0 - halo), min(h, y1 + halo + ry), max(0, x0 - halo), min(w, x1 + halo + rx)),
        )
        for y0, y1, x0, x1 in _grid(h, w, side, offset)
    ]


def _strides(net: FeatureExtractor, layers: Sequence[str], device: torch.device) -> dict[str, int]:
    """Each layer's stride in image pixels (probed on a 256 px image)."""
    import torch

    with torch.no_grad():
        feats = net(torch.zeros(1, 3, 256, 256, device=device), list(layers))
    return {n: max(1, round(256 / f.shape[-1])) for n, f in feats.items()}


def _crop(f: Tensor, tile: _Tile, stride: int) -> Tensor:
    """The features of a tile's centre: a centre edge inside the image maps to ``edge / stride`` (edges are
    multiples of the alignment); an edge on the outer region's border maps to the feature map's border."""
    (y0, y1, x0, x1), (oy0, oy1, ox0, ox1) = tile.centre, tile.outer
    fy0 = (y0 - oy0) // stride
    fx0 = (x0 - ox0) // stride
    fy1 = f.shape[-2] if y1 == oy1 else (y1 - oy0) // stride
    fx1 = f.shape[-1] if x1 == ox1 else (x1 - ox0) // stride
    return f[..., fy0:fy1, fx0:fx1]


class Canvas:
    """The image being optimised at full size: float32, or uint16 when float32 would take over an eighth of the
    budget (quantisation 1/65535)."""

    def __init__(self, shape: tuple[int, int], budget: int) -> None:
        h, w = shape
        self.shape = shape
        dtype = np.float32 if h * w * 12 <= budget // 8 else np.uint16
        self.pixels = np.empty((h, w, 3), dtype)

    @property
    def nbytes(self) -> int:
        return self.pixels.nbytes

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        block = self.pixels[y0:y1, x0:x1]
        return block.copy() if block.dtype == np.float32 else block.astype(np.float32) / np.float32(65535)

    def write(self, y0: int, y1: int, x0: int, x1: int, rgb: np.ndarray) -> None:
        rgb = np.clip(rgb, 0.0, 1.0)
        self.pixels[y0:y1, x0:x1] = rgb if self.pixels.dtype == np.float32 else rgb * 65535 + 0.5


def _tensor(rgb: np.ndarray, device: torch.device) -> Tensor:
    import torch

    return torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].to(device)


def _numpy(t: Tensor) -> np.ndarray:
    return t.detach().float().cpu()[0].numpy().transpose(1, 2, 0)


# ----------------------------------------------------------------------------------------------- passes


def statistics_pass(
    net: FeatureExtractor,
    kind: str,
    source: tiling.Source,
    tiles: list[_Tile],
    layers: Sequence[str],
    strides: dict[str, int],
    device: torch.device,
    transform: bool = True,
) -> dict[str, _Sums]:
    """Global sums of ``layers``' features of ``source``, streamed tile by tile (centres only, float64)."""
    import torch

    total: dict[str, _Sums] = {}
    with torch.no_grad():
        for t in tiles:
            feats = net(_tensor(source.read(*t.outer), device), list(layers))
            for n in layers:
                f = _crop(feats[n], t, strides[n])
                s = _sums(kind, net.style_transform(f) if transform else f).detach()
                total[n] = s if n not in total else total[n] + s
    return total


def _content_scale(sums: _Sums, channels: int) -> float:
    """Mean square of the content features (``optimize._Objective``'s content scale) from Σf²."""
    from brushwork import losses

    return float(sums.second.sum()) / max(sums.count * channels, 1.0) + losses.EPS


class TileObjective:
    """The whole image's loss as a function of one tile's centre pixels ``1×3×h×w``, the rest held fixed.

    The tile's *outer* region (centre and halo) is where a change of the centre changes features. Style: each
    style layer's global sums become ``rest + outer(x)`` with ``rest`` = the global sums less ``outer(x₀)`` (x₀ the
    centre at the visit's start): the change of the global sums is ``outer(x) − outer(x₀)``, computed in the same
    context, so the neighbours' features that the centre reaches count too, and whatever the halo gets wrong at its
    own border is the same in both terms and cancels. Content and TV: the whole image's terms at the visit's start
    (``start``, unweighted) plus the change over the outer region / the differences touching the centre.
    Same interface as ``optimize._Objective``.
    """

    def __init__(
        self,
        net: FeatureExtractor,
        kind: str,
        tile: _Tile,
        outer: Tensor,
        content: dict[str, Tensor],
        content_norm: dict[str, float],
        style_layers: dict[str, float],
        targets: dict[str, Any],
        global_sums: dict[str, _Sums],
        weights: dict[str, float],
        tv_norm: tuple[float, float],
        start: dict[str, float],
        normalize_gradients: bool,
    ) -> None:
        self.net, self.kind, self.tile, self.outer = net, kind, tile, outer
        self.content, self.content_norm = content, content_norm
        self.style_layers, self.targets = style_layers, targets
        self.global_sums = global_sums
        self.weights, self.tv_norm, self.start = weights, tv_norm, start
        self.normalize_gradients = normalize_gradients
        self.layers = list(dict.fromkeys([*content, *style_layers]))
        self.rest: dict[str, _Sums] | None = None  # global sums less the outer region's at the visit's start
        self.first: tuple[float, float] | None = None  # content and TV over the region at the visit's start
        self.evaluations: list[tuple[float, dict[str, _Sums], dict[str, float]]] = []  # (total, sums, raw terms)

    def __call__(self, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        from brushwork import losses

        cy0, cy1, cx0, cx1 = self.tile.inner()
        full = self.outer.clone()
        full[..., cy0:cy1, cx0:cx1] = x
        feats = self.net(full, self.layers)
        grad_norm = losses.normalize_gradient if self.normalize_gradients else (lambda t: t)
        c_loss = x.new_zeros(())
        for n, target in self.content.items():
            c_loss = c_loss + ((grad_norm(feats[n]) - target) ** 2).sum() / self.content_norm[n]
        ry0, ry1, rx0, rx1 = _ring(self.tile, (full.shape[-2], full.shape[-1]))
        ring = full[..., ry0:ry1, rx0:rx1]  # every pixel difference that touches the centre
        dy = ring[..., 1:, :] - ring[..., :-1, :]
        dx = ring[..., :, 1:] - ring[..., :, :-1]
        tv = (dy**2).sum() / self.tv_norm[0] + (dx**2).sum() / self.tv_norm[1]
        mine = {n: _sums(self.kind, self.net.style_transform(grad_norm(feats[n])).double()) for n in self.style_layers}
        if self.rest is None:
            self.rest = {n: self.global_sums[n] - s.detach() for n, s in mine.items()}
            self.first = (float(c_loss.detach()), float(tv.detach()))
        assert self.first is not None
        s_loss = x.new_zeros(())
        for n, lw in self.style_layers.items():
            stats = _stats_from_sums(self.kind, self.rest[n] + mine[n])
            s_loss = s_loss + lw * _style_value(self.kind, tuple(v.float() for v in stats), self.targets[n])
        content = self.start["content"] + c_loss - self.first[0]
        tv_total = self.start["tv"] + tv - self.first[1]
        terms = {
            "content": self.weights["content"] * content,
            "style": self.weights["style"] * s_loss,
            "tv": self.weights["tv"] * tv_total,
        }
        total = terms["content"] + terms["style"] + terms["tv"]
        values = {k: float(v.detach()) for k, v in terms.items()}
        values["total"] = float(total.detach())
        raw = {"content": float(content.detach()), "tv": float(tv_total.detach())}
        self.evaluations.append((values["total"], {n: s.detach() for n, s in mine.items()}, raw))
        return total, values

    def state_at(self, loss: float) -> tuple[dict[str, _Sums], dict[str, float]] | None:
        """The global sums and the unweighted content and TV terms at the evaluation whose total was ``loss``."""
        if self.rest is None:
            return None
        for total, sums, raw in self.evaluations:
            if total == loss:
                return {n: self.rest[n] + s for n, s in sums.items()}, raw
        return None


def _ring(t: _Tile, shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """The centre grown by one pixel (clipped to ``shape``): every pixel difference that touches the centre."""
    y0, y1, x0, x1 = t.inner()
    return max(0, y0 - 1), min(shape[0], y1 + 1), max(0, x0 - 1), min(shape[1], x1 + 1)


def whole_terms(
    net: FeatureExtractor,
    canvas: tiling.Source,
    source: tiling.Source,
    tiles: list[_Tile],
    content_layers: Sequence[str],
    content_norm: dict[str, float],
    strides: dict[str, int],
    device: torch.device,
) -> dict[str, float]:
    """The whole image's unweighted content and TV terms, streamed over the tiles' centres."""
    import torch

    content = tv = 0.0
    h, w = canvas.shape
    with torch.no_grad():
        for t in tiles:
            f_now = net(_tensor(canvas.read(*t.outer), device), list(content_layers))
            f_photo = net(_tensor(source.read(*t.outer), device), list(content_layers))
            for n in content_layers:
                diff = _crop(f_now[n], t, strides[n]) - _crop(f_photo[n], t, strides[n])
                content += float((diff.double() ** 2).sum()) / content_norm[n]
            y0, y1, x0, x1 = t.centre
            block = canvas.read(y0, min(h, y1 + 1), x0, min(w, x1 + 1)).astype(np.float64)  # one more row, column
            tv += float((np.diff(block, axis=0)[:, : x1 - x0] ** 2).sum()) / (3.0 * max(h - 1, 1) * w)
            tv += float((np.diff(block, axis=1)[: y1 - y0] ** 2).sum()) / (3.0 * h * max(w - 1, 1))
    return {"content": content, "tv": tv}


def seam_energy(rgb: np.ndarray, side: int) -> tuple[float, float, float]:
    """Mean absolute difference of neighbouring pixels across tile borders (every ``side`` px), elsewhere, and their
    ratio: about 1 when the borders are invisible, above 1 for seams."""
    img = np.asarray(rgb)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    dx = np.abs(np.diff(img, axis=1)).mean(axis=(0, 2))  # dx[i]: between columns i and i + 1
    dy = np.abs(np.diff(img, axis=0)).mean(axis=(1, 2))
    bx = np.zeros(dx.shape, bool)
    bx[side - 1 :: side] = True
    by = np.zeros(dy.shape, bool)
    by[side - 1 :: side] = True
    border = float(np.concatenate([dx[bx], dy[by]]).mean()) if bx.any() or by.any() else 0.0
    inside = float(np.concatenate([dx[~bx], dy[~by]]).mean())
    return border, inside, border / max(inside, 1e-12)


# ----------------------------------------------------------------------------------------------- the run


def _init_full(
    init: str, source: tiling.Source, style: np.ndarray, options: Any, budget: int, fixed: int
) -> np.ndarray:
    """The full-size start image as 8-bit pixels: the fast path's (tiled when large) or microast's output, or the
    photo."""
    h, w = source.shape
    out = np.empty((h, w, 3), np.uint8)

    def keep(region: tuple[int, int, int, int], rgb: np.ndarray) -> None:
        y0, y1, x0, x1 = region
        out[y0:y1, x0:x1] = np.clip(rgb, 0.0, 1.0) * 255 + 0.5

    if init == "fast":
        from brushwork.methods.fast import Engine as FastEngine
        from brushwork.options import FastOptions

        engine = FastEngine([style], FastOptions(device=options.device), None)
        fixed += out.nbytes + TORCH_BYTES - tiling.BASELINE_BYTES  # torch and the backbone are loaded already
        if tiling.BASELINE_BYTES + fixed + h * w * FastEngine.UNTILED_BYTES_PER_PIXEL > budget:
            engine.render_tiled(source, None, keep, None, budget, fixed)
        else:
            keep((0, h, 0, w), engine.render(tiling.materialize(source)))
    elif init == "microast":
        from brushwork import api

        r = api.renderer([style], method="microast", device=options.device)
        keep((0, h, 0, w), r.render(tiling.materialize(source)))
    else:
        for region in tiling.tiles(h, w, 512):
            keep(region, source.read(*region))
    return out


def coarse_longer(shape: tuple[int, int], budget: int, fixed: int) -> int:
    """Longer side of the whole (coarse) optimisation: the largest whose untiled peak fits what the budget leaves,
    at most half the output's longer side."""
    h, w = shape
    free = max(0, budget - fixed - TORCH_BYTES)
    pixels = free / UNTILED_BYTES_PER_PIXEL
    longer = int(math.sqrt(pixels * max(h, w) / min(h, w)))
    return max(MIN_COARSE, min(longer, max(h, w) // 2))


def tile_side(budget: int, fixed: int, halo: int, align: int, tile: int | None) -> int:
    """Centre side of the finest scale's tiles: ``tile`` rounded up to the stride, or what the budget allows."""
    if tile:
        return tiling.round_up(int(tile), align)
    free = max(0, budget - fixed - TORCH_BYTES)
    outer = int(math.sqrt(TILE_SHARE * free / TILE_BYTES_PER_PIXEL))
    return max(2 * align, (outer - 2 * halo) // align * align)


def optimize_tiled(
    styles: list[np.ndarray],
    options: Any,
    progress: Any,
    source: tiling.Source,
    sink: Callable[[tuple[int, int, int, int], np.ndarray], None],
    tile: int | None,
    budget: int,
    fixed_bytes: int,
) -> dict[str, Any]:
    """Optimise ``source`` (the photo at the output size) coarse-to-fine, the finest scale in tiles (module
    docstring); ``sink(region, rgb)`` receives the result's tiles. Returns measurements (sizes, tiles, losses)."""
    import torch

    from brushwork import api
    from brushwork.methods import optimize as opt

    o = options
    kind = opt._choice(o.loss, opt.LOSSES, "style loss")
    optimizer = opt._choice(o.optimizer, opt.OPTIMIZERS, "optimizer")
    init = opt._choice(o.init, LARGE_INITS, "init")
    iterations_per_tile = getattr(o, "tile_iterations", 2 * TILE_STEPS)
    h, w = source.shape
    dev = opt.resolve_device(o.device)
    torch.manual_seed(o.seed)
    gen = torch.Generator().manual_seed(o.seed)
    net, c_layers, s_layers = opt._network(
        o.backbone, o.weights, o.pool, o.swag, dev, o.seed, o.content_layers, o.style_layers,
        o.style_layer_weights, o.style_weight,
    )  # fmt: skip
    n_styles = len(styles)
    mix = [1.0 / n_styles] * n_styles if o.style_weights is None else list(o.style_weights)
    heaviest = max(range(n_styles), key=lambda i: mix[i])
    weights = {"content": o.content_weight, "style": o.style_weight, "tv": o.tv_weight}
    lr = o.learning_rate if o.learning_rate is not None else (1.0 if optimizer == "lbfgs" else 0.02)
    layers = list(dict.fromkeys([*c_layers, *s_layers]))
    strides = _strides(net, layers, dev)
    align = max(8, *strides.values())
    halo = tiling.round_up(HALO, align)
    started = time.perf_counter()

    # ---- 1. the start image at full size (8-bit)
    base = _init_full(init, source, styles[heaviest], o, budget, fixed_bytes)
    fixed = fixed_bytes + base.nbytes

    # ---- 2. coarse scales, whole
    canvas = Canvas((h, w), budget)
    fixed += canvas.nbytes
    longer = coarse_longer((h, w), budget, fixed)
    coarse_sizes = [opt.fit_size(w, h, s) for s in opt.pyramid_sizes(longer, o.min_size)]
    per_scale = opt.split_iterations(o.iterations, len(coarse_sizes))
    side = tile_side(budget, fixed, halo, align, tile)
    tiles = _tiles((h, w), side, halo, align)
    passes = math.ceil(iterations_per_tile / TILE_STEPS) if iterations_per_tile > 0 else 0
    # odd passes shift the grid by half a tile, so that every tile border lies inside a centre in the next pass
    shift = (side // 2) // align * align
    grids = [tiles if p % 2 == 0 else _tiles((h, w), side, halo, align, shift) for p in range(passes)]
    reporter = api.Reporter(progress, "optimize", o.iterations + sum(len(g) for g in grids))
    style_ts = [_tensor(s, dev) for s in styles]
    history: list[dict[str, float]] = []
    step = 0

    def coarse_callback(i: int, values: dict[str, float], image: Tensor) -> None:
        show = o.preview_every and i % o.preview_every == 0
        reporter.step(i, losses=values, preview=_numpy(image) if show else None, message="whole")

    best: Tensor | None = None
    interrupted = False
    try:
        for si, (cw, ch) in enumerate(coarse_sizes):
            c_img = _tensor(tiling.materialize(tiling.Resized(source, (cw, ch))), dev)
            s_long = opt._style_longer(max(cw, ch), o.stroke_scale)
            s_imgs = [opt.resize(s, opt.fit_size(s.shape[-1], s.shape[-2], s_long)) for s in style_ts]
            objective = opt._Objective(net, kind, c_img, s_imgs, mix, c_layers, s_layers, weights, None,
                                       o.normalize_gradients)  # fmt: skip
            if best is not None:
                x = opt.resize(best, (cw, ch))
            elif init in ("fast", "microast", "content"):
                x = _tensor(tiling.materialize(tiling.Resized(tiling.ArraySource(base), (cw, ch))), dev)
            else:
                x = opt._start_image(init, None, c_img, s_imgs[heaviest], c_img, [], None, None, gen, dev)
            x = x.detach().clone().contiguous().requires_grad_(True)
            start = x.detach().clone()
            best, _, step = opt._run_scale(objective, x, optimizer, lr, per_scale[si], step, history, start, math.inf,
                                           coarse_callback, None, c_img)  # fmt: skip
    except opt._Stop as stop:
        best, _, step = stop.args
        interrupted = True
    assert best is not None
    coarse = best.detach().clamp(0, 1)
    coarse_size = (coarse.shape[-1], coarse.shape[-2])

    # ---- 3. merge: the start image's detail under the coarse result's low frequencies
    down = tiling.materialize(tiling.Resized(tiling.ArraySource(base), coarse_size))
    delta = tiling.Resized(tiling.ArraySource((_numpy(coarse) - down + 1.0) / 2.0), (w, h))
    for region in tiling.tiles(h, w, 512):
        y0, y1, x0, x1 = region
        canvas.write(*region, base[y0:y1, x0:x1].astype(np.float32) / 255 + 2.0 * delta.read(*region) - 1.0)
    del base, down, delta
    tiling.release_memory()
    info: dict[str, Any] = {"coarse": coarse_size, "tiles": len(tiles), "tile": tiles[0].centre, "halo": halo,
                            "passes": passes, "history": history}  # fmt: skip

    # ---- 4. the finest scale in tiles
    if passes and not interrupted:
        # targets: the style images at the output's stroke size, streamed in tiles
        s_long = opt._style_longer(max(w, h), o.stroke_scale)
        targets: dict[str, Any] = {}
        per_style = []
        for s in styles:
            s_size = opt.fit_size(s.shape[1], s.shape[0], s_long)
            if s_size[0] * s_size[1] * 12 <= budget // 8:  # as the untiled path: torch's bicubic resize
                s_src: tiling.Source = tiling.ArraySource(_numpy(opt.resize(_tensor(s, dev), s_size)))
            else:  # too large to hold: OpenCV's Lanczos, streamed
                s_src = tiling.Resized(tiling.ArraySource(s), s_size)
            s_tiles = _tiles(s_src.shape, side, halo, align)
            per_style.append(statistics_pass(net, kind, s_src, s_tiles, list(s_layers), strides, dev))
        for n in s_layers:
            stats = [tuple(v.float() for v in _stats_from_sums(kind, p[n])) for p in per_style]
            targets[n] = opt._target(kind, opt._blend(kind, stats, mix))
        # content normalisation: Σ over positions and channels, times the mean square of the content features
        c_sums = statistics_pass(net, "mean_std", source, tiles, c_layers, strides, dev, transform=False)
        content_norm = {}
        for n in c_layers:
            channels = c_sums[n].first.shape[0]
            content_norm[n] = c_sums[n].count * channels * _content_scale(c_sums[n], channels)
        tv_norm = (3.0 * max(h - 1, 1) * w, 3.0 * h * max(w - 1, 1))
        terms = whole_terms(net, canvas, source, tiles, c_layers, content_norm, strides, dev)
        try:
            for p in range(passes):
                steps = min(TILE_STEPS, iterations_per_tile - p * TILE_STEPS)
                tiles = grids[p]
                global_sums = statistics_pass(net, kind, canvas, tiles, list(s_layers), strides, dev)
                for ti, t in enumerate(tiles):
                    outer = _tensor(canvas.read(*t.outer), dev)
                    with torch.no_grad():
                        content = net(_tensor(source.read(*t.outer), dev), c_layers)
                    objective = TileObjective(net, kind, t, outer, content, content_norm, s_layers, targets,
                                              global_sums, weights, tv_norm, terms,
                                              o.normalize_gradients)  # fmt: skip
                    cy0, cy1, cx0, cx1 = t.inner()
                    x = outer[..., cy0:cy1, cx0:cx1].clone().contiguous().requires_grad_(True)
                    local: list[dict[str, float]] = []
                    try:
                        best_t, best_loss, _ = opt._run_scale(objective, x, optimizer, lr, steps, 0, local,
                                                              x.detach().clone(), math.inf, None, None, x)  # fmt: skip
                    except opt._Stop as stop:
                        best_t, best_loss, _ = stop.args
                        interrupted = True
                    state = objective.state_at(best_loss)
                    if state is not None:  # else (no finite evaluation) the tile stays as it was
                        canvas.write(*t.centre, _numpy(best_t))
                        global_sums, terms = state[0], state[1]
                    values = next((v for v in local if v["total"] == best_loss), local[0] if local else {})
                    history.append(values)
                    step += 1
                    reporter.step(
                        step, losses=values, message=f"tile {ti + 1}/{len(tiles)} ({side} px), pass {p + 1}/{passes}"
                    )
                    if interrupted:
                        raise KeyboardInterrupt
                tiling.release_memory()
        except KeyboardInterrupt:
            interrupted = True
    info["seconds"] = time.perf_counter() - started
    info["interrupted"] = interrupted

    # ---- 5. out, tile by tile
    for region in tiling.tiles(h, w, 512):
        rgb = canvas.read(*region)
        if o.preserve_color:
            rgb = api.keep_luminance(rgb, source.read(*region))
        sink(region, rgb)
    if interrupted:
        reporter.step(step, message="interrupted")
    return info


def check_large(options: Any, masks: Any) -> None:
    """One-line errors for what the tiled path does not take."""
    if masks is not None:
        raise InputError("optimize in tiles takes no mask with several styles yet; use --tile 0 or a smaller size")
    init = getattr(options, "init", "fast")
    if init not in LARGE_INITS:
        raise InputError(f"unknown init {init!r}; choose one of {', '.join(LARGE_INITS)}")
    n = getattr(options, "tile_iterations", 0)
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise InputError(f"tile iterations must be a whole number of at least 0, got {n!r}")
