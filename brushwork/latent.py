"""The latent space of styles, for users: mix, sample, interpolate and map styles through a style VAE.

Pictures in (``content``: a path, PIL image or H×W×3 array; styles: pictures or ``.npy`` style codes), PIL
images out. The computation lives in :mod:`brushwork.methods.latent`; this module loads what it needs (models
through :mod:`brushwork.store`, pictures and codes through :mod:`brushwork.io`), caches style codes, and hands the
results to :mod:`brushwork.draw` where a picture is composed. Long work reports through ``progress`` (one
callable receiving :class:`~brushwork.api.Progress` events).

    from brushwork import latent
    img = latent.mix("photo.jpg", ["a.jpg", "b.jpg"], style_weights=[0.7, 0.3])   # a PIL image
    walk = latent.interpolate("photo.jpg", "a.jpg", "b.jpg", frames=48)           # .images, .style_codes
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from PIL import Image

from brushwork import draw, io, store
from brushwork.api import ProgressFn, Reporter
from brushwork.device import resolve_device
from brushwork.errors import InputError, ModelUnavailable, OutputError
from brushwork.validate import check_count, check_seed, normalise_weights

if TYPE_CHECKING:
    from brushwork.methods.latent import StyleSpace

Source = str | os.PathLike | Image.Image | np.ndarray

DEFAULT_MODEL = "style-vae"
CONDITIONAL_MODEL = "style-cvae"
MAX_SIZE = 512  # default longer side of the photo when rendering many styles (sample, interpolate)
MIX_MAX_SIZE = 2048  # ... and one (mix), as ``brushwork stylize``
MAX_FRAMES = 2000
MAX_SAMPLES = 256
PROJECTIONS = ("pca", "tsne")
MODES = ("latent", "average")


class Rendered(NamedTuple):
    """Pictures and the style codes they were rendered with: ``images[i]`` (a PIL image) shows ``style_codes[i]``
    (``N×D`` float32)."""

    images: list[Image.Image]
    style_codes: np.ndarray

    @property
    def codes(self) -> np.ndarray:
        """Deprecated name of :attr:`style_codes`."""
        return self.style_codes


class StyleMap(NamedTuple):
    """A style map: the picture (PIL), the 2-D coordinates ``N×2``, the latent means ``N×Z``, the files laid out
    and their labels (sub-folder names, or None)."""

    image: Image.Image
    coords: np.ndarray
    latents: np.ndarray
    paths: list[Path]
    labels: list[str] | None

    def rows(self) -> list[list[Any]]:
        """The map as a table: a header (file, label, x, y, z0..) and one row per style, for :func:`io.write_csv`."""
        header = ["file", "label", "x", "y"] + [f"z{k}" for k in range(self.latents.shape[1])]
        return [header] + [
            [str(p), self.labels[i] if self.labels else "", *(f"{v:.5g}" for v in self.coords[i]),
             *(f"{v:.5g}" for v in self.latents[i])]
            for i, p in enumerate(self.paths)
        ]  # fmt: skip


# -- models, pictures and codes -------------------------------------------------------------------------------------


def load_style_space(
    model: str | os.PathLike[str] | None = None, *, conditional: bool = False, device: str = "auto"
) -> StyleSpace:
    """Load a style VAE: a shipped model name (``style-vae``, ``style-cvae``) or a ``.safetensors`` file written by
    :func:`brushwork.train.style_vae.train_style_vae` (its ``.json`` config beside it).

    ``model=None`` picks the shipped conditional model when ``conditional`` is true, else the unconditional one.
    """
    from brushwork.methods.latent import StyleSpace
    from brushwork.nets.vae import StyleVAE

    if model is not None and not isinstance(model, str | os.PathLike):
        raise InputError(f"model must be a style model's name or a .safetensors file, got {model!r:.40}")
    if not isinstance(conditional, bool):
        raise InputError(f"conditional is true or false, got {conditional!r:.40}")
    dev = resolve_device(device)
    name = os.fspath(model) if model is not None else CONDITIONAL_MODEL if conditional else DEFAULT_MODEL
    shipped = [n for n, e in store.REGISTRY.items() if e.arch == "brushwork.nets.vae:from_config"]
    if name in shipped:
        state, config_path = store.load_shipped_state(name), store.source_path(store.entry(name)).with_suffix(".json")
    elif Path(name).suffix != ".safetensors":
        raise InputError(f"unknown style model {name!r}: give a .safetensors file or one of: {', '.join(shipped)}")
    else:
        state, config_path = store.read_safetensors(name), Path(name).with_suffix(".json")
    try:
        net = StyleVAE.from_state(state)
    except (KeyError, IndexError, RuntimeError):
        raise InputError(f"{name} is not a brushwork style VAE") from None
    config = store.read_config(config_path) if config_path.is_file() else {}
    labels = [str(x) for x in config.get("labels", [])]
    if len(labels) != net.num_labels:
        raise ModelUnavailable(
            f"{name} has {net.num_labels} labels but its config {config_path} names {len(labels)}; "
            "keep the .json written by training beside the weights"
        )
    return StyleSpace(net.to(dev).eval().requires_grad_(False), labels, name, config)


def _styles(styles: object, what: str) -> list[Any]:
    """One style (a path, a picture, an array, a ``.npy`` code) or a list of them → a non-empty list."""
    if isinstance(styles, str | os.PathLike | Image.Image | np.ndarray | io.Picture):
        return [styles]
    if not isinstance(styles, Sequence) or not styles:
        raise InputError(f"{what}: give a style or a list of styles (image files, pictures or .npy codes)")
    return list(styles)


def _check_label(label: object) -> None:
    if label is not None and not isinstance(label, str):
        raise InputError(f"label must be the name of a style label, got {label!r:.40}")


def _space(model: str | os.PathLike[str] | StyleSpace | None, conditional: bool, device: str) -> StyleSpace:
    from brushwork.methods.latent import StyleSpace

    return model if isinstance(model, StyleSpace) else load_style_space(model, conditional=conditional, device=device)


def load_code(path: str | os.PathLike[str]) -> np.ndarray:
    """A style code saved with :func:`save_code` (or ``numpy.save``): ``(D,)`` or ``1×D`` → ``(D,)`` float32;
    InputError for an empty, damaged or wrongly shaped file, or values that are not finite or are huge."""
    from brushwork.methods.latent import check_codes
    from brushwork.nets.mobilenet import STYLE_DIM

    a, name = io.load_npy(path), f"cannot use {os.fspath(path)}"
    if a.ndim == 2 and a.shape[0] == 1:
        a = a[0]
    if a.shape != (STYLE_DIM,):
        raise InputError(f"{name}: expected one style code of shape ({STYLE_DIM},), got {a.shape}")
    return check_codes(a, STYLE_DIM, name)[0]


def save_code(style_code: np.ndarray, path: str | os.PathLike[str], *, protect: Sequence[Any] = ()) -> Path:
    """Save one style code ``(D,)`` as ``.npy`` (atomically), for use as a style in mix and interpolate."""
    from brushwork.methods.latent import check_codes

    code = check_codes(style_code, np.asarray(style_code).reshape(-1).shape[0])[0]
    if Path(path).suffix != ".npy":
        raise OutputError(f"cannot write {os.fspath(path)}: a style code is saved as .npy")
    return io.save_npy(code, path, protect=protect)


def style_code(style: Source, *, device: str = "auto") -> np.ndarray:
    """The style code ``(D,)`` float32 of a picture (path, PIL, H×W×3 array) or of a ``.npy`` code file."""
    from brushwork.methods import latent as engine

    if isinstance(style, str | os.PathLike) and Path(style).suffix.lower() == ".npy":
        return load_code(style)
    return engine.image_codes(io.load_image(style).rgb, device=device)[0]


def style_codes(
    paths: Sequence[str | os.PathLike[str]],
    *,
    augment: int = 0,
    seed: int = 0,
    device: str = "auto",
    cache: bool = True,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Style codes of image files, with augmentation: ``P×(1+augment)×D`` float32.

    Row 0 of each file is its code as :func:`style_code` gives it; rows 1.. are codes of ``augment`` random crops
    (seeded by ``seed`` and the file's contents). With ``cache``, codes are kept per file in the store's cache,
    keyed by the sha256 of the file's bytes and these parameters. Reports a ``codes`` event per file.
    """
    from brushwork.methods import latent as engine

    check_count(augment, "augment", low=0)
    check_seed(seed)
    dev = resolve_device(device)
    rep = Reporter(progress, "codes", len(paths))
    out = []
    for i, p in enumerate(paths):
        try:
            data = Path(p).read_bytes()
        except OSError as exc:
            raise InputError(f"cannot read {os.fspath(p)}: {exc.strerror or exc}") from None
        digest = hashlib.sha256(data).hexdigest()
        key = f"{digest[:40]}-v{engine.CODES_VERSION}-a{augment}-r{seed}"
        codes = store.load_cached_array("codes", key) if cache else None
        if codes is None or codes.shape != (1 + augment, engine.STYLE_DIM):
            rgb, rng = io.load_image(p).rgb, np.random.default_rng([seed, int(digest[:12], 16)])
            try:
                codes = engine.image_codes(rgb, augment, rng, device=dev)
            except InputError as exc:
                raise InputError(f"style image {os.fspath(p)}: {exc}") from None
            if cache:
                store.save_cached_array("codes", key, codes)
        out.append(codes)
        rep.step(i + 1)
    return np.stack(out)


def find_styles(folder: str | os.PathLike[str], *, strict: bool = False) -> tuple[list[Path], list[str] | None]:
    """Images in ``folder`` and in its immediate sub-folders; the labels are the sub-folder names (``(top)`` for
    images directly in the folder), or None when there are no sub-folders with images. Every file is checked once
    (:func:`brushwork.io.usable_images`): an unusable one is skipped with a warning (``strict``: refused)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"cannot read {os.fspath(folder)}: no such folder")

    def images(d: Path) -> list[Path]:
        return [
            p
            for p in sorted(d.iterdir())
            if p.is_file() and p.suffix.lower() in io.IMAGE_EXTENSIONS and not p.name.startswith(".")
        ]

    paths = images(root)
    labels = ["(top)"] * len(paths)
    for sub in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        found = images(sub)
        paths += found
        labels += [sub.name] * len(found)
    if not paths:
        raise InputError(f"cannot read {os.fspath(folder)}: no images in it or in its sub-folders")
    good, _ = io.usable_images(paths, strict=strict, min_side=16, where=os.fspath(folder))
    usable = set(good)
    labels = [label for p, label in zip(paths, labels, strict=True) if p in usable]
    return good, (None if set(labels) == {"(top)"} else labels)


def load_content(content: Source, max_size: int | None = MAX_SIZE) -> np.ndarray:
    """A photo (path, PIL or H×W×3 array) as H×W×3 float32 in 0..1, its longer side at most ``max_size``;
    InputError if it cannot be read or is too small. Use it to check a photo before any work."""
    from brushwork.methods.latent import MIN_SIDE

    if max_size is not None:
        check_count(max_size, "max size", low=MIN_SIDE)
    picture = io.load_image(content)
    rgb = io.resize_to_max(picture.rgb, max_size)
    name = picture.path if picture.path is not None else "the photo"
    io.check_bounded_size(picture.rgb.shape[1::-1], rgb.shape[1::-1], name, max_size, MIN_SIDE)
    return rgb


# -- photo in, pictures out -----------------------------------------------------------------------------------------


def render_codes(
    content: Source,
    style_codes: np.ndarray | Sequence[np.ndarray],
    *,
    max_size: int | None = MAX_SIZE,
    stroke_scale: float = 1.0,
    device: str = "auto",
    progress: ProgressFn | None = None,
) -> list[Image.Image]:
    """Render ``content`` once per style code (``N×D``): N PIL images. Reports a ``render`` event per picture."""
    from brushwork.methods import latent as engine

    rgb = load_content(content, max_size)
    out = engine.render_codes(rgb, np.asarray(style_codes), stroke_scale=stroke_scale, device=device, progress=progress)
    return [draw.to_pil(a) for a in out]


def mixed_codes(
    styles: Sequence[Source],
    style_weights: Sequence[float] | None = None,
    *,
    label: str | None = None,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    device: str = "auto",
) -> dict[str, np.ndarray]:
    """The style codes ``(D,)`` of a mix of styles: ``{"latent": mix in the latent space, "average": the plain
    weighted average of the codes}``; ``style_weights`` are normalised to sum 1 (equal when None)."""
    import torch

    from brushwork.methods import latent as engine

    styles = _styles(styles, "styles to mix")
    _check_label(label)
    w = normalise_weights(style_weights, len(styles))
    dev = resolve_device(device)
    space = _space(model, label is not None, dev)
    codes = np.stack([style_code(s, device=dev) for s in styles])
    one_hot = np.flatnonzero(w == 1.0)
    average = codes[one_hot[0]].copy() if len(one_hot) == 1 else (w[:, None] * codes).sum(0).astype(np.float32)
    latent = engine.mix_codes(space, torch.from_numpy(codes), list(w), label).cpu().numpy()
    return {"latent": latent, "average": average}


def mix(
    content: Source,
    styles: Sequence[Source],
    style_weights: Sequence[float] | None = None,
    *,
    mode: str = "latent",
    label: str | None = None,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    max_size: int | None = MIX_MAX_SIZE,
    stroke_scale: float = 1.0,
    device: str = "auto",
) -> Image.Image:
    """``content`` rendered in a mix of ``styles`` (pictures or ``.npy`` codes): a PIL image.

    mode: ``latent`` mixes in the style VAE's latent space (one-hot weights give that style exactly, see
    :mod:`brushwork.methods.latent`); ``average`` averages the raw codes, the usual blend, for comparison.
    """
    if mode not in MODES:
        raise InputError(f"unknown mix mode {mode!r}; use latent or average")
    rgb = load_content(content, max_size)
    code = mixed_codes(styles, style_weights, label=label, model=model, device=device)[mode]
    return render_codes(rgb, code[None], max_size=None, stroke_scale=stroke_scale, device=device)[0]


def sample(
    content: Source,
    n: int = 8,
    *,
    label: str | None = None,
    like: Sequence[Source] | None = None,
    temperature: float = 1.0,
    seed: int = 0,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    max_size: int | None = MAX_SIZE,
    stroke_scale: float = 1.0,
    device: str = "auto",
    progress: ProgressFn | None = None,
) -> Rendered:
    """``n`` new styles rendered on ``content``: drawn from the style VAE's prior (within ``label``: the shipped
    conditional model is used when a label is given and no model), or near the styles ``like``."""
    import torch

    from brushwork.methods import latent as engine

    check_count(n, "the number of samples", high=MAX_SAMPLES)
    _check_label(label)
    like = None if like is None else _styles(like, "like")
    dev = resolve_device(device)
    rgb = load_content(content, max_size)
    space = _space(model, label is not None, dev)
    near = torch.from_numpy(np.stack([style_code(s, device=dev) for s in like])) if like else None
    codes = engine.sample_codes(space, n, label=label, like=near, temperature=temperature, seed=seed).cpu().numpy()
    images = render_codes(rgb, codes, max_size=None, stroke_scale=stroke_scale, device=dev, progress=progress)
    return Rendered(images, codes)


def interpolate(
    content: Source,
    style_a: Source,
    style_b: Source,
    frames: int = 48,
    *,
    label: str | None = None,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    max_size: int | None = MAX_SIZE,
    stroke_scale: float = 1.0,
    device: str = "auto",
    progress: ProgressFn | None = None,
) -> Rendered:
    """``frames`` renderings of ``content`` along a straight line in the latent space from ``style_a`` to
    ``style_b`` (pictures or ``.npy`` codes); the first and last frames use exactly the two styles' own codes."""
    import torch

    from brushwork.methods import latent as engine

    check_count(frames, "frames", low=2, high=MAX_FRAMES)
    _check_label(label)
    dev = resolve_device(device)
    rgb = load_content(content, max_size)
    space = _space(model, label is not None, dev)
    a, b = (torch.from_numpy(style_code(s, device=dev)) for s in (style_a, style_b))
    codes = engine.interpolate_codes(space, a, b, frames, label).cpu().numpy()
    images = render_codes(rgb, codes, max_size=None, stroke_scale=stroke_scale, device=dev, progress=progress)
    return Rendered(images, codes)


def style_map(
    styles: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    projection: str = "pca",
    content: Source | None = None,
    model: str | os.PathLike[str] | StyleSpace | None = None,
    thumb: int = 96,
    width: int = 1200,
    max_size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    progress: ProgressFn | None = None,
    strict: bool = False,
) -> StyleMap:
    """Lay a collection of styles out in 2-D: the PCA or t-SNE (``projection``) of their latent means, with
    thumbnails, on a canvas ``width`` pixels wide.

    styles: a folder (images in it and in its sub-folders; sub-folder names become coloured labels) or a list of
    files. Thumbnails are the style images themselves, or, with ``content``, the photo rendered in each style (at
    ``max_size``, default twice the thumbnail size, then cropped square). ``seed`` seeds t-SNE. Reports ``codes``
    events, then (with ``content``) ``render`` events.
    """
    import torch

    from brushwork.methods import latent as engine

    if projection not in PROJECTIONS:
        raise InputError(f"unknown projection {projection!r}; use one of: {', '.join(PROJECTIONS)}")
    check_count(thumb, "thumbnail size", low=16, high=512)
    check_count(width, "map width", low=256, high=8192)
    check_seed(seed)
    if isinstance(styles, str | os.PathLike):
        paths, labels = find_styles(styles, strict=strict)
    else:
        paths, labels = [Path(p) for p in styles], None
    if len(paths) < 2:
        raise InputError("a style map needs at least two styles")
    dev = resolve_device(device)
    rgb = None if content is None else load_content(content, max_size or 2 * thumb)
    space = _space(model, False, dev)
    if space.conditional:
        raise InputError(f"a style map needs an unconditional style VAE; {space.name} is conditional")
    codes = style_codes(paths, device=dev, progress=progress)[:, 0]
    latents = space.encode(torch.from_numpy(codes))[0].cpu().numpy()
    coords = engine.project(latents, projection, seed)
    if rgb is None:
        thumbs = [draw.square_thumbnail(io.load_image(p).rgb, thumb) for p in paths]
    else:
        rendered = engine.render_codes(rgb, codes, device=dev, progress=progress)
        thumbs = [draw.square_thumbnail(a, thumb) for a in rendered]
    title = f"{len(paths)} styles: {'PCA' if projection == 'pca' else 't-SNE'} of their latent means ({space.name})"
    image = draw.style_map(coords, thumbs, labels=labels, title=title, width=width)
    return StyleMap(image, coords, latents, paths, labels)
