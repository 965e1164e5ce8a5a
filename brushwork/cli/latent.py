"""``brushwork mix``, ``sample``, ``interpolate`` and ``style-map``: the latent space of styles.

Each command checks its inputs and outputs first (one-line errors, exit code 2), then calls the API in
:mod:`brushwork.methods.latent`. Defaults come from that module (``MAX_SIZE``, ``MIX_MAX_SIZE``, ...) and are
repeated here only as literals where importing it (and torch) at start-up would slow every command.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from brushwork import io
from brushwork.cli.common import add_device, emit_json, finite_float, positive_int, seed_int
from brushwork.errors import InputError, OutputError

# keep in step with brushwork.methods.latent (not imported here: it imports torch)
MAX_SIZE = 512
MIX_MAX_SIZE = 2048
MAX_FRAMES = 2000
MAX_SAMPLES = 256
MAX_TEMPERATURE = 10.0


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
        description="Mix STYLES in the style VAE's latent space and render PHOTO. Weights (1, 0, ...) give the "
        "first style exactly. Styles are images or .npy codes written by 'brushwork sample'.",
    )
    m.add_argument("photo", help="photo to render")
    m.add_argument("--styles", nargs="+", required=True, metavar="STYLE", help="style images or .npy style codes")
    m.add_argument("--weights", nargs="+", type=finite_float, metavar="W", help="one weight per style (default: equal)")
    m.add_argument("-o", "--output", required=True, help="output image")
    m.add_argument("--compare", metavar="FILE", help="also write a side-by-side: latent mix | average of the codes")
    m.add_argument("--label", help="with a conditional model: mix within this label")
    _common(m, MIX_MAX_SIZE)
    m.set_defaults(run=run_mix)

    s = sub.add_parser(
        "sample",
        help="draw new styles from the latent space and render them on a photo, with a contact sheet",
        description="Draw N new styles from the style VAE's prior (within --label, or near --like styles) and render "
        "PHOTO in each. Writes OUT/sample_NN.jpg, the style codes OUT/sample_NN.npy (usable as styles in mix and "
        "interpolate) and OUT/contact_sheet.jpg.",
    )
    s.add_argument("photo", help="photo to render")
    s.add_argument("-n", "--count", type=positive_int, default=8, help="number of styles to draw (default: 8)")
    s.add_argument("--label", help="draw from this label's family of styles (conditional model, style-cvae)")
    s.add_argument("--like", nargs="+", metavar="STYLE", help="draw near these styles (images or .npy codes)")
    s.add_argument(
        "--temperature",
        type=finite_float,
        default=1.0,
        help=f"spread of the draws, more than 0 and at most {MAX_TEMPERATURE:g}; <1 safer, >1 wilder (default: 1)",
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
    _common(s, MAX_SIZE)
    s.set_defaults(run=run_sample)

    i = sub.add_parser(
        "interpolate",
        help="animate a smooth walk between two styles through the latent space (MP4 or GIF)",
        description="Render PHOTO in FRAMES styles along a straight line in the latent space from STYLE_A to "
        "STYLE_B; the first and last frames use the two styles exactly. Writes an .mp4 or .gif.",
    )
    i.add_argument("photo", help="photo to render")
    i.add_argument("style_a", metavar="STYLE_A", help="first style: image or .npy code")
    i.add_argument("style_b", metavar="STYLE_B", help="last style: image or .npy code")
    i.add_argument("--frames", type=int, default=48, help=f"frames, 2..{MAX_FRAMES} (default: %(default)s)")
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
    _common(i, MAX_SIZE)
    i.set_defaults(run=run_interpolate)

    g = sub.add_parser(
        "style-map",
        help="lay a folder of styles out in 2-D (PCA or t-SNE of the latent space) with thumbnails",
        description="Encode every image in DIR (and its sub-folders, whose names become coloured labels) into the "
        "style VAE's latent space and draw the 2-D map of their latent means, with thumbnails.",
    )
    g.add_argument("folder", metavar="DIR", help="folder of style images")
    g.add_argument("-o", "--output", required=True, help="map image to write (.png or .jpg)")
    g.add_argument("--method", choices=["pca", "tsne"], default="pca", help="2-D layout (default: %(default)s)")
    g.add_argument("--photo", help="thumbnails show this photo rendered in each style (default: the style images)")
    g.add_argument("--thumb", type=positive_int, default=96, help="thumbnail size in pixels (default: %(default)s)")
    g.add_argument("--size", type=positive_int, default=1200, help="map width in pixels (default: %(default)s)")
    g.add_argument(
        "--max-size", type=positive_int, help="with --photo: render the photo at this size (default: 2 × --thumb)"
    )
    g.add_argument("--coords", metavar="CSV", help="also write file,label,x,y and the latent means as CSV")
    g.add_argument("--seed", type=seed_int, default=0, help="random seed of t-SNE, 0..2**63-1 (default: %(default)s)")
    g.add_argument("--model", metavar="NAME|FILE", help="unconditional style VAE (default: style-vae)")
    add_device(g)
    g.set_defaults(run=run_style_map)


# -- helpers -------------------------------------------------------------------------------------------------------


class _Bar:
    """A (done, total) progress callback shown as a tqdm bar, created on first use."""

    def __init__(self, desc: str, unit: str = "img") -> None:
        self.desc, self.unit, self.bar = desc, unit, None

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.desc, unit=self.unit)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _input_file(path: str, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError(f"{what} not found: {path}")
    if not p.is_file():
        raise InputError(f"{what} is not a file: {path}")
    if p.suffix.lower() in io.IMAGE_EXTENSIONS:  # readable, not a bomb, not tiny: checked before any work
        io.verify_image(p, min_side=16)  # decoded once: a damaged file fails before any model loads
    return p


def _check_model(model: str | None) -> None:
    if model and model.endswith(".safetensors"):
        _input_file(model, "model file")


def _check_max_size(max_size: int) -> None:
    if max_size < 16:
        raise InputError(f"max size must be at least 16 pixels, got {max_size}")


def _check_stroke(stroke: float) -> None:
    if not 0.25 <= stroke <= 4.0:
        raise InputError(f"stroke scale must be between 0.25 and 4, got {stroke}")


# -- commands ------------------------------------------------------------------------------------------------------


def run_mix(args: argparse.Namespace) -> int:
    from brushwork import io

    photo = _input_file(args.photo, "photo")
    styles = [_input_file(s, "style") for s in args.styles]
    if args.weights is not None and len(args.weights) != len(styles):
        raise InputError(f"got {len(args.weights)} weights for {len(styles)} styles: give one weight per style")
    _check_model(args.model)
    _check_max_size(args.max_size)
    _check_stroke(args.stroke_scale)
    protect = [photo, *styles]
    io.check_writable(args.output, protect)
    io.check_folder_writable(Path(args.output).parent, args.output)
    if args.compare:
        io.check_writable(args.compare, protect)
        io.check_folder_writable(Path(args.compare).parent, args.compare)
        if Path(args.compare).resolve() == Path(args.output).resolve():
            raise OutputError(f"cannot write {args.compare}: --compare must differ from -o")

    from brushwork.methods import latent

    weights = latent.check_weights(args.weights, len(styles))
    codes = latent.mixed_codes(styles, weights, label=args.label, model=args.model, device=args.device)
    modes = ["latent", "average"] if args.compare else ["latent"]
    images = latent.render_codes(
        photo,
        [codes[m] for m in modes],
        max_size=args.max_size,
        stroke_scale=args.stroke_scale,
        device=args.device,
    )
    io.save_image(images[0], args.output, protect=protect)
    print(f"wrote {args.output} ({images[0].width}×{images[0].height})")
    if args.compare:
        sheet = latent.contact_sheet(images, ["latent mix", "average of the codes"], cell=images[0].width, columns=2)
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


def _check_code_path(path: Path, protect: list[Path]) -> None:
    """A ``.npy`` style code to write: not a folder, not one of the input files."""
    if path.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    if any(io.same_file(path, p) for p in protect):
        raise OutputError(f"cannot write {path}: it is an input file and would be overwritten")


def run_sample(args: argparse.Namespace) -> int:
    from brushwork import io

    photo = _input_file(args.photo, "photo")
    like = [_input_file(s, "style") for s in args.like or []]
    if args.count > MAX_SAMPLES:
        raise InputError(f"at most {MAX_SAMPLES} samples at a time, got {args.count}")
    if not 0 < args.temperature <= MAX_TEMPERATURE:
        raise InputError(f"temperature must be more than 0 and at most {MAX_TEMPERATURE:g}, got {args.temperature}")
    if like and args.label:
        raise InputError("give --label or --like, not both")
    _check_model(args.model)
    _check_max_size(args.max_size)
    _check_stroke(args.stroke_scale)
    out = _check_dir(args.output)
    protect = [photo, *like]
    names = [out / f"sample_{k:02d}.{args.format}" for k in range(args.count)]
    code_names = [n.with_suffix(".npy") for n in names]
    sheet_path = out / f"contact_sheet.{args.format}"
    if out.is_dir():  # a new folder holds no inputs and no folders
        for name in [*names, sheet_path]:
            io.check_writable(name, protect)
        for name in code_names:
            _check_code_path(name, protect)

    import torch

    from brushwork.methods import latent

    # the model, the photo and the --like styles are checked before the output folder is created, so that a bad
    # --label, --model, photo or style leaves nothing behind
    dev = latent.resolve_device(args.device)
    space = latent.load_style_space(args.model, conditional=args.label is not None, device=dev)
    space.label_tensor(args.label, 1)
    content = latent.load_photo(photo, args.max_size)
    near = torch.stack([latent.style_code(s, device=dev) for s in like]) if like else None
    codes = latent.sample_codes(
        space, args.count, label=args.label, like=near, temperature=args.temperature, seed=args.seed
    ).cpu()
    bar = _Bar("rendering")
    try:
        images = latent.render_codes(
            content, codes, max_size=args.max_size, stroke_scale=args.stroke_scale, device=dev, progress=bar
        )
    finally:
        bar.close()
    _make_dir(out)
    for k, (image, name) in enumerate(zip(images, names, strict=True)):
        io.save_image(image, name, protect=protect)
        latent.save_code(codes[k].numpy(), code_names[k])
    captions = [f"#{k:02d}" + (f" {args.label}" if args.label else "") for k in range(args.count)]
    io.save_image(latent.contact_sheet(images, captions), sheet_path, protect=protect)
    if args.json:
        emit_json(
            {
                "photo": str(photo),
                "samples": [str(n) for n in names],
                "codes": [str(n) for n in code_names],
                "contact_sheet": str(sheet_path),
                "model": space.name,
                "label": args.label,
                "temperature": args.temperature,
                "seed": args.seed,
            }
        )
    else:
        print(f"wrote {args.count} samples, their codes and {sheet_path}")
    return 0


def run_interpolate(args: argparse.Namespace) -> int:
    from brushwork import io

    photo = _input_file(args.photo, "photo")
    a, b = _input_file(args.style_a, "style"), _input_file(args.style_b, "style")
    if not 2 <= args.frames <= MAX_FRAMES:
        raise InputError(f"--frames must be between 2 and {MAX_FRAMES}, got {args.frames}")
    _check_model(args.model)
    _check_max_size(args.max_size)
    _check_stroke(args.stroke_scale)
    protect = [photo, a, b]

    from brushwork.methods import latent

    latent.check_animation_path(args.output, protect)
    io.check_folder_writable(Path(args.output).parent, args.output)
    latent.check_fps(args.output, args.fps)
    if args.strip:
        io.check_writable(args.strip, protect)
        io.check_folder_writable(Path(args.strip).parent, args.strip)
    bar = _Bar("rendering", "frame")
    try:
        result = latent.interpolate(
            photo,
            a,
            b,
            args.frames,
            label=args.label,
            model=args.model,
            max_size=args.max_size,
            stroke_scale=args.stroke_scale,
            device=args.device,
            progress=bar,
        )
    finally:
        bar.close()
    frames = result.images + (result.images[-2:0:-1] if args.boomerang else [])
    latent.save_animation(frames, args.output, fps=args.fps, protect=protect)
    print(f"wrote {args.output} ({len(frames)} frames, {frames[0].width}×{frames[0].height})")
    if args.strip:
        io.save_image(latent.strip(result.images), args.strip, protect=protect)
        print(f"wrote {args.strip}")
    return 0


def run_style_map(args: argparse.Namespace) -> int:
    from brushwork import io

    folder = Path(args.folder)
    if not folder.is_dir():
        raise InputError(f"folder not found: {args.folder}")
    photo = _input_file(args.photo, "photo") if args.photo else None
    if not 16 <= args.thumb <= 512:
        raise InputError(f"--thumb must be between 16 and 512 pixels, got {args.thumb}")
    if not 256 <= args.size <= 8192:
        raise InputError(f"--size must be between 256 and 8192 pixels, got {args.size}")
    _check_model(args.model)
    if args.max_size is not None:
        _check_max_size(args.max_size)
    protect: list[Any] = [photo] if photo else []
    io.check_writable(args.output, protect)
    io.check_folder_writable(Path(args.output).parent, args.output)
    if args.coords:
        _check_csv(args.coords)

    from brushwork.methods import latent

    bar = _Bar("encoding")
    try:
        result = latent.style_map(
            folder,
            method=args.method,
            photo=photo,
            model=args.model,
            thumb=args.thumb,
            size=args.size,
            max_size=args.max_size,
            seed=args.seed,
            device=args.device,
            progress=bar,
        )
    finally:
        bar.close()
    io.save_image(result.image, args.output, protect=[*protect, *result.paths])
    print(f"wrote {args.output} ({len(result.paths)} styles)")
    if args.coords:
        latent.save_map_csv(result, args.coords)
        print(f"wrote {args.coords}")
    return 0


def _check_csv(path: str) -> None:
    p = Path(path)
    if p.suffix.lower() != ".csv":
        raise OutputError(f"cannot write {path}: --coords must end in .csv")
    if not p.parent.is_dir():
        raise OutputError(f"cannot write {path}: folder {os.fspath(p.parent)!r} does not exist")
    if p.is_dir():
        raise OutputError(f"cannot write {path}: it is a folder")
    io.check_folder_writable(p.parent, path)
