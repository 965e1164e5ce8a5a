"""Decoder files of the encoder-decoder methods: write, read, ship and load them (``methods/`` never touch files).

A decoder file is a ``.safetensors`` state dict whose metadata (and a ``.json`` beside it) hold its config:
``{"format": "brushwork-decoder", "encoder": ..., "layer": ..., "encoder_weights": ..., "spec": [[cin, cout, up], …]}``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brushwork import store
from brushwork.errors import InputError, ModelUnavailable
from brushwork.nets.decoder import Decoder

if TYPE_CHECKING:
    import torch

FORMAT = "brushwork-decoder"
DEFAULT_DECODER = "decoder-mobilenet"
_ASSETS = Path(__file__).resolve().parent / "assets" / "models"
_SHIPPED_FILE = "decoder-mobilenet.safetensors"


def save_decoder(path: str | os.PathLike[str], decoder: Decoder, config: dict[str, Any]) -> Path:
    """Write ``decoder``'s weights as safetensors with ``config`` in its metadata and in a ``.json`` beside it.

    Both files are written atomically (temporary file, then rename). Returns the ``.safetensors`` path.
    """
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().float().cpu().contiguous() for k, v in decoder.state_dict().items()}
    text = json.dumps(config, indent=2) + "\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    side = path.with_suffix(".json")
    tmp_side = side.with_name(f".{side.name}.{os.getpid()}.tmp")
    try:
        save_file(state, str(tmp), metadata={"brushwork": json.dumps(config)})
        tmp_side.write_text(text)
        os.replace(tmp_side, side)
        os.replace(tmp, path)
    finally:  # a failed write leaves no temporary files behind
        tmp.unlink(missing_ok=True)
        tmp_side.unlink(missing_ok=True)
    return path


def read_decoder_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The config of a decoder file: from its safetensors metadata, else from the ``.json`` beside it."""
    from safetensors import safe_open

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:
        raise ModelUnavailable(f"cannot read decoder {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from None
    side = path.with_suffix(".json")
    if "brushwork" in meta:
        source, text = f"the metadata of {path}", meta["brushwork"]
    elif side.is_file():
        source = str(side)
        try:
            text = side.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ModelUnavailable(f"cannot read the decoder config {side}: {exc}") from None
    else:
        raise ModelUnavailable(f"{path} has no decoder config (safetensors metadata or {side})")
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise ModelUnavailable(f"decoder {path}: malformed JSON config in {source}: {exc}") from None
    if not isinstance(config, dict):
        raise ModelUnavailable(f"decoder {path}: its config in {source} is not a JSON object")
    if config.get("format") != FORMAT or "spec" not in config:
        raise ModelUnavailable(f"{path} is not a brushwork decoder (format {config.get('format')!r})")
    return config


def shipped_config() -> dict[str, Any]:
    """The config of the shipped decoder (the JSON beside it in ``brushwork/assets/models``)."""
    return json.loads((_ASSETS / _SHIPPED_FILE).with_suffix(".json").read_text())


def shipped_decoder() -> Decoder:
    """The architecture of ``decoder-mobilenet`` (for :func:`brushwork.store.load_net`), random weights."""
    return Decoder(shipped_config()["spec"])


def write_shipped(src: str | os.PathLike[str], note: dict[str, Any] | None = None) -> Path:
    """Maintainer tool: make decoder file ``src`` the shipped ``decoder-mobilenet`` (weights, config, checksum).

    Copies it to ``brushwork/assets/models/decoder-mobilenet.safetensors`` and writes the ``.json`` beside it with
    the config, the file's sha256 and size, and ``note`` (how it was trained). Returns the shipped path. Then copy
    the new sha256 and size into the ``decoder-mobilenet`` row of :data:`brushwork.store.REGISTRY` (a test checks
    that every shipped row matches its file).
    """
    import hashlib
    import shutil

    config = read_decoder_config(src)
    if config["encoder"] != "mobilenet":
        raise InputError(f"the shipped decoder is for the mobilenet encoder, {src} is for {config['encoder']}")
    dest = _ASSETS / _SHIPPED_FILE
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.copyfile(src, tmp)
    os.replace(tmp, dest)
    data = dest.read_bytes()
    config = {**config, "file_sha256": hashlib.sha256(data).hexdigest(), "file_size": len(data)}
    if note:
        config["note"] = note
    dest.with_suffix(".json").write_text(json.dumps(config, indent=2) + "\n")
    return dest


def load_decoder(name_or_path: str | os.PathLike[str], device: str | torch.device = "cpu") -> tuple[Decoder, dict]:
    """A decoder and its config, from a registered name (``decoder-mobilenet``) or a ``.safetensors`` file
    (a training run's ``decoder.safetensors``, or a checkpoint folder holding one)."""
    text = os.fspath(name_or_path)
    path = Path(text)
    if path.is_dir():
        for inner in ("decoder.safetensors", "model.safetensors"):  # a training run's folder, or a checkpoint
            if (path / inner).is_file():
                path = path / inner
                break
    if path.is_file():
        from safetensors.torch import load_file

        config = read_decoder_config(path)
        decoder = Decoder(config["spec"])
        try:
            decoder.load_state_dict(load_file(str(path)))
        except RuntimeError as exc:
            raise ModelUnavailable(f"{path} does not match its decoder config: {str(exc).splitlines()[0]}") from None
        return decoder.to(device).eval().requires_grad_(False), config
    if text in store.REGISTRY and text == DEFAULT_DECODER:
        return store.load_net(text, device), shipped_config()
    if path.suffix or os.sep in text:
        raise InputError(f"decoder file not found: {text}")
    raise ModelUnavailable(f"unknown decoder {text!r}: give {DEFAULT_DECODER} or a decoder .safetensors file")
