"""``brushwork train decoder``: train an AdaIN/WCT decoder for an encoder on folders of photos and paintings.

Registered under ``brushwork train`` by :mod:`brushwork.cli.train` (``register(train_subparsers)``). Runs the
same under torchrun, one process per GPU (or CPU slot)::

    brushwork train decoder --content photos/ --style paintings/ --encoder vgg19 --out runs/vgg
    torchrun --nproc_per_node 4 -m brushwork train decoder --content photos/ --style paintings/ --out runs/vgg
    brushwork train decoder … --out runs/vgg --resume        # continue from the last checkpoint

Every default comes from :class:`brushwork.train.decoder.DecoderTrainConfig`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

# flag -> (config field, help); the default shown in --help is read from DecoderTrainConfig
_FLAGS: list[tuple[str, str, str]] = [
    ("--content", "content", "folder of photos (content images)"),
    ("--style", "style", "folder of paintings (style images)"),
    ("--out", "out", "output folder: decoder.safetensors, checkpoints/, log.csv, loss.png, val/"),
    ("--arch", "arch", "autoencoder: a decoder for adain/wct; microast: the whole MicroAST model (docs/microast.md)"),
    (
        "--encoder",
        "encoder",
        "autoencoder: the encoder's backbone, vgg19, vgg16 or mobilenet (offline; the default); microast: "
        "the loss network, auto (the default: vgg19 if its weights are here, else mobilenet), mobilenet or vgg19",
    ),
    ("--init", "init", "microast: starting weights, shipped, random or a MicroAST .safetensors file"),
    ("--layer", "layer", "layer the encoder stops at (default: relu4_1 for VGG, block5 for mobilenet)"),
    ("--encoder-weights", "encoder_weights", "encoder weights: imagenet, random or a local weights file"),
    ("--width", "width", "decoder hidden-channel multiplier, above 0 and at most 16"),
    ("--steps", "steps", "training steps"),
    ("--batch-size", "batch_size", "images per batch and process"),
    ("--crop", "crop", "size of the random square crops"),
    ("--max-scale", "max_scale", "the shorter side is resized to a random size in [crop, max-scale × crop]"),
    ("--lr", "lr", "Adam learning rate, above 0 and at most 10"),
    ("--lr-decay", "lr_decay", "learning rate at step s: lr / (1 + lr-decay × s)"),
    ("--content-weight", "content_weight", "weight of the content loss"),
    ("--style-weight", "style_weight", "weight of the style loss (mean/std)"),
    ("--rec-weight", "rec_weight", "weight of the pixel reconstruction loss ||x − D(E(x))||²"),
    ("--rec-feat-weight", "rec_feat_weight", "weight of the feature reconstruction loss ||E(x) − E(D(E(x)))||²"),
    ("--contrast-weight", "contrast_weight", "microast: weight of the style-signal contrastive loss"),
    ("--save-every", "save_every", "write a checkpoint every N steps (at least 1)"),
    ("--val-every", "val_every", "write a grid of validation stylizations every N steps (0: never)"),
    ("--log-every", "log_every", "append the mean losses to log.csv every N steps (at least 1)"),
    ("--keep", "keep", "checkpoints to keep (at least 1)"),
    ("--val-count", "val_count", "photos and paintings in the validation grid (at least 1)"),
    ("--seed", "seed", "random seed (weights and batches), 0 to 2**63-1"),
    ("--device", "device", "auto, cpu, cuda, cuda:N or mps (under torchrun, cuda: each process's local GPU)"),
    ("--threads", "threads", "CPU threads per process (0: torch's default)"),
    ("--time-limit", "time_limit", "stop with a checkpoint after this many minutes (0: no limit)"),
]


def _add_arguments(p: argparse.ArgumentParser) -> None:
    from brushwork.train.decoder import ARCH_DEFAULTS, DecoderTrainConfig

    defaults = DecoderTrainConfig()
    for flag, field, text in _FLAGS:
        default = getattr(defaults, field)
        kind = float if default is None else type(default)
        metavar = field.upper() if kind is str else None
        required = field in ("content", "style")
        if default is None:  # the arch's default
            text += f" (default: {', '.join(f'{v[field]:g} for {a}' for a, v in ARCH_DEFAULTS.items())})"
        p.add_argument(
            flag,
            dest=field,
            type=kind,
            default=None if required else default,
            required=required,
            metavar=metavar,
            help=text if required or default in ("", None) else f"{text} (default: {default})",
        )
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse to train when any image is unusable (default: skip it with a warning)",
    )
    p.add_argument("--amp", action=argparse.BooleanOptionalAction, default=defaults.amp, help="mixed precision on CUDA")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _lazy(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Make ``parser`` add its arguments on first use: their defaults come from the training config, whose module
    imports torch, and ``brushwork --help`` should not pay for that."""

    class _LazyParser(type(parser)):  # type: ignore[misc]
        _ready = False

        def _ensure(self) -> None:
            if not self._ready:
                self._ready = True
                _add_arguments(self)

        def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
            self._ensure()
            return super().parse_known_args(args, namespace)

        def format_help(self) -> str:
            self._ensure()
            return super().format_help()

    parser.__class__ = _LazyParser
    return parser


def register(train_sub: Any) -> argparse.ArgumentParser:
    """Add ``decoder`` to the ``brushwork train`` subcommands (``train_sub`` from ``add_subparsers``)."""
    p = train_sub.add_parser(
        "decoder",
        help="train an AdaIN/WCT decoder for an encoder, or fine-tune MicroAST (--arch microast)",
        description="Train a decoder that inverts a frozen encoder, with reconstruction and AdaIN losses, or "
        "(--arch microast) train or fine-tune the whole MicroAST model on your own paintings. "
        "Under torchrun, every process trains on its own batches (DDP).",
    )
    p.set_defaults(run=run)
    return _lazy(p)


def run(args: argparse.Namespace) -> int:
    """Train and report where the decoder was written."""
    from brushwork.cli.common import ProgressBar
    from brushwork.train.decoder import DecoderTrainConfig, train_decoder

    names = {f for _, f, _ in _FLAGS} | {"amp", "strict"}
    config = DecoderTrainConfig(**{k: v for k, v in vars(args).items() if k in names})
    with ProgressBar(quiet=args.quiet, unit="step") as bar:
        path = train_decoder(config, resume=args.resume, progress=bar)
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"decoder written to {path}{_data_summary(path)}")
    return 0


def _data_summary(path: Any) -> str:
    """'' or ' (trained on 318 photos and 190 paintings; 2 unusable files skipped)' from the decoder's config."""
    import json

    try:
        data = json.loads(path.with_suffix(".json").read_text())["data"]
        used = f"trained on {data['content']['images']} photos and {data['style']['images']} paintings"
        skipped = len(data["content"]["skipped"]) + len(data["style"]["skipped"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return f" ({used}; {skipped} unusable file{'s' if skipped != 1 else ''} skipped)" if skipped else f" ({used})"


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``train decoder`` on its own: ``python -m brushwork.cli.train_decoder …`` (also under torchrun)."""
    from brushwork.cli import _Parser
    from brushwork.errors import BrushworkError

    parser = _Parser(prog="brushwork train decoder", description="Train an AdaIN/WCT decoder.")
    _add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except BrushworkError as exc:
        sys.stderr.write(f"brushwork: error: {exc}\n")
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
