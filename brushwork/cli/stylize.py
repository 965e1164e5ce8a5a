"""``brushwork stylize`` (fast path and autoencoders) and ``brushwork styles`` (contact sheet of built-in styles)."""

from __future__ import annotations

import argparse
import math
import sys
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from brushwork.cli.common import ProgressBar, add_device, add_ray, emit_json, positive_int, ray_settings
from brushwork.errors import BrushworkError, InputError, OutputError

FORMATS = ("png", "jpg", "webp", "tif")


def register(sub: argparse._SubParsersAction) -> None:
    from brushwork.api import METHODS, NUM_BUILTIN
    from brushwork.cli.flags import add_option_flags, option_classes

    p = sub.add_parser(
        "stylize",
        help="render a photo (or a folder of photos) in the style of paintings, with any method",
        description="Render CONTENT in the style of STYLE: an image path or builtin:N (0-25, method fast). Several "
        "styles blend. CONTENT may be a folder (then -o names an output folder) or - for standard input; -o - "
        "writes PNG to standard output.",
    )
    p.add_argument("content", help="photo, a folder of photos, or - (standard input)")
    p.add_argument("styles", nargs="+", metavar="STYLE", help=f"style image, or builtin:0..builtin:{NUM_BUILTIN - 1}")
    p.add_argument("-o", "--output", required=True, help="output file (format from its extension), folder, or -")
    p.add_argument(
        "--method",
        choices=list(METHODS),
        default="fast",
        help="; ".join(f"{name}: {spec.summary}" for name, spec in METHODS.items()) + " (default: %(default)s)",
    )
    p.add_argument(
        "--mask",
        nargs="+",
        metavar="MASK",
        help="grey image assigning styles to regions: white selects the first style, black the second (one "
        "style: black keeps the photo); with K>2 styles, K masks",
    )
    p.add_argument("--format", choices=FORMATS, default="png", help="output format in folder mode (default: png)")
    p.add_argument("--quality", type=positive_int, default=95, help="JPEG/WebP quality 1-100 (default: 95)")
    p.add_argument("--json", action="store_true", help="print a machine-readable record of each result")
    p.add_argument("--strict", action="store_true", help="folder mode: stop at the first unusable file")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--max-pixels",
        type=positive_int,
        help="refuse inputs with more pixels than this (default: $BRUSHWORK_MAX_PIXELS or 64 million)",
    )
    p.add_argument(
        "--resume", action="store_true", help="folder mode: skip photos whose output exists (an interrupted run)"
    )
    add_option_flags(p, option_classes(METHODS))
    add_ray(p)
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


def _style_paths(args: argparse.Namespace) -> list[str]:
    return [s for s in args.styles if not s.startswith("builtin:")]


def _need_file(path: str, what: str) -> None:
    if Path(path).is_dir():
        raise InputError(f"{what} {path} is a folder, not an image file")
    if not Path(path).is_file():
        raise InputError(f"{what} not found: {path}")


def _jobs(args: argparse.Namespace) -> list[tuple[Path | None, Path | None]]:
    """(input, output) pairs (None: standard input / output); validates paths before any network is loaded or
    any folder is made."""
    from brushwork import io
    from brushwork.options import MIN_SIDE

    content, output = Path(args.content), Path(args.output)
    for style in _style_paths(args):
        _need_file(style, "style image")
        io.verify_image(style, min_side=MIN_SIDE, max_pixels=args.max_pixels)
    for mask in args.mask or []:
        _need_file(mask, "mask image")
        io.verify_image(mask, max_pixels=args.max_pixels)
    if args.output != "-" and not content.is_dir():
        io.check_not_folder_name(args.output)
    if args.quality > 100:
        raise InputError(f"quality must be 1-100, got {args.quality}")
    protect = [Path(s) for s in _style_paths(args)] + [Path(m) for m in args.mask or []]
    if args.content == "-":
        pairs: list[tuple[Path | None, Path | None]] = [(None, None if args.output == "-" else output)]
    elif content.is_file():
        io.verify_image(content, min_side=MIN_SIDE, max_pixels=args.max_pixels)  # decoded: fails before any work
        pairs = [(content, None if args.output == "-" else output)]
    elif content.is_dir():
        if args.output == "-":
            raise InputError(f"{content} is a folder: -o must name a folder, not standard output")
        if output.exists() and not output.is_dir():
            raise InputError(f"{content} is a folder, so -o must be a folder too, not the file {output}")
        if output.suffix.lower().lstrip(".") in (*FORMATS, "jpeg", "tiff", "bmp", "gif") and not output.exists():
            raise InputError(f"{content} is a folder, so -o must be a folder too, not the file name {output}")
        io.check_output_folder(output)
        sources, args.skipped = io.usable_images(
            io.list_images(content),
            strict=args.strict,
            min_side=MIN_SIDE,
            max_pixels=args.max_pixels,
            where=str(content),
        )  # every file checked once, before any work: unusable ones are named in one warning each, and counted
        names = io.unique_names(sources)  # a.jpg and a.png must not both become a.png

        pairs = [(p, output / f"{names[p]}.{args.format}") for p in sources]
        args.made_folder = None if output.exists() else output  # removed again if the run fails before writing
        try:
            output.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the folder {output}: {exc.strerror or exc}") from None
    else:
        raise InputError(f"content not found: {content}")
    protect += [p for p, _ in pairs if p is not None]
    for _, out in pairs:
        if out is not None:
            io.check_writable(out, protect)
    return pairs


def _read_stdin() -> Any:
    from PIL import Image

    from brushwork import io

    data = sys.stdin.buffer.read()
    if not data:
        raise InputError("no image on standard input")
    try:
        img = Image.open(BytesIO(data))
    except (OSError, SyntaxError, ValueError):
        raise InputError("standard input is not an image (JPEG, PNG, WebP, TIFF, BMP or GIF)") from None
    try:
        with img:
            img.load()
            return io.load_image(img.copy())
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputError(f"standard input: the image is truncated or corrupt ({' '.join(str(exc).split())})") from None


def run(args: argparse.Namespace) -> int:
    from brushwork import api
    from brushwork.cli.flags import option_classes, options_from_args

    options = options_from_args(args, option_classes(api.METHODS))
    api.check_options(args.method, options)  # values and options the method lacks, before any file work
    cluster = ray_settings(args) if getattr(args, "ray", None) else None  # Ray missing: one line, before any work
    if cluster is not None and "-" in (args.content, args.output):
        raise InputError("--ray stylizes files and folders, not standard input or output")
    if args.json and args.output == "-":
        raise OutputError("--json prints to standard output, which -o - fills with the image: give -o a file")
    pairs = _jobs(args)
    finished = 0
    if getattr(args, "resume", False):  # outputs are written atomically: one that exists is complete
        finished = sum(1 for _, dst in pairs if dst is not None and dst.exists())
        pairs = [(src, dst) for src, dst in pairs if dst is None or not dst.exists()]
        if not pairs:
            print(f"nothing to do: the {finished} outputs exist in {args.output}")
            return 0
    try:
        if cluster is not None:  # the styles, method and options checked here, before any worker starts
            api.renderer(args.styles, method=args.method, max_pixels=args.max_pixels, **options)
        return _stylize_pairs(args, pairs, options, cluster, finished)
    except BrushworkError:
        made = getattr(args, "made_folder", None)
        if made is not None and made.is_dir() and not any(made.iterdir()):
            made.rmdir()  # a folder this run made and left empty
        raise


def _mask(args: argparse.Namespace) -> Any:
    """--mask as the API takes it: one image, or a list of one per style."""
    return args.mask[0] if args.mask and len(args.mask) == 1 else args.mask


def _folder_mode(args: argparse.Namespace) -> bool:
    return Path(args.content).is_dir() and args.content != "-"


def _stylize_pairs(
    args: argparse.Namespace, pairs: list[tuple[Path | None, Path | None]], options: dict[str, Any], cluster: Any,
    finished: int,
) -> int:  # fmt: skip
    from brushwork import api, io

    mask, folder = _mask(args), _folder_mode(args)

    records: list[dict[str, Any]] = []
    failures = 0
    protect = [p for p, _ in pairs if p is not None] + [Path(s) for s in _style_paths(args)]
    protect += [Path(m) for m in args.mask or []]
    with ProgressBar(quiet=args.quiet or args.json or len(pairs) < 2 and args.method != "optimize") as bar:
        if cluster is not None:
            records, failures = _run_cluster(args, pairs, options, cluster, bar)
            pairs_left: list[tuple[Path | None, Path | None]] = []
        else:
            pairs_left = pairs
            render = api.renderer(args.styles, method=args.method, progress=bar, max_pixels=args.max_pixels, **options)
        batch = api.Reporter(bar if len(pairs) > 1 else None, "batch", len(pairs))
        for i, (src, dst) in enumerate(pairs_left, 1):
            t0 = time.perf_counter()
            try:
                picture = render.render_picture(_read_stdin() if src is None else src, mask)
                if dst is None:
                    sys.stdout.buffer.write(io.encode_image(picture, ".png"))
                    sys.stdout.buffer.flush()
                else:
                    io.save_image(picture, dst, alpha=picture.alpha, quality=args.quality, protect=protect)
            except BrushworkError as exc:
                if not folder or args.strict:
                    raise
                failures += 1
                bar.write(f"brushwork: warning: skipped {src}: {exc}")
                continue
            finally:
                batch.step(i, message=src.name if src is not None else "")
            h, w = picture.rgb.shape[:2]
            records.append(
                {
                    "input": str(src) if src is not None else "-",
                    "output": str(dst) if dst is not None else "-",
                    "styles": args.styles,
                    "method": args.method,
                    "width": w,
                    "height": h,
                    "seconds": round(time.perf_counter() - t0, 4),
                }
            )
    failures += len(getattr(args, "skipped", []))
    if folder and not records and pairs:
        raise InputError(f"no usable image in {args.content} ({failures} skipped)")
    if args.json:
        emit_json(records if folder else records[0])
    elif not folder and pairs[0][1] is None:
        pass  # the picture went to standard output
    elif not folder:
        print(f"wrote {records[0]['output']} ({records[0]['width']}×{records[0]['height']})")
    else:
        skipped = f", {failures} skipped" if failures else ""
        earlier = f", {finished} done before" if finished else ""
        print(f"wrote {len(records)} of {len(records) + failures} images to {args.output}{skipped}{earlier}")
    return 0


def _run_cluster(
    args: argparse.Namespace, pairs: list[tuple[Path | None, Path | None]], options: dict[str, Any], settings: Any,
    bar: ProgressBar,
) -> tuple[list[dict[str, Any]], int]:  # fmt: skip
    """The photos of ``pairs`` on a Ray cluster (``brushwork.cluster``): the same outputs, written by this process."""
    from brushwork import cluster

    mask, folder = _mask(args), _folder_mode(args)
    failures = 0

    def skip(src: Path, message: str) -> None:
        nonlocal failures
        if not folder or args.strict:
            raise InputError(message)
        failures += 1
        bar.write(f"brushwork: warning: skipped {src}: {message}")

    records = cluster.stylize_images(
        [(src, dst) for src, dst in pairs if src is not None and dst is not None],
        args.styles,
        method=args.method,
        options=options,
        mask=[mask] if isinstance(mask, str) else mask,
        quality=args.quality,
        max_pixels=args.max_pixels,
        settings=settings,
        progress=bar,
        on_error=skip,
    )
    for r in records:
        r.update(styles=args.styles, method=args.method)
    return records, failures


def run_sheet(args: argparse.Namespace) -> int:
    from brushwork import api, draw, io
    from brushwork.api import NUM_BUILTIN

    if args.tile > 1024 or args.columns > NUM_BUILTIN + 1:
        raise InputError(f"--tile must be at most 1024 and --columns at most {NUM_BUILTIN + 1}")
    io.check_writable(args.output, [args.content])
    io.verify_image(args.content, min_side=16)
    rgb = io.load_image(args.content).rgb
    h, w = rgb.shape[:2]
    photo = io.resize_to_max(rgb, max(args.tile * 2, math.ceil(16 * max(h, w) / min(h, w))))  # keep 16 px across
    tiles = [photo] + [
        api.renderer([i], method="fast", device=args.device, max_size=None).render(photo) for i in range(NUM_BUILTIN)
    ]
    labels = ["photo"] + [f"builtin:{i}" for i in range(NUM_BUILTIN)]
    io.save_image(
        draw.labelled_grid(tiles, labels, columns=args.columns, tile=args.tile), args.output, protect=[args.content]
    )
    print(f"wrote {args.output}")
    return 0


def run_demo(args: argparse.Namespace) -> int:
    from brushwork import samples

    args.content, args.styles = str(samples.SAMPLE_PHOTO), [str(samples.SAMPLE_STYLE)]
    defaults = dict(method="fast", mask=None, format="png", quality=95, json=False, max_pixels=None, strict=False,
                    quiet=True)  # fmt: skip
    for key, value in defaults.items():
        setattr(args, key, value)
    print(f"stylizing {samples.SAMPLE_PHOTO.name} with {samples.SAMPLE_STYLE.name} (both ship with brushwork)")
    return run(args)
