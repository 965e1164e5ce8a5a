"""``brushwork optimize``: ``brushwork stylize --method optimize`` with the feedback an optimization wants
(intermediate images, a loss plot). Its flags are built from :class:`brushwork.options.OptimizeOptions`, the single
source of its defaults; the run goes through :func:`brushwork.api.stylize_picture`.
"""

from __future__ import annotations

import argparse
import itertools
import os
import re
import sys
import time
from pathlib import Path

from brushwork.cli.common import ProgressBar, positive_int
from brushwork.errors import OutputError

PLOT_EXTENSIONS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def register(sub: argparse._SubParsersAction) -> None:
    from brushwork.cli.flags import add_option_flags
    from brushwork.options import OptimizeOptions

    p = sub.add_parser(
        "optimize",
        help="stylize by optimizing the image (Gatys et al.): highest quality and control, slowest",
        description="Optimize an image so that its features match CONTENT's and its feature statistics match the "
        "STYLE images' (Gatys et al. 2016); the same as stylize --method optimize, with intermediate images and a "
        "loss plot. Runs offline with the MobileNetV2 backbone that ships with brushwork; VGG-19/16 need the "
        "torchvision weights (cached in the model store, or a local file via --weights).",
        epilog="Example: brushwork optimize photo.jpg starry.jpg -o out.png --max-size 512 --min-size 256",
    )
    p.add_argument("content", help="content photo")
    p.add_argument("styles", nargs="+", metavar="STYLE", help="style image(s); several are mixed")
    p.add_argument("-o", "--output", required=True, help="output image (format from its extension)")
    p.add_argument(
        "--mask",
        nargs="+",
        metavar="MASK",
        help="grey image assigning styles to regions: white selects the first style, black the second (one "
        "style: black keeps the photo); with K>2 styles, K masks",
    )
    add_option_flags(p, {"optimize": OptimizeOptions})
    g = p.add_argument_group("feedback")
    g.add_argument(
        "--save-every",
        type=positive_int,
        metavar="N",
        help="write the image every N iterations beside the output: out.00050.png for -o out.png",
    )
    g.add_argument("--loss-plot", metavar="FILE", help="write the loss curves (png, pdf or svg)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _intermediate_path(output: Path, iteration: int) -> Path:
    return output.with_name(f"{output.stem}.{iteration:05d}{output.suffix}")


def _check_intermediates(output: Path, every: int, iterations: int, inputs: list[Path]) -> None:
    """OutputError when an intermediate image ``OUT.NNNNN.ext`` the run would write is one of ``inputs``."""
    from brushwork import io

    pattern = re.compile(re.escape(output.stem) + r"\.(\d{5,})" + re.escape(output.suffix))
    for path in inputs:
        match = pattern.fullmatch(path.name)
        if match is None or not io.same_file(path.parent, output.parent):
            continue
        step = int(match.group(1))
        if step % every == 0 and step <= iterations:
            raise OutputError(f"cannot write {path}: it is an input file, and --save-every {every} would replace it")


def _check_plot_path(path: str) -> Path:
    from brushwork import io

    if not path:
        raise OutputError("--loss-plot needs a file name")
    if Path(path).suffix.lower() not in PLOT_EXTENSIONS and not Path(path).is_dir():
        raise OutputError(f"cannot write {path}: the loss plot must be one of {', '.join(PLOT_EXTENSIONS)}")
    return io.check_writable(path, extensions=None)  # folder, name length, links: before any work


def run(args: argparse.Namespace) -> int:
    from brushwork import api, io
    from brushwork.cli.flags import options_from_args
    from brushwork.methods.optimize import pyramid_sizes, split_iterations
    from brushwork.options import MIN_SIDE, OptimizeOptions

    options = options_from_args(args, {"optimize": OptimizeOptions})
    if args.save_every:
        options["preview_every"] = args.save_every
    checked = api.check_options("optimize", options)
    inputs = [Path(args.content), *map(Path, args.styles), *map(Path, args.mask or [])]
    output = io.check_writable(args.output, inputs)
    for path in [args.content, *args.styles]:  # readable, not a bomb, not tiny: before any work
        io.verify_image(path, min_side=MIN_SIDE)
    if args.save_every:  # the intermediate images, before the first iteration: none may replace an input
        _check_intermediates(output, args.save_every, checked.iterations, inputs)
    plot = _check_plot_path(args.loss_plot) if args.loss_plot is not None else None
    if plot is not None and any(io.same_file(plot, p) for p in [*inputs, output]):
        raise OutputError(f"cannot write {args.loss_plot}: it is an input or the output image")
    history: list[dict[str, float]] = []
    interrupted = []
    started = time.perf_counter()
    with ProgressBar(quiet=args.quiet) as bar:

        def progress(event: api.Progress) -> None:
            bar(event)
            if event.message == "interrupted":
                interrupted.append(event.step)
                return
            history.append(dict(event.losses))
            if args.save_every and event.preview is not None and event.step % args.save_every == 0:
                io.save_image(event.preview, _intermediate_path(output, event.step), protect=inputs)

        mask = args.mask[0] if args.mask and len(args.mask) == 1 else args.mask
        picture = api.stylize_picture(args.content, args.styles, method="optimize", mask=mask, progress=progress,
                                      **options)  # fmt: skip
    io.save_image(picture, output, protect=inputs)
    if plot is not None:
        scales = pyramid_sizes(max(picture.rgb.shape[:2]), checked.min_size)
        write_loss_plot(
            history, plot, list(itertools.accumulate(split_iterations(checked.iterations, len(scales))))[:-1]
        )
    seconds = time.perf_counter() - started
    h, w = picture.rgb.shape[:2]
    how = "interrupted; saved the best image so far" if interrupted else "done"
    sys.stderr.write(f"{how}: {len(history)} iterations in {seconds:.1f} s, {w}×{h} → {output}\n")
    return 130 if interrupted else 0


def write_loss_plot(history: list[dict[str, float]], path: Path, scale_starts: list[int] | None = None) -> Path:
    """Write the loss curves (one line per term and the total, log scale) to ``path`` atomically."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    steps = range(1, len(history) + 1)
    for key in ("total", "content", "style", "tv"):
        values = [max(h.get(key, 0.0), 1e-12) for h in history]
        if any(v > 1e-12 for v in values):
            ax.plot(steps, values, label=key, linewidth=2 if key == "total" else 1)
    for start in scale_starts or []:
        if start < len(history):
            ax.axvline(start + 0.5, color="grey", linestyle=":", linewidth=1)
    ax.set_yscale("log")
    totals = [h["total"] for h in history if h.get("total", 0) > 0]
    if totals:  # terms that start at 0 (content, with content init) would stretch the axis to 1e-12
        ax.set_ylim(bottom=min(totals) * 1e-3)
    ax.set_xlabel("iteration (dotted: next scale)" if scale_starts else "iteration")
    ax.set_ylabel("weighted loss")
    ax.legend()
    ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        fig.savefig(tmp)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)
    return path
