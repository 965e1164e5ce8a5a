"""The options of every method: one frozen dataclass each, and the single source of their defaults.

Torch-free, so that the CLI builds its flags from these classes without loading a network, and the API checks a
user's options against them before any work. The shared vocabulary lives in :class:`StyleOptions`; a method's
class adds only what is its own. ``brushwork.api.METHODS`` maps each method's name to its class.

Vocabulary (one meaning everywhere, see docs/vocabulary.md):

- ``style_weights``: one non-negative weight per style, normalised to sum 1 (default: equal).
- ``strength``: 0 = the photo, 1 = fully stylized.
- ``preserve_color``: keep the photo's colours by luminance transfer (the result's luma, the photo's chroma).
- ``color_match``: recolour the style images to the photo's colour mean and covariance before stylizing.
- ``max_size``: bound on the longer side of the output in pixels (images are never enlarged).
- ``stroke_scale``: brush-stroke size, 0.25..4, independent of the output's resolution.
- ``device``: ``auto`` (CUDA or MPS when present, else the CPU), ``cpu``, ``cuda`` or ``mps``.
- ``seed``: the random seed of methods that draw random numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

MIN_SIDE = 16  # both sides of a photo after max_size, in pixels
MIN_STROKE, MAX_STROKE = 0.25, 4.0
MAX_SIDE = 65536  # the largest max_size that can be asked for
SEED_LIMIT = 2**63  # seeds are 0 <= seed < 2**63
DEVICES = ("auto", "cpu", "cuda", "mps")
WEIGHT_LIMIT = 1e15  # loss weights above this overflow float32 losses (3.4e38) on ordinary images
MAX_LR = 10.0  # the largest learning rate of the optimization method
INT_LIMIT = 2**31 - 1  # C libraries take 32-bit ints; a count past this would run for ever anyway

# the accepted range of each numeric option, bounds included (learning_rate: more than 0); the API checks every
# option a user gives against these, its type and its choices before any work (brushwork.api.check_options)
RANGES: dict[str, tuple[float, float]] = {
    "strength": (0.0, 1.0),
    "stroke_scale": (MIN_STROKE, MAX_STROKE),
    "max_size": (MIN_SIDE, MAX_SIDE),
    "min_size": (MIN_SIDE, MAX_SIDE),
    "style_size": (MIN_SIDE, MAX_SIDE),
    "iterations": (1, INT_LIMIT),
    "tile_iterations": (0, INT_LIMIT),
    "preview_every": (0, INT_LIMIT),
    "content_weight": (0.0, WEIGHT_LIMIT),
    "style_weight": (0.0, WEIGHT_LIMIT),
    "tv_weight": (0.0, WEIGHT_LIMIT),
    "style_layer_weights": (0.0, WEIGHT_LIMIT),
    "learning_rate": (0.0, MAX_LR),
    "swag": (0.0, 1000.0),
}
OPEN_BELOW = frozenset({"learning_rate"})  # options whose lower bound is excluded
# string options with a fixed set of values
CHOICES: dict[str, tuple[str, ...]] = {
    "runtime": ("auto", "onnxruntime", "openvino", "torch"),
    "init": ("content", "noise", "style", "fast", "microast"),
    "loss": ("gram", "mean_std", "w2"),
    "optimizer": ("lbfgs", "adam"),
    "pool": ("max", "avg"),
    "backbone": ("auto", "vgg19", "vgg16", "mobilenet"),
}


@dataclass(frozen=True)
class StyleOptions:
    """The options every method takes (the shared vocabulary)."""

    style_weights: tuple[float, ...] | None = None
    strength: float = 1.0
    preserve_color: bool = False
    color_match: bool = False
    max_size: int | None = 2048
    stroke_scale: float = 1.0
    device: str = "auto"
    seed: int = 0


@dataclass(frozen=True)
class TiledOptions(StyleOptions):
    """Options of the feed-forward methods, which render print-size photos in exact tiles (docs/tiling.md)."""

    tile: int | None = None  # None: tiles when the untiled work would exceed memory_budget; 0: never; N: side N
    memory_budget: str = "1GB"  # e.g. 512MB, 1GB, 2.5GB


@dataclass(frozen=True)
class FastOptions(TiledOptions):
    """``method="fast"``: Magenta's feed-forward networks (any picture, or ``builtin:N``)."""

    runtime: str = "auto"  # auto | onnxruntime | openvino | torch


@dataclass(frozen=True)
class AdainOptions(TiledOptions):
    """``method="adain"``: encoder, adaptive instance normalisation, decoder (Huang & Belongie 2017)."""

    decoder: str | None = None  # a registered decoder or a .safetensors file; None: the shipped decoder-mobilenet


@dataclass(frozen=True)
class WctOptions(TiledOptions):
    """``method="wct"``: whitening and colouring transform (Li et al. 2017); several decoders = the cascade."""

    decoder: str | tuple[str, ...] | None = None


@dataclass(frozen=True)
class MicroastOptions(TiledOptions):
    """``method="microast"``: MicroAST's micro encoders and modulated decoder (Wang et al. 2023), one pass."""

    style_size: int = 512  # longer side the style images (and the photo, for its own signal) are bounded to
    runtime: str = "auto"  # auto | onnxruntime | openvino | torch
    decoder: str | None = None  # a MicroAST file from `train decoder --arch microast`; None: the shipped weights


@dataclass(frozen=True)
class OptimizeOptions(TiledOptions):
    """``method="optimize"``: the image itself optimized against content, style and smoothness losses.

    Defaults chosen by measurement (docs/optimize.md): starting from the fast network's result (``init="fast"``)
    80 iterations reach a closer style at the same content preservation than 300 from the photo, in about a third
    of the time. ``iterations`` counts the whole run, over every scale of the pyramid.
    """

    max_size: int | None = 512
    content_weight: float = 1.0  # alpha
    style_weight: float = 1e4  # beta (relative scale, see methods/optimize.py)
    tv_weight: float = 100.0  # gamma
    iterations: int = 80  # the whole run, split over the pyramid's scales
    init: str = "fast"  # content | noise | style | fast | microast
    min_size: int | None = None  # longer side of the first scale of a coarse-to-fine pyramid; None: one scale
    loss: str = "gram"  # gram | mean_std | w2
    optimizer: str = "lbfgs"  # lbfgs | adam
    learning_rate: float | None = None  # None: 1.0 for L-BFGS, 0.02 for Adam
    content_layers: tuple[str, ...] | None = None  # None: the backbone's default
    style_layers: tuple[str, ...] | None = None
    style_layer_weights: tuple[float, ...] | None = None
    backbone: str = "auto"  # auto | vgg19 | vgg16 | mobilenet (auto: VGG-19 if its weights are here)
    weights: str = "imagenet"  # imagenet | random | a local file
    pool: str = "max"  # max | avg (VGG)
    swag: float | None = None  # SWAG temperature; None: the backbone's default
    normalize_gradients: bool = False
    preview_every: int = 10  # a preview image in the progress events every this many iterations (0: none)
    tile_iterations: int = 10  # large sizes (tiled, docs/optimize.md): iterations of each tile at the finest scale


def option_names(cls: type) -> list[str]:
    """The option names of an options class, in declaration order."""
    return [f.name for f in fields(cls)]


def shared_names() -> set[str]:
    return set(option_names(StyleOptions))


def pyramid_sizes(size: int, min_size: int | None = None) -> list[int]:
    """Longer sides of the optimization method's coarse-to-fine scales: from ``min_size`` to ``size`` in steps of
    about √2. ``min_size`` None or ≥ ``size`` gives the single scale ``[size]``."""
    if min_size is None or min_size >= size:
        return [size]
    steps = max(1, math.ceil(math.log(size / min_size) / math.log(math.sqrt(2)) - 1e-9))
    return [round(min_size * (size / min_size) ** (i / steps)) for i in range(steps + 1)]
