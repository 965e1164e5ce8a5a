"""The one device resolver: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps`` → a device that exists here.

Decides ``auto`` on a machine with neither an NVIDIA driver nor Apple silicon without importing torch (the CPU
fast path never loads it).
"""

from __future__ import annotations

import sys
from pathlib import Path

from brushwork.errors import DeviceError

DEVICES = ("auto", "cpu", "cuda", "mps")


def resolve_device(device: object = "auto") -> str:
    """``auto`` → ``cuda`` if an NVIDIA driver and a CUDA build of torch are present, ``mps`` on Apple silicon
    with MPS, else ``cpu``. An explicit device that is not available raises :class:`DeviceError`.
    Returns the device's name as torch spells it (``cpu``, ``cuda``, ``cuda:1``, ``mps``)."""
    name = str(device).strip().lower()
    kind, _, index = name.partition(":")
    if kind not in DEVICES or (index and (kind != "cuda" or not (index.isascii() and index.isdigit()))):
        raise DeviceError(f"unknown device {device!r}: use one of {', '.join(DEVICES)} (or cuda:N)")
    if name == "cpu":
        return "cpu"
    if name == "auto":
        nvidia = Path("/proc/driver/nvidia/version").exists() or sys.platform == "win32"
        if not (nvidia or sys.platform == "darwin"):  # decided without importing torch
            return "cpu"
    import torch

    cuda = torch.cuda.is_available()
    mps = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if name == "auto":
        return "cuda" if cuda else "mps" if mps else "cpu"
    if (kind == "cuda" and not cuda) or (kind == "mps" and not mps):
        raise DeviceError(f"device {kind} is not available here (torch {torch.__version__}); use --device cpu")
    if index and int(index) >= torch.cuda.device_count():
        raise DeviceError(f"device {name} does not exist; this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    return name
