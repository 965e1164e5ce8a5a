"""``brushwork mix``, ``sample``, ``interpolate`` and ``style-map``: the latent space of styles.

Each command checks its inputs and outputs first (one-line errors, exit code 2), then calls the API in
:mod:`brushwork.latent` (whose defaults it reads: that module imports no torch) and writes the results through
:mod:`brushwork.io`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from brushwork import io
from brushwork import latent as api
from brushwork.cli.common import ProgressBar, add_device, emit_json, finite_float, positive_int, seed_int
from brushwork.errors import InputError, OutputError


def _common(p: argparse.ArgumentParser, max_size: int) -> None:
    p.add_argument(
        "--model",
        metavar="NAME|FILE",
        help="style VAE: style-vae, style-cvae or a .safetensors file from 'brushwork train style-vae' "
        "(default: style-vae, or style-cvae with --label)",
    )
    p.add_argument(
        "--max-size",
        type=positive_int,
        default=max_size,
        help="bound the longer side of the rendered photo in pixels (default: %(default)s)",
    )
    p.add_argument(
        "--stroke-scale", type=finite_float, default=1.0, help="brush-stroke size, 0.25..4 (default: %(default)s)"
    )
    add_device(p)


def register(sub: argparse._SubParsersAction) -> None:
    m = sub.add_parser(
        "mix",
        help="render a photo in a mix of styles, blended in the latent space of styles",
        description="Mix STYLES in the style VAE's latent space and render CONTENT. Style weights (1, 0, ...) give "
        "the first style exactly. Styles are images or .npy codes written by 'brushwork sample'.",
    )
    m.add_argument("content", metavar="CONTENT", help="photo to render")
    m.add_argument("--styles", nargs="+", required=True, metavar="STYLE", help="style images or .npy style codes")
    m.add_argument(
        "--style-weights",
        "--weights",
        dest="style_weights",
        nargs="+",
        type=finite_float,
        metavar="W",
        help="one weight per style, normalised to sum 1 (default: equal; --weights is the old name)",
    )
    m.add_argument("-o", "--output", required=True, help="output image")
    m.add_argument("--compare", metavar="FILE", help="also write a side-by-side: latent mix | average of the codes")
    m.add_argument("--label", help="with a conditional model: mix within this label")
    _common(m, api.MIX_MAX_SIZE)
    m.set_defaults(run=run_mix)

    s = sub.add_parser(
        "sample",
        help="draw new styles from the latent space and render them on a photo, with a contact sheet",
        description="Draw N new styles from the style VAE's prior (within --label, or near --like styles) and render "
        "CONTENT in each. Writes OUT/sample_NN.jpg, the style codes OUT/sample_NN.npy (usable as styles in mix and "
        "interpolate) and OUT/contact_sheet.jpg.",
    )
    s.add_argument("content", metavar="CONTENT", help="photo to render")
    s.add_argument(
        "-n", "--count", type=positive_int, default=8, help=f"styles to draw, 1..{api.MAX_SAMPLES} (default: 8)"
    )
    s.add_argument("--label", help="draw from this label's family of styles (conditional model, style-cvae)")
    s.add_argument("--like", nargs="+", metavar="STYLE", help="draw near these styles (images or .npy codes)")
    s.add_argument(
        "--temperature",
        type=finite_float,
        default=1.0,
        help="spread of the draws, more than 0 and at most 10; <1 safer, >1 wilder (default: 1)",
    )
    s.add_argument(
        "--seed",
        type=seed_int,
        default=0,
        help="random seed, 0..2**63-1; the same seed draws the same styles (default: 0)",
    )
    s.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder (created if missing)")
    s.add_argument("--format", choices=["jpg", "png", "webp"], default="jpg", help="image format (default: jpg)")
    s.add_argument("--json", action="store_true", help="print a machine-readable record")
    _common(s, api.MAX_SIZE)
    s.set_defaults(run=run_sample)

    i = sub.add_parser(
        "interpolate",
        help="animate a smooth walk between two styles through the latent space (MP4 or GIF)",
        description="Render CONTENT in FRAMES styles along a straight line in the latent space from STYLE_A to "
        "STYLE_B; the first and last frames use the two styles exactly. Writes an .mp4 (H.264) or .gif.",
    )
    i.add_argument("content", metavar="CONTENT", help="photo to render")
    i.add_argument("style_a", metavar="STYLE_A", help="first style: image or .npy code")
    i.add_argument("style_b", metavar="STYLE_B", help="last style: image or .npy code")
    i.add_argument("--frames", type=int, default=48, help=f"frames, 2..{api.MAX_FRAMES} (default: %(default)s)")
    i.add_argument(
        "--fps",
        type=finite_float,
        default=24.0,
        help="frames per second: 0.002..50 for a GIF, up to 240 for an MP4 (default: %(default)s)",
    )
    i.add_argument("--boomerang", action="store_true", help="play forward then backward, for a seamless loop")
    i.add_argument("-o", "--output", required=True, help="animation to write: .mp4 or .gif")
    i.add_argument("--strip", metavar="FILE", help="also write a strip of 8 evenly spaced frames as one image")
    i.add_argument("--label", help="with a conditional model: walk within this label")
    _common(i, api.MAX_SIZE)
    i.set_defaults(run=run_interpolate)

    g = sub.add_parser(
        "style-map",
        help="lay a folder of styles out in 2-D (PCA or t-SNE of the latent space) with thumbnails",
        description="Encode every image in DIR (and its sub-folders, whose names become coloured labels) into the "
        "style VAE's latent space and draw the 2-D map of their latent means, with thumbnails.",
    )
    g.add_argument("folder", metavar="DIR", help="folder of style images")
    g.add_argument("-o", "--output", required=True, help="map image to write (.png or .jpg)")
    g.add_argument(
        "--projection",
        "--method",
        dest="projection",
        choices=api.PROJECTIONS,
        default="pca",
        help="2-D layout (default: %(default)s; --method is the old name)",
    )
    g.add_argument(
        "--content",
        "--photo",
        dest="content",
        help="thumbnails show this photo rendered in each style (default: the style images; --photo: old name)",
    )
    g.add_argument("--thumb", type=positive_int, default=96, help="thumbnail size in pixels (default: %(default)s)")
    g.add_argument(
        "--width",
        "--size",
        dest="width",
        type=positive_int,
        default=1200,
        help="map width in pixels, 256..8192 (default: %(default)s; --size is the old name)",
    )
    g.add_argument(
        "--max-size", type=positive_int, help="with --content: render the photo at this size (default: 2 × --thumb)"
    )
    g.add_argument("--coords", metavar="CSV", help="also write file,label,x,y and the latent means as CSV")
    g.add_argument("--seed", type=seed_int, default=0, help="random seed of t-SNE, 0..2**63-1 (default: %(default)s)")
    g.add_argument("--model", metavar="NAME|FILE", help="unconditional style VAE (default: style-vae)")
    g.add_argument(
        "--strict", action="store_true", help="refuse the run when any file is not a usable image (default: skip it)"
    )
    add_device(g)
    g.set_defaults(run=run_style_map)


# -- helpers -------------------------------------------------------------------------------------------------------


def _input_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found: {path}")
    if not p.is_file():
        raise InputError(f"{what} is not a file: {path}")
    if p.suffix.lower() in io.IMAGE_EXTENSIONS:  # readable, not a bomb, not tiny: checked before any work
        io.verify_image(p, min_side=16)  # decoded once: a damaged file fails before any model loads
    return p


def _check_common(args: argparse.Namespace) -> None:
    """The options shared by mix, sample and interpolate, checked before any work."""
    if args.model and args.model.endswith(".safetensors"):
        _input_file(args.model, "model file")
    if args.max_size < 16:
        raise InputError(f"max size must be at least 16 pixels, got {args.max_size}")
    if not 0.25 <= args.stroke_scale <= 4.0:
        raise InputError(f"stroke scale must be between 0.25 and 4, got {args.stroke_scale}")


# -- commands ------------------------------------------------------------------------------------------------------


def run_mix(args: argparse.Namespace) -> int:
    content = _input_file(args.content, "photo")
    styles = [_input_file(s, "style") for s in args.styles]
    if args.style_weights is not None and len(args.style_weights) != len(styles):
        raise InputError(f"got {len(args.style_weights)} style weights for {len(styles)} styles: give one per style")
    _check_common(args)
    protect = [content, *styles]
    io.check_writable(args.output, protect)
    if args.compare:
        io.check_writable(args.compare, protect)
        if Path(args.compare).resolve() == Path(args.output).resolve():
            raise OutputError(f"cannot write {args.compare}: --compare must differ from -o")

    from brushwork import draw

    rgb = api.load_content(content, args.max_size)
    codes = api.mixed_codes(styles, args.style_weights, label=args.label, model=args.model, device=args.device)
    modes = ["latent", "average"] if args.compare else ["latent"]
    images = api.render_codes(
        rgb, [codes[m] for m in modes], max_size=None, stroke_scale=args.stroke_scale, device=args.device
    )
    io.save_image(images[0], args.output, protect=protect)
    print(f"wrote {args.output} ({images[0].width}×{images[0].height})")
    if args.compare:
        sheet = draw.contact_sheet(images, ["latent mix", "average of the codes"], cell=images[0].width, columns=2)
        io.save_image(sheet, args.compare, protect=protect)
        print(f"wrote {args.compare}")
    return 0


def _check_dir(path: str) -> Path:
    """The output folder of ``sample``, validated but not created: it exists and is writable, or its parent does."""
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"cannot write to {path}: it is a file, not a folder")
    if out.is_dir():
        io.check_folder_writable(out, path)
    elif not out.parent.is_dir():
        raise OutputError(f"cannot create {path}: folder {os.fspath(out.parent)!r} does not exist")
    else:
        io.check_folder_writable(out.parent, path)
    return out


def _make_dir(out: Path) -> None:
    try:
        out.mkdir(exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {os.fspath(out)}: {exc.strerror or exc}") from None


def run_sample(args: argparse.Namespace) -> int:
    content = _input_file(args.content, "photo")
    like = [_input_file(s, "style") for s in args.like or []]
    if args.count > api.MAX_SAMPLES:
        raise InputError(f"at most {api.MAX_SAMPLES} samples at a time, got {args.count}")
    if like and args.label:
        raise InputError("give --label or --like, not both")
    _check_common(args)
    out = _check_dir(args.output)
    protect = [content, *like]
    names = [out / f"sample_{k:02d}.{args.format}" for k in range(args.count)]
    code_names = [n.with_suffix(".npy") for n in names]
    sheet_path = out / f"contact_sheet.{args.format}"
    if out.is_dir():  # a new folder holds no inputs and no folders
        for name in [*names, sheet_path]:
            io.check_writable(name, protect)
        for name in code_names:
            io.check_output_path(name, protect)

    from brushwork import draw

    # the model, the label, the photo and the --like styles are all read before the output folder is created, so
    # that a bad one leaves nothing behind
    with ProgressBar(unit="img") as bars:
        result = api.sample(
            content,
            args.count,
            label=args.label,
            like=like or None,
            temperature=args.temperature,
            seed=args.seed,
            model=args.model,
            max_size=args.max_size,
            stroke_scale=args.stroke_scale,
            device=args.device,
            progress=bars,
        )
    _make_dir(out)
    for image, name, code, code_name in zip(result.images, names, result.style_codes, code_names, strict=True):
        io.save_image(image, name, protect=protect)
        api.save_code(code, code_name, protect=protect)
    captions = [f"#{k:02d}" + (f" {args.label}" if args.label else "") for k in range(args.count)]
    io.save_image(draw.contact_sheet(result.images, captions), sheet_path, protect=protect)
    if args.json:
        emit_json(
            {
                "content": str(content),
                "samples": [str(n) for n in names],
                "style_codes": [str(n) for n in code_names],
                "contact_sheet": str(sheet_path),
                "model": args.model or (api.CONDITIONAL_MODEL if args.label else api.DEFAULT_MODEL),
                "label": args.label,
                "temperature": args.temperature,
                "seed": args.seed,
            }
        )
    else:
        print(f"wrote {args.count} samples, their codes and {sheet_path}")
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    content = _input_file(args.content, "photo")
    a, b = _input_file(args.style_a, "style"), _input_file(args.style_b, "style")
    if not 2 <= args.frames <= api.MAX_FRAMES:
        raise InputError(f"--frames must be between 2 and {api.MAX_FRAMES}, got {args.frames}")
    _check_common(args)
    protect = [content, a, b]
    io.check_animation_path(args.output, protect)
    io.check_fps(args.output, args.fps)
    if args.strip:
        io.check_writable(args.strip, protect)

    from brushwork import draw

    with ProgressBar(unit="img") as bars:
        result = api.interpolate(
            content,
            a,
            b,
            args.frames,
            label=args.label,
            model=args.model,
            max_size=args.max_size,
            stroke_scale=args.stroke_scale,
            device=args.device,
            progress=bars,
        )
    frames = result.images + (result.images[-2:0:-1] if args.boomerang else [])
    io.save_animation(frames, args.output, fps=args.fps, protect=protect)
    print(f"wrote {args.output} ({len(frames)} frames, {frames[0].width}×{frames[0].height})")
    if args.strip:
        io.save_image(draw.strip(result.images), args.strip, protect=protect)
        print(f"wrote {args.strip}")
    return 0


def run_style_map(args: argparse.Namespace) -> int:
    folder = Path(args.folder)
    if not folder.is_dir():
        if folder.exists():
            raise InputError(f"{args.folder} is a file: give a folder of styles")
        raise InputError(f"folder not found: {args.folder}")
    content = _input_file(args.content, "photo") if args.content else None
    if not 16 <= args.thumb <= 512:
        raise InputError(f"--thumb must be between 16 and 512 pixels, got {args.thumb}")
    if not 256 <= args.width <= 8192:
        raise InputError(f"--width must be between 256 and 8192 pixels, got {args.width}")
    if args.model and args.model.endswith(".safetensors"):
        _input_file(args.model, "model file")
    if args.max_size is not None and args.max_size < 16:
        raise InputError(f"max size must be at least 16 pixels, got {args.max_size}")
    protect: list[Any] = [content] if content else []
    io.check_writable(args.output, protect)
    if args.coords:
        io.check_table_path(args.coords, protect)

    with ProgressBar(unit="img") as bars:
        result = api.style_map(
            folder,
            projection=args.projection,
            content=content,
            model=args.model,
            thumb=args.thumb,
            width=args.width,
            max_size=args.max_size,
            seed=args.seed,
            device=args.device,
            progress=bars,
            strict=args.strict,
        )
    io.save_image(result.image, args.output, protect=[*protect, *result.paths])
    print(f"wrote {args.output} ({len(result.paths)} styles)")
    if args.coords:
        io.write_csv(args.coords, result.rows(), protect=[*protect, *result.paths])
        print(f"wrote {args.coords}")
    return 0
