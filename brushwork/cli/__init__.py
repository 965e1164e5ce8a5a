"""The ``brushwork`` command. Each command group lives in its own module with a ``register(subparsers)``
function; this module only builds the parser, runs the chosen command and turns errors into exit codes.

Command modules import torch and the methods lazily, inside their ``run`` functions, so that
``brushwork --help`` and the onnxruntime fast path start quickly.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings
from collections.abc import Sequence

from brushwork import __version__
from brushwork.errors import BrushworkError, BrushworkWarning

# command-group modules, in the order they appear in --help
COMMAND_MODULES = [
    "brushwork.cli.stylize",
    "brushwork.cli.models",
    "brushwork.cli.optimize",
    "brushwork.cli.latent",
    "brushwork.cli.train",
    "brushwork.cli.video",
    "brushwork.cli.evaluate",
    "brushwork.cli.serve",
]
# which module registers each command: a run of one command imports only its own module (start-up time)
COMMANDS = {
    "stylize": "brushwork.cli.stylize",
    "styles": "brushwork.cli.stylize",
    "demo": "brushwork.cli.stylize",
    "models": "brushwork.cli.models",
    "optimize": "brushwork.cli.optimize",
    "mix": "brushwork.cli.latent",
    "sample": "brushwork.cli.latent",
    "interpolate": "brushwork.cli.latent",
    "style-map": "brushwork.cli.latent",
    "train": "brushwork.cli.train",
    "video": "brushwork.cli.video",
    "eval-video": "brushwork.cli.video",
    "compare": "brushwork.cli.evaluate",
    "eval": "brushwork.cli.evaluate",
    "tune": "brushwork.cli.evaluate",
    "serve": "brushwork.cli.serve",
}


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The full parser, or (given a known ``command``) one with just that command's module registered."""
    parser = _Parser(
        prog="brushwork",
        description="Neural style transfer: fast, optimization, autoencoder and latent-space methods.",
    )
    parser.add_argument("--version", action="version", version=f"brushwork {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in [COMMANDS[command]] if command in COMMANDS else COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # torch's OpenMP threads must not busy-wait on a machine shared with other work (set before torch loads)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    argv = list(sys.argv[1:] if argv is None else argv)
    with warnings.catch_warnings():
        _one_line_warnings()
        parser = build_parser(argv[0] if argv else None)
        args = parser.parse_args(argv)
        if getattr(args, "run", None) is None:
            parser.print_help(sys.stderr)
            return 2
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    """Run the command; every error a user can cause becomes one ``brushwork: error: …`` line and exit code 2."""
    if "" in (getattr(args, "output", None), getattr(args, "out", None)):  # it would write into the current folder
        return _error("the output name is empty: give a file or folder name")
    try:
        return int(args.run(args) or 0)
    except BrushworkError as exc:
        return _error(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("brushwork: interrupted\n")
        return 130
    except MemoryError:
        return _error("out of memory: use a smaller --max-size or image")
    except RuntimeError as exc:  # torch and OpenCV report allocation failures as RuntimeError
        text = str(exc)
        if "memory" not in text.lower() and "alloc" not in text.lower():
            raise
        return _error("out of memory: use a smaller --max-size or image")
    except OSError as exc:  # the system refused a file operation no check foresaw (disk full, a vanished folder)
        if os.environ.get("BRUSHWORK_DEBUG"):
            raise
        reason = (exc.strerror or str(exc) or type(exc).__name__).lower()
        return _error(f"{exc.filename}: {reason}" if exc.filename else reason)


def _error(message: str, code: int = 2) -> int:
    sys.stderr.write(f"brushwork: error: {' '.join(message.split())}\n")
    return code


def _one_line_warnings() -> None:
    """Inside ``warnings.catch_warnings()``: brushwork's own warnings print as one ``brushwork: warning: …`` line
    each; other libraries' warnings are for developers and stay hidden unless Python's ``-W`` option is given."""

    def show(message: Warning | str, category: type[Warning], *_: object, **__: object) -> None:
        sys.stderr.write(f"brushwork: warning: {' '.join(str(message).split())}\n")

    warnings.showwarning = show  # type: ignore[assignment]
    if not sys.warnoptions:
        warnings.simplefilter("ignore")
    warnings.simplefilter("always", BrushworkWarning)


def entry() -> None:  # console-script entry point
    code = main()
    _exit(code)


def _exit(code: int) -> None:
    """End the process once a command is done: stdio flushed and the ``atexit`` handlers run (temporary folders,
    logging, Ray), then ``os._exit``, skipping the interpreter's teardown of every module and object (0.3–1 s
    after a print-size rendering here, with onnxruntime, scipy and numpy loaded). A normal exit where a Python
    thread other than the daemons is still running, so that it is not cut short."""
    import atexit
    import threading

    others = [t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon]
    if others:
        raise SystemExit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken pipe: as a normal exit would
        raise SystemExit(code) from None
    os._exit(code)
