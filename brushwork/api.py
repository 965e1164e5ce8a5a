"""The contract: one entry point for every method, one vocabulary, one progress event.

``stylize(content, styles, method=..., **options)`` turns a photo and styles into a picture with any method;
``renderer(styles, method=..., **options)`` does the per-style work once and then renders many photos or frames
(batches, video, tiles, the studio). Applications call these two and never a method's internals.

A method is a row of :data:`METHODS` (data: no import side effects) naming its options class (torch-free, in
:mod:`brushwork.options`) and its engine, imported only when the method runs. An engine is a class::

    class Engine:
        native: frozenset[str]          # vocabulary options it implements itself
        def __init__(self, styles: list[np.ndarray | int], options, progress: ProgressFn | None): ...
        def render(self, rgb: np.ndarray, masks: np.ndarray | None) -> np.ndarray: ...

``styles`` arrive loaded (``H×W×3`` float32 RGB in 0..1, bounded by ``max_size``; ints are built-in style
indices), ``rgb`` is ``H×W×3`` float32 in 0..1 and ``masks`` ``K×H×W`` float32 weights, one plane per style.
What an engine leaves out of ``native`` the API does the same way for every method: ``mask`` by rendering each
style and compositing in pixel space (a one-style mask always blends with the photo itself), ``strength`` as a
blend with the photo, ``stroke_scale`` by rendering at
``1/stroke_scale`` of the resolution (and once more at full size for larger strokes), ``preserve_color`` by
luminance transfer, ``color_match`` by recolouring the styles to the photo's colour mean and covariance.

The mask convention, for every method: a greyscale image where **white selects the first style and black the
second**; with one style, white is stylized and black keeps the photo; with K > 2 styles, a list of K greyscale
masks (normalised per pixel).
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import functools
import importlib
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from brushwork import io, validate
from brushwork import options as opts
from brushwork.errors import InputError

Source = str | os.PathLike | Image.Image | np.ndarray | io.Picture
StyleRef = Source | int
BUILTIN_PREFIX = "builtin:"
NUM_BUILTIN = 26
STYLE_MIN_BOUND = 512  # style images are bounded by max_size, but never below this (the predictor's crop is 256)


# ------------------------------------------------------------------------------------------------ progress


@dataclass(frozen=True)
class Progress:
    """One progress event, the only progress convention in brushwork.

    stage: what is running (``optimize``, ``train``, ``batch``, ``export``, ``video``, ``tiles``, ...).
    step: 1-based, increasing within a stage; total: the steps the stage expects (0 if unknown).
    losses: named numbers of this step (may be empty). preview: an optional ``H×W×3`` float32 image in 0..1.
    elapsed: seconds since the stage began. message: an optional short text (a file name, a warning).
    """

    stage: str
    step: int
    total: int
    losses: Mapping[str, float] = field(default_factory=dict)
    preview: np.ndarray | None = None
    elapsed: float = 0.0
    message: str = ""


ProgressFn = Callable[[Progress], object]


class Reporter:
    """Emits :class:`Progress` events of one stage to ``progress`` (which may be None: then nothing happens)."""

    def __init__(self, progress: ProgressFn | None, stage: str, total: int = 0) -> None:
        self.progress, self.stage, self.total = progress, stage, int(total)
        self.start = time.perf_counter()

    def step(
        self,
        step: int,
        *,
        losses: Mapping[str, float] | None = None,
        preview: np.ndarray | None = None,
        message: str = "",
        total: int | None = None,
    ) -> None:
        if self.progress is None:
            return
        if total is not None:
            self.total = int(total)
        self.progress(
            Progress(
                self.stage,
                int(step),
                self.total,
                dict(losses or {}),
                preview,
                time.perf_counter() - self.start,
                message,
            )
        )


_AMBIENT: contextvars.ContextVar[ProgressFn | None] = contextvars.ContextVar("brushwork_progress", default=None)


@contextlib.contextmanager
def reporting(progress: ProgressFn | None) -> Iterator[None]:
    """Make ``progress`` the receiver of events from code below the engines that has no ``progress`` argument
    (the one-time ONNX exports of :func:`brushwork.store.export_onnx`), for the current thread or task."""
    token = _AMBIENT.set(progress)
    try:
        yield
    finally:
        _AMBIENT.reset(token)


def ambient_reporter(stage: str, total: int = 0) -> Reporter:
    """A :class:`Reporter` to the receiver set by :func:`reporting` (none: events go nowhere)."""
    return Reporter(_AMBIENT.get(), stage, total)


# ------------------------------------------------------------------------------------------------ methods


@dataclass(frozen=True)
class MethodSpec:
    """A method: its name, its options class, its engine (``module:Class``, imported on use) and a summary."""

    name: str
    options: type
    engine: str
    summary: str

    def engine_class(self) -> Any:
        module, _, name = self.engine.partition(":")
        return getattr(importlib.import_module(module), name)


METHODS: dict[str, MethodSpec] = {
    spec.name: spec
    for spec in (
        MethodSpec(
            "fast", opts.FastOptions, "brushwork.methods.fast:Engine", "Magenta's feed-forward networks, one pass"
        ),
        MethodSpec(
            "microast",
            opts.MicroastOptions,
            "brushwork.methods.microast:Engine",
            "MicroAST: micro encoders and a style-modulated decoder, one pass",
        ),
        MethodSpec("adain", opts.AdainOptions, "brushwork.methods.autoencoder:AdainEngine", "encoder, AdaIN, decoder"),
        MethodSpec("wct", opts.WctOptions, "brushwork.methods.autoencoder:WctEngine", "encoder, WCT, decoder"),
        MethodSpec(
            "optimize",
            opts.OptimizeOptions,
            "brushwork.methods.optimize:Engine",
            "Gatys et al.: the image optimized against content, style and smoothness losses",
        ),
    )
}


def method_spec(method: str) -> MethodSpec:
    spec = METHODS.get(method) if isinstance(method, str) else None
    if spec is None:
        raise InputError(f"unknown method {method!r}: use one of {', '.join(METHODS)}")
    return spec


# ------------------------------------------------------------------------------------------------ checks


def normalize_weights(weights: Sequence[float] | None, n: int) -> np.ndarray:
    """Style blend weights as float32, normalised to sum 1 (see :func:`brushwork.validate.normalise_weights`)."""
    return validate.normalise_weights(weights, n).astype(np.float32)


def check_options(method: str, values: Mapping[str, Any]) -> Any:
    """The options object of ``method`` from user ``values``; one-line :class:`InputError` for an option the method
    does not take, a value of the wrong type, out of its range (:data:`brushwork.options.RANGES`) or not one of
    its choices, before any work. What depends on the pictures is checked by the engine."""
    spec = method_spec(method)
    known = set(opts.option_names(spec.options))
    for name in values:
        if name not in known:
            raise InputError(f"method {method!r} does not take the option {_shorten(name)!r}")
    hints = _option_types(spec.options)
    values = {name: _check_option(name, hints[name], value) for name, value in values.items()}
    if values.get("style_weights") is not None:
        weights = values["style_weights"]
        values["style_weights"] = tuple(float(x) for x in normalize_weights(weights, len(weights)))
    if "tile" in values or "memory_budget" in values:
        from brushwork import tiling

        values["tile"] = tiling.check_tile(values.get("tile"))
        tiling.parse_bytes(values.get("memory_budget", "1GB"))
    if "device" in values:
        from brushwork.device import resolve_device

        values["device"] = resolve_device(values["device"])
    options = spec.options(**values)
    if method == "optimize" and options.max_size is not None:  # every scale of the pyramid needs an iteration
        scales = len(opts.pyramid_sizes(options.max_size, options.min_size))
        if options.iterations < scales:
            raise InputError(
                f"iterations must be at least {scales} (one per scale of the pyramid from min size "
                f"{options.min_size} to {options.max_size}), got {options.iterations}"
            )
    return options


def _shorten(text: object, limit: int = 40) -> str:
    s = str(text)
    return s if len(s) <= limit else s[: limit - 3] + "..."


@functools.cache
def _option_types(cls: type) -> dict[str, str]:
    """Each option's annotation as text without spaces (``int|None``, ``tuple[str,...]|None``)."""
    return {f.name: str(f.type).replace(" ", "").replace("typing.", "") for f in dataclasses.fields(cls)}


def _check_option(name: str, annotation: str, value: Any) -> Any:
    """One option's value checked against its annotation, :data:`~brushwork.options.RANGES` and
    :data:`~brushwork.options.CHOICES`; returned in its canonical type."""
    kinds = set(annotation.split("|"))
    label = name.replace("_", " ")
    if value is None:
        if "None" in kinds:
            return None
        raise InputError(f"{label} cannot be None")
    if name == "seed":
        return validate.check_seed(value)
    if kinds <= {"bool"}:
        if not isinstance(value, bool | np.bool_):
            raise InputError(f"{name} is true or false, got {_shorten(repr(value))}")
        return bool(value)
    low, high = opts.RANGES.get(name, (None, None))
    if "int" in kinds and "float" not in kinds:
        if isinstance(value, np.ndarray | bool | np.bool_) or not isinstance(value, int | np.integer):
            raise InputError(f"{label} must be a whole number, got {_shorten(repr(value))}")
        if name == "tile":
            return int(value)  # checked by the tiler (0, or at least its smallest tile)
        return validate.check_count(value, label, low=int(low if low is not None else 0), high=_int(high))
    if "float" in kinds:
        return validate.check_number(value, label, low=low, high=high, low_open=name in opts.OPEN_BELOW)
    if isinstance(value, str | os.PathLike) and "str" in kinds:
        value = os.fspath(value)
    elif "tuple[float,...]" in kinds:
        if not isinstance(value, list | tuple) and not (isinstance(value, np.ndarray) and value.ndim == 1):
            raise InputError(f"{label} must be a list of numbers, got {_shorten(repr(value))}")
        if len(value) == 0:
            raise InputError(f"{label}: give at least one number")
        return tuple(validate.check_number(v, label, low=low, high=high) for v in value)
    elif "tuple[str,...]" in kinds:
        if isinstance(value, str | os.PathLike):
            value = (value,)  # one name given alone, not its letters
        if not isinstance(value, list | tuple) or not value or not all(isinstance(v, str | os.PathLike) for v in value):
            raise InputError(f"{label} must be a name or a list of names, got {_shorten(repr(value))}")
        return tuple(os.fspath(v) for v in value)
    if isinstance(value, list | tuple) and all(isinstance(v, str | os.PathLike) for v in value):
        raise InputError(f"give one {label}, got {len(value)}")
    if not isinstance(value, str):
        raise InputError(f"{label} must be a string, got {_shorten(repr(value))}")
    choices = opts.CHOICES.get(name)
    if choices is not None and value not in choices:
        raise InputError(f"{label} must be one of {', '.join(choices)}, got {_shorten(repr(value))}")
    return value


def _int(x: float | None) -> int | None:
    return None if x is None else int(x)


def parse_style(spec: StyleRef) -> StyleRef:
    """``builtin:N`` (or an int) → N, checked; anything else is returned as an image source."""
    if isinstance(spec, int | np.integer) and not isinstance(spec, bool):
        index = int(spec)
    elif isinstance(spec, str) and spec.startswith(BUILTIN_PREFIX):
        text = spec[len(BUILTIN_PREFIX) :]
        if not (text.isascii() and text.isdigit()) or len(text) > 3:
            raise InputError(f"bad built-in style {spec!r}: use builtin:0 to builtin:{NUM_BUILTIN - 1}")
        index = int(text)
    else:
        return spec
    if not 0 <= index < NUM_BUILTIN:
        raise InputError(f"no built-in style {index}: use builtin:0 to builtin:{NUM_BUILTIN - 1}")
    return index


def load_styles(
    styles: StyleRef | Sequence[StyleRef], method: str, max_size: int | None, max_pixels: int | None = None
) -> list[np.ndarray | int]:
    """Style references → loaded ``H×W×3`` arrays (longer side bounded by ``max_size``, or 512 px for smaller
    outputs) or built-in indices."""
    if isinstance(styles, str | os.PathLike | Image.Image | np.ndarray | io.Picture | int | np.integer):
        styles = [styles]
    if not isinstance(styles, Sequence):
        raise InputError(f"styles must be a style or a list of styles (images or builtin:N), got {styles!r:.40}")
    styles = list(styles)
    if not styles:
        raise InputError("give at least one style (an image or builtin:N)")
    out: list[np.ndarray | int] = []
    for s in styles:
        if isinstance(s, bool | np.bool_):
            raise InputError(f"a style must be an image or builtin:N, got {s!r}")
        p = parse_style(s)
        if isinstance(p, int):
            if method != "fast":
                raise InputError(f"builtin: styles belong to method 'fast'; method {method!r} needs style images")
            out.append(p)
        else:
            rgb = p.rgb if isinstance(p, io.Picture) else io.load_image(p, max_pixels=max_pixels).rgb
            if min(rgb.shape[:2]) < opts.MIN_SIDE:
                h, w = rgb.shape[:2]
                raise InputError(f"style image is too small ({w}×{h}): both sides need {opts.MIN_SIDE} px")
            out.append(io.resize_to_max(rgb, None if max_size is None else max(max_size, STYLE_MIN_BOUND)))
    if len({isinstance(s, int) for s in out}) > 1:
        raise InputError("cannot blend builtin: styles with image styles; use one kind at a time")
    return out


def _grey(source: Any, size: tuple[int, int], max_pixels: int | None) -> np.ndarray:
    if isinstance(source, np.ndarray) and source.ndim == 2:
        if source.dtype.kind not in "fiub" or 0 in source.shape:
            raise InputError(f"mask must be an H×W array of numbers, got {source.dtype} of shape {source.shape}")
        a = source.astype(np.float32)
        if not np.all(np.isfinite(a)):
            raise InputError("mask has values that are not finite")
        a = np.clip(a / 255.0 if a.max() > 1.0 else a, 0.0, 1.0)
        return io.resize(a[..., None].repeat(3, 2), size).mean(axis=2)
    rgb = source.rgb if isinstance(source, io.Picture) else io.load_image(source, max_pixels=max_pixels).rgb
    return io.resize(rgb, size).mean(axis=2)


def load_masks(mask: Any, n_styles: int, size: tuple[int, int], max_pixels: int | None = None) -> np.ndarray:
    """A user's mask → ``K×H×W`` float32 weights (K = ``n_styles``) at ``size`` (width, height).

    One greyscale image: white selects the first style, black the second (one style: white stylized, black the
    photo). With K > 2 styles, a list of K greyscale images, normalised per pixel (all-black pixels: equal).
    """
    if isinstance(mask, list | tuple):
        planes = [_grey(m, size, max_pixels) for m in mask]
        if len(planes) != n_styles:
            raise InputError(f"got {len(planes)} masks for {n_styles} styles: give one mask per style")
        stack = np.stack(planes).astype(np.float32)
        total = stack.sum(0, keepdims=True)
        return np.where(total > 1e-6, stack / np.maximum(total, 1e-6), 1.0 / n_styles).astype(np.float32)
    m = _grey(mask, size, max_pixels).astype(np.float32)
    if n_styles == 1:
        return m[None]
    if n_styles == 2:
        return np.stack([m, 1.0 - m])
    raise InputError(f"one mask image assigns at most two styles; give a list of {n_styles} masks")


# ------------------------------------------------------------------------------------------------ rendering


def keep_luminance(stylized: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """``preserve_color``: the luminance of ``stylized`` with the chroma of ``photo`` (YCbCr, BT.601)."""
    import cv2

    ycc = cv2.cvtColor(np.ascontiguousarray(photo, dtype=np.float32), cv2.COLOR_RGB2YCrCb)
    ycc[..., 0] = cv2.cvtColor(np.ascontiguousarray(stylized, dtype=np.float32), cv2.COLOR_RGB2YCrCb)[..., 0]
    return np.clip(cv2.cvtColor(ycc, cv2.COLOR_YCrCb2RGB), 0.0, 1.0)


def match_colors(style: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """``color_match``: ``style`` recoloured to the photo's colour mean and covariance (Gatys et al. 2016)."""
    from brushwork import color

    out = color.match_color(io.to_tensor(style), io.to_tensor(photo))
    return io.to_numpy(out)


def render_stroke_scaled(
    render: Callable[[np.ndarray, np.ndarray | None], np.ndarray],
    rgb: np.ndarray,
    scale: float,
    masks: np.ndarray | None = None,
) -> np.ndarray:
    """``stroke_scale`` for any network: ``render(rgb, masks)`` at ``1/scale`` of the resolution, resized back, and
    for larger strokes (``scale > 1``) rendered once more at full size on that result, so that the edges are redrawn
    crisply instead of interpolated. ``rgb`` is ``H×W×3``; the result has its size."""
    if scale == 1.0:
        return render(rgb, masks)
    h, w = rgb.shape[:2]
    small = (max(opts.MIN_SIDE, round(w / scale)), max(opts.MIN_SIDE, round(h / scale)))
    small_masks = None if masks is None else np.stack([io.resize(m[..., None], small)[..., 0] for m in masks])
    out = io.resize(render(io.resize(rgb, small), small_masks), (w, h))
    if scale > 1.0:  # the upscale is soft: one more pass at full size redraws crisp edges
        out = render(out, masks)
    return out


class Renderer:
    """A method with its styles prepared: ``render(rgb, mask)`` for each photo or frame. See :func:`renderer`."""

    def __init__(
        self,
        styles: StyleRef | Sequence[StyleRef],
        *,
        method: str = "fast",
        progress: ProgressFn | None = None,
        max_pixels: int | None = None,
        **options: Any,
    ) -> None:
        self.spec = method_spec(method)
        self.method = method
        self.options = check_options(method, options)
        if max_pixels is not None:
            io.check_max_pixels(max_pixels)
        if progress is not None and not callable(progress):
            raise InputError(f"progress must be a function taking a Progress event, got {progress!r:.40}")
        self.max_pixels = max_pixels
        self.progress = progress
        self.styles = load_styles(styles, method, self.options.max_size, max_pixels)
        n = len(self.styles)
        normalize_weights(self.options.style_weights, n)  # the count is checked before any work
        self._engine_class = self.spec.engine_class()
        self.native: frozenset[str] = frozenset(getattr(self._engine_class, "native", frozenset()))
        self._engines: dict[Any, Any] = {}

    def _engine(self, key: Any, styles: list[np.ndarray | int], **changes: Any) -> Any:
        engine = self._engines.get(key)
        if engine is None:
            options = dataclasses.replace(self.options, **changes) if changes else self.options
            engine = self._engine_class(styles, options, self.progress)
            if key is not None:
                self._engines[key] = engine
        return engine

    def _one_pass(self, rgb: np.ndarray, engine: Any, masks: np.ndarray | None) -> np.ndarray:
        scale = 1.0 if "stroke_scale" in self.native else self.options.stroke_scale
        return render_stroke_scaled(engine.render, rgb, scale, masks)

    def render(self, rgb: np.ndarray, mask: Any = None) -> np.ndarray:
        """Render ``rgb`` (``H×W×3`` float32 in 0..1, used at its size) → ``H×W×3`` float32 in 0..1.

        ``mask``: None, a mask as in :func:`load_masks`, or ``K×H×W`` weights already at the photo's size.
        """
        with reporting(self.progress):
            return self._render(rgb, mask)

    def _render(self, rgb: np.ndarray, mask: Any) -> np.ndarray:
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise InputError(f"expected an H×W×3 image, got shape {rgb.shape}")
        h, w = rgb.shape[:2]
        if min(h, w) < opts.MIN_SIDE:
            raise InputError(f"image is too small ({w}×{h}): both sides need {opts.MIN_SIDE} px")
        if rgb.dtype.kind not in "fiub":
            raise InputError(f"expected an H×W×3 image of numbers in 0..1, got {rgb.dtype} values")
        rgb = np.ascontiguousarray(rgb, dtype=np.float32)
        io.check_unit_range(rgb, "the image")
        n = len(self.styles)
        masks = None
        if mask is not None:
            if self.options.style_weights is not None:
                raise InputError("give either style weights or a mask, not both")
            if isinstance(mask, np.ndarray) and mask.ndim == 3 and mask.shape == (n, h, w):
                masks = mask.astype(np.float32)
                if not np.isfinite(masks).all():
                    raise InputError("mask has values that are not finite")
            else:
                masks = load_masks(mask, n, (w, h), self.max_pixels)
        styles = self.styles
        key: Any = "all"
        if self.options.color_match and "color_match" not in self.native:
            styles = [s if isinstance(s, int) else match_colors(s, rgb) for s in styles]
            key = None  # the styles depend on this photo: no reuse
        if masks is None or (n > 1 and "mask" in self.native):
            out = self._one_pass(rgb, self._engine(key, styles), masks)
        elif n == 1:  # one style: white stylized, black the photo itself, for every method
            out = self._one_pass(rgb, self._engine(key, styles), None)
            out = masks[0][..., None] * out + (1.0 - masks[0][..., None]) * rgb
        else:  # each style on its own, composited by the mask
            out = np.zeros_like(rgb)
            for k, style in enumerate(styles):
                engine = self._engine(None if key is None else ("one", k), [style], style_weights=None)
                out += masks[k][..., None] * self._one_pass(rgb, engine, None)
        strength = self.options.strength
        if strength < 1.0 and "strength" not in self.native:
            out = strength * out + (1.0 - strength) * rgb
        if self.options.preserve_color and "preserve_color" not in self.native:
            out = keep_luminance(out, rgb)
        return np.clip(out, 0.0, 1.0).astype(np.float32)

    def _tiled(self, content: Source) -> bool:
        """Whether ``content`` renders in tiles: ``tile`` forces it (0 never), else when the untiled work would
        exceed ``memory_budget`` (methods whose engine has ``render_tiled``)."""
        tile = getattr(self.options, "tile", 0)
        if tile == 0 or not hasattr(self._engine_class, "render_tiled"):
            return False
        if tile:
            return True
        from brushwork import tiling

        size = content.size if isinstance(content, io.Picture) else io.image_size(content)
        if size is None:
            return False
        w, h = io.bounded_size(size, self.options.max_size)
        per_pixel = self._engine_class.UNTILED_BYTES_PER_PIXEL * max(1.0, self.options.stroke_scale**-2)
        return tiling.BASELINE_BYTES + w * h * per_pixel > tiling.parse_bytes(self.options.memory_budget)

    def render_picture(self, content: Source, mask: Any = None) -> io.Picture:
        """Load ``content`` (bounded by ``max_size``), render it, and keep its alpha and bit depth.

        Print-size photos render in tiles (:mod:`brushwork.tiling`), equal to the untiled result up to float
        rounding, in bounded memory; the picture then holds 8-bit (16-bit) pixels instead of float32."""
        if self._tiled(content):
            from brushwork.tiling import render_picture_tiled

            with reporting(self.progress):
                return render_picture_tiled(self, content, mask)
        photo = content if isinstance(content, io.Picture) else io.load_image(content, max_pixels=self.max_pixels)
        rgb = photo.rgb
        if rgb.dtype != np.float32:  # 8/16-bit pixels (io.load_pixels, a tiled result): float32 in 0..1
            rgb = rgb.astype(np.float32) / np.float32(65535.0 if rgb.dtype == np.uint16 else 255.0)
        h0, w0 = rgb.shape[:2]
        rgb = io.resize_to_max(rgb, self.options.max_size)
        name = photo.path if photo.path is not None else "the photo"
        io.check_bounded_size((w0, h0), rgb.shape[1::-1], name, self.options.max_size, opts.MIN_SIDE)
        out = self.render(rgb, mask)
        alpha = None if photo.alpha is None else io.resize(photo.alpha[..., None], out.shape[1::-1])[..., 0]
        return io.Picture(rgb=out, alpha=alpha, path=None, bit_depth=photo.bit_depth)


def renderer(
    styles: StyleRef | Sequence[StyleRef],
    *,
    method: str = "fast",
    progress: ProgressFn | None = None,
    max_pixels: int | None = None,
    **options: Any,
) -> Renderer:
    """A :class:`Renderer`: ``method`` with ``styles`` prepared once, to render many photos or frames.

    styles: image paths, PIL images, ``H×W×3`` arrays in 0..1, or ``builtin:N`` (method ``fast``).
    options: the method's options (:mod:`brushwork.options`), in the shared vocabulary.
    """
    return Renderer(styles, method=method, progress=progress, max_pixels=max_pixels, **options)


def to_pil(picture: io.Picture) -> Image.Image:
    """An 8-bit PIL image of a picture: RGB, or RGBA when it has alpha."""
    image = Image.fromarray(io._quantize(picture.rgb, 8))
    if picture.alpha is not None:
        image.putalpha(Image.fromarray(io._quantize(picture.alpha, 8)))
    return image


def stylize(
    content: Source,
    styles: StyleRef | Sequence[StyleRef],
    *,
    method: str = "fast",
    mask: Any = None,
    progress: ProgressFn | None = None,
    max_pixels: int | None = None,
    **options: Any,
) -> Image.Image:
    """Stylize a photo with one or more styles by any method; returns a PIL image (RGBA when the photo has alpha).

    content: a path, PIL image, ``H×W×3`` array in 0..1 or :class:`brushwork.io.Picture`.
    styles: one style or a list: image paths, PIL images, arrays, or ``builtin:N`` (method ``fast``).
    method: ``fast`` (default), ``microast``, ``adain``, ``wct``, ``optimize`` (see :data:`METHODS`).
    mask: greyscale image, white selects the first style and black the second (one style: white stylized).
    progress: a callable receiving :class:`Progress` events. options: the method's options, e.g. ``strength``,
    ``style_weights``, ``preserve_color``, ``max_size``, ``stroke_scale``, ``device`` (:mod:`brushwork.options`).
    Use :func:`stylize_picture` to keep 16-bit precision.
    """
    return to_pil(
        stylize_picture(content, styles, method=method, mask=mask, progress=progress, max_pixels=max_pixels, **options)
    )


def stylize_picture(
    content: Source,
    styles: StyleRef | Sequence[StyleRef],
    *,
    method: str = "fast",
    mask: Any = None,
    progress: ProgressFn | None = None,
    max_pixels: int | None = None,
    **options: Any,
) -> io.Picture:
    """:func:`stylize`, returning a :class:`brushwork.io.Picture` (float32, with the photo's alpha and bit depth)."""
    return renderer(styles, method=method, progress=progress, max_pixels=max_pixels, **options).render_picture(
        content, mask
    )
