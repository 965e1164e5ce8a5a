"""MicroAST: arbitrary style transfer by a 472k-parameter encoder-decoder (Wang et al., AAAI 2023).

The authors' weights (MIT licence, trained for 160k iterations with VGG-19 losses) ship inside brushwork as
``assets/models/microast.safetensors`` and are registered in the model store as ``microast``.

How the controls work (arrays are ``H×W×3`` float32 RGB in 0..1):

- Each style image becomes a **style signal** (:mod:`brushwork.nets.microast`: its feature statistics and the
  decoder's filter modulation), computed once per style. Several styles blend by the weighted mean of their
  signals (``style_weights``).
- ``strength`` moves each signal from the photo's own signal towards the style's (as the fast path moves its
  style codes); 0 returns the photo unchanged. (The authors' own ``alpha`` is not used for this: below 1 their
  decoder leaves its trained range and the pictures break up.)
- ``mask`` (``K×H×W`` weights, K ≥ 2 styles) gives each region its own style in feature space: the decoder gets
  per-pixel signals, so region borders are drawn by the network, not cut. With one style the mask blends the
  stylized picture with the photo.
- ``stroke_scale``, ``preserve_color`` and ``color_match`` are done by :mod:`brushwork.api` as for every method.
- Any size: the photo is reflect-padded to a multiple of 4 and cropped back.

Runtimes: the two networks (style → signal, photo + signals → picture) run from ONNX exports in onnxruntime or
OpenVINO on the CPU (no ``import torch`` for a picture) and in PyTorch on CUDA/MPS, through the fast path's
runtime classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from brushwork import io, store
from brushwork.api import normalize_weights
from brushwork.device import resolve_device
from brushwork.errors import InputError
from brushwork.methods import fast
from brushwork.options import MIN_SIDE, MicroastOptions

NAME = "microast"
SIGNAL_SIZE = 512  # brushwork.nets.microast.SIGNAL_SIZE (not imported: that module needs torch)

ASSETS = Path(__file__).resolve().parents[1] / "assets" / "models"
SHIPPED = "microast.safetensors"
LICENCE_FILE = "microast-LICENSE.txt"

_COMMIT = "5a6c9050d8c408191cb9db12c697f3e4c7ebe137"
# the four published files, as the store's row lists them: part -> (canonical URL, sha256, bytes)
ORIGINS: dict[str, tuple[str, str, int]] = {
    url.rsplit("/", 1)[1].removesuffix("_iter_160000.pth.tar"): (url, sha, size)
    for url, sha, size in store.REGISTRY[NAME].origin
}
CONFIG = {
    "format": "brushwork-microast",
    "model": "MicroAST (Wang, Zhao, Zuo, Li, Chen, Xing, Lu; AAAI 2023; arXiv 2211.15313)",
    "repository": f"https://github.com/EndyWon/MicroAST/tree/{_COMMIT}",
    "licence": "MIT",
    "licence_file": LICENCE_FILE,
    "copyright": "Copyright (c) 2022 Zhizhong Wang",
    "arch": "brushwork.nets.microast:MicroAST",
}


# the networks the runtimes run (sub-modules of the ``microast`` entry) and their ONNX export specs
STYLE_NET, RENDER_NET, REGIONS_NET = f"{NAME}/style", f"{NAME}/render", f"{NAME}/regions"
_IMAGE = {"image": {2: "h", 3: "w"}, "output": {2: "h", 3: "w"}}


def register_exports(model: str) -> None:
    """Let the runtimes run the three networks of store model ``model`` (``microast``, or a user's trained
    MicroAST registered by :func:`brushwork.decoders.register_microast`)."""
    fast.register_export(f"{model}/style", {"image": (1, 3, 64, 64)}, {"image": {2: "h", 3: "w"}})
    fast.register_export(f"{model}/render", {"image": (1, 3, 64, 64), "signal": (1, SIGNAL_SIZE)}, _IMAGE)
    fast.register_export(
        f"{model}/regions",
        {"image": (1, 3, 64, 64), "signals": (2, SIGNAL_SIZE), "masks": (1, 2, 16, 16)},
        {**_IMAGE, "signals": {0: "k"}, "masks": {1: "k", 2: "mh", 3: "mw"}},
    )


register_exports(NAME)


def _nchw(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None], dtype=np.float32)


def signal_bound(width: int, height: int, size: int) -> int:
    """The longer side a picture is read at for its style signal: ``size``, or more for a long thin picture, so
    that its shorter side keeps ``MIN_SIDE`` px."""
    return max(size, math.ceil(MIN_SIDE * max(width, height) / min(width, height)))


class MicroastStylizer:
    """MicroAST's two networks in one runtime; reuse one instance for many images. ``model``: the store name of
    the weights (the shipped ``microast``, or a trained file's name from :func:`brushwork.decoders.register_microast`).
    """

    def __init__(self, device: str = "auto", runtime: str = "auto", model: str = NAME) -> None:
        self.device = resolve_device(device)
        self.runtime = fast.make_runtime(runtime, self.device)
        self.nets = (f"{model}/style", f"{model}/render", f"{model}/regions")

    def signal(self, rgb: np.ndarray, size: int = MicroastOptions.style_size) -> np.ndarray:
        """The style signal (``SIGNAL_SIZE`` floats) of a picture, its longer side bounded to ``size`` (or more for a
        long thin picture, whose shorter side is kept at ``MIN_SIDE`` px at least)."""
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise InputError(f"picture is too small for a style signal ({w}×{h}): both sides need {MIN_SIDE} px")
        rgb = io.resize_to_max(rgb, signal_bound(w, h, size))
        return self.runtime.run(self.nets[0], _nchw(rgb))[0]

    def forward(self, rgb: np.ndarray, signals: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """One pass at ``rgb``'s size: one signal ``1×SIGNAL_SIZE``, or ``K×SIGNAL_SIZE`` with ``K×H×W`` masks
        (per-pixel weights summing to 1). Returns ``H×W×3`` (not clamped)."""
        h, w = rgb.shape[:2]
        ph, pw = (-h) % 4, (-w) % 4
        x = _nchw(np.pad(rgb, ((0, ph), (0, pw), (0, 0)), mode="reflect") if ph or pw else rgb)
        signals = np.ascontiguousarray(signals, dtype=np.float32)
        if masks is None:
            out = self.runtime.run(self.nets[1], x, signals)
        else:  # pad like the photo, then the mean of each 4×4 cell: the weights at the features' resolution
            m = np.pad(masks, ((0, 0), (0, ph), (0, pw)), mode="edge") if ph or pw else masks
            k, hh, ww = m.shape
            m = np.ascontiguousarray(m.reshape(1, k, hh // 4, 4, ww // 4, 4).mean((3, 5)), dtype=np.float32)
            out = self.runtime.run(self.nets[2], x, signals, m)
        return out[0].transpose(1, 2, 0)[:h, :w]


@lru_cache(maxsize=4)
def get_stylizer(device: str = "auto", runtime: str = "auto", model: str = NAME) -> MicroastStylizer:
    """A shared :class:`MicroastStylizer` per device, runtime and model (networks load once per process)."""
    return MicroastStylizer(device, runtime, model)


def _model(decoder: str | Sequence[str] | None) -> str:
    """The store name of the weights ``decoder`` names: None = the shipped model, else a trained MicroAST file."""
    if decoder is None:
        return NAME
    if isinstance(decoder, list | tuple):
        if len(decoder) != 1:
            raise InputError(f"microast takes one --decoder file, got {len(decoder)}")
        decoder = decoder[0]
    if str(decoder) == NAME:
        return NAME
    from brushwork.decoders import register_microast  # reads the file: methods delegate files to decoders.py

    model = register_microast(decoder)
    register_exports(model)
    return model


class Engine:
    """``method="microast"`` under the contract (:mod:`brushwork.api`): the styles' signals are computed once,
    then :meth:`render` runs one pass per photo. ``strength`` and ``mask`` are native (in feature space);
    ``stroke_scale``, ``preserve_color`` and ``color_match`` are the API's, as for every method."""

    native = frozenset({"strength", "mask"})

    def __init__(self, styles: Sequence[np.ndarray | int], options: MicroastOptions, progress: Any = None) -> None:
        if any(isinstance(s, int | np.integer) for s in styles):
            raise InputError("microast takes style images, not builtin: styles (those are the fast method's)")
        if options.style_size < MIN_SIDE:
            raise InputError(f"style size must be at least {MIN_SIDE} pixels, got {options.style_size}")
        self.options = options
        self.weights = normalize_weights(options.style_weights, len(styles))
        self.stylizer = get_stylizer(options.device, options.runtime, _model(options.decoder))
        self.signals = np.stack([self.stylizer.signal(np.asarray(s), options.style_size) for s in styles])

    def render(self, rgb: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        """Stylize ``rgb`` (``H×W×3``) → ``H×W×3`` (not clamped); ``masks``: ``K×H×W`` weights, K = number of styles."""
        h, w = rgb.shape[:2]
        if min(h, w) < MIN_SIDE:
            raise InputError(f"image is too small ({w}×{h}): both sides need {MIN_SIDE} px")
        k = len(self.signals)
        if masks is not None and masks.shape != (k, h, w):
            raise InputError(f"masks are {'×'.join(map(str, masks.shape))}, need {k}×{h}×{w}")
        strength = self.options.strength
        if strength == 0.0:
            return np.array(rgb, dtype=np.float32)
        signals = self.signals
        if strength < 1.0:  # from the photo's own signal towards the styles'
            signals = strength * signals + (1.0 - strength) * self.stylizer.signal(rgb, self.options.style_size)
        if masks is None or k == 1:
            signal = (self.weights[:, None] * signals).sum(0, keepdims=True)  # a blend: the weighted mean
            out = self.stylizer.forward(rgb, signal)
            if masks is not None:  # one style: white = stylized, black = the photo
                out = masks[0][..., None] * out + (1.0 - masks[0][..., None]) * rgb
        else:
            total = masks.sum(0, keepdims=True)
            blend = np.where(total > 1e-6, masks / np.maximum(total, 1e-6), self.weights[:, None, None])
            out = self.stylizer.forward(rgb, signals, blend.astype(np.float32))
        return out  # not clamped: the API clamps once, after its own steps

    # -- tiled rendering (brushwork.tiling, called by brushwork.api for print-size photos) ----------------------

    UNTILED_BYTES_PER_PIXEL = 520  # measured peak of an untiled onnxruntime rendering, per output pixel
    TILE_ALIGN = 4

    def render_tiled(self, source: Any, masks: Any, sink: Any, tile: int | None, budget: int, fixed_bytes: int) -> Any:
        """Render ``source`` in exact tiles as :meth:`render` (:mod:`brushwork.methods.microast_tiled`)."""
        from brushwork.methods.microast_tiled import render_tiled

        return render_tiled(self, source, masks, sink, tile, budget, fixed_bytes)
