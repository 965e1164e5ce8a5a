"""Training checkpoints, written atomically so that a killed run always leaves a loadable last one.

Layout of a run's ``checkpoints/`` folder::

    step-0001000/            one checkpoint: complete or absent, never half-written
        model.safetensors    the trained weights (safetensors metadata: the config, as JSON)
        optimizer.pt         the optimizer's state dict (and any extra state, e.g. a GradScaler's)
        state.json           {"step", "config", "metrics", "time"}
    last.json                {"step": 1000, "dir": "step-0001000"}

A checkpoint is written into a hidden temporary folder, flushed, and renamed into place; ``last.json`` is then
replaced atomically. :func:`latest` reads ``last.json`` and falls back to the highest complete ``step-*`` folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from brushwork import io
from brushwork.errors import InputError, OutputError

LAST = "last.json"
_PREFIX = "step-"


@dataclass
class Checkpoint:
    """A loaded checkpoint: its step, weights, optimizer state, config and metrics, and where it came from."""

    step: int
    weights: dict[str, Tensor]
    optimizer: dict[str, Any]
    config: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}") from None


def save(
    root: str | os.PathLike[str],
    step: int,
    weights: dict[str, Tensor],
    optimizer: dict[str, Any],
    config: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Write checkpoint ``step`` under ``root`` atomically, point ``last.json`` at it, and keep the newest ``keep``.

    ``weights`` are saved as safetensors (float tensors, moved to the CPU), ``optimizer`` with ``torch.save``.
    Returns the checkpoint folder.
    """
    from safetensors.torch import save_file

    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise InputError(f"keep must be at least 1 checkpoint, got {keep!r}")  # 0 would leave nothing to resume
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    name = f"{_PREFIX}{step:07d}"
    final = root / name
    tmp = root / f".{name}.{os.getpid()}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    state = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    record = {"step": int(step), "config": config, "metrics": metrics or {}, "time": time.time()}
    try:
        tmp.mkdir()
        save_file(state, str(tmp / "model.safetensors"), metadata={"brushwork": json.dumps(config)})
        io.readable_by_all(tmp / "model.safetensors")
        torch.save(optimizer, tmp / "optimizer.pt")
        with open(tmp / "state.json", "w") as f:
            json.dump(record, f, indent=2)
            f.write("\n")
        for p in tmp.iterdir():
            with open(p, "rb") as f:
                os.fsync(f.fileno())
        _fsync_dir(tmp)
    except BaseException as exc:  # a full disk, a vanished folder, Ctrl-C: no half-written folder stays behind
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        reason = getattr(exc, "strerror", None) or (str(exc).splitlines() or [type(exc).__name__])[0]
        raise OutputError(f"cannot write checkpoint {final}: {reason}") from None
    if final.exists():  # the same step written again (e.g. a rerun): move the old one aside first
        old = root / f".{name}.{os.getpid()}.old"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    _fsync_dir(root)
    _write_json_atomic(root / LAST, {"step": int(step), "dir": name})
    for stale in _complete(root)[:-keep]:
        shutil.rmtree(stale, ignore_errors=True)
    return final


def remove_stale(root: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary folders and files a killed run left under ``root`` (``.step-*.tmp``, ``.step-*.old``,
    ``.last.json.*.tmp``); returns what was removed. Call it only while no other run writes to ``root``."""
    root = Path(root)
    stale = [p for pattern in (f".{_PREFIX}*.tmp", f".{_PREFIX}*.old", f".{LAST}.*.tmp") for p in root.glob(pattern)]
    for p in stale:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    return stale


def _complete(root: Path) -> list[Path]:
    """Complete checkpoint folders under ``root``, oldest first."""
    found = [
        p
        for p in root.glob(f"{_PREFIX}*")
        if p.is_dir() and all((p / f).is_file() for f in ("model.safetensors", "optimizer.pt", "state.json"))
    ]
    return sorted(found, key=lambda p: p.name)


def latest(root: str | os.PathLike[str]) -> Path | None:
    """The newest complete checkpoint folder under ``root`` (``last.json`` first, else a scan), or None."""
    root = Path(root)
    try:
        target = root / json.loads((root / LAST).read_text())["dir"]
        if target in _complete(root):
            return target
    except (OSError, ValueError, KeyError, TypeError):
        pass
    found = _complete(root)
    return found[-1] if found else None


def load_newest(root: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """The newest checkpoint under ``root`` that reads: a damaged newer one (a truncated file) is named in a warning
    and the one before it is used, so that one bad file does not end a run's history."""
    import warnings

    from brushwork.errors import BrushworkWarning

    errors: list[str] = []
    for folder in reversed(_complete(Path(root))):
        try:
            ck = load(folder, map_location)
        except InputError as exc:
            errors.append(str(exc))
            continue
        for error in errors:
            warnings.warn(f"{error}; resuming from {folder.name} instead", BrushworkWarning, stacklevel=2)
        return ck
    raise InputError(errors[0] if errors else f"no checkpoint found in {root}")


def load(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint folder, or the latest one when ``path`` is a ``checkpoints/`` root (or a run folder)."""
    from safetensors.torch import load_file

    path = Path(path)
    if not (path / "state.json").is_file():
        for root in (path, path / "checkpoints"):
            found = latest(root) if root.is_dir() else None
            if found is not None:
                path = found
                break
        else:
            raise InputError(f"no checkpoint found in {path}")
    try:
        record = json.loads((path / "state.json").read_text())
        step = int(record["step"])
        config, metrics = record.get("config", {}), record.get("metrics", {})
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"cannot read checkpoint {path / 'state.json'}: {type(exc).__name__}: {exc}") from None
    try:
        weights = load_file(str(path / "model.safetensors"), device=str(map_location))
    except Exception as exc:  # safetensors raises its own error type for damaged files
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read checkpoint {path / 'model.safetensors'}: {reason}") from None
    try:
        optimizer = torch.load(path / "optimizer.pt", map_location=map_location, weights_only=False)
    except Exception as exc:  # unpickling a damaged file raises anything
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"cannot read checkpoint {path / 'optimizer.pt'}: {reason}") from None
    return Checkpoint(step=step, weights=weights, optimizer=optimizer, config=config, metrics=metrics, path=path)
