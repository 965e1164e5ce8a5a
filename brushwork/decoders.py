"""Decoder files of the encoder-decoder methods: write, read, ship and load them (``methods/`` never touch files).

A decoder file is a ``.safetensors`` state dict whose metadata (and a ``.json`` beside it) hold its config:
``{"format": "brushwork-decoder", "encoder": ..., "layer": ..., "encoder_weights": ..., "spec": [[cin, cout, up], …]}``.

A MicroAST file (``train decoder --arch microast``; ``stylize --method microast --decoder FILE``) holds the whole
MicroAST state dict, config ``{"format": "brushwork-microast", …}``: :func:`microast_file` checks one,
:func:`register_microast` makes it a model the runtimes can run.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brushwork import io, store
from brushwork.errors import InputError, ModelUnavailable

if TYPE_CHECKING:
    import torch
    from torch import nn

    from brushwork.nets.decoder import Decoder

FORMAT = "brushwork-decoder"
MICROAST_FORMAT = "brushwork-microast"
_MICROAST_FILE = "microast.safetensors"
DEFAULT_DECODER = "decoder-mobilenet"
_ASSETS = Path(__file__).resolve().parent / "assets" / "models"
_SHIPPED_FILE = "decoder-mobilenet.safetensors"


def save_decoder(path: str | os.PathLike[str], decoder: nn.Module, config: dict[str, Any]) -> Path:
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
        io.readable_by_all(tmp)
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
    if config.get("format") == MICROAST_FORMAT:
        raise ModelUnavailable(f"{path} is a MicroAST model: use it with --method microast --decoder")
    if config.get("format") != FORMAT or "spec" not in config:
        raise ModelUnavailable(f"{path} is not a brushwork decoder (format {config.get('format')!r})")
    return config


def shipped_config() -> dict[str, Any]:
    """The config of the shipped decoder (the JSON beside it in ``brushwork/assets/models``)."""
    return json.loads((_ASSETS / _SHIPPED_FILE).with_suffix(".json").read_text())


def shipped_decoder() -> Decoder:
    """The architecture of ``decoder-mobilenet`` (for :func:`brushwork.store.load_net`), random weights."""
    from brushwork.nets.decoder import Decoder

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

        from brushwork.nets.decoder import Decoder

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


# -- MicroAST files ----------------------------------------------------------------------------------------------


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _file_format(meta: dict[str, str], side: Path) -> str | None:
    """The ``format`` of a safetensors file's brushwork config (metadata, else the ``.json`` beside it)."""
    if "format" in meta:
        return meta["format"]
    try:
        config = json.loads(meta["brushwork"]) if "brushwork" in meta else json.loads(side.read_text())
    except (OSError, ValueError):
        return None
    return config.get("format") if isinstance(config, dict) else None


def microast_file(name_or_path: str | os.PathLike[str]) -> Path:
    """The checked path of a MicroAST file (a training run's folder or a checkpoint folder work too): raises
    InputError for a missing file and ModelUnavailable (one line) for a file that is not a MicroAST model."""
    from safetensors import safe_open

    text = os.fspath(name_or_path)
    path = Path(text)
    if path.is_dir():
        for inner in ("decoder.safetensors", "model.safetensors"):  # a training run's folder, or a checkpoint
            if (path / inner).is_file():
                path = path / inner
                break
    if not path.is_file():
        raise InputError(f"decoder file not found: {text}")
    try:
        with safe_open(str(path), framework="numpy") as f:
            meta = f.metadata() or {}
            shapes = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    except Exception as exc:  # safetensors raises its own types for files of another kind
        raise ModelUnavailable(f"cannot read {path}: not a safetensors file ({_one_line(exc)})") from None
    kind = _file_format(meta, path.with_suffix(".json"))
    if kind == FORMAT:
        raise ModelUnavailable(f"{path} is an adain/wct decoder, not a MicroAST model (use it with --method adain)")
    with safe_open(str(_ASSETS / _MICROAST_FILE), framework="numpy") as f:
        expected = {k: list(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118
    if shapes != expected:
        wrong = sorted(set(expected) ^ set(shapes)) or sorted(k for k in expected if shapes[k] != expected[k])
        raise ModelUnavailable(f"{path} is not a MicroAST model (its weights do not fit: {wrong[0]} and others)")
    return path


def load_microast_state(name_or_path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The state dict of a MicroAST file (checked by :func:`microast_file`)."""
    from safetensors.torch import load_file

    return load_file(str(microast_file(name_or_path)))


def register_microast(name_or_path: str | os.PathLike[str]) -> str:
    """Register a MicroAST file as a model of this process (:func:`brushwork.store.register_local`) and return its
    store name, ``microast-<sha256 prefix>``: the runtimes export and run it like the shipped ``microast``."""
    import hashlib

    path = microast_file(name_or_path).resolve()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    name = f"microast-{digest[:16]}"
    base = store.REGISTRY["microast"]
    store.register_local(
        store.ModelEntry(
            name=name,
            description=f"MicroAST trained by brushwork ({path})",
            licence=base.licence,
            size=path.stat().st_size,
            arch=base.arch,
            convert=base.convert,
            sha256=digest,
            credit=base.credit,
            path=str(path),
        )
    )
    return name
