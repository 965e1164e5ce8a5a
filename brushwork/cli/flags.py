"""Command-line flags built from the methods' options classes (:mod:`brushwork.options`).

Each option becomes one flag (``style_weights`` → ``--style-weights``). Flags default to "not given", so a run
passes only what the user typed and every default comes from the options class: the help text shows it, and a
test checks that each flag maps to the option of the same name.
"""

from __future__ import annotations

import argparse
from dataclasses import MISSING, fields
from typing import Any

from brushwork import options as opts
from brushwork.cli.common import (
    finite_float,
    float_range,
    nonnegative_float,
    nonnegative_int,
    positive_int,
    seed_int,
    unit_float,
    weight_float,
)

# option -> (help, argparse keywords); the default is appended from the options classes
_FLAGS: dict[str, tuple[str, dict[str, Any]]] = {
    "style_weights": ("blend weights, one per style", {"nargs": "+", "type": nonnegative_float, "metavar": "W"}),
    "strength": ("0 = the photo, 1 = fully stylized", {"type": unit_float}),
    "preserve_color": ("keep the photo's colours (luminance transfer)", {"action": "store_true"}),
    "color_match": ("recolour the styles to the photo's colours first", {"action": "store_true"}),
    "max_size": ("bound the longer side of the output in pixels", {"type": positive_int}),
    "stroke_scale": (f"brush-stroke size, {opts.MIN_STROKE}..{opts.MAX_STROKE}", {"type": finite_float}),
    "device": ("where to compute: auto = cuda or mps if present, else cpu", {"choices": list(opts.DEVICES)}),
    "seed": ("random seed", {"type": seed_int}),
    "runtime": (
        "CPU engine: auto = onnxruntime for a new size, OpenVINO once a size repeats",
        {"choices": ["auto", "onnxruntime", "openvino", "torch"]},
    ),
    "tile": (
        "render in tiles of this side (feed-forward methods: exactly equal to the untiled result; optimize: "
        "coarse-to-fine, the finest scale in tiles); 0 never tiles; None: when the untiled work would exceed "
        "--memory-budget",
        {"type": int, "metavar": "N"},
    ),
    "memory_budget": (
        "memory to stay within, e.g. 512MB, 1GB, 2.5GB (fast: network states that do not fit go to a scratch file "
        "in $TMPDIR, or $BRUSHWORK_SCRATCH; BRUSHWORK_SCRATCH=none recomputes them instead)",
        {"metavar": "SIZE"},
    ),
    "decoder": (
        "a decoder in the model store or a .safetensors file (wct: several = cascade; "
        "microast: a file from `train decoder --arch microast`)",
        {"nargs": "+"},
    ),
    "style_size": (
        "longer side the style images (and the photo, for its own signal) are bounded to",
        {"type": positive_int, "metavar": "PX"},
    ),
    "content_weight": ("alpha, the content loss weight", {"type": weight_float}),
    "style_weight": ("beta, the style loss weight", {"type": weight_float}),
    "tv_weight": ("gamma, the total-variation (smoothness) weight", {"type": weight_float}),
    "iterations": ("iterations of the whole run (over every scale)", {"type": positive_int}),
    "init": ("starting image", {"choices": ["content", "noise", "style", "fast", "microast"]}),
    "min_size": ("longer side of the first scale of a coarse-to-fine pyramid", {"type": positive_int}),
    "loss": ("style loss", {"choices": ["gram", "mean_std", "w2"]}),
    "optimizer": ("optimizer", {"choices": ["lbfgs", "adam"]}),
    "learning_rate": ("step size (default: 1.0 for lbfgs, 0.02 for adam)", {"type": finite_float}),
    "content_layers": ("backbone layers of the content loss", {"nargs": "+", "metavar": "LAYER"}),
    "style_layers": ("backbone layers of the style loss", {"nargs": "+", "metavar": "LAYER"}),
    "style_layer_weights": ("one weight per style layer", {"nargs": "+", "type": weight_float, "metavar": "W"}),
    "backbone": (
        "feature network: auto = vgg19 if its weights are here, else mobilenet",
        {"choices": ["auto", "vgg19", "vgg16", "mobilenet"]},
    ),
    "weights": ("backbone weights: imagenet, random or a local file", {}),
    "pool": ("VGG pooling", {"choices": ["max", "avg"]}),
    "swag": ("SWAG softmax temperature (0 = off)", {"type": float_range(0, 1000)}),
    "normalize_gradients": ("divide each layer's gradient by its L1 norm", {"action": "store_true"}),
    "tile_iterations": ("optimize in tiles: iterations of each tile at the finest scale", {"type": nonnegative_int}),
    "preview_every": ("a preview image every N iterations (0 = none)", {"type": nonnegative_int}),
}


def option_classes(methods: dict[str, Any]) -> dict[str, type]:
    return {name: spec.options for name, spec in methods.items()}


def _defaults(classes: dict[str, type]) -> dict[str, dict[str, Any]]:
    """option -> {method: default} over the given methods' classes."""
    table: dict[str, dict[str, Any]] = {}
    for method, cls in classes.items():
        for f in fields(cls):
            default = f.default if f.default is not MISSING else None
            table.setdefault(f.name, {})[method] = default
    return table


def _describe(per_method: dict[str, Any]) -> str:
    values = set(map(repr, per_method.values()))
    if len(values) == 1:
        return f"default: {next(iter(per_method.values()))}"
    return "default: " + ", ".join(f"{m} {v}" for m, v in per_method.items())


def add_option_flags(parser: argparse.ArgumentParser, classes: dict[str, type]) -> None:
    """One flag per option of the given methods' classes; ``(methods)`` in the help when not every one has it."""
    table = _defaults(classes)
    group = parser.add_argument_group("method options (the shared vocabulary first)")
    for name, per_method in table.items():
        text, kwargs = _FLAGS.get(name, (name.replace("_", " "), {}))
        only = "" if len(per_method) == len(classes) else f" [{', '.join(per_method)}]"
        group.add_argument(
            "--" + name.replace("_", "-"),
            dest=name,
            default=argparse.SUPPRESS,
            help=f"{text} ({_describe(per_method)}){only}".replace("%", "%%"),
            **kwargs,
        )


def options_from_args(args: argparse.Namespace, classes: dict[str, type]) -> dict[str, Any]:
    """The options the user gave (and only those), as keyword arguments for :mod:`brushwork.api`.

    A flag the chosen method does not take is passed on too, so the API refuses it with its one-line error."""
    names = {name for cls in classes.values() for name in opts.option_names(cls)}
    given = {name: getattr(args, name) for name in sorted(names) if hasattr(args, name)}
    if "decoder" in given and len(given["decoder"]) == 1:
        given["decoder"] = given["decoder"][0]
    for name in ("style_weights", "content_layers", "style_layers", "style_layer_weights", "decoder"):
        if isinstance(given.get(name), list):
            given[name] = tuple(given[name])
    return given
