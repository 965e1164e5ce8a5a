"""``brushwork train``: the training command group.

``train style-vae`` is defined here. Other training commands live in their own modules and register onto the
same sub-parsers: :mod:`brushwork.cli.train_decoder` (``train decoder``) is added when it is present.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

from brushwork.cli.common import add_device, finite_float, float_range, int_range, seed_int

# modules that add a subcommand to ``brushwork train`` with ``register(train_subparsers)``, when installed
OPTIONAL_COMMANDS = ["brushwork.cli.train_decoder"]

# flag -> (TrainOptions field, type, help); the defaults shown come from TrainOptions
_FLAGS: list[tuple[str, str, Any, str]] = [
    ("--latent-dim", "latent_dim", int_range(1, 1024), "size of the latent space (1 to 1024)"),
    ("--hidden", "hidden", int_range(4, 65536), "width of the encoder's and decoder's hidden layers"),
    ("--beta", "beta", float_range(0, 1e6), "weight of the KL term of the ELBO"),
    ("--epochs", "epochs", int_range(1, 1_000_000), "most epochs to train"),
    ("--batch-size", "batch_size", int_range(1, 1_000_000), "codes per batch"),
    ("--lr", "lr", float_range(1e-12, 10), "AdamW learning rate"),
    ("--weight-decay", "weight_decay", float_range(0, 1e6), "AdamW weight decay"),
    ("--val-fraction", "val_fraction", finite_float, "fraction of the paintings held out for validation"),
    ("--patience", "patience", int_range(1, 1_000_000), "stop after this many epochs without a better validation loss"),
    ("--warmup", "warmup", int_range(0, 1_000_000), "epochs of linear KL warm-up"),
    ("--augment", "augment", int_range(0, 64), "random crops per painting, besides the whole painting"),
    ("--seed", "seed", seed_int, "random seed (split, crops, weights), 0..2**63-1"),
]


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train models: a style VAE (and, where installed, decoders)")
    train_sub = train.add_subparsers(dest="train_command", metavar="MODEL")
    train.set_defaults(run=lambda args: _usage(train))
    _register_style_vae(train_sub)
    for name in OPTIONAL_COMMANDS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:  # the module exists but something it imports is missing: a real error
                raise
            continue
        module.register(train_sub)


def _usage(parser: argparse.ArgumentParser) -> int:
    """Bare ``brushwork train``: the help on stderr and exit code 2, as bare ``brushwork``."""
    parser.print_help(sys.stderr)
    return 2


def _register_style_vae(train_sub: Any) -> None:
    from brushwork.train.style_vae import TrainOptions

    defaults = TrainOptions()
    p = train_sub.add_parser(
        "style-vae",
        help="train a style VAE (or, with --labels, a conditional one) on a folder of style images",
        description="Train a VAE over the style codes of the images in STYLES (and its sub-folders), with augmented "
        "crops, a validation split by painting, early stopping and a loss plot. Writes OUT (.safetensors) and its "
        ".json config. Use the result with --model OUT in mix, sample, interpolate and style-map.",
    )
    p.add_argument("--styles", required=True, metavar="DIR", help="folder of style images (sub-folders too)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="weights file to write (.safetensors)")
    p.add_argument(
        "--labels",
        metavar="folders|CSV",
        help="train a conditional VAE: 'folders' (sub-folder names are labels) or a CSV of filename,label",
    )
    p.add_argument("--plot", metavar="FILE", help="loss plot to write (default: OUT's name + _loss.png)")
    for flag, field, kind, text in _FLAGS:
        p.add_argument(
            flag, dest=field, type=kind, default=getattr(defaults, field), help=f"{text} (default: %(default)s)"
        )
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument(
        "--strict", action="store_true", help="refuse the run when any file is not a usable image (default: skip it)"
    )
    add_device(p)
    p.set_defaults(run=run_style_vae)


def _check_side_files(args: argparse.Namespace) -> None:
    """The config written beside the weights (OUT with .json) must not replace the --labels CSV."""
    from brushwork import io
    from brushwork.errors import OutputError

    side = Path(args.output).with_suffix(".json")
    if args.labels and args.labels != "folders" and io.same_file(side, Path(args.labels)):
        raise OutputError(f"cannot write {side}: it is the --labels file and would be overwritten; choose another -o")


def run_style_vae(args: argparse.Namespace) -> int:
    from brushwork.cli.common import ProgressBar
    from brushwork.train.style_vae import TrainOptions, train_style_vae

    options = TrainOptions(**{field: getattr(args, field) for _, field, _, _ in _FLAGS})
    _check_side_files(args)
    with ProgressBar(quiet=args.quiet) as bars:
        result = train_style_vae(
            args.styles,
            args.output,
            labels=args.labels,
            options=options,
            plot=args.plot,
            device=args.device,
            progress=bars,
            strict=args.strict,
        )
    m = result.metrics
    how = "stopped early" if result.stopped_early else "ran all epochs"
    print(
        f"best epoch {result.best_epoch} of {len(result.history)} ({how}); held-out paintings: "
        f"{int(m['val_paintings'])}, reconstruction MSE {m['val_recon_mse']:.3f} (PCA baseline "
        f"{m['val_recon_mse_pca']:.3f}), ELBO {m['val_elbo']:.1f} nats (Gaussian baseline "
        f"{m['val_loglik_gaussian']:.1f})"
    )
    out = Path(args.output)
    plot = args.plot or out.with_name(out.stem + "_loss.png")
    print(f"wrote {out}, {out.with_suffix('.json')} and {plot}")
    return 0
