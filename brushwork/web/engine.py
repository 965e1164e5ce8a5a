"""The studio's one door into the methods: every stylization the server runs goes through this module.

The web layer never imports a method module itself: it asks :func:`methods` what exists, :func:`check_options`
whether a request's options are acceptable, :func:`stylize` for a picture and :func:`renderer` for camera frames.
Arrays are H×W×3 float32 RGB in 0..1.

Options are exposed to the network by an allow-list: numbers and booleans of a method's options class, and
strings only where this module lists their choices. Options naming files (``decoder``, ``weights``), the compute
``device`` and the ``runtime`` are the server's to choose, never a request's.
"""

from __future__ import annotations

import math
import threading
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import MISSING, dataclass, fields
from typing import Any

import numpy as np

from brushwork import options as opts
from brushwork.errors import InputError

ProgressFn = Callable[[Any], object]

# options a request may never set (files, devices, engines), whatever the method declares
SERVER_ONLY = frozenset(
    {"device", "runtime", "decoder", "weights", "mask", "content_layers", "style_layers", "style_layer_weights"}
)
# string options a request may set, with their choices (the API's, less the server's own)
CHOICES: dict[str, tuple[str, ...]] = {k: v for k, v in opts.CHOICES.items() if k not in SERVER_ONLY}
# methods quick enough to preview while a slider moves; the others preview with the fast method
QUICK = frozenset({"fast", "adain", "wct", "microast"})
MAX_STYLES = 4


@dataclass(frozen=True)
class Option:
    """One option a request may set: name, kind (``float``, ``int``, ``bool``, ``choice``, ``weights``), default."""

    name: str
    kind: str
    default: Any
    choices: tuple[str, ...] = ()
    optional: bool = False  # None is accepted (the method's automatic choice)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.kind, "default": self.default}
        if self.choices:
            out["choices"] = list(self.choices)
        if self.optional:
            out["nullable"] = True
        return out


@dataclass(frozen=True)
class Method:
    name: str
    summary: str
    options: dict[str, Option]
    quick: bool


# ---------------------------------------------------------------- the registry


def _option_kind(name: str, annotation: str, default: Any) -> Option | None:
    text = str(annotation).replace(" ", "")
    optional = "None" in text.split("|") or default is None and name != "style_weights"
    if name == "style_weights":
        return Option(name, "weights", None, optional=True)
    if name in CHOICES:
        return Option(name, "choice", default, CHOICES[name], optional)
    parts = {p for p in text.split("|") if p != "None"}
    if parts == {"bool"}:
        return Option(name, "bool", default)
    if parts == {"int"}:
        return Option(name, "int", default, optional=optional)
    if parts <= {"float", "int"}:
        return Option(name, "float", default, optional=optional)
    return None  # strings without listed choices, tuples, paths: not for requests


def _options_of(cls: type) -> dict[str, Option]:
    hints: Mapping[str, Any] = {}
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # annotations that cannot be evaluated here: fall back to their text
        hints = {}
    out: dict[str, Option] = {}
    for f in fields(cls):
        if f.name in SERVER_ONLY:
            continue
        default = f.default if f.default is not MISSING else None
        annotation = hints.get(f.name, f.type)
        text = getattr(annotation, "__name__", None) if isinstance(annotation, type) else None
        option = _option_kind(f.name, text or str(annotation).replace("typing.", ""), default)
        if option is not None:
            out[f.name] = option
    return out


def methods() -> dict[str, Method]:
    """Every method the studio can run: the rows of ``brushwork.api.METHODS``."""
    from brushwork import api

    return {
        name: Method(name, spec.summary, _options_of(spec.options), name in QUICK) for name, spec in api.METHODS.items()
    }


# ---------------------------------------------------------------- checking a request's options

# the API's ranges, with a server's tighter bounds on the work one request may ask for
RANGES: dict[str, tuple[float, float]] = {
    **opts.RANGES,
    "seed": (0, opts.SEED_LIMIT - 1),
    "iterations": (1, 1000),
    "tile_iterations": (0, 1000),
    "preview_every": (0, 1000),
}


def check_options(method: str, options: Mapping[str, Any], *, max_size_limit: int) -> dict[str, Any]:
    """A request's options for ``method``, checked against the allow-list and ranges; raises InputError naming
    the option. ``max_size`` above the server's ``max_size_limit`` is refused; missing, it is the smaller of the
    method's default and the limit."""
    table = methods()
    if method not in table:
        raise InputError(f"unknown method {_short(method)!r}: use one of {', '.join(table)}")
    allowed = table[method].options
    out: dict[str, Any] = {}
    for name, value in options.items():
        option = allowed.get(name)
        if option is None:
            raise InputError(f"the studio's {method} method does not take the option {_short(name)!r}")
        out[name] = _check_value(option, value, method)
    if "max_size" in allowed:
        size = out.get("max_size")
        if size is not None and size > max_size_limit:
            raise InputError(f"max_size {size} is above this server's limit of {max_size_limit} pixels")
        default = allowed["max_size"].default
        if size is None:  # not given (or null): the method's default, within the server's limit
            size = max_size_limit if default is None else min(default, max_size_limit)
        out["max_size"] = size
    return out


def check_request(method: str, options: Mapping[str, Any]) -> None:
    """Refuse at submission what the method would refuse when it runs: its options checked by the API's own
    checks (ranges, tiles, an optimization's iterations per scale), raising InputError."""
    from brushwork import api

    api.check_options(method, options)


def _short(text: object) -> str:
    s = str(text)
    return s if len(s) <= 40 else s[:37] + "..."


def _check_value(option: Option, value: Any, method: str) -> Any:
    name = option.name
    if value is None:
        if option.optional:
            return None
        raise InputError(f"option {name} of {method} cannot be null")
    if option.kind == "bool":
        if not isinstance(value, bool):
            raise InputError(f"option {name} must be true or false")
        return value
    if option.kind == "choice":
        if value not in option.choices:
            raise InputError(f"option {name} must be one of {', '.join(option.choices)}")
        return value
    if option.kind == "weights":
        if not isinstance(value, list) or not 1 <= len(value) <= MAX_STYLES:
            raise InputError(f"style_weights must be a list of 1 to {MAX_STYLES} numbers")
        return tuple(_number(name, v, float) for v in value)
    number = _number(name, value, int if option.kind == "int" else float)
    low, high = RANGES.get(name, (-1e12, 1e12))
    if not low <= number <= high:
        raise InputError(f"option {name} must be between {low:g} and {high:g}, got {number:g}")
    return number


def _number(name: str, value: Any, kind: type) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InputError(f"option {name} must be a number")
    if isinstance(value, int) and abs(value) > 2**63:  # JSON allows integers too large for a float
        raise InputError(f"option {name} is out of range")
    if kind is int:
        if isinstance(value, float) and not value.is_integer():
            raise InputError(f"option {name} must be a whole number")
        return int(value)
    if not math.isfinite(value):
        raise InputError(f"option {name} must be a finite number")
    return float(value)


# ---------------------------------------------------------------- running

_first_use = threading.Lock()  # the first run of a network exports/loads it once, not once per thread
_warm: set[tuple[str, str]] = set()


@contextmanager
def _once(method: str, styles: Sequence[object] = ()) -> Iterator[None]:
    """Serialise the first use of each (method, kind of style): networks are exported and cached then."""
    key = (method, "builtin" if any(isinstance(s, str) for s in styles) else "picture")
    if key in _warm:
        yield
        return
    with _first_use:
        yield
        _warm.add(key)


# the fast path's runtime in the server: onnxruntime sessions are safe to share between worker threads, while the
# automatic choice compiles and exports per image size (OpenVINO), which concurrent jobs must not do at once
RUNTIME = "onnxruntime"


def _server(method: str, device: str) -> dict[str, Any]:
    """The options the server sets itself: the device, and the fast path's runtime."""
    return {"device": device, "runtime": RUNTIME} if method == "fast" else {"device": device}


def stylize(
    content: np.ndarray,
    styles: Sequence[np.ndarray | str],
    method: str,
    options: Mapping[str, Any],
    progress: ProgressFn | None = None,
    *,
    device: str = "auto",
) -> np.ndarray:
    """Stylize ``content`` (H×W×3) with ``styles`` (H×W×3 arrays or ``builtin:N``) → H×W×3 float32."""
    from brushwork import api

    with _once(method, styles):
        image = api.stylize(
            content, list(styles), method=method, progress=progress, **_server(method, device), **options
        )
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def stylize_code(
    content: np.ndarray, code: np.ndarray, options: Mapping[str, Any], *, device: str = "auto"
) -> np.ndarray:
    """The fast transformer on ``content`` (already sized) with a raw 100-d style code (latent-space styles);
    strength, stroke scale and colour preservation as the contract does them."""
    from brushwork import api
    from brushwork.methods import fast

    with _once("fast"):
        stylizer = fast.get_stylizer(device, RUNTIME)
        out = stylizer.render(content, ("code", np.asarray(code, dtype=np.float32)), options.get("stroke_scale", 1.0))
    strength = float(options.get("strength", 1.0))
    if strength < 1.0:
        out = strength * out + (1.0 - strength) * content
    if options.get("preserve_color"):
        out = api.keep_luminance(out, content)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def renderer(
    styles: Sequence[np.ndarray | str], method: str, options: Mapping[str, Any], *, device: str = "auto"
) -> Any:
    """A :class:`brushwork.api.Renderer` for many frames with the same styles (the camera, videos): per-style work
    done once; ``render(rgb)`` for each frame."""
    from brushwork import api

    with _once(method, styles):
        return api.renderer(list(styles), method=method, **_server(method, device), **options)


def style_codes(images: Sequence[np.ndarray]) -> np.ndarray:
    """The fast predictor's 100-d style codes of style pictures → K×100."""
    from brushwork.methods import fast

    stylizer = fast.get_stylizer("cpu", RUNTIME)
    with _once("fast"):
        return np.stack([stylizer.style_code(img) for img in images])
