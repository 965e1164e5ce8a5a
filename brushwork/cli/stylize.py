"""``brushwork stylize`` (fast path and autoencoders) and ``brushwork styles`` (contact sheet of built-in styles)."""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from brushwork.cli.common import add_device, emit_json, finite_float, positive_int, unit_float
from brushwork.errors import BrushworkError, InputError, OutputError

FORMATS = ("png", "jpg", "webp", "tif")


def register(sub: argparse._SubParsersAction) -> None:
    from brushwork.methods.fast import DEFAULTS, MAX_STROKE, MIN_STROKE, NUM_BUILTIN

    p = sub.add_parser(
        "stylize",
        help="render a photo (or a folder of photos) in the style of paintings, in one pass",
        description="Render CONTENT in the style of STYLE: an image path or builtin:N (0-25). Several styles blend. "
        "CONTENT may be a folder, then -o names an output folder.",
    )
    p.add_argument("content", help="photo, or a folder of photos")
    p.add_argument("styles", nargs="+", metavar="STYLE", help=f"style image, or builtin:0..builtin:{NUM_BUILTIN - 1}")
    p.add_argument("-o", "--output", required=True, help="output file (format from its extension) or folder")
    p.add_argument("--style-weights", nargs="+", type=finite_float, metavar="W", help="blend weights, one per style")
    p.add_argument(
        "--strength",
        type=unit_float,
        default=DEFAULTS.strength,
        help="0..1: from the photo's own style (0) to the target's (1) (default: %(default)s)",
    )
    p.add_argument("--preserve-color", action="store_true", help="keep the photo's colours (luminance-only style)")
    p.add_argument(
        "--max-size",
        type=positive_int,
        default=DEFAULTS.max_size,
        help="bound the longer side of the output in pixels (default: %(default)s)",
    )
    p.add_argument(
        "--stroke-scale",
        type=finite_float,
        default=DEFAULTS.stroke_scale,
        help=f"brush-stroke size, {MIN_STROKE}..{MAX_STROKE}, independent of resolution (default: %(default)s)",
    )
    p.add_argument(
        "--method",
        choices=["fast", "adain", "wct"],
        default="fast",
        help="fast = Magenta feed-forward networks; adain/wct = encoder-decoder (default: %(default)s)",
    )
    p.add_argument("--decoder", help="adain/wct: name of a decoder in the model store, or a .safetensors path")
    p.add_argument(
        "--mask",
        help="adain/wct: grey image assigning styles to regions (white: first style, black: second; "
        "with one style, black keeps the photo)",
    )
    p.add_argument(
        "--runtime",
        choices=["auto", "onnxruntime", "openvino", "torch"],
        default="auto",
        help="fast path engine: auto = onnxruntime for one image, OpenVINO for a folder (compiled once per size), "
        "PyTorch on cuda/mps (default: auto)",
    )
    p.add_argument("--format", choices=FORMATS, default="png", help="output format in folder mode (default: png)")
    p.add_argument("--quality", type=positive_int, default=95, help="JPEG/WebP quality 1-100 (default: 95)")
    p.add_argument("--json", action="store_true", help="print a machine-readable record of each result")
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        help="refuse inputs with more pixels than this (default: $BRUSHWORK_MAX_PIXELS or 64 million)",
    )
    p.add_argument(
        "--tile",
        type=int,
        default=None,
        help="render in tiles of this side (exact: equal to the untiled result); 0 never tiles "
        "(default: tiles when the untiled work would exceed --memory-budget)",
    )
    p.add_argument(
        "--memory-budget",
        default=DEFAULTS.memory_budget,
        help="memory to stay within, e.g. 512MB, 1GB, 2.5GB (default: %(default)s)",
    )
    add_device(p)
    p.set_defaults(run=run)

    s = sub.add_parser("styles", help="render all 26 built-in styles on a photo, as a labelled contact sheet")
    s.add_argument("content", help="photo to render the styles on")
    s.add_argument("-o", "--output", default="styles.png", help="output image (default: %(default)s)")
    s.add_argument(
        "--tile", type=positive_int, default=256, help="tile size in pixels, up to 1024 (default: %(default)s)"
    )
    s.add_argument("--columns", type=positive_int, default=7, help="tiles per row, up to 27 (default: %(default)s)")
    add_device(s)
    s.set_defaults(run=run_sheet)

    d = sub.add_parser("demo", help="stylize the sample photo that ships with brushwork with its sample style")
    d.add_argument("-o", "--output", default="brushwork-demo.png", help="output image (default: %(default)s)")
    add_device(d)
    d.set_defaults(run=run_demo)


def _jobs(args: argparse.Namespace) -> list[tuple[Path, Path]]:
    """(input, output) pairs; validates paths and values before any network is loaded or any folder is made."""
    from brushwork import io
    from brushwork.methods.fast import MAX_STROKE, MIN_SIDE, MIN_STROKE

    content, output = Path(args.content), Path(args.output)
    styles = [s for s in args.styles if not s.startswith("builtin:")]
    for style in styles:
        if not Path(style).is_file():
            raise InputError(f"style image not found: {style}")
    if args.mask is not None:
        if args.method == "fast":
            raise InputError("--mask needs --method adain or wct")
        if not Path(args.mask).is_file():
            raise InputError(f"mask image not found: {args.mask}")
        if len(args.styles) > 2:
            raise InputError("--mask assigns at most two styles (white: first, black: second)")
    if args.quality > 100:
        raise InputError(f"quality must be 1-100, got {args.quality}")
    if args.max_size is not None and args.max_size < MIN_SIDE:
        raise InputError(f"--max-size must be at least {MIN_SIDE} pixels, got {args.max_size}")
    if not MIN_STROKE <= args.stroke_scale <= MAX_STROKE:
        raise InputError(f"stroke scale must be between {MIN_STROKE} and {MAX_STROKE}, got {args.stroke_scale}")
    if args.method != "fast" and args.stroke_scale != 1.0:
        raise InputError("--stroke-scale belongs to --method fast")
    from brushwork import tiling

    tiling.check_tile(args.tile)
    tiling.parse_bytes(args.memory_budget)
    if content.is_file():
        pairs = [(content, output)]
    elif content.is_dir():
        if output.exists() and not output.is_dir():
            raise InputError(f"{content} is a folder, so -o must be a folder too, not the file {output}")
        sources = io.list_images(content)
        stems = Counter(p.stem for p in sources)  # a.jpg and a.png must not both become a.png

        def name(p: Path) -> str:
            return p.stem if stems[p.stem] == 1 else f"{p.stem}_{p.suffix[1:].lower()}"

        pairs = [(p, output / f"{name(p)}.{args.format}") for p in sources]
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the folder {output}: {exc.strerror or exc}") from None
    else:
        raise InputError(f"content not found: {content}")
    protect = [p for p, _ in pairs] + [Path(s) for s in styles]
    for _, out in pairs:
        io.check_writable(out, protect)
    return pairs


def run(args: argparse.Namespace) -> int:
    from brushwork import io

    pairs = _jobs(args)
    render = _renderer(args, batch=len(pairs) > 1)
    protect = [p for p, _ in pairs] + [Path(s) for s in args.styles if not s.startswith("builtin:")]
    records: list[dict[str, Any]] = []
    failures = 0
    if len(pairs) > 1:
        from tqdm import tqdm

        bar: Any = tqdm(pairs, unit="img", desc="stylizing")
        say = tqdm.write
    else:
        bar, say = pairs, print
    for src, dst in bar:
        t0 = time.perf_counter()
        try:
            picture = render(src)
            io.save_image(picture, dst, alpha=picture.alpha, quality=args.quality, protect=protect)
        except BrushworkError as exc:
            if len(pairs) == 1:
                raise
            failures += 1
            say(f"brushwork: error: {exc}", file=sys.stderr)
            continue
        h, w = picture.rgb.shape[:2]
        records.append(
            {
                "input": str(src),
                "output": str(dst),
                "styles": args.styles,
                "method": args.method,
                "width": w,
                "height": h,
                "seconds": round(time.perf_counter() - t0, 4),
            }
        )
    if args.json:
        emit_json(records[0] if len(pairs) == 1 else records)
    elif len(pairs) == 1:
        print(f"wrote {records[0]['output']} ({records[0]['width']}×{records[0]['height']})")
    else:
        print(f"wrote {len(records)} of {len(pairs)} images to {args.output}")
    return 2 if failures else 0


def _renderer(args: argparse.Namespace, batch: bool = False) -> Any:
    """A function ``path -> Picture`` for the chosen method, with the styles prepared once."""
    if args.method == "fast":
        from brushwork.methods.fast import FastStylizer, openvino_available, resolve_device

        runtime = args.runtime
        if runtime == "auto" and batch and resolve_device(args.device) == "cpu" and openvino_available():
            runtime = "openvino"  # many images: compiling once per size pays off
        stylizer = FastStylizer(args.device, max_pixels=args.max_pixels, runtime=runtime)
        target = stylizer.target(args.styles, args.style_weights)  # style codes computed once for a batch

        def fast(path: Path) -> Any:
            return stylizer.stylize(
                path,
                args.styles,
                style_weights=args.style_weights,
                strength=args.strength,
                preserve_color=args.preserve_color,
                max_size=args.max_size,
                stroke_scale=args.stroke_scale,
                target=target,
                tile=args.tile,
                memory_budget=args.memory_budget,
            )

        return fast
    from brushwork.methods.autoencoder import stylize_files

    if any(s.startswith("builtin:") for s in args.styles):
        raise InputError("builtin: styles belong to --method fast; give style images for adain/wct")
    if args.runtime not in ("auto", "torch"):
        raise InputError(f"--runtime {args.runtime} is for --method fast; adain/wct run in PyTorch")

    def autoencoder(path: Path) -> Any:
        return stylize_files(
            path,
            args.styles,
            method=args.method,
            decoder=args.decoder,
            alpha=args.strength,
            style_weights=args.style_weights,
            mask=args.mask,
            preserve_color=args.preserve_color,
            max_size=args.max_size,
            device=args.device,
            max_pixels=args.max_pixels,
            tile=args.tile,
            memory_budget=args.memory_budget,
        )

    return autoencoder


def run_sheet(args: argparse.Namespace) -> int:
    from brushwork import io
    from brushwork.methods.fast import NUM_BUILTIN, FastStylizer
    from brushwork.sheet import contact_sheet

    if args.tile > 1024 or args.columns > NUM_BUILTIN + 1:
        raise InputError(f"--tile must be at most 1024 and --columns at most {NUM_BUILTIN + 1}")
    io.check_writable(args.output, [args.content])
    stylizer = FastStylizer(args.device)
    photo = io.resize_to_max(io.load_image(args.content).rgb, args.tile * 2)
    tiles = [photo] + [stylizer.stylize(photo, [i], max_size=None).rgb for i in range(NUM_BUILTIN)]
    labels = ["photo"] + [f"builtin:{i}" for i in range(NUM_BUILTIN)]
    io.save_image(
        contact_sheet(tiles, labels, columns=args.columns, tile=args.tile), args.output, protect=[args.content]
    )
    print(f"wrote {args.output}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from brushwork import samples

    args.content, args.styles = str(samples.SAMPLE_PHOTO), [str(samples.SAMPLE_STYLE)]
    defaults = dict(
        style_weights=None,
        strength=1.0,
        preserve_color=False,
        max_size=None,
        stroke_scale=1.0,
        method="fast",
        decoder=None,
        mask=None,
        format="png",
        quality=95,
        json=False,
        max_pixels=None,
        runtime="auto",
        tile=None,
        memory_budget="1GB",
    )
    for key, value in defaults.items():
        setattr(args, key, value)
    print(f"stylizing {samples.SAMPLE_PHOTO.name} with {samples.SAMPLE_STYLE.name} (both ship with brushwork)")
    return run(args)
