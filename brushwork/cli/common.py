"""Argument helpers shared by the command modules (kept free of heavy imports)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from brushwork.options import INT_LIMIT, WEIGHT_LIMIT
from brushwork.validate import SEED_LIMIT

# INT_LIMIT, the largest whole number any option takes: C libraries (OpenCV, torch, onnxruntime) take 32-bit ints,
# and a count past this (iterations, frames, pixels) would run for ever anyway


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    if value > INT_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a number of at most {INT_LIMIT:,}, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value <= INT_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to {INT_LIMIT:,}, got {text}")
    return value


def finite_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def unit_float(text: str) -> float:
    value = finite_float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value}")
    return value


def nonnegative_float(text: str) -> float:
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative number, got {value}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return value


def int_range(low: int, high: int) -> Callable[[str], int]:
    """argparse type of a whole number from ``low`` to ``high`` (inclusive)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a whole number from {low:,} to {high:,}, got {text}")
        return value

    return parse


def float_range(low: float, high: float) -> Callable[[str], float]:
    """argparse type of a finite number from ``low`` to ``high`` (inclusive)."""

    def parse(text: str) -> float:
        value = finite_float(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number from {low:g} to {high:g}, got {text}")
        return value

    return parse


def weight_float(text: str) -> float:
    """argparse type of a loss weight: a number from 0 to :data:`WEIGHT_LIMIT`."""
    value = nonnegative_float(text)
    if value > WEIGHT_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a weight of at most {WEIGHT_LIMIT:g}, got {text}")
    return value


def seed_int(text: str) -> int:
    """argparse type of a random seed: a whole number, 0 <= seed < 2**63."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if not 0 <= value < SEED_LIMIT:
        raise argparse.ArgumentTypeError(f"expected a seed from 0 to 2**63 - 1, got {text}")
    return value


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--device",
        default="auto",
        choices=["auto", "cpu", "cuda", "mps"],
        help="where to compute (default: auto = cuda or mps if present, else cpu)",
    )


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, indent=2) + "\n")


class ProgressBar:
    """The CLI's one way to show :class:`brushwork.api.Progress` events: a tqdm bar per stage, on stderr.

    Use as the ``progress=`` callable, and close it (or use it as a context manager) when the work ends. The bar
    appears with the first event, so nothing is drawn for work that fails its checks, and only when stderr is a
    terminal, so that logs and pipes get the one-line messages alone.
    """

    def __init__(self, quiet: bool = False, unit: str = "it") -> None:
        self.quiet, self.unit = quiet, unit
        self._bar: Any = None
        self._stage = ""

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if event.stage == "export" and self._bar is not None and self._stage != "export":
            self._bar.set_postfix_str(event.message[-40:])  # a one-time export inside other work: a note on its bar
            return
        if self._bar is None or event.stage != self._stage:
            self.close()
            from tqdm import tqdm

            self._stage = event.stage
            self._bar = tqdm(
                total=event.total or None,
                unit=self.unit,
                desc=event.stage,
                dynamic_ncols=True,
                leave=False,
                disable=None,  # off when stderr is not a terminal
            )
        bar = self._bar
        if event.total and bar.total != event.total:
            bar.total = event.total
        bar.update(max(0, event.step - bar.n))
        if event.losses:
            bar.set_postfix_str(" ".join(f"{k} {v:.3g}" for k, v in event.losses.items()), refresh=False)
        elif event.message:
            bar.set_postfix_str(event.message[-40:], refresh=False)

    def write(self, text: str) -> None:
        """A line on stderr that does not break the bar."""
        if self._bar is not None:
            from tqdm import tqdm

            tqdm.write(text, file=sys.stderr)
        else:
            sys.stderr.write(text + "\n")

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def add_ray(parser: argparse.ArgumentParser) -> None:
    """The flags that run a command on a Ray cluster (``brushwork.cluster``)."""
    g = parser.add_argument_group("cluster (Ray; pip install 'brushwork[ray]')")
    g.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on Ray: without ADDRESS a local Ray runtime on this machine, with it the cluster at ADDRESS "
        "(host:port, auto, ray://host:port); put it after the positional arguments",
    )
    g.add_argument(
        "--workers", type=positive_int, help="Ray workers, each loading the networks once (default: CPUs / worker CPUs)"
    )
    g.add_argument(
        "--worker-cpus", type=float_range(0.01, 4096), default=1.0, help="CPUs each worker takes (default: %(default)s)"
    )
    g.add_argument(
        "--worker-gpus", type=float_range(0, 1024), default=0.0, help="GPUs each worker takes (default: %(default)s)"
    )


def ray_settings(args: argparse.Namespace) -> Any:
    """``brushwork.cluster.Settings`` from the flags of :func:`add_ray`; ClusterError (exit 2, one line) when Ray
    is not installed, before any other work."""
    from brushwork import cluster

    cluster.require_ray()
    return cluster.Settings(
        address=None if args.ray == "local" else args.ray,
        workers=args.workers,
        worker_cpus=args.worker_cpus,
        worker_gpus=args.worker_gpus,
    )
