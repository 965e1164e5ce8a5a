"""MicroAST in exact tiles (:mod:`brushwork.tiling`): print-size photos in bounded memory, equal to the untiled
rendering of :class:`brushwork.methods.microast.Engine` up to float rounding.

MicroAST normalises twice, with AdaIN on quarter-resolution features (:mod:`brushwork.nets.microast`): on the
encoder's output ``c1`` and on the first modulated residual block's output. Everything else is local. So it
renders in three steps, each starting from the last stored state:

1. encoder: image → ``c1`` (64 channels at ¼); the channel moments of ``c1`` are streamed over the tile centres;
2. AdaIN with those statistics fixed (an affine map ``gain·x + shift``), ``dec1`` (modulated) → ``out``; moments
   of ``out`` streamed the same way;
3. AdaIN on ``out`` fixed, ``dec2`` (modulated) and the upsampling decoder → the picture.

With a mask (K ≥ 2 styles) every region has its own statistics: the moments are weighted by the region masks
(the mean of each 4×4 cell, as untiled), and gain, shift and the modulation become per-pixel maps. ``c1`` and
``out`` (16 bytes per image pixel each) are stored whole when they fit the budget's state share, else recomputed
from the image (exact, slower). AdaIN's variance is unbiased and ``EPS`` is added before the square root, as in
:func:`brushwork.nets.microast.mean_std`.

Receptive radii (image pixels, one side; stride-1 convolutions reach ``k // 2 × stride-so-far``, strided ones at
most ``(k − 1) × stride-so-far``, a ×2 bilinear upsampling one low-resolution pixel): encoder 9×9 conv 4,
the two strided depthwise convs 2 and 4, two residual blocks at ¼ 4 × 4 = 16: **26 → halo 28**; ``dec1`` 8 →
**8**; ``dec2`` 8, upsampling 4, depthwise 3×3 at ½ 2, upsampling 2, depthwise 3×3 1, 9×9 4: **21 → 24**. Tile
origins are multiples of 4, so the strided convolutions and upsamplings see the phases they see untiled.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from brushwork import io, store, tiling

ALIGN = 4
HALOS = (28, 8, 24)  # steps 1..3 (see the module docstring)
# bytes per tile pixel of PyTorch's working memory in the largest step (the full-resolution decoder: its
# unfolded 5×5 space-to-depth convolution), with the allocator's slack after many tiles: at 9000×6000 in a 1.5 GB
# budget 1000 gave a 1675 MiB peak (hundreds of tiles, the heap's slack growing), 2500 gives 1447 MiB
WORK_BYTES_PER_PIXEL = 2500
TORCH_BYTES = 200 * 2**20  # PyTorch and the network on top of tiling.BASELINE_BYTES (measured ~230 MB with both)
STATE_BYTES_PER_PIXEL = 64 * 4 / 16  # 64 float32 channels at a quarter of the resolution


class RegionMoments:
    """Per region and channel: mask weight, first and second moments (float64), summed over tiles."""

    def __init__(self, regions: int, channels: int) -> None:
        self.count = np.zeros((regions, 1))
        self.first = np.zeros((regions, channels))
        self.second = np.zeros((regions, channels))

    def add(self, x: Any, masks: Any) -> None:
        """``x``: ``1×C×h×w`` tensor; ``masks``: ``1×K×h×w`` weights or None (one region of ones)."""
        xf = x[0].flatten(1).double()  # C×P
        if masks is None:
            self.count[0] += xf.shape[1]
            self.first[0] += xf.sum(1).numpy()
            self.second[0] += xf.square().sum(1).numpy()
            return
        m = masks[0].flatten(1).double()  # K×P
        self.count += m.sum(1, keepdim=True).numpy()
        self.first += (m @ xf.t()).numpy()
        self.second += (m @ xf.square().t()).numpy()

    def affine(self, mean: np.ndarray, std: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gain and shift (``K×C`` float32) of AdaIN to ``mean``/``std`` (``K×C``) with these statistics."""
        mu = self.first / np.maximum(self.count, 1e-6)
        var = np.maximum(self.second - self.count * mu * mu, 0.0) / np.maximum(self.count - 1.0, 1.0)
        gain = std / np.sqrt(var + 1e-5)
        return gain.astype(np.float32), (mean - mu * gain).astype(np.float32)


def render_tiled(
    engine: Any,
    source: tiling.Source,
    masks: tiling.Source | None,
    sink: Callable[[tuple[int, int, int, int], np.ndarray], None],
    tile: int | None,
    budget: int,
    fixed_bytes: int,
) -> dict[str, int]:
    """``engine.render`` of ``source`` in tiles; ``sink(region, rgb h×w×3 float32, not clamped)`` gets the
    centres. ``masks``: a K-channel source (K = number of styles ≥ 2) or None. Returns counters."""
    import torch

    from brushwork.methods.microast import RENDER_NET, signal_bound
    from brushwork.nets.microast import CHANNELS, SIGNAL_PARTS

    h, w = source.shape
    opts = engine.options
    height, width = tiling.round_up(h, ALIGN), tiling.round_up(w, ALIGN)
    image = tiling.Padded(source, (height, width))
    k = len(engine.signals)
    signals = engine.signals
    if opts.strength == 0.0:
        for region in tiling.tiles(h, w, 1024):
            sink(region, source.read(*region))
        return {"passes": 1, "stored": 0, "tiles": 0}
    if opts.strength < 1.0:  # the photo's own signal, from the photo bounded to style_size (as untiled)
        bound = signal_bound(w, h, opts.style_size)
        small = tiling.materialize(tiling.Resized(source, io.bounded_size((w, h), bound)))
        signals = opts.strength * signals + (1.0 - opts.strength) * engine.stylizer.signal(small, bound)
    mask_src = None
    if masks is not None and k > 1:
        mask_src = tiling.Padded(masks, (height, width), mode="edge")
    else:
        signals = (engine.weights[:, None] * signals).sum(0, keepdims=True)
    parts = dict(zip(SIGNAL_PARTS, np.split(np.asarray(signals, np.float64), len(SIGNAL_PARTS), axis=1), strict=True))
    device = engine.stylizer.device
    net = store.load_net(RENDER_NET, device)
    dec = net.decoder

    def quarter_masks(iy0: int, iy1: int, ix0: int, ix1: int) -> Any:
        if mask_src is None:
            return None
        m = mask_src.read(iy0, iy1, ix0, ix1).transpose(2, 0, 1)  # K×h×w
        total = m.sum(0, keepdims=True)
        m = np.where(total > 1e-6, m / np.maximum(total, 1e-6), engine.weights[:, None, None])
        kk, hh, ww = m.shape
        m = m.reshape(1, kk, hh // 4, 4, ww // 4, 4).mean((3, 5))
        return torch.from_numpy(np.ascontiguousarray(m, dtype=np.float32)).to(device)

    def per_pixel(table: np.ndarray, m: Any) -> Any:
        """``K×C`` → ``1×C×1×1`` (one region) or the mask-weighted ``1×C×h×w`` map."""
        t = torch.from_numpy(np.ascontiguousarray(table, dtype=np.float32)).to(device)
        if m is None:
            return t[0][None, :, None, None]
        return (t.t() @ m[0].flatten(1)).reshape(1, CHANNELS, *m.shape[2:])

    affines: list[tuple[np.ndarray, np.ndarray]] = []

    def step(i: int, x: Any, m: Any) -> Any:
        if i == 0:
            return net.encoder(x)[1]
        gain, shift = affines[i - 1]
        t = x * per_pixel(gain, m) + per_pixel(shift, m)
        if i == 1:
            return dec.dec1.modulated(t, per_pixel(parts["weight1"], m), per_pixel(parts["bias1"], m))
        return dec.dec3(dec.dec2.modulated(t, per_pixel(parts["weight0"], m), per_pixel(parts["bias0"], m)))

    free = max(budget - tiling.BASELINE_BYTES - TORCH_BYTES - fixed_bytes, 32 * 2**20)
    tile_bytes, map_bytes = int(free * 0.4), int(free * 0.5)
    state_bytes = int(height * width * STATE_BYTES_PER_PIXEL)
    stats = {"passes": 0, "stored": 0, "tiles": 0}
    report = tiling.pass_reporter(3)
    start, state = 0, None  # the last stored state: index and 64×H/4×W/4 array (None: the image)

    def run(stop: int, region: tuple[int, int, int, int]) -> Any:
        """Steps start..stop − 1 on ``region`` with its halo; the centre of the last output."""
        y0, y1, x0, x1 = region
        halo = sum(HALOS[start:stop])
        iy0, iy1 = max(0, y0 - halo), min(height, y1 + halo)
        ix0, ix1 = max(0, x0 - halo), min(width, x1 + halo)
        if start == 0:
            x = torch.from_numpy(np.ascontiguousarray(image.read(iy0, iy1, ix0, ix1).transpose(2, 0, 1))[None])
        else:
            x = torch.from_numpy(np.ascontiguousarray(state[:, iy0 // 4 : iy1 // 4, ix0 // 4 : ix1 // 4])[None])
        x = x.to(device)
        m = quarter_masks(iy0, iy1, ix0, ix1)
        for i in range(start, stop):
            x = step(i, x, m if i > 0 else None)
        s = 1 if stop == 3 else 4
        return x[:, :, (y0 - iy0) // s : (y1 - iy0) // s, (x0 - ix0) // s : (x1 - ix0) // s]

    def side(stop: int) -> int:
        if tile:
            return max(ALIGN, tiling.round_up(tile, ALIGN))
        s = int(math.sqrt(tile_bytes / WORK_BYTES_PER_PIXEL)) - 2 * sum(HALOS[start:stop])
        return max(4 * ALIGN, min(4096, s // ALIGN * ALIGN))

    with torch.inference_mode():
        for norm, (mean_key, std_key) in enumerate((("mean1", "std1"), ("mean0", "std0"))):
            keep = state_bytes * (1 if start == 0 else 2) <= map_bytes
            new = np.empty((CHANNELS, height // 4, width // 4), np.float32) if keep else None
            moments = RegionMoments(k if mask_src is not None else 1, CHANNELS)
            regions = list(tiling.tiles(height, width, side(norm + 1)))
            for region in regions:
                y0, y1, x0, x1 = region
                out = run(norm + 1, region)
                moments.add(out.cpu(), quarter_masks(y0, y1, x0, x1))
                if new is not None:
                    new[:, y0 // 4 : y1 // 4, x0 // 4 : x1 // 4] = out[0].cpu().numpy()
            affines.append(moments.affine(parts[mean_key], parts[std_key]))
            stats["passes"] += 1
            stats["tiles"] += len(regions)
            report.step(stats["passes"], message=f"AdaIN {norm + 1}")
            if new is not None:
                start, state = norm + 1, new
                stats["stored"] += 1
            tiling.release_memory()
        regions = list(tiling.tiles(height, width, side(3)))
        for y0, y1, x0, x1 in regions:
            if y0 >= h or x0 >= w:
                continue
            rgb = run(3, (y0, y1, x0, x1))[0].cpu().numpy().transpose(1, 2, 0)
            sink((y0, min(y1, h), x0, min(x1, w)), np.ascontiguousarray(rgb[: min(y1, h) - y0, : min(x1, w) - x0]))
        stats["passes"] += 1
        stats["tiles"] += len(regions)
        report.step(stats["passes"], message="render")
    return stats
