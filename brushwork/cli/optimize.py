"""``brushwork optimize``: optimization-based style transfer (Gatys et al.), the highest-quality, slowest path.

Every default comes from :data:`brushwork.methods.optimize.DEFAULTS`; this module only parses, validates paths,
calls :func:`brushwork.methods.optimize.optimize` and reports (progress bar, intermediate images, loss plot).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path
from typing import Any

from brushwork.cli.common import (
    finite_float,
    nonnegative_float,
    positive_float,
    positive_int,
    seed_int,
    weight_float,
)
from brushwork.errors import InputError, OutputError
from brushwork.methods.optimize import MAX_LR, MAX_SIDE, MIN_SIDE  # torch-free at import

PLOT_EXTENSIONS = (".png", ".pdf", ".svg", ".jpg", ".jpeg")


def _size(text: str) -> int:
    value = positive_int(text)
    if not MIN_SIDE <= value <= MAX_SIDE:
        qualifier = f"at least {MIN_SIDE}" if value < MIN_SIDE else f"at most {MAX_SIDE}"
        raise argparse.ArgumentTypeError(f"expected {qualifier} pixels, got {value}")
    return value


def _lr(text: str) -> float:
    value = finite_float(text)
    if not 0 < value <= MAX_LR:
        raise argparse.ArgumentTypeError(f"expected a learning rate above 0 and at most {MAX_LR:g}, got {value:g}")
    return value


def _temperature(text: str) -> float:
    value = nonnegative_float(text)
    if value > 1000:
        raise argparse.ArgumentTypeError(f"expected a temperature from 0 to 1000, got {text}")
    return value


def register(sub: argparse._SubParsersAction) -> None:
    from brushwork.methods.optimize import DEFAULTS  # torch-free at import: the engine imports torch lazily

    d = DEFAULTS
    p = sub.add_parser(
        "optimize",
        help="stylize by optimizing the image (Gatys et al.): highest quality and control, slowest",
        description="Optimize an image so that its features match CONTENT's and its feature statistics match the "
        "STYLE images' (Gatys et al. 2016). Runs offline with the MobileNetV2 backbone that ships with brushwork; "
        "VGG-19/16 need the torchvision weights (cached in the model store, or a local file via --weights).",
        epilog="Example: brushwork optimize photo.jpg starry.jpg -o out.png --size 512 --min-size 256",
    )
    p.add_argument("content", help="content photo")
    p.add_argument("styles", nargs="+", metavar="STYLE", help="style image(s); several are mixed")
    p.add_argument("-o", "--output", required=True, help="output image (format from its extension)")

    g = p.add_argument_group("losses")
    g.add_argument("--content-weight", type=weight_float, default=d.content_weight, help="alpha (default: %(default)s)")
    g.add_argument("--style-weight", type=weight_float, default=d.style_weight, help="beta (default: %(default)s)")
    g.add_argument(
        "--tv-weight", type=weight_float, default=d.tv_weight, help="gamma, total variation (default: %(default)s)"
    )
    g.add_argument(
        "--loss",
        choices=["gram", "mean-std", "w2"],
        default=d.loss.replace("_", "-"),
        help="style statistics: Gram matrices, per-channel mean and std, or Wasserstein-2 between Gaussians "
        "(default: %(default)s)",
    )
    g.add_argument(
        "--content-layers",
        nargs="+",
        metavar="LAYER",
        help=("content layers (default: the backbone's; VGG relu4_2, MobileNet block5)"),
    )
    g.add_argument(
        "--style-layers",
        nargs="+",
        metavar="LAYER",
        help=(
            "style layers (default: the backbone's; "
            "VGG relu1_1 relu2_1 relu3_1 relu4_1 relu5_1, MobileNet conv block2 block5 block9 block12)"
        ),
    )
    g.add_argument("--style-layer-weights", nargs="+", type=weight_float, metavar="W", help="one per style layer")
    g.add_argument("--normalize-gradients", action="store_true", help="divide each layer's gradient by its L1 norm")

    g = p.add_argument_group("optimization")
    g.add_argument("--optimizer", choices=["lbfgs", "adam"], default=d.optimizer, help="(default: %(default)s)")
    g.add_argument(
        "--lr",
        type=_lr,
        default=d.learning_rate,
        help=f"step size, above 0 and at most {MAX_LR:g} (default: 1 for L-BFGS, 0.02 for Adam)",
    )
    g.add_argument(
        "--iterations",
        type=positive_int,
        nargs="+",
        metavar="N",
        help=f"per scale, or one count per scale from coarse to fine (default: {d.iterations})",
    )
    g.add_argument(
        "--init",
        choices=["content", "noise", "style", "fast"],
        default=d.init,
        help="starting image; fast = the fast feed-forward network's output (default: %(default)s)",
    )
    g.add_argument(
        "--size",
        type=_size,
        default=d.size,
        help=f"longer side of the output, {MIN_SIDE} to {MAX_SIDE} (default: %(default)s)",
    )
    g.add_argument(
        "--min-size",
        type=_size,
        default=d.min_size,
        help=(
            "coarse-to-fine: longer side of the first "
            "scale, then steps of √2 up to --size, each scale starting from the previous (default: off)"
        ),
    )
    g.add_argument(
        "--seed", type=seed_int, default=d.seed, help="seed of noise init and random weights, 0 to 2**63-1 (default: 0)"
    )

    g = p.add_argument_group("controls")
    g.add_argument(
        "--style-weights",
        nargs="+",
        type=nonnegative_float,
        metavar="W",
        help=("mix of the styles, one per style (with --mask: weight of each style's region)"),
    )
    g.add_argument(
        "--style-scale",
        type=positive_float,
        default=d.style_scale,
        help=("size of the style images relative to the output; larger → bigger brush strokes (default: %(default)s)"),
    )
    colour = g.add_mutually_exclusive_group()
    colour.add_argument(
        "--preserve-color",
        action="store_true",
        help=("keep the photo's colours: luminance-only transfer (Gatys et al. 2016)"),
    )
    colour.add_argument(
        "--color-match",
        action="store_true",
        help=("recolour the styles to the photo's colour mean and covariance first (Gatys et al. 2016's other method)"),
    )
    g.add_argument(
        "--mask",
        metavar="IMAGE",
        help=(
            "grey image assigning styles to regions: dark → first style, "
            "light → last (one style: white = stylized, black = photo)"
        ),
    )

    g = p.add_argument_group("backbone")
    g.add_argument(
        "--backbone",
        choices=["auto", "vgg19", "vgg16", "mobilenet"],
        default=d.backbone,
        help="feature network (default: auto = vgg19 if its ImageNet weights are in the model store or --weights "
        "names a file, else mobilenet, which works offline with no download)",
    )
    g.add_argument(
        "--weights",
        default=d.weights,
        metavar="imagenet|random|PATH",
        help=(
            "backbone weights: from "
            "the model store, random (tests), or a local file such as torchvision's vgg19-dcbb9e9d.pth "
            "(default: %(default)s)"
        ),
    )
    g.add_argument("--pool", choices=["max", "avg"], default=d.pool, help="VGG pooling (default: %(default)s)")
    g.add_argument(
        "--swag",
        type=_temperature,
        default=d.swag,
        metavar="T",
        help=("SWAG softmax temperature for the style features, 0 = off (default: on for mobilenet, off for VGG)"),
    )
    g.add_argument(
        "--device",
        default=d.device,
        choices=["auto", "cpu", "cuda", "mps"],
        help="where to compute (default: auto = cuda or mps if present, else cpu)",
    )

    g = p.add_argument_group("feedback")
    g.add_argument(
        "--save-every",
        type=positive_int,
        metavar="N",
        help=("write the image every N iterations beside the output: out.00050.png for -o out.png"),
    )
    g.add_argument("--loss-plot", metavar="FILE", help="write the loss curves (png, pdf or svg)")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def _intermediate_path(output: Path, iteration: int) -> Path:
    return output.with_name(f"{output.stem}.{iteration:05d}{output.suffix}")


def _check_plot_path(path: str) -> Path:
    from brushwork import io

    if Path(path).suffix.lower() not in PLOT_EXTENSIONS and not Path(path).is_dir():
        raise OutputError(f"cannot write {path}: the loss plot must be one of {', '.join(PLOT_EXTENSIONS)}")
    return io.check_writable(path, extensions=None)


def run(args: argparse.Namespace) -> int:
    # OpenMP threads that busy-wait make PyTorch many times slower on a CPU shared with other jobs (measured 10-25×
    # on 2 shared cores); sleeping waits cost little on an idle machine. Must be set before torch is imported;
    # a value the user set wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from tqdm import tqdm

    from brushwork import io
    from brushwork.methods.optimize import DEFAULTS, check_sizes, optimize, pyramid_sizes

    inputs = [Path(args.content), *map(Path, args.styles)] + ([Path(args.mask)] if args.mask else [])
    output = io.check_writable(args.output, inputs)
    for path in [args.content, *args.styles]:  # readable, not a bomb, not tiny: before any work
        io.verify_image(path, min_side=MIN_SIDE, decode=False)
    plot = _check_plot_path(args.loss_plot) if args.loss_plot else None
    if plot is not None and any(plot.resolve() == p.resolve() for p in [*inputs, output]):
        raise OutputError(f"cannot write {args.loss_plot}: it is an input or the output image")
    if args.style_weights is not None and len(args.style_weights) != len(args.styles):
        raise InputError(f"got {len(args.style_weights)} --style-weights for {len(args.styles)} style images")
    if args.style_layer_weights is not None:
        n_layers = len(args.style_layers) if args.style_layers else None
        if n_layers is not None and len(args.style_layer_weights) != n_layers:
            raise InputError(f"got {len(args.style_layer_weights)} --style-layer-weights for {n_layers} style layers")

    if args.iterations is None:
        args.iterations = [DEFAULTS.iterations]
    content = io.load_image(args.content)
    styles = [io.load_image(s) for s in args.styles]
    mask = io.load_image(args.mask) if args.mask else None
    size = args.size
    # the output's and the scaled styles' sizes, before any network is loaded (optimize checks them again)
    check_sizes(*content.size, size, [s.size for s in styles], args.style_scale)
    scales = pyramid_sizes(size, args.min_size)
    total = sum(args.iterations) if len(args.iterations) > 1 else args.iterations[0] * len(scales)

    bars: list[Any] = []  # the bar appears with the first iteration, after every check has passed
    saved: list[Path] = []

    def callback(iteration: int, losses: dict[str, float], image: Any) -> None:
        if not bars:
            bars.append(tqdm(total=total, unit="it", disable=args.quiet, dynamic_ncols=True, desc="optimizing"))
        bar = bars[0]
        bar.update(1)
        bar.set_postfix_str(
            f"{image.shape[-1]}×{image.shape[-2]} content {losses['content']:.3g} style {losses['style']:.3g} "
            f"tv {losses['tv']:.3g} total {losses['total']:.4g}",
            refresh=False,
        )
        if args.save_every and iteration % args.save_every == 0:
            saved.append(io.save_image(image, _intermediate_path(output, iteration), protect=inputs))

    started = time.perf_counter()
    try:
        result = optimize(
            io.to_tensor(content.rgb),
            [io.to_tensor(s.rgb) for s in styles],
            style_weights=args.style_weights,
            content_weight=args.content_weight,
            style_weight=args.style_weight,
            tv_weight=args.tv_weight,
            content_layers=args.content_layers,
            style_layers=args.style_layers,
            style_layer_weights=args.style_layer_weights,
            loss=args.loss.replace("-", "_"),
            optimizer=args.optimizer,
            learning_rate=args.lr,
            iterations=args.iterations if len(args.iterations) > 1 else args.iterations[0],
            init=args.init,
            size=size,
            min_size=args.min_size,
            style_scale=args.style_scale,
            preserve_color="luminance" if args.preserve_color else "histogram" if args.color_match else None,
            mask=mask,
            seed=args.seed,
            backbone=args.backbone,
            weights=args.weights,
            pool=args.pool,
            swag=(False if args.swag == 0 else args.swag) if args.swag is not None else None,
            normalize_gradients=args.normalize_gradients,
            device=args.device,
            callback=callback,
        )
    finally:
        for bar in bars:
            bar.close()
    io.save_image(result.image, output, alpha=content.alpha, protect=inputs)
    if plot is not None:
        counts = args.iterations if len(args.iterations) > 1 else args.iterations * len(scales)
        write_loss_plot(result.history, plot, list(itertools.accumulate(counts))[:-1])
    seconds = time.perf_counter() - started
    w, h = result.image.shape[-1], result.image.shape[-2]
    how = "interrupted; saved the best image so far" if result.interrupted else "done"
    sys.stderr.write(
        f"{how}: {result.iterations} iterations in {seconds:.1f} s with {result.backbone}, {w}×{h} → {output}\n"
    )
    return 130 if result.interrupted else 0


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
