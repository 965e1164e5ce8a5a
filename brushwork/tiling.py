"""Exact tiled rendering in bounded memory: the tiled result equals the untiled one up to float rounding.

The feed-forward networks normalise with statistics over the whole image (instance norm, conditional instance
norm, AdaIN, WCT), so cutting the picture into independent tiles changes every tile's statistics: seams and
"style shift". Here a network is a list of *steps* between its normalisations (step ``i`` applies normalisation
``i − 1`` as a fixed affine map and runs on to the input of normalisation ``i``). For each normalisation in turn
the image is streamed tile by tile through the steps since the last stored state, only the tile *centres* adding
to that normalisation's per-channel sums (float64); the statistics then become the next step's affine map. A
state (the feature maps between two normalisations) is stored whole when it fits in the memory budget — at a
quarter of the resolution the maps are small — so each step runs once; otherwise it is recomputed from the last
stored state. Every tile carries a halo at least as wide as the steps' receptive field and its origin is aligned
to the network's total stride, so the pasted centres are exactly the untiled values. Where they fit in the budget
two parts run over the whole image instead: the lowest-resolution steps in one run with their normalisations
inside it (``StagedNet.native``), and a first convolution's statistics from the image's spectrum
(:func:`conv_moments`). See docs/tiling.md.

Images stay 8- or 16-bit outside the tile being rendered: sources (:class:`ArraySource`, :class:`Resized`,
:class:`Padded`) hand out float32 tiles on demand. This module is torch-free (the fast path runs its steps in
onnxruntime); the autoencoder's tiled path is in :mod:`brushwork.methods.autoencoder`.
"""

from __future__ import annotations

import importlib
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from brushwork.errors import InputError
from brushwork.options import MAX_SIDE

EPS = 1e-5  # brushwork.transforms.EPS, the networks' normalisation epsilon
DEFAULT_BUDGET = "1GB"
MIN_TILE = 16
# working memory of a native run (StagedNet.native) over the largest map of the state it starts from, beside that
# state and the run's outputs: onnxruntime's temporaries (measured at 3840×2160: 4.3× for dumoulin-26, 2.7× for
# ghiasi-transformer)
NATIVE_WORK = 6
BASELINE_BYTES = 160 * 2**20  # interpreter, numpy, OpenCV, onnxruntime and its sessions (measured ~150 MB)

_UNITS = {"": 1, "B": 1, "K": 2**10, "KB": 2**10, "M": 2**20, "MB": 2**20, "G": 2**30, "GB": 2**30, "T": 2**40}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TB": 2**40, "TIB": 2**40}


MAX_BUDGET = 2**50  # a memory budget past a petabyte is a typo


def parse_bytes(value: str | int | float) -> int:
    """``"512MB"``, ``"2GB"``, ``"1.5G"``, ``"800M"`` or a number of bytes → bytes (binary units: 1 GB = 2**30)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        number, unit = float(value), ""
    else:
        match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([a-zA-Z]*)\s*", str(value))
        if not match or match.group(2).upper() not in _UNITS:
            raise InputError(f"bad memory budget {value!r}: use a size such as 512MB, 1GB or 2.5GB")
        number, unit = float(match.group(1)), match.group(2).upper()
    if not math.isfinite(number) or number * _UNITS[unit] > MAX_BUDGET:
        raise InputError(f"memory budget {value!r} is too large: give at most {MAX_BUDGET // 2**40}TB")
    size = int(number * _UNITS[unit])
    if size < 64 * 2**20:
        raise InputError(f"memory budget {value!r} is too small: give at least 64MB")
    return size


def check_tile(tile: int | None) -> int | None:
    """``None`` (automatic), 0 (never tile) or a side of at least :data:`MIN_TILE` pixels."""
    if tile is None:
        return None
    if (
        isinstance(tile, bool)
        or not isinstance(tile, int | np.integer)
        or tile < 0
        or 0 < tile < MIN_TILE
        or tile > MAX_SIDE
    ):
        raise InputError(f"tile must be 0 (never tile) or from {MIN_TILE} to {MAX_SIDE} pixels, got {tile!r:.40}")
    return int(tile)


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


# -- image sources: float32 tiles on demand from 8/16-bit pixels ------------------------------------------------


class Source(Protocol):
    shape: tuple[int, int]  # (height, width)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        """Rows y0..y1, columns x0..x1 as H×W×3 float32 in 0..1."""
        ...


class ArraySource:
    """An H×W×C uint8, uint16 or float image; tiles come out as float32 in 0..1."""

    def __init__(self, pixels: np.ndarray) -> None:
        if pixels.ndim == 2:
            pixels = pixels[..., None]
        self.pixels = pixels
        self.shape = pixels.shape[:2]
        self.scale = {np.dtype(np.uint8): 1 / 255, np.dtype(np.uint16): 1 / 65535}.get(pixels.dtype, None)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        block = self.pixels[y0:y1, x0:x1]
        if self.scale is None:
            return np.ascontiguousarray(block, dtype=np.float32)
        return block.astype(np.float32) / np.float32(1 / self.scale)


class Padded:
    """``source`` padded on the right and bottom to ``shape``: numpy's ``reflect`` (as the fast path) or ``edge``
    (repeat the last row/column, as MicroAST's masks)."""

    def __init__(self, source: Source, shape: tuple[int, int], mode: str = "reflect") -> None:
        self.source, self.shape, self.mode = source, shape, mode

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        h, w = self.source.shape
        if y1 <= h and x1 <= w:
            return self.source.read(y0, y1, x0, x1)
        index = _reflect if self.mode == "reflect" else lambda i, n: np.minimum(i, n - 1)
        rows, cols = index(np.arange(y0, y1), h), index(np.arange(x0, x1), w)
        block = self.source.read(int(rows.min()), int(rows.max()) + 1, int(cols.min()), int(cols.max()) + 1)
        return np.ascontiguousarray(block[rows - rows.min()][:, cols - cols.min()])


def _reflect(idx: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(idx)
    period = 2 * (n - 1)
    idx = np.abs(idx) % period
    return np.where(idx >= n, period - idx, idx)


class Crop:
    """A rectangle of ``source``."""

    def __init__(self, source: Source, top: int, left: int, height: int, width: int) -> None:
        self.source, self.top, self.left, self.shape = source, top, left, (height, width)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        return self.source.read(self.top + y0, self.top + y1, self.left + x0, self.left + x1)


def resize_weights(n: int, m: int, interpolation: int) -> np.ndarray:
    """The m×n matrix that OpenCV's ``resize`` applies along one axis (n → m samples) with ``interpolation``,
    read off OpenCV itself by resizing slices of the identity, so that separable tiled resizing equals
    :func:`brushwork.io.resize` up to float rounding."""
    import cv2

    out = np.zeros((m, n), np.float32)
    chunk = 256
    for c0 in range(0, n, chunk):
        c1 = min(n, c0 + chunk)
        eye = np.zeros((n, c1 - c0), np.float32)
        eye[np.arange(c0, c1), np.arange(c1 - c0)] = 1.0
        cols = cv2.resize(eye, (c1 - c0, m), interpolation=interpolation)
        out[:, c0:c1] = cols.reshape(m, c1 - c0)
    out[np.abs(out) < 1e-7] = 0.0
    return out


class Resized:
    """``source`` resized to ``size`` = (width, height) exactly as :func:`brushwork.io.resize` would (INTER_AREA
    when shrinking, INTER_LANCZOS4 when enlarging, clipped to 0..1), computed tile by tile."""

    def __init__(self, source: Source, size: tuple[int, int]) -> None:
        import cv2

        self.source = source
        self.shape = (int(size[1]), int(size[0]))
        h, w = source.shape
        self.identity = self.shape == (h, w)
        shrinking = self.shape[0] * self.shape[1] < h * w
        flag = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
        if not self.identity:
            self.wy = resize_weights(h, self.shape[0], flag)
            self.wx = resize_weights(w, self.shape[1], flag)

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        if self.identity:
            return self.source.read(y0, y1, x0, x1)
        wy, wx = self.wy[y0:y1], self.wx[x0:x1]
        ry = np.flatnonzero(wy.any(0))
        rx = np.flatnonzero(wx.any(0))
        r0, r1, c0, c1 = int(ry[0]), int(ry[-1]) + 1, int(rx[0]), int(rx[-1]) + 1
        block = self.source.read(r0, r1, c0, c1)  # h×w×3
        rows = np.tensordot(wy[:, r0:r1], block, axes=(1, 0))  # (y1-y0)×w×3
        out = np.tensordot(wx[:, c0:c1], rows, axes=(1, 1)).transpose(1, 0, 2)
        return np.clip(out, 0.0, 1.0, out=out).astype(np.float32, copy=False)


def materialize(source: Source, rows: int = 256, dtype: type = np.float32) -> np.ndarray:
    """The whole of ``source`` as one H×W×3 array (float32, or uint16 to halve the memory), read in strips."""
    h, w = source.shape
    out = np.empty((h, w, 3), dtype)
    for y in range(0, h, rows):
        block = source.read(y, min(h, y + rows), 0, w)
        out[y : y + block.shape[0]] = block if dtype == np.float32 else (block * 65535 + 0.5).astype(dtype)
    return out


# -- networks as steps between normalisations -------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One step: ``radius`` (image pixels it reaches beyond its output, one side), its output tensors as
    ``(channels, stride)`` (stride in image pixels per feature pixel), and which outputs pass an input through."""

    radius: int
    outputs: tuple[tuple[int, int], ...]
    passthrough: tuple[tuple[int, int], ...] = ()  # (output index, input index)
    im2col: int = 0  # bytes per image pixel of the runtime's unfolded input of a large full-resolution kernel


@dataclass(frozen=True)
class StagedNet:
    """A network of the store cut at its normalisations; ``steps[i].step`` is ``net.step(i, ...)`` in PyTorch."""

    name: str
    align: int  # total stride: tile origins are multiples of it
    steps: tuple[Step, ...]
    # steps a … b − 1 that may run over the whole image in one go (their normalisations computed inside the run),
    # the residual blocks at the lowest resolution: see run_staged
    native: tuple[int, int] | None = None
    # the state-dict key of step 0's convolution where step 0 is that one bias-free convolution of the reflect-
    # padded image: its statistics then follow from the image's autocorrelation (conv_moments), without a pass
    linear_first: str = ""

    @property
    def norms(self) -> int:
        return len(self.steps) - 1

    def halo(self, start: int, stop: int) -> int:
        return round_up(sum(s.radius for s in self.steps[start:stop]), self.align)

    def bytes_per_pixel(self, index: int) -> float:
        """Bytes per image pixel of the state after step ``index − 1`` (state 0 is the image)."""
        if index == 0:
            return 12.0
        return sum(4.0 * c / (s * s) for c, s in self.steps[index - 1].outputs)

    def work_per_pixel(self, start: int, stop: int) -> float:
        """Working memory of steps start..stop − 1 per pixel of their tile: inputs, outputs and temporaries of the
        largest step (five of each: onnxruntime's temporaries, measured; and one more for the neighbouring tile's
        inputs and outputs, gathered and stored on threads, :class:`Behind`), plus a 9×9 kernel's unfolded input."""
        return max(
            6 * (self.bytes_per_pixel(i) + self.bytes_per_pixel(i + 1)) + self.steps[i].im2col
            for i in range(start, stop)
        )


_R = (32, 4)
DUMOULIN = StagedNet(
    "dumoulin-26",
    4,
    (
        Step(4, ((32, 1),)),  # onnxruntime's arena on: ~300 B/px measured (570 with float16 outputs), no im2col
        Step(1, ((32, 2),)),
        Step(2, ((32, 4),)),
        Step(4, (_R, _R)),
        *[Step(4, (_R, _R), ((0, 0),) if i % 2 == 0 else ()) for i in range(4, 15)],
        Step(4, ((8, 2),)),
        Step(2, ((4, 1),)),
        Step(4, ((3, 1),), im2col=64),  # ~140 B/px measured
        Step(0, ((3, 1),)),
    ),
    native=(3, 16),
    linear_first="contract.0.conv.conv.weight",
)
GHIASI = StagedNet(
    "ghiasi-transformer",
    4,
    (
        Step(11, (_R, _R), im2col=9 * 9 * 3 * 4),
        *[Step(4, (_R, _R), ((0, 0),) if i % 2 == 1 else ()) for i in range(1, 10)],
        Step(4, ((16, 2),)),
        Step(2, ((8, 1),)),
        Step(4, ((3, 1),), im2col=9 * 9 * 8 * 4),
        Step(0, ((3, 1),)),
    ),
    native=(1, 11),
)
STAGED = {n.name: n for n in (DUMOULIN, GHIASI)}


def norm_params(name: str, arrays: dict[str, np.ndarray], target: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """``(gamma, beta)`` of every normalisation of network ``name`` in step order, for a 26-weight vector
    (``dumoulin-26``) or a 100-d style code (``ghiasi-transformer``); float64."""
    t = np.asarray(target, np.float64)
    if name == "dumoulin-26":
        keys = [f"contract.{j}" for j in range(3)] + [f"res.{r}.{j}" for r in range(6) for j in range(2)]
        keys += [f"expand.{j}" for j in range(3)]
        return [(t @ arrays[f"{k}.norm.gamma"], t @ arrays[f"{k}.norm.beta"]) for k in keys]
    keys = [f"residual.{r}.norm{j}" for r in range(5) for j in (1, 2)] + [f"expand_norm.{j}" for j in range(3)]

    def linear(k: str) -> np.ndarray:
        return arrays[f"{k}.weight"].astype(np.float64) @ t + arrays[f"{k}.bias"]

    return [(linear(f"{k}.gamma"), linear(f"{k}.beta")) for k in keys]


class Moments:
    """Per-channel count, mean and sum of squared deviations, combined across tiles (Chan et al.) in float64."""

    def __init__(self, channels: int) -> None:
        self.n = 0
        self.mean = np.zeros(channels)
        self.m2 = np.zeros(channels)

    def add(self, x: np.ndarray) -> None:
        """``x``: C×h×w float."""
        k = x.shape[1] * x.shape[2]
        if k == 0:
            return
        mean = x.sum(axis=(1, 2), dtype=np.float64) / k
        m2 = np.maximum(np.einsum("chw,chw->c", x, x, dtype=np.float64) - k * mean * mean, 0.0)
        delta = mean - self.mean
        total = self.n + k
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * k / total)
        self.n = total

    def add_sums(self, k: int, first: np.ndarray, second: np.ndarray) -> None:
        """Add ``k`` values per channel given by their sums and sums of squares (float64)."""
        if k == 0:
            return
        mean = first / k
        m2 = np.maximum(second - k * mean * mean, 0.0)
        delta = mean - self.mean
        total = self.n + k
        self.mean = self.mean + delta * (k / total)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * k / total)
        self.n = total

    @property
    def var(self) -> np.ndarray:
        return self.m2 / max(self.n, 1)


def conv_moments(
    source: Source, weight: np.ndarray, strips: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> Moments:
    """Per-channel moments of a bias-free convolution (``weight`` O×C×k×k, stride 1, odd k) of ``source``
    reflect-padded by k // 2, over every output pixel, without computing the convolution.

    By Parseval, the sum of squares of a circular correlation is a sum over lags ``d`` of the kernel's own
    correlation times the image's autocorrelation ``R(d)``; only the lags within the kernel (−(k−1) … k−1 on each
    axis) are needed, read off the image's spectrum (scipy's FFT, float32, on the centred image). The outputs of
    the circular correlation outside the picture (its wrap-around) are then subtracted: ``strips(array)`` returns
    the sum and sum of squares of the valid convolution of a C×h×w array (for the two strips that hold them).
    At 3840×2160 0.7–1.2 s instead of a 1.6–1.8 s pass; within 1e-5 of the direct sums (tests/test_tiling.py).
    Hand-written because no library computes the moments of a convolution this way.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # importing scipy.fft (0.3 s) while the image is read
        fft = pool.submit(importlib.import_module, "scipy.fft")
        height, width = source.shape
        o, c, k, _ = weight.shape
        p = k // 2
        x, mean = _padded_image(source, p, c)
        sy, sx = x.shape[1:]
        scipy_fft = fft.result()
    w = weight.astype(np.float64)
    total1 = w.sum((2, 3)) @ x.reshape(c, -1).sum(1, dtype=np.float64)
    # wrap-around outputs: the rows below the picture (all columns), then the columns right of it
    rows, cols = np.arange(height, sy + k - 1) % sy, np.arange(sx + k - 1) % sx
    below = strips(np.ascontiguousarray(x[:, rows][:, :, cols]))
    right = strips(np.ascontiguousarray(x[:, : height + k - 1][:, :, np.arange(width, sx + k - 1) % sx]))
    spectrum = scipy_fft.rfft2(x, workers=-1, overwrite_x=True)  # C × sy × (sx/2 + 1), complex64
    del x
    lags = np.arange(-(k - 1), k)
    inverse_y = (np.exp(2j * np.pi * np.outer(lags, np.arange(sy)) / sy) / sy).astype(np.complex64)
    pairs = [(a, b) for a in range(c) for b in range(a, c)]
    conj = np.conj(spectrum)
    rows_y = np.stack([inverse_y @ (conj[a] * spectrum[b]) for a, b in pairs])  # cross-spectra, lags in y
    del spectrum, conj
    r = scipy_fft.irfft(rows_y, n=sx, axis=2)
    r = np.concatenate([r[..., sx - (k - 1) :], r[..., :k]], axis=2).astype(np.float64)  # lags in x
    auto = np.zeros((c, c, 2 * k - 1, 2 * k - 1))  # R[a, b, dy, dx] = Σ x_a(u) x_b(u + d)
    for n, (a, b) in enumerate(pairs):
        auto[a, b], auto[b, a] = r[n], r[n][::-1, ::-1]
    total2 = np.zeros(o)
    for dy in lags:  # Σ over lags of the kernel's correlation w_a(u) w_b(u + d) times R(d)
        ya, yb = max(0, -dy), min(k, k - dy)
        for dx in lags:
            xa, xb = max(0, -dx), min(k, k - dx)
            kk = np.einsum("oayx,obyx->oab", w[:, :, ya:yb, xa:xb], w[:, :, ya + dy : yb + dy, xa + dx : xb + dx])
            total2 += np.einsum("oab,ab->o", kk, auto[:, :, dy + k - 1, dx + k - 1])
    n = height * width
    s1, s2 = total1 - below[0] - right[0], total2 - below[1] - right[1]  # sums of the centred image's outputs
    shift = w.sum((2, 3)) @ mean  # what centring took off every output
    moments = Moments(o)
    moments.add_sums(n, s1 + n * shift, s2 + 2 * shift * s1 + n * shift * shift)
    return moments


def _padded_image(source: Source, p: int, channels: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``source`` (``channels`` channels) as C×H×W float32, its channel means subtracted (returned, float64: the
    moments are computed on the centred image, free of float32 cancellation), reflect-padded by ``p`` (numpy's
    "reflect"), then zero-padded to sizes that the FFT does fast (:func:`fast_length`)."""
    height, width = source.shape
    x = np.zeros((channels, fast_length(height + 2 * p), fast_length(width + 2 * p)), np.float32)
    for y in range(0, height, 256):
        band = source.read(y, min(height, y + 256), 0, width)
        x[:, p + y : p + y + band.shape[0], p : p + width] = band.transpose(2, 0, 1)
    centre = x[:, p : p + height, p : p + width]
    mean = centre.sum((1, 2), dtype=np.float64) / (height * width)
    centre -= mean.astype(np.float32)[:, None, None]
    for i in range(1, p + 1):  # columns, then whole rows (the corners too)
        x[:, p : p + height, p - i] = x[:, p : p + height, p + i]
        x[:, p : p + height, p + width - 1 + i] = x[:, p : p + height, p + width - 1 - i]
    for i in range(1, p + 1):
        x[:, p - i] = x[:, p + i]
        x[:, p + height - 1 + i] = x[:, p + height - 1 - i]
    return x, mean


def fast_length(n: int) -> int:
    """The smallest length from ``n`` whose only prime factors are 2, 3 and 5 (scipy.fft.next_fast_len for real
    transforms, without importing scipy)."""
    while True:
        m = n
        for f in (2, 3, 5):
            while m % f == 0:
                m //= f
        if m == 1:
            return n
        n += 1


def conv_moments_bytes(shape: tuple[int, int], weight_shape: tuple[int, ...]) -> int:
    """Working memory of :func:`conv_moments`: the padded image (float32) and its spectrum (complex64)."""
    _, c, k, _ = weight_shape
    sy, sx = fast_length(shape[0] + k - 1), fast_length(shape[1] + k - 1)
    return c * sy * sx * 4 + c * sy * (sx // 2 + 1) * 8 + 2 * sy * (sx // 2 + 1) * 8


def release_memory() -> None:
    """Hand freed heap memory back to the system (glibc keeps it otherwise, and the peak creeps up pass after
    pass as tiles of other sizes are allocated)."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):
            pass


def pass_reporter(total: int) -> Any:
    """Progress of a tiled rendering (stage ``tiles``, one step per pass over the picture) to the receiver the
    API set for the rendering (:func:`brushwork.api.reporting`): print sizes take minutes."""
    from brushwork.api import ambient_reporter

    return ambient_reporter("tiles", total)


def tiles(height: int, width: int, tile: int, tile_width: int | None = None) -> Iterator[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) covering height×width in row-major order; ``tile`` rows by ``tile_width`` columns (default
    ``tile``) except at the right/bottom."""
    tw = tile_width or tile
    for y in range(0, height, tile):
        for x in range(0, width, tw):
            yield y, min(height, y + tile), x, min(width, x + tw)


F16_MAX = 65504.0


class SpillFailed(Exception):
    """A state could not be kept in float16 or in its scratch file (a value out of range, a full disk): the
    pass runs again keeping it another way."""


class SpilledMap:
    """A ``C×H×W`` float16 state kept in an unlinked scratch file, written and read in bands of whole rows with
    ``pwritev``/``preadv`` (each band stored channel after channel, so that a band's channels go out in one call
    straight from the network's output, and come back into a ``C×h×W`` array that the network takes as it is).

    Its bytes live in the operating system's page cache, which the kernel writes to disk and drops under memory
    pressure, not in the process: a print-size rendering keeps every state this way instead of recomputing it from
    the last state that fits in the budget (at 9000×6000 that recomputation ran the full-resolution layers three
    times, docs/tiling.md). float16, as the lowest-resolution states at print sizes: half the bytes, within about
    0.1/255 of the float32 result on average. The file disappears when the map is closed or the process ends.
    """

    def __init__(self, shape: tuple[int, int, int], folder: str) -> None:
        self.shape = shape
        self.dtype = np.dtype(np.float16)
        self.nbytes = 0  # process memory: none beyond the band being read or written
        self.file = tempfile.TemporaryFile(dir=folder, prefix="brushwork-scratch-")
        self.file.truncate(shape[0] * shape[1] * shape[2] * 2)
        self._fd = self.file.fileno()
        self._bands: list[tuple[int, int, int]] = []  # (first row, end row, file offset)
        self._end = 0

    @staticmethod
    def supported() -> bool:
        return hasattr(os, "pwritev") and hasattr(os, "preadv")

    def write(self, y0: int, x0: int, values: np.ndarray) -> None:
        """Store rows ``y0…`` (``values``: ``C×h×W`` float16, whole rows: ``x0`` is 0)."""
        c, h, w = values.shape
        if x0 != 0 or w != self.shape[2] or values.dtype != np.float16:
            raise ValueError("a spilled state is written in float16 bands of whole rows")
        parts = [np.ascontiguousarray(values[j]) for j in range(c)]  # views when the band spans whole rows
        try:
            self._io(os.pwritev, parts, self._end)
        except OSError as e:  # a full disk, most likely
            raise SpillFailed(f"cannot write a scratch file: {e}") from None
        self._bands.append((y0, y0 + h, self._end))
        self._end += c * h * w * 2

    def read(self, y0: int, y1: int, x0: int, x1: int, out: np.ndarray | None = None) -> np.ndarray:
        """Rows ``y0…y1 − 1`` (whole rows: ``x0`` is 0 and ``x1`` the width) as a ``C×h×W`` float16 array (into
        ``out`` when given, a contiguous array of that shape)."""
        c, _, w = self.shape
        if x0 != 0 or x1 != w:
            raise ValueError("a spilled state is read in bands of whole rows")
        if out is None:
            out = np.empty((c, y1 - y0, w), np.float16)
        for b0, b1, offset in self._bands:
            r0, r1 = max(y0, b0), min(y1, b1)
            if r0 < r1:
                for j in range(c):
                    self._io(os.preadv, [out[j, r0 - y0 : r1 - y0]], offset + (j * (b1 - b0) + r0 - b0) * w * 2)
        return out

    def _io(self, call: Callable[[int, list[memoryview], int], int], arrays: list[np.ndarray], offset: int) -> None:
        """Write or read all the bytes of ``arrays`` at ``offset`` (a call may move fewer bytes than asked)."""
        views = [memoryview(a.reshape(-1)).cast("B") for a in arrays]
        while views:
            n = call(self._fd, views, offset)
            if n <= 0:
                raise OSError("a tiling scratch file was cut short")
            offset += n
            while views and n >= len(views[0]):
                n -= len(views.pop(0))
            if views and n:
                views[0] = views[0][n:]

    def close(self) -> None:
        self.file.close()


def scratch_folder(needed: int) -> str | None:
    """Where states that do not fit in the budget go (:class:`SpilledMap`), or None to recompute them instead:
    ``$BRUSHWORK_SCRATCH`` (``none`` turns spilling off), else the system's temporary folder (``$TMPDIR``) unless
    it is held in memory (tmpfs), in which case brushwork's cache folder. None when the folder lacks ``needed``
    bytes plus 1 GB of free space or cannot be written, or the platform has no positional file I/O."""
    if not SpilledMap.supported():
        return None
    folder = os.environ.get("BRUSHWORK_SCRATCH", "")
    if folder.lower() == "none":
        return None
    if not folder:
        folder = tempfile.gettempdir()
        if _in_memory(folder):
            from brushwork import store

            folder = str(store.home())
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):  # writable by us (not a read-only or foreign folder)
            pass
        return folder if shutil.disk_usage(folder).free >= needed + 2**30 else None
    except OSError:
        return None


def _in_memory(folder: str) -> bool:
    """Whether ``folder`` lies on a RAM file system (Linux mount table; False where unknown)."""
    try:
        with open("/proc/self/mounts", encoding="utf-8") as table:
            mounts = [line.split() for line in table]
    except OSError:
        return False
    path, best, kind = os.path.realpath(folder), "", ""
    for fields in mounts:
        if len(fields) > 2 and (path == fields[1] or path.startswith(fields[1].rstrip("/") + "/")):
            if len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    return kind in ("tmpfs", "ramfs")


def _buffer(buffers: dict[tuple, np.ndarray], key: tuple, shape: tuple[int, ...], dtype: type) -> np.ndarray:
    """A contiguous array of ``shape`` in reusable buffer ``key`` (grown as needed): the tiles of a pass have
    about one size, and reusing memory beats mapping fresh pages for every tile (see fast._ort)."""
    key, n = (*key, np.dtype(dtype).char), math.prod(shape)
    if key not in buffers or buffers[key].size < n:
        buffers[key] = np.empty(n, dtype)
    return buffers[key][:n].reshape(shape)


def _reused(buffers: dict[tuple, np.ndarray], key: tuple, values: np.ndarray) -> np.ndarray:
    """``values`` copied into reusable buffer ``key`` (:func:`_buffer`)."""
    out = _buffer(buffers, key, values.shape, values.dtype.type)
    np.copyto(out, values)
    return out


class Behind:
    """Runs a job at a time on a thread behind the caller: a tile's outputs are copied into their state (or written to
    its scratch file, or pasted into the picture) while the network renders the next tile. Copies and file writes
    release the GIL and leave the cores to the network's arithmetic; done in turn, they took about 2 s of a 3840×2160
    rendering. At most one job waits, so one more tile's outputs are alive; a job's exception is raised in the
    caller at the next :meth:`submit` or when the block ends."""

    def __init__(self) -> None:
        from concurrent.futures import Future, ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="brushwork-tiles")
        self._job: Future | None = None

    def submit(self, fn: Callable[..., None], *args: object) -> None:
        self.wait()
        self._job = self._pool.submit(fn, *args)

    def wait(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            job.result()

    def __enter__(self) -> Behind:
        return self

    def __exit__(self, kind: object, *exc: object) -> None:
        try:
            self.wait()
        except Exception:
            if kind is None:  # a job's error is raised only when the block itself did not fail
                raise
        finally:
            self._pool.shutdown()


def _write_map(m: np.ndarray | SpilledMap, y0: int, x0: int, values: np.ndarray) -> None:
    if isinstance(m, SpilledMap):
        m.write(y0, x0, values)
    else:
        m[:, y0 : y0 + values.shape[1], x0 : x0 + values.shape[2]] = values


# (network, start, stop, inputs, affines, box, half) -> outputs; with a box (y0, y1, x0, x1 in the last output's
# pixels) also the last output's per-channel sum and sum of squares over it, then for each output flagged in ``half``
# (those come back float16; inputs may be float16) a number at least F16_MAX where it overflows float16:
# brushwork.methods.fast._Segments
SegmentRunner = Callable[..., list[np.ndarray]]


@dataclass
class Plan:
    """How a tiled rendering runs: the bytes the tile working memory and the stored states may take, or a tile
    side forced by the user (image pixels)."""

    tile_bytes: int
    map_bytes: int
    tile: int | None = None
    free: int = 0  # all the bytes the two may take together (0: tile_bytes + map_bytes)
    spill: bool = True  # states that do not fit go to a scratch file (SpilledMap) instead of being recomputed
    # parts computed over the whole image where they fit (plan() sets it, not with a forced tile): the network's
    # native span (StagedNet.native) and the first convolution's statistics (StagedNet.linear_first)
    whole: bool = False

    def side(self, net: StagedNet, start: int, stop: int, held: int = 0) -> int:
        """Tile side (image pixels, a multiple of the alignment) for steps start..stop − 1, while stored states
        take ``held`` bytes (more than ``map_bytes`` leaves less for the tiles)."""
        if self.tile is not None:
            return max(net.align, round_up(self.tile, net.align))
        room = self.tile_bytes
        if held > self.map_bytes:
            room = max(min(room, int((self.free or self.tile_bytes + self.map_bytes) * 0.9) - held), 16 * 2**20)
        side = int(math.sqrt(room / net.work_per_pixel(start, stop))) - 2 * net.halo(start, stop)
        return max(4 * net.align, min(4096, side // net.align * net.align))

    def rows(self, net: StagedNet, start: int, stop: int, width: int, held: int = 0) -> int:
        """Band height (image rows, a multiple of the alignment) for bands of ``width`` full rows: what
        :meth:`side`'s square tiles would hold."""
        if self.tile is not None:
            return max(net.align, round_up(self.tile, net.align))
        side = self.side(net, start, stop, held) + 2 * net.halo(start, stop)
        rows = side * side // width - 2 * net.halo(start, stop)
        return max(net.align, rows // net.align * net.align)


def plan(net: StagedNet, budget: int, tile: int | None, fixed_bytes: int) -> Plan:
    """Split ``budget`` bytes (less the baseline and ``fixed_bytes``, the image buffers kept anyway) between the
    tile working memory (40 %) and the stored states (50 %), keeping 10 % for the allocator's slack."""
    free = max(budget - BASELINE_BYTES - fixed_bytes, 32 * 2**20)
    auto = tile is None
    return Plan(int(free * 0.40), int(free * 0.50), tile=tile, free=free, spill=auto, whole=auto)


def run_staged(
    net: StagedNet,
    runner: SegmentRunner,
    source: Source,
    params: Sequence[tuple[np.ndarray, np.ndarray]],
    sink: Callable[[tuple[int, int, int, int], np.ndarray], None],
    plan: Plan,
    first_weight: np.ndarray | None = None,
) -> dict[str, int]:
    """Render ``source`` (height and width multiples of ``net.align``) through ``net`` in tiles, exactly.

    ``params``: each normalisation's ``(gamma, beta)``. ``sink(region, rgb)`` receives every tile's centre
    (``region`` = y0, y1, x0, x1 in image pixels; ``rgb`` 3×h×w float32). ``first_weight``: the weight named by
    ``net.linear_first``, if any. Returns counters (passes, stored states, ...).
    """
    height, width = source.shape
    if height % net.align or width % net.align:
        raise ValueError(f"the source must be a multiple of {net.align} pixels, got {width}×{height}")
    start, maps = 0, []
    affines: list[np.ndarray] = []
    # States at the network's lowest resolution (the residual blocks: two maps, four while a pass writes the
    # next) may take up to 85 % of the free memory, as their tiles need little; in float16 when four float32
    # maps would not fit there (print sizes: several times faster than recomputing them from the last stored
    # state, within 0.1/255 on average of the float32 result; docs/tiling.md).
    low_channels = max((c for st in net.steps for c, s in st.outputs if s == net.align), default=0)
    low_bytes = low_channels * (height // net.align) * (width // net.align) * 4
    wide = int((plan.free or plan.tile_bytes + plan.map_bytes) * 0.85)
    low_dtype = np.float32 if 4 * low_bytes <= wide else np.float16
    stats = {"passes": 0, "stored": 0, "spilled": 0, "tiles": 0, "native": 0, "spectral": 0}
    report = pass_reporter(net.norms + 1)
    shrink = getattr(runner, "shrink", None)  # the runner's arena outlives its passes (fast._shared_arena)
    geometry: tuple = ()
    buffers: dict[tuple, np.ndarray] = {}  # tile inputs, reused from tile to tile
    pool: list[np.ndarray] = []  # the previous state's maps, reused for the next state's of the same shape

    def empty(shape: tuple[int, int, int], dtype: type) -> np.ndarray:
        for i, m in enumerate(pool):
            if m.shape == shape and m.dtype == dtype:
                return pool.pop(i)
        return np.empty(shape, dtype)

    def gather(stop: int, region: tuple[int, int, int, int], slot: int) -> list[np.ndarray]:
        """The inputs of steps ``start … stop − 1`` for the tile of ``region`` (with its halo), in buffer set
        ``slot`` (two sets: one tile's inputs are gathered while the network runs on the other's)."""
        y0, y1, x0, x1 = region
        halo = net.halo(start, stop)
        iy0, iy1, ix0, ix1 = max(0, y0 - halo), min(height, y1 + halo), max(0, x0 - halo), min(width, x1 + halo)
        if start == 0:
            return [_reused(buffers, (slot, 0), source.read(iy0, iy1, ix0, ix1).transpose(2, 0, 1))[None]]
        strides = [s for _, s in net.steps[start - 1].outputs]
        inputs = []
        for i, (m, s) in enumerate(zip(maps, strides, strict=True)):
            if isinstance(m, SpilledMap):
                band = _buffer(buffers, (slot, i), (m.shape[0], (iy1 - iy0) // s, width // s), np.float16)
                inputs.append(m.read(iy0 // s, iy1 // s, ix0 // s, ix1 // s, out=band)[None])
            else:
                inputs.append(_reused(buffers, (slot, i), m[:, iy0 // s : iy1 // s, ix0 // s : ix1 // s])[None])
        return inputs

    def ahead(stop: int, regions: list[tuple[int, int, int, int]]) -> Iterator[tuple[tuple, list[np.ndarray]]]:
        """Each region with its tile's inputs; the next tile's are gathered on a thread (copies and file reads
        release the GIL) while the network renders this one."""
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="brushwork-gather") as pool:
            job = pool.submit(gather, stop, regions[0], 0)
            for n, region in enumerate(regions):
                inputs = job.result()
                if n + 1 < len(regions):
                    job = pool.submit(gather, stop, regions[n + 1], (n + 1) % 2)
                yield region, inputs

    def segment(
        stop: int,
        region: tuple[int, int, int, int],
        inputs: list[np.ndarray],
        sums: bool = False,
        half: Sequence[bool] = (),
        keep: bool = True,
    ) -> list[np.ndarray]:
        """The outputs' centres (and, with ``sums``, the last one's sum and sum of squares over its centre) of
        the tile of ``region`` (its ``inputs`` from :func:`gather`); outputs flagged in ``half`` in float16.
        ``keep=False`` (with ``sums``): the sums alone, for a pass that stores no state."""
        y0, y1, x0, x1 = region
        halo = net.halo(start, stop)
        iy0, ix0 = max(0, y0 - halo), max(0, x0 - halo)
        strides = [s for _, s in net.steps[stop - 1].outputs]
        last = strides[-1]
        box = ((y0 - iy0) // last, (y1 - iy0) // last, (x0 - ix0) // last, (x1 - ix0) // last) if sums else None
        window = affines[2 * max(start - 1, 0) : 2 * (stop - 1)]
        if sums and not keep:
            return runner(net.name, start, stop, inputs, window, box, half, maps=False)
        outs = runner(net.name, start, stop, inputs, window, box, half)
        centres = [
            o[0, :, (y0 - iy0) // s : (y1 - iy0) // s, (x0 - ix0) // s : (x1 - ix0) // s]
            for o, s in zip(outs, strides, strict=False)
        ]
        return centres + list(outs[len(strides) :])

    def _pass(k: int, new_maps: list, through: dict[int, int], held: int) -> Moments:
        """Normalisation ``k``'s statistics over every tile centre, storing the new state into ``new_maps``."""
        outputs = net.steps[k].outputs
        moments = Moments(outputs[-1][0])
        spilled = [j for j, m in enumerate(new_maps) if isinstance(m, SpilledMap) and j not in through]
        if any(isinstance(m, SpilledMap) for m in maps):  # bands of whole rows: one read each
            regions = list(tiles(height, width, plan.rows(net, start, k + 1, width, held), width))
        else:  # square tiles; those of one row are assembled into a band before a spilled map stores it
            side = plan.side(net, start, k + 1, held)
            band = sum(2 * outputs[j][0] * (side // outputs[j][1]) * (width // outputs[j][1]) for j in spilled)
            regions = list(tiles(height, width, plan.side(net, start, k + 1, held + band) if band else side))
        stats["tiles"] += len(regions)
        half = [j not in through and m.dtype == np.float16 for j, m in enumerate(new_maps)]
        rows: dict[int, np.ndarray] = {}  # the band being assembled, per spilled map

        def store(region: tuple[int, int, int, int], outs: list[np.ndarray]) -> None:
            y0, y1, x0, x1 = region
            for j, (o, (c, s)) in enumerate(zip(outs, outputs, strict=True)):
                if j in through:
                    continue
                if j not in spilled or (x0 == 0 and x1 == width):
                    _write_map(new_maps[j], y0 // s, x0 // s, o)
                    continue
                shape = (c, (y1 - y0) // s, width // s)
                if j not in rows or rows[j].shape != shape:
                    rows[j] = np.empty(shape, np.float16)
                rows[j][:, :, x0 // s : x1 // s] = o
                if x1 == width:  # the row of tiles is complete
                    _write_map(new_maps[j], y0 // s, 0, rows[j])

        with Behind() as behind, closing(ahead(k + 1, regions)) as tiles_in:  # closing: its gathering ends here
            for region, inputs in tiles_in:
                y0, y1, x0, x1 = region
                count = ((y1 - y0) // outputs[-1][1]) * ((x1 - x0) // outputs[-1][1])
                if not new_maps:  # no state kept: the moments alone
                    moments.add_sums(count, *segment(k + 1, region, inputs, sums=True, keep=False))
                    continue
                outs = segment(k + 1, region, inputs, sums=True, half=half)
                first, second = outs[len(outputs) : len(outputs) + 2]
                if any(float(e) >= F16_MAX for e in outs[len(outputs) + 2 :]):  # float16 outputs that overflow
                    raise SpillFailed(f"state {k + 1} does not fit in float16")
                outs = outs[: len(outputs)]
                moments.add_sums(count, first, second)
                behind.submit(store, region, outs)  # stored while the next tile renders
        return moments

    def fits(k: int, current: int, through: dict[int, int], dtype: type | None = None) -> tuple[bool, list[int], int]:
        """Whether the state after step ``k`` can be kept in memory (as ``dtype``; default: float32, float16 for
        the lowest resolution where four float32 maps would not fit) beside ``current`` bytes of maps, the elements
        of its new maps, and their bytes."""
        outputs = net.steps[k].outputs
        fresh = [(c * (height // s) * (width // s)) for j, (c, s) in enumerate(outputs) if j not in through]
        low = all(s == net.align for _, s in outputs)
        fresh_bytes = sum(fresh) * np.dtype(dtype or (low_dtype if low else np.float32)).itemsize
        return current + fresh_bytes <= (max(wide, plan.map_bytes) if low else plan.map_bytes), fresh, fresh_bytes

    def native(a: int, b: int) -> None:
        """Steps a … b − 1 over the whole image in one run (their normalisations inside it): the state after
        step b − 1 and normalisation b − 1's statistics; a, b = net.native, while the state before step a is held in
        float32 and the run fits in the budget (its temporaries: about NATIVE_WORK times that state's largest map)."""
        nonlocal maps, start, geometry
        shapes = [(c, height // s, width // s) for c, s in net.steps[b - 1].outputs]
        if shrink is not None and geometry != (geometry := (tuple(m.shape for m in maps), tuple(shapes))):
            shrink()
        buffers.clear()
        pool.clear()
        outs = runner.native(net.name, a, b, [m[None] for m in maps], affines[-2:], params[a : b - 1])
        first, second = outs[-2:]
        moments = Moments(shapes[-1][0])
        moments.add_sums(shapes[-1][1] * shapes[-1][2], first, second)
        gamma, beta = params[b - 1]
        scale = gamma / np.sqrt(moments.var + EPS)
        for k in range(a, b - 1):  # computed inside the run; no later step reads them (the state is held)
            affines.extend([np.full(len(params[k][0]), np.nan, np.float32)] * 2)
        affines.extend([scale.astype(np.float32), (beta - moments.mean * scale).astype(np.float32)])
        maps, start = [o[0] for o in outs[:-2]], b
        del outs
        if shrink is not None:  # the run's working memory: the next pass's tiles would not reuse it
            shrink()
        release_memory()
        stats["passes"] += b - a
        stats["stored"] += 1
        stats["native"] += 1
        report.step(stats["passes"], message=f"normalisations {a + 1}-{b}")

    def next_spills() -> bool:
        """Whether the state after step 1 would go to a scratch file (it does not fit in memory)."""
        fresh = sum(c * (height // s) * (width // s) for c, s in net.steps[1].outputs)
        return scratch_folder(2 * fresh) is not None

    def first_strips(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Sum and sum of squares of step 0's valid convolution of the C×h×w array ``a`` (for conv_moments)."""
        pad = net.steps[0].radius
        box = (pad, a.shape[1] - pad, pad, a.shape[2] - pad)
        first, second = runner(net.name, 0, 1, [a[None]], [], box, (), maps=False)
        return first, second

    for k in range(net.norms):
        if k < start:  # run by native()
            continue
        span = net.native if plan.whole and getattr(runner, "native", None) is not None else None
        if span is not None and k == span[0] == start and all(isinstance(m, np.ndarray) for m in maps):
            held = sum(m.nbytes for m in maps)
            out_bytes = sum(4 * c * (height // s) * (width // s) for c, s in net.steps[span[1] - 1].outputs)
            work = NATIVE_WORK * max(m.nbytes for m in maps)
            if all(m.dtype == np.float32 for m in maps) and held + work + out_bytes <= plan.free * 0.9:
                native(*span)
                continue
        outputs = net.steps[k].outputs
        through = dict(net.steps[k].passthrough) if start == k else {}
        current = sum(m.nbytes for m in maps)
        dtype = low_dtype if all(s == net.align for _, s in outputs) else np.float32
        keep, fresh, fresh_bytes = fits(k, current, through, dtype)
        # a state that does not fit in memory goes to a scratch file, except the first one when only the next pass
        # reads it (the next state is kept in memory, or in a file when the first state is at full resolution):
        # recomputing it from the image is cheaper than writing and reading the file (the first 9×9 convolution's
        # 32 channels: at 3840×2160 0.6-0.8 s less, at 9000×6000 10 s less); later states cost more to recompute
        # than to read (16 s more at 9000×6000)
        full = all(s == 1 for _, s in net.steps[0].outputs)  # a full-resolution state costs more to store
        once = k == 0 and net.norms > 1 and (fits(1, current, {})[0] or (full and plan.spill and next_spills()))
        folder = None if keep or not plan.spill or once else scratch_folder(2 * sum(fresh))
        shapes = [(c, height // s, width // s) for c, s in outputs]
        if shrink is not None and geometry != (geometry := (tuple(m.shape for m in maps), tuple(shapes))):
            # tiles of other shapes than the last pass's: what the arena kept would not be reused but add to them
            shrink()
        moments: Moments | None = None
        new_maps: list[np.ndarray | SpilledMap] = []
        if k == 0 and not keep and folder is None and first_weight is not None and plan.whole:
            # a pass that would keep nothing, of a bias-free convolution of the image: from the image's spectrum
            if conv_moments_bytes(source.shape, first_weight.shape) <= plan.free * 0.9:
                moments = conv_moments(source, first_weight, first_strips)
                stats["spectral"] += 1
        while moments is None:
            new_maps = []
            if keep or folder is not None:
                for j, shape in enumerate(shapes):
                    if j in through:
                        new_maps.append(maps[through[j]])
                    else:
                        new_maps.append(empty(shape, dtype) if keep else SpilledMap(shape, folder))  # type: ignore[arg-type]
            pool.clear()  # what the new state did not reuse
            try:
                moments = _pass(k, new_maps, through, current + (fresh_bytes if keep else 0))
                break
            except SpillFailed:  # float16 or the scratch file cannot hold it: float32 in memory, else recompute it
                for j, m in enumerate(new_maps):
                    if j not in through and isinstance(m, SpilledMap):
                        m.close()
                dtype, folder = np.float32, None
                keep, fresh, fresh_bytes = fits(k, current, through, dtype)
        stats["passes"] += 1
        report.step(stats["passes"], message=f"normalisation {k + 1}")
        release_memory()
        gamma, beta = params[k]
        scale = gamma / np.sqrt(moments.var + EPS)
        affines += [scale.astype(np.float32), (beta - moments.mean * scale).astype(np.float32)]
        if new_maps:
            for m in maps:
                if all(m is not n for n in new_maps):
                    if isinstance(m, SpilledMap):
                        m.close()
                    else:
                        pool.append(m)
            maps, start = new_maps, k + 1
            stats["stored"] += 1
            stats["spilled"] += any(isinstance(m, SpilledMap) for m in new_maps)
    held = sum(m.nbytes for m in maps)
    if any(isinstance(m, SpilledMap) for m in maps):
        regions = list(tiles(height, width, plan.rows(net, start, len(net.steps), width, held), width))
    else:
        regions = list(tiles(height, width, plan.side(net, start, len(net.steps), held)))
    stats["tiles"] += len(regions)
    with Behind() as behind, closing(ahead(len(net.steps), regions)) as tiles_in:
        for region, inputs in tiles_in:
            behind.submit(sink, region, segment(len(net.steps), region, inputs)[0])
    for m in maps:
        if isinstance(m, SpilledMap):
            m.close()
    release = getattr(runner, "release", None)
    if release is not None:
        release()
    stats["passes"] += 1
    report.step(stats["passes"], message="render")
    return stats


# -- the API's tiled path (brushwork.api.Renderer.render_picture) -----------------------------------------------


class MaskSource:
    """The API's masks (:func:`brushwork.api.load_masks`) as a K-channel source, read tile by tile."""

    def __init__(self, greys: list[Source], n_styles: int) -> None:
        self.greys, self.n = greys, n_styles
        self.shape = greys[0].shape

    def read(self, y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
        planes = [g.read(y0, y1, x0, x1).mean(axis=2) for g in self.greys]
        if len(planes) > 1:
            stack = np.stack(planes, axis=2).astype(np.float32)
            total = stack.sum(2, keepdims=True)
            return np.where(total > 1e-6, stack / np.maximum(total, 1e-6), 1.0 / self.n).astype(np.float32)
        m = planes[0].astype(np.float32)
        return np.stack([m, 1.0 - m], axis=2) if self.n == 2 else m[..., None]


def _grey_source(mask: object, size: tuple[int, int], max_pixels: int | None) -> Source:
    from brushwork import io

    if isinstance(mask, np.ndarray) and mask.ndim == 2:
        a = mask.astype(np.float32)
        if not np.all(np.isfinite(a)):
            raise InputError("mask has values that are not finite")
        a = np.clip(a / 255.0 if a.max() > 1.0 else a, 0.0, 1.0)
        return Resized(ArraySource(np.repeat(a[..., None], 3, axis=2)), size)
    rgb = mask.rgb if isinstance(mask, io.Picture) else io.load_pixels(mask, max_pixels=max_pixels).rgb
    return Resized(ArraySource(rgb), size)


def render_picture_tiled(renderer: object, content: object, mask: object = None) -> object:
    """:meth:`brushwork.api.Renderer.render_picture` in tiles: the photo stays 8/16-bit, the engine renders
    tiles exactly (its ``render_tiled``), and the API's generic options (pixel-space masks, strength,
    ``preserve_color``, ``color_match``, ``stroke_scale``) are applied tile by tile exactly as untiled."""
    from brushwork import api, io
    from brushwork import options as opts

    r = renderer
    o = r.options
    budget, tile = parse_bytes(o.memory_budget), o.tile or None
    photo = content if isinstance(content, io.Picture) else io.load_pixels(content, max_pixels=r.max_pixels)
    source: Source = ArraySource(photo.rgb)
    w, h = io.bounded_size(photo.size, o.max_size)
    if (w, h) != photo.size:
        source = Resized(source, (w, h))
    if min(w, h) < opts.MIN_SIDE:
        raise InputError(f"image is too small ({w}×{h}): both sides need {opts.MIN_SIDE} px")
    n = len(r.styles)
    masks: MaskSource | None = None
    if mask is not None:
        if o.style_weights is not None:
            raise InputError("give either style weights or a mask, not both")
        if isinstance(mask, list | tuple):
            if len(mask) != n:
                raise InputError(f"got {len(mask)} masks for {n} styles: give one mask per style")
            masks = MaskSource([_grey_source(m, (w, h), r.max_pixels) for m in mask], n)
        else:
            if n > 2:
                raise InputError(f"one mask image assigns at most two styles; give a list of {n} masks")
            masks = MaskSource([_grey_source(mask, (w, h), r.max_pixels)], n)
    styles, key = r.styles, "all"
    if o.color_match and "color_match" not in r.native:
        styles, key = _matched_styles(styles, source), None
    deep = photo.rgb.dtype != np.uint8
    out = np.empty((h, w, 3), np.uint16 if deep else np.uint8)
    top = 65535.0 if deep else 255.0
    fixed = photo.rgb.nbytes + out.nbytes

    def finish(region: tuple[int, int, int, int], rgb: np.ndarray) -> None:
        y0, y1, x0, x1 = region
        photo_tile = source.read(y0, y1, x0, x1)
        if o.strength < 1.0 and "strength" not in r.native:
            rgb = o.strength * rgb + (1.0 - o.strength) * photo_tile
        if o.preserve_color and "preserve_color" not in r.native:
            rgb = api.keep_luminance(rgb, photo_tile)
        out[y0:y1, x0:x1] = np.clip(rgb, 0.0, 1.0) * top + 0.5

    def one_pass(engine: object, mask_source: Source | None, sink: Callable) -> None:
        scale = o.stroke_scale
        if scale == 1.0 or "stroke_scale" in r.native:
            engine.render_tiled(source, mask_source, sink, tile, budget, fixed)
            return
        small_size = (max(opts.MIN_SIDE, round(w / scale)), max(opts.MIN_SIDE, round(h / scale)))
        small_dtype = np.float32 if small_size[0] * small_size[1] * 12 <= budget // 4 else np.uint16
        small = np.empty((small_size[1], small_size[0], 3), small_dtype)

        def keep(region: tuple[int, int, int, int], rgb: np.ndarray) -> None:
            y0, y1, x0, x1 = region
            small[y0:y1, x0:x1] = rgb if small_dtype == np.float32 else np.clip(rgb, 0, 1) * 65535 + 0.5

        small_masks = None if mask_source is None else Resized(mask_source, small_size)
        engine.render_tiled(Resized(source, small_size), small_masks, keep, tile, budget, fixed)
        up = Resized(ArraySource(small), (w, h))
        if scale > 1.0:  # the upscale is soft: one more pass at full size redraws crisp edges
            engine.render_tiled(up, mask_source, sink, tile, budget, fixed + small.nbytes)
        else:
            for region in tiles(h, w, 512):
                sink(region, up.read(*region))

    if masks is None or (n > 1 and "mask" in r.native):
        one_pass(r._engine(key, styles), masks, finish)
    elif n == 1:  # one style: white stylized, black the photo itself

        def blend(region: tuple[int, int, int, int], rgb: np.ndarray) -> None:
            m = masks.read(*region)[..., :1]
            finish(region, m * rgb + (1.0 - m) * source.read(*region))

        one_pass(r._engine(key, styles), None, blend)
    else:  # each style on its own, composited by the mask (a float32 accumulator of the whole picture)
        acc = np.zeros((h, w, 3), np.float32)
        for k, style in enumerate(styles):

            def add(region: tuple[int, int, int, int], rgb: np.ndarray, k: int = k) -> None:
                y0, y1, x0, x1 = region
                acc[y0:y1, x0:x1] += masks.read(*region)[..., k : k + 1] * rgb

            engine = r._engine(None if key is None else ("one", k), [style], style_weights=None)
            one_pass(engine, None, add)
        for region in tiles(h, w, 512):
            y0, y1, x0, x1 = region
            finish(region, acc[y0:y1, x0:x1])
    alpha = photo.alpha
    if alpha is not None and alpha.shape != (h, w):
        import cv2

        alpha = cv2.resize(alpha, (w, h), interpolation=cv2.INTER_AREA)
    return io.Picture(rgb=out, alpha=alpha, path=None, bit_depth=16 if deep else 8)


def _matched_styles(styles: list, source: Source) -> list:
    """``color_match`` for a print-size photo: its colour mean and covariance streamed over strips."""
    import torch

    from brushwork import color, io

    h, w = source.shape
    total, first, second = 0, np.zeros(3), np.zeros((3, 3))
    for y0, y1, x0, x1 in tiles(h, w, 1024):
        p = source.read(y0, y1, x0, x1).reshape(-1, 3).astype(np.float64)
        total += p.shape[0]
        first += p.sum(0)
        second += p.T @ p
    mean = first / total
    cov = second / total - np.outer(mean, mean)
    stats = (torch.from_numpy(mean[:, None]), torch.from_numpy(cov))
    return [
        s if isinstance(s, int) else io.to_numpy(color.match_color(io.to_tensor(s), None, reference_stats=stats))
        for s in styles
    ]
