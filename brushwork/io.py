"""Image files in and out: the only module in brushwork that touches image files.

Loading gives a :class:`Picture`: ``rgb`` is H×W×3 float32 sRGB in 0..1 and ``alpha`` an optional H×W float32
in 0..1. EXIF orientation is applied, every Pillow mode (P, L, LA, I;16, I, F, RGBA, CMYK, ...) is converted to
RGB with alpha kept apart, embedded ICC profiles are converted to sRGB, and 16-bit sources (PNG, TIFF) keep their
precision (read with OpenCV, since Pillow truncates 16-bit colour to 8 bits). Saving picks the format from the
extension, re-attaches alpha where the format has it (PNG, WebP, TIFF), writes TIFF with 16 bits per channel, and
writes atomically (a temporary file in the same folder, then ``os.replace``) without ever overwriting an input.

torch is imported lazily, only inside :func:`to_tensor`, :func:`to_numpy` and when saving a tensor: the CLI's fast
path runs without it.
"""

from __future__ import annotations

import io
import math
import os
import stat
import struct
import sys
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np
from PIL import Image, ImageCms, UnidentifiedImageError

from brushwork.errors import BrushworkWarning, InputError, OutputError

if TYPE_CHECKING:
    import torch

IMAGE_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".tif", ".tiff", ".bmp", ".gif"})
SAVE_EXTENSIONS: frozenset[str] = IMAGE_EXTENSIONS - {".gif"}
DEFAULT_MAX_PIXELS: int = 64_000_000
MAX_PIXELS_ENV = "BRUSHWORK_MAX_PIXELS"
MAX_PIXELS_CEILING: int = 2**40  # a limit above this is a typo (a 1-terapixel image); refuse it rather than overflow

# Pillow decoders we accept; anything else is "not a supported image" (camera JPEGs with MPF come back as MPO).
_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF", "BMP", "GIF")
_FORMAT_NAMES = "JPEG, PNG, WebP, TIFF, BMP or GIF"

PathLike = str | os.PathLike


@dataclass
class Picture:
    """A loaded image.

    rgb: H×W×3 float32 in 0..1, sRGB (16-bit sources keep their full precision).
    alpha: H×W float32 in 0..1 (1 = opaque), or None when the source has no transparency.
    path: the file it came from, or None.
    bit_depth: 8 or 16, the precision of the source.
    """

    rgb: np.ndarray
    alpha: np.ndarray | None = None
    path: Path | None = None
    bit_depth: int = 8

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return self.rgb.shape[1], self.rgb.shape[0]

    def pil(self) -> Image.Image:
        """An 8-bit RGB Pillow view of ``rgb`` (alpha not included)."""
        return Image.fromarray(_quantize(self.rgb, 8))


# ---------------------------------------------------------------- loading


def load_pixels(src: PathLike | Image.Image | np.ndarray, *, max_pixels: int | None = None) -> Picture:
    """:func:`load_image` without the float copy: ``rgb`` is H×W×3 uint8 (uint16 for 16-bit sources) and
    ``alpha`` H×W of the same type — a quarter (half) of the memory, for print-size images rendered in tiles."""
    return load_image(src, max_pixels=max_pixels, native=True)


def image_size(src: PathLike | Image.Image | np.ndarray) -> tuple[int, int] | None:
    """(width, height) after EXIF orientation, read from the header only; None if it cannot be read."""
    if isinstance(src, np.ndarray):
        return (src.shape[1], src.shape[0]) if src.ndim >= 2 else None
    try:
        img = src if isinstance(src, Image.Image) else Image.open(src, formats=_FORMATS)
        try:
            w, h = img.size
            return (h, w) if _orientation(img) in (5, 6, 7, 8) else (w, h)
        finally:
            if img is not src:
                img.close()
    except Exception:  # unreadable here: load_image will say why
        return None


def load_image(
    src: PathLike | Image.Image | np.ndarray, *, max_pixels: int | None = None, native: bool = False
) -> Picture:
    """Load an image file, a Pillow image or an array as a :class:`Picture` (H×W×3 float32 sRGB in 0..1).

    Files: JPEG, PNG, WebP, TIFF, BMP and the first frame of a GIF. Arrays: H×W×3 or H×W×4 (RGBA), or H×W gray,
    as uint8, uint16 or float in 0..1. ``max_pixels`` (default: env ``BRUSHWORK_MAX_PIXELS``, else
    :data:`DEFAULT_MAX_PIXELS`) is checked against the header before any pixel is decoded.

    Raises InputError (one line, naming the file) for a missing, empty, truncated, too large or non-image file.
    """
    if isinstance(src, Picture) and not native:
        return src
    if isinstance(src, np.ndarray):
        return _from_array(src, "array", finite=True, native=native)
    if not isinstance(src, str | os.PathLike | Image.Image) or isinstance(src, str) and not src:
        raise InputError(
            f"cannot use {_describe(src)} as an image: give a file path, a PIL image or an H×W×3 array in 0..1"
        )
    limit = _max_pixels(max_pixels)
    if isinstance(src, Image.Image):
        _check_pixels(src.size, limit, "image")
        picture = _from_pil(src, "image", None, native)
        return _oriented(picture, _orientation(src))

    path = Path(src)
    name = os.fspath(src)
    _check_input_file(path, name)
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            # Pillow warns from 89 Mpixels on; brushwork's own limit (checked below, from the header) decides
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            # Pillow refuses images above twice its own limit: brushwork's (--max-pixels, from the header) decides
            Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, limit)
            img = _open(fh, name)
            with img:
                _check_pixels(img.size, limit, name)
                sixteen = _is_16bit_colour(img)  # from the header, so before anything decodes
                if not sixteen:
                    _decode(img, name)
                orientation = _orientation(img)  # after decoding: a PNG may keep its EXIF after the pixels
                picture = _load_16bit(path, img, name, native) if sixteen else _from_pil(img, name, path, native)
    except OSError as e:
        reason = "permission denied" if isinstance(e, PermissionError) else _one_line(e.strerror or e)
        raise InputError(f"cannot read {name}: {reason}") from None
    return _oriented(picture, orientation)


def _check_input_file(path: Path, name: str) -> None:
    """InputError (one line) unless ``path`` is a non-empty regular file that can be looked up."""
    try:
        info = path.stat()
    except OSError as e:
        reason = "no such file" if isinstance(e, FileNotFoundError) else _one_line(e.strerror or e).lower()
        raise InputError(f"cannot read {name}: {reason}") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"cannot read {name}: it is a folder, not an image file")
    if info.st_size == 0:
        raise InputError(f"cannot read {name}: file is empty")


def _open(fh: BinaryIO, name: str) -> Image.Image:
    """``Image.open`` of one of :data:`_FORMATS`, every failure turned into a one-line InputError."""
    try:
        return Image.open(fh, formats=_FORMATS)
    except UnidentifiedImageError:
        raise InputError(f"cannot read {name}: not a supported image ({_FORMAT_NAMES})") from None
    except Image.DecompressionBombError as e:
        raise InputError(f"cannot read {name}: image is too large ({_one_line(e)})") from None
    except ValueError as e:  # a PNG text or ICC chunk that inflates past Pillow's limit (a decompression bomb)
        raise InputError(f"cannot read {name}: image is too large ({_one_line(e)})") from None
    except (SyntaxError, EOFError, struct.error) as e:
        raise InputError(f"cannot read {name}: file is truncated or corrupt ({_one_line(e)})") from None
    except OSError as e:
        if e.errno is not None:
            raise
        raise InputError(f"cannot read {name}: file is truncated or corrupt ({_one_line(e)})") from None


def in_memory(src: Any, what: str = "the image", max_pixels: int | None = None) -> Picture:
    """A picture from an image already in memory (Picture, PIL image or array), never from a file: the methods use
    this, so that only the API and the commands read files. A path raises :class:`InputError`."""
    if isinstance(src, Picture):
        return src
    if isinstance(src, str | os.PathLike):
        raise InputError(f"{what} must be an image in memory, not the path {os.fspath(src)!r}: read it with "
                         "brushwork.io.load_image, or use brushwork.stylize")  # fmt: skip
    return load_image(src, max_pixels=max_pixels)


def _max_pixels(max_pixels: int | None) -> int:
    if max_pixels is not None:
        return check_max_pixels(max_pixels)
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        number = float(value)
    except ValueError:
        number = 0.0
    if not (math.isfinite(number) and 1 <= number <= MAX_PIXELS_CEILING):
        raise InputError(
            f"{MAX_PIXELS_ENV} must be a whole number of pixels from 1 to {MAX_PIXELS_CEILING:,}, got {value!r}"
        )
    return int(number)


def check_max_pixels(max_pixels: object) -> int:
    """A pixel limit given in code: a whole number from 1 to :data:`MAX_PIXELS_CEILING`; InputError otherwise."""
    if (
        isinstance(max_pixels, bool)
        or not isinstance(max_pixels, int | np.integer)
        or not 1 <= max_pixels <= MAX_PIXELS_CEILING
    ):
        raise InputError(f"max pixels must be a whole number from 1 to {MAX_PIXELS_CEILING:,}, got {max_pixels!r:.40}")
    return int(max_pixels)


def _check_pixels(size: tuple[int, int], limit: int, name: str) -> None:
    width, height = size
    if width * height > limit:
        raise InputError(
            f"cannot read {name}: {width}×{height} is {width * height:,} pixels, more than the limit of {limit:,} "
            f"(raise it with --max-pixels or {MAX_PIXELS_ENV})"
        )


def _describe(value: object) -> str:
    """A short name for a value of the wrong kind, for error messages."""
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 30 else text[:27] + '...'}"


def _as_output_paths(value: object, what: str) -> list[Path]:
    try:
        return as_paths(value, what)
    except InputError as exc:
        raise OutputError(str(exc)) from None


def as_paths(value: object, what: str) -> list[Path]:
    """One path or a list of paths (``protect=``, ``like=``) → a list; a single string is one path, not letters."""
    if isinstance(value, str | os.PathLike):
        return [Path(value)]
    try:
        items = list(value)  # type: ignore[call-overload]
    except TypeError:
        raise InputError(f"{what} must be a path or a list of paths, got {_describe(value)}") from None
    if not all(isinstance(v, str | os.PathLike) for v in items):
        raise InputError(f"{what} must be a path or a list of paths, got {_describe(value)}")
    return [Path(v) for v in items]


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _decode(img: Image.Image, name: str) -> None:
    """Decode the pixels now (Pillow is lazy), turning decoder failures into InputError."""
    try:
        img.load()
    except Image.DecompressionBombError as e:
        raise InputError(f"cannot read {name}: image is too large ({_one_line(e)})") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        if "truncated" in str(e).lower() or isinstance(e, EOFError):
            raise InputError(f"cannot read {name}: file is truncated") from None
        raise InputError(f"cannot read {name}: file is truncated or corrupt ({_one_line(e)})") from None


def _orientation(img: Image.Image) -> int:
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:  # a broken EXIF block must not make the image unreadable
        return 1


def _oriented(picture: Picture, orientation: int) -> Picture:
    picture.rgb = _orient(picture.rgb, orientation)
    if picture.alpha is not None:
        picture.alpha = _orient(picture.alpha, orientation)
    return picture


def _orient(a: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) to an H×W or H×W×C array, like ``ImageOps.exif_transpose``."""
    ops = {
        2: lambda x: x[:, ::-1],
        3: lambda x: x[::-1, ::-1],
        4: lambda x: x[::-1],
        5: lambda x: x.swapaxes(0, 1),
        6: lambda x: np.rot90(x, -1),
        7: lambda x: x[::-1, ::-1].swapaxes(0, 1),
        8: lambda x: np.rot90(x, 1),
    }
    op = ops.get(orientation)
    return a if op is None else np.ascontiguousarray(op(a))


def _is_16bit_colour(img: Image.Image) -> bool:
    """True for 16-bit colour or gray+alpha data, which Pillow would truncate to 8 bits (read from the header)."""
    if not img.tile or img.mode.startswith("I"):
        return False
    args = img.tile[0].args
    rawmode = args if isinstance(args, str) else (args[0] if args else "")
    return isinstance(rawmode, str) and ";16" in rawmode


def _load_16bit(path: Path, img: Image.Image, name: str, native: bool = False) -> Picture:
    """16-bit colour PNG/TIFF through OpenCV (BGR/BGRA uint16), keeping full precision."""
    import cv2  # OpenCV loads lazily (here and below): the fast path's start-up does not pay for it

    with _native_stderr_silenced():  # libpng prints its own "libpng error: …" line for a damaged file
        data = cv2.imdecode(np.fromfile(path, np.uint8), cv2.IMREAD_UNCHANGED)
    if data is None:
        raise InputError(f"cannot read {name}: file is truncated or corrupt")
    if data.ndim == 3:
        data = cv2.cvtColor(data, cv2.COLOR_BGRA2RGBA if data.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    picture = _from_array(data, name, finite=True, native=native)
    icc = img.info.get("icc_profile")
    if icc and picture.rgb.shape[2] == 3 and not _is_srgb(icc):
        # Pillow's colour management works on 8-bit RGB only: correct colours win over the extra precision here.
        converted = _to_srgb(picture.pil(), icc, name)
        picture.rgb = np.asarray(converted) if native else np.asarray(converted, dtype=np.float32) / 255.0
    picture.path = path
    return picture


def _from_pil(img: Image.Image, name: str, path: Path | None, native: bool = False) -> Picture:
    """Any Pillow mode -> Picture; alpha is split off, ICC converted, 16-bit gray kept at full precision.

    ``native``: keep uint8 (uint16) pixels instead of float32."""
    mode = img.mode
    icc = img.info.get("icc_profile")
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        a = np.asarray(img)
        if mode == "F" and not np.isfinite(a).all():
            raise InputError(f"cannot read {name}: its pixels include NaN or infinite values")
        gray = a.astype(np.float32) if mode == "F" else np.clip(a.astype(np.float32) / 65535.0, 0.0, 1.0)
        gray = np.clip(gray, 0.0, 1.0)
        if native:
            gray = (gray * 65535 + 0.5).astype(np.uint16)
        return Picture(np.repeat(gray[..., None], 3, axis=2), None, path, 16)

    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info or img.palette.mode == "RGBA" else "RGB")
    elif mode in ("PA", "RGBa", "RGBX"):
        img = img.convert("RGBA" if mode != "RGBX" else "RGB")
    elif mode in ("1", "La"):
        img = img.convert("L" if mode == "1" else "LA")
    elif mode not in ("L", "LA", "RGB", "RGBA", "CMYK"):
        img = img.convert("RGB")  # YCbCr, LAB, HSV, ...

    alpha = None
    if img.mode in ("RGBA", "LA"):
        alpha = np.asarray(img.getchannel("A"))
        alpha = alpha if native else alpha.astype(np.float32) / 255.0
        img = img.convert(img.mode[:-1])
    if icc and not _is_srgb(icc):
        img = _to_srgb(img, icc, name)
    rgb = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    return Picture(rgb if native else rgb.astype(np.float32) / 255.0, alpha, path, 8)


@contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Send what C libraries (libpng, libtiff inside OpenCV) print to file descriptor 2 to /dev/null meanwhile."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no file descriptor 2 (embedded interpreters): nothing to silence
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


@lru_cache(maxsize=1)
def _srgb_profile() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _is_srgb(icc: bytes) -> bool:
    try:
        desc = ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc)))
    except (ImageCms.PyCMSError, OSError, ValueError):
        return False
    return desc.strip().lower().startswith("srgb")


def _to_srgb(img: Image.Image, icc: bytes, name: str) -> Image.Image:
    """Convert an L, RGB or CMYK image with an embedded ICC profile to sRGB RGB; keep it as is if unusable."""
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(img, source, _srgb_profile(), outputMode="RGB")
    except (ImageCms.PyCMSError, OSError, ValueError) as e:
        warnings.warn(f"{name}: ignoring an unusable ICC profile ({_one_line(e)})", BrushworkWarning, stacklevel=3)
        return img


# float pixels a little outside 0..1 (a resampling overshoot) are clipped; further out they are a mistake, such as
# 0..255 values in a float array, and refused
FLOAT_SLACK = 0.5


def check_unit_range(a: np.ndarray, name: str) -> None:
    """InputError unless float pixels are finite and within 0..1 (give or take :data:`FLOAT_SLACK`)."""
    if not np.isfinite(a).all():
        raise InputError(f"cannot use {name}: its pixels include NaN or infinite values")
    low, high = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if high > 1.0 + FLOAT_SLACK or low < -FLOAT_SLACK:
        raise InputError(
            f"cannot use {name}: float pixels must be in 0..1, these run from {low:g} to {high:g} "
            "(divide 0..255 values by 255)"
        )


def _from_array(a: np.ndarray, name: str, *, finite: bool = False, native: bool = False) -> Picture:
    """H×W, H×W×1, H×W×3 or H×W×4 array (uint8, uint16 or float 0..1) -> Picture.

    ``finite``: refuse float pixels that are NaN or infinite (inputs); otherwise they become 0 or 1 (outputs).
    ``native``: uint8/uint16 arrays are kept as they are (float ones become uint16) instead of float32.
    """
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4) or a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"cannot use {name}: expected an H×W, H×W×3 or H×W×4 array, got shape {a.shape}")
    if finite and np.issubdtype(a.dtype, np.floating):
        check_unit_range(a, name)
    if native and a.dtype in (np.uint8, np.uint16):
        f, depth = a, (8 if a.dtype == np.uint8 else 16)
    else:
        f, depth = _unit_float(a, name)
        if native:
            f = (f * 65535 + 0.5).astype(np.uint16)
    if f.shape[2] in (1, 2):  # gray, gray + alpha
        f = np.concatenate([np.repeat(f[..., :1], 3, axis=2), f[..., 1:]], axis=2)
    alpha = np.ascontiguousarray(f[..., 3]) if f.shape[2] == 4 else None
    return Picture(np.ascontiguousarray(f[..., :3]), alpha, None, depth)


def _unit_float(a: np.ndarray, name: str) -> tuple[np.ndarray, int]:
    """uint8 / uint16 / float array -> (float32 in 0..1, source bit depth; float counts as 16)."""
    if a.dtype == np.uint8:
        return a.astype(np.float32) / 255.0, 8
    if a.dtype == np.uint16:
        return a.astype(np.float32) / 65535.0, 16
    if a.dtype == np.bool_:
        return a.astype(np.float32), 8
    if np.issubdtype(a.dtype, np.floating):
        return np.clip(np.nan_to_num(a.astype(np.float32)), 0.0, 1.0), 16
    raise InputError(f"cannot use {name}: expected uint8, uint16 or float pixels, got {a.dtype}")


# ---------------------------------------------------------------- saving


def check_writable(
    path: PathLike, protect: Iterable[PathLike] = (), *, extensions: Iterable[str] | None = SAVE_EXTENSIONS
) -> Path:
    """Validate an output path before any expensive work and return it as a Path.

    Raises OutputError (one line, naming the path) if the extension is not one of ``extensions`` (default: the
    image formats we write; None: any), the name is longer than the file system allows, the folder is missing or
    not writable, the path is a folder or a symbolic-link loop, or it is one of the ``protect``-ed input files.
    """
    dest = Path(path)
    name = os.fspath(path)
    ext = dest.suffix.lower()
    check_not_folder_name(name)
    check_name_length(dest, name)
    if dest.is_dir():
        raise OutputError(f"cannot write {name}: it is a folder")
    if extensions is not None:
        known = sorted(extensions)
        if not ext:
            raise OutputError(f"cannot write {name}: no file extension to choose the format from")
        if ext not in known:
            raise OutputError(f"cannot write {name}: {ext!r} is not a format brushwork writes here (use one of "
                              f"{', '.join(known)})")  # fmt: skip
    return check_output_path(dest, protect)


def check_not_folder_name(name: str | bytes) -> None:
    """OutputError for a file name that ends in a separator (``out.png/``): that names a folder."""
    text = os.fsdecode(name)
    if text.endswith(("/", os.sep)) and text.strip("/" + os.sep):
        raise OutputError(f"cannot write {text}: a name ending in {text[-1]} is a folder, not a file")


def check_name_length(path: PathLike, name: str | None = None) -> None:
    """OutputError when a component of ``path`` is longer than the file system's limit on names (255 bytes)."""
    path = Path(path)
    name = name or os.fspath(path)
    try:
        limit = os.pathconf(path.parent if path.parent.is_dir() else ".", "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):
        limit = 255
    for part in path.parts:
        size = len(os.fsencode(part))
        if size > limit:
            raise OutputError(f"cannot write {name}: a file name is too long ({size} bytes; the limit is {limit})")


def check_folder_writable(folder: Path, name: str) -> None:
    """OutputError unless a file can be created in ``folder``: a real probe, since ``os.access`` says yes to root
    even where nothing can be written (``/proc``)."""
    probe = Path(folder) / f".brushwork-probe-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        with open(probe, "x"):
            pass
    except OSError as exc:
        raise OutputError(
            f"cannot write {name}: folder {os.fspath(folder)!r} is not writable ({exc.strerror or exc})"
        ) from None
    probe.unlink(missing_ok=True)


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name the same file (links included), or resolve to the same path."""
    return _same_file(Path(a), Path(b))


def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):  # RuntimeError: a symbolic-link loop in Path.resolve (Python < 3.13)
        return False


def save_image(
    image: np.ndarray | Image.Image | torch.Tensor | Picture,
    path: PathLike,
    *,
    alpha: np.ndarray | None = None,
    quality: int = 95,
    protect: Iterable[PathLike] = (),
) -> Path:
    """Save an image atomically; the format comes from the extension. Returns the written Path.

    image: a Picture, a Pillow image, an H×W×3 float array in 0..1 (uint8/uint16 and H×W×4 also accepted), or a
    1×3×H×W / 3×H×W float tensor in 0..1. ``alpha`` (H×W in 0..1; default: the Picture's or the array's) is resized
    bilinearly to the image if the sizes differ, and kept by PNG, WebP and TIFF; JPEG and BMP drop it.
    ``quality`` (1..100) applies to JPEG and WebP. TIFF is written with 16 bits per channel.

    Raises OutputError if the path fails :func:`check_writable` (``protect`` = the input files) or writing fails;
    no partial file is left behind.
    """
    if not isinstance(path, str | os.PathLike) or isinstance(path, str) and not path:
        raise OutputError(f"cannot write to {_describe(path)}: give a file path")
    protected = _as_output_paths(protect, "protect")
    dest = check_writable(path, protected)
    name = os.fspath(path)
    if isinstance(quality, bool) or not isinstance(quality, int | np.integer) or not 1 <= int(quality) <= 100:
        raise OutputError(f"cannot write {name}: quality must be a whole number from 1 to 100, got {quality!r}")
    try:
        picture = _as_picture(image)
        a = alpha if alpha is not None else picture.alpha
        if a is not None:
            a = _fit_alpha(a, picture.rgb.shape[:2])
    except InputError as exc:
        raise OutputError(f"cannot write {name}: {exc}") from None
    data = _encode(picture.rgb, a, dest.suffix.lower(), int(quality), name, picture.bit_depth)
    _write_atomic(dest, data, name)
    return dest


def encode_image(
    image: np.ndarray | Image.Image | torch.Tensor | Picture, ext: str = ".png", quality: int = 95
) -> bytes:
    """The bytes of an image file in the format of ``ext`` (as :func:`save_image` writes it), e.g. for stdout."""
    picture = _as_picture(image)
    alpha = None if picture.alpha is None else _fit_alpha(picture.alpha, picture.rgb.shape[:2])
    return _encode(picture.rgb, alpha, ext.lower(), int(quality), "standard output", picture.bit_depth)


def _as_picture(image: np.ndarray | Image.Image | torch.Tensor | Picture) -> Picture:
    if isinstance(image, Picture):
        return image
    if isinstance(image, np.ndarray):  # float arrays save as 8-bit PNG; uint16 arrays (and 16-bit sources) as 16
        picture = _from_array(image, "array", native=image.dtype in (np.uint8, np.uint16))  # no float copy
        if image.dtype.kind == "f":
            picture.bit_depth = 8
        return picture
    if isinstance(image, Image.Image):
        return _from_pil(image, "image", None)
    if type(image).__module__.startswith("torch"):
        try:
            return Picture(to_numpy(image), None, None, 8)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    raise OutputError(f"cannot save an object of type {type(image).__name__} as an image")


def _fit_alpha(alpha: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Alpha (H×W or H×W×1; uint8, uint16 or float 0..1) -> float32 H×W of ``shape``, resized bilinearly."""
    import cv2

    a = np.asarray(alpha)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim != 2 or 0 in a.shape:
        raise InputError(f"alpha must be an H×W array, got shape {a.shape}")
    a, _ = _unit_float(a, "alpha")
    if a.shape != shape:
        a = cv2.resize(a, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return np.clip(a, 0.0, 1.0)


def _quantize(a: np.ndarray, bits: int) -> np.ndarray:
    """Float in 0..1 -> uint8 (bits=8) or uint16 (bits=16), rounded."""
    top, dtype = (255.0, np.uint8) if bits == 8 else (65535.0, np.uint16)
    if a.dtype == dtype:
        return a
    if a.dtype == np.uint8:  # 8 → 16 bits
        return a.astype(np.uint16) * np.uint16(257)
    if a.dtype == np.uint16:  # 16 → 8 bits, rounded
        return ((a.astype(np.uint32) * 255 + 32767) // 65535).astype(np.uint8)
    return (np.clip(a, 0.0, 1.0) * top + 0.5).astype(dtype)


def _encode(rgb: np.ndarray, alpha: np.ndarray | None, ext: str, quality: int, name: str, bit_depth: int = 8) -> bytes:
    """Encode to the bytes of an ``ext`` file: :func:`_png` (ISA-L's deflate; OpenCV where it is not installed)
    for PNG with 16 bits per channel (a picture from a 16-bit source, ``bit_depth`` 16, keeps its precision) and for
    PNGs from 2 MP up; OpenCV for 16-bit TIFF; Pillow for the rest (smaller pictures). The choice depends on the
    picture alone, so that the same picture gives the same file in any process."""
    big = rgb.shape[0] * rgb.shape[1] >= 2_000_000
    if ext == ".png" and (bit_depth == 16 or big) and _isal() is not None:
        bits = 16 if bit_depth == 16 else 8
        planes = _quantize(rgb, bits)
        if alpha is not None:
            planes = np.dstack([planes, _quantize(alpha, bits)])
        return _png(planes)
    if ext in (".tif", ".tiff") or (ext == ".png" and (bit_depth == 16 or big)):
        import cv2

        bits = 8 if ext == ".png" and bit_depth != 16 else 16
        planes = _quantize(rgb, bits)[..., ::-1]  # OpenCV wants BGR(A)
        if alpha is not None:
            planes = np.dstack([planes, _quantize(alpha, bits)])
        kind = ".png" if ext == ".png" else ".tiff"
        ok, buf = cv2.imencode(kind, np.ascontiguousarray(planes), _png_params() if kind == ".png" else [])
        if not ok:
            raise OutputError(f"cannot write {name}: the {kind[1:].upper()} encoder failed")
        return buf.tobytes()
    img = Image.fromarray(_quantize(rgb, 8))
    if alpha is not None and ext in (".png", ".webp"):
        img.putalpha(Image.fromarray(_quantize(alpha, 8)))
    options = {
        ".png": ("PNG", {"compress_level": 3}),  # zlib level 3: ~40% faster than 6, files ~9% larger
        ".jpg": ("JPEG", {"quality": quality}),
        ".jpeg": ("JPEG", {"quality": quality}),
        ".webp": ("WEBP", {"quality": quality}),
        ".bmp": ("BMP", {}),
    }
    fmt, kwargs = options[ext]
    buf = io.BytesIO()
    try:
        img.save(buf, fmt, **kwargs)
    except (OSError, ValueError) as e:
        raise OutputError(f"cannot write {name}: {_one_line(e)}") from None
    return buf.getvalue()


def _isal() -> Any:
    """python-isal's zlib (Intel's ISA-L deflate), or None where it is not installed."""
    try:
        from isal import isal_zlib
    except ImportError:
        return None
    return isal_zlib


def _png(planes: np.ndarray) -> bytes:
    """A PNG of H×W×3 (RGB) or H×W×4 (RGBA) uint8 or uint16 samples: every row with the "up" filter (numpy),
    deflated by ISA-L at level 1. A 3840×2160 stylized result in about 0.2 s, against 0.5 s for OpenCV's libpng at
    zlib level 1 (:func:`_png_params`) and 1.1 s for Pillow, for a file of the same size (17.6 MB). Written here
    because no installed PNG encoder takes a faster deflate; the format is three chunks (PNG specification 1.2)."""
    isal_zlib = _isal()
    h, w, c = planes.shape
    depth = 16 if planes.dtype == np.uint16 else 8
    rows = (planes.astype(">u2") if depth == 16 else planes).reshape(h, -1).view(np.uint8)
    filtered = np.empty((h, rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # filter type "up": each byte less the one above it, modulo 256
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", isal_zlib.crc32(data, isal_zlib.crc32(kind)))
        )

    header = struct.pack(">IIBBBBB", w, h, depth, 6 if c == 4 else 2, 0, 0, 0)
    idat = isal_zlib.compress(filtered.data, 1)
    return b"".join([b"\x89PNG\r\n\x1a\n", chunk(b"IHDR", header), chunk(b"IDAT", idat), chunk(b"IEND", b"")])


def _png_params() -> list[int]:
    """OpenCV's PNG settings: zlib level 1, run-length matches only, libpng's "up" filter on every row (as video
    frames, brushwork.video). Measured on a 3840×2160 stylized result and a photo: 0.42 and 0.34 s, against 1.1 and
    1.07 s with Pillow at level 3 (its adaptive filters; 6, Pillow's default, takes twice as long), for files 1 %
    and 6 % larger (OpenCV's default strategy at level 1: 0.9 s and a file 7 % larger for the stylized result);
    writing the PNG was the largest cost after the network in a print-size rendering. Below 2 MP Pillow writes
    8-bit PNGs (level 3): importing OpenCV (about 0.17 s) costs more than it saves there."""
    import cv2

    params = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_RLE]
    if hasattr(cv2, "IMWRITE_PNG_FILTER"):  # OpenCV 4.11+
        params += [cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]
    return params


def readable_by_all(path: PathLike) -> None:
    """Give a file the permissions ``open()`` would (0o666 less the umask): some writers (safetensors) make their
    files readable by their owner only, which a shared model or decoder file must not be."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(path, 0o666 & ~mask)


def write_atomic(dest: PathLike, data: bytes, name: str | None = None) -> Path:
    """Write raw bytes (a CSV, a JSON) atomically, with io's one-line OutputError on failure; returns the path."""
    dest = Path(dest)
    _write_atomic(dest, data, name or os.fspath(dest))
    return dest


def _write_atomic(dest: Path, data: bytes, name: str) -> None:
    """Write ``data`` to a temporary file beside ``dest``, then rename it over ``dest``; clean up on failure."""
    with atomic_path(dest, name) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)


@contextmanager
def atomic_path(dest: PathLike, name: str | None = None) -> Iterator[Path]:
    """A temporary path beside ``dest`` for a writer that wants a file name (PyAV, Pillow, numpy): when the block
    ends, the file is flushed to disk and renamed over ``dest``; on any failure (a full disk included) it is
    removed and an OSError becomes a one-line OutputError. ``dest`` is never left half-written."""
    dest = Path(dest)
    name = name or os.fspath(dest)
    # short, so that any legal name has a legal temporary name beside it
    tmp = dest.with_name(f".{dest.name[:40]}.{os.getpid()}.{os.urandom(4).hex()}.tmp{dest.suffix[:16]}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # 0o666 & ~umask, like open()
        os.close(fd)
        try:
            yield tmp
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())  # the data is on disk before the name points at it
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as e:
        raise OutputError(f"cannot write {name}: {_one_line(e.strerror or e)}") from None


def save_npy(array: np.ndarray, path: PathLike, *, protect: Iterable[PathLike] = ()) -> Path:
    """Save one array as ``.npy``, atomically; OutputError for another extension, a folder or an input file."""
    dest = Path(path)
    name = os.fspath(path)
    if dest.suffix.lower() != ".npy":
        raise OutputError(f"cannot write {name}: arrays are saved as .npy")
    if dest.is_dir():
        raise OutputError(f"cannot write {name}: it is a folder")
    if any(_same_file(dest, p) for p in _as_output_paths(protect, "protect")):
        raise OutputError(f"cannot write {name}: it is an input file and would be overwritten")
    with atomic_path(dest, name) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(array), allow_pickle=False)
    return dest


def load_npy(path: PathLike) -> np.ndarray:
    """A numeric array saved with ``numpy.save``; InputError (one line) for a missing, empty or damaged file, a
    pickled object or a non-numeric array."""
    name = os.fspath(path)
    p = Path(path)
    if not p.is_file():
        raise InputError(f"cannot read {name}: no such file")
    try:
        a = np.load(p, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise InputError(f"cannot read {name}: not a .npy array ({_one_line(exc)})") from None
    if not isinstance(a, np.ndarray) or a.dtype.kind not in "fiu":
        raise InputError(f"cannot read {name}: not a numeric .npy array")
    return a


def write_csv(path: PathLike, rows: Iterable[Sequence[object]], *, protect: Iterable[PathLike] = ()) -> Path:
    """Write rows (the first one the header) as a CSV file, atomically; OutputError for another extension, a
    missing or unwritable folder, a folder or an input file."""
    import csv

    dest = check_table_path(path, protect)
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows(rows)
    _write_atomic(dest, buffer.getvalue().encode(), os.fspath(path))
    return dest


def check_table_path(path: PathLike, protect: Iterable[PathLike] = ()) -> Path:
    """Validate a ``.csv`` output path before any work (as :func:`check_writable` does for images)."""
    dest = Path(path)
    name = os.fspath(path)
    if dest.suffix.lower() != ".csv":
        raise OutputError(f"cannot write {name}: a table is written as .csv")
    return check_output_path(dest, protect)


def check_output_path(path: PathLike, protect: Iterable[PathLike] = ()) -> Path:
    """The checks every output path gets, whatever its format: no name longer than the file system allows, its
    folder exists and is writable, it is not a folder nor a symbolic-link loop, and not one of the ``protect``-ed
    input files; OutputError (one line) otherwise."""
    dest = Path(path)
    name = os.fspath(path)
    check_not_folder_name(name)
    check_name_length(dest, name)
    if not dest.parent.is_dir():
        raise OutputError(f"cannot write {name}: folder {os.fspath(dest.parent)!r} does not exist")
    check_folder_writable(dest.parent, name)
    try:
        info = dest.stat()
    except FileNotFoundError:
        info = None
    except OSError as e:  # a symbolic-link loop (ELOOP), a name the system refuses
        raise OutputError(f"cannot write {name}: {_one_line(e.strerror or e).lower()}") from None
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise OutputError(f"cannot write {name}: it is a folder")
    if any(_same_file(dest, p) for p in _as_output_paths(protect, "protect")):
        raise OutputError(f"cannot write {name}: it is an input file and would be overwritten")
    return dest


# ---------------------------------------------------------------- animations

ANIMATION_EXTENSIONS = (".gif", ".mp4")
GIF_FPS = (0.002, 50.0)  # GIF delays are whole centiseconds (at most 65535); below 2 cs browsers ignore them
MP4_MIN_FPS, MP4_MAX_FPS = 0.001, 240.0


def check_animation_path(path: PathLike, protect: Iterable[PathLike] = ()) -> Path:
    """Validate an animation output path (``.gif`` or ``.mp4``) before any work; OutputError otherwise."""
    dest = Path(path)
    name = os.fspath(path)
    if dest.suffix.lower() not in ANIMATION_EXTENSIONS:
        raise OutputError(f"cannot write {name}: an animation must end in .gif or .mp4")
    return check_output_path(dest, protect)


def check_fps(path: PathLike, fps: float) -> float:
    """Frames per second for an animation at ``path``: GIF 0.002..50 (its delays are whole centiseconds, and
    browsers ignore delays under 2 cs), MP4 0.001..240 (one frame per 1000 s at the slowest: the encoder's time
    base must hold it); InputError otherwise."""
    from brushwork.validate import check_number

    if Path(path).suffix.lower() == ".gif":
        lo, hi = GIF_FPS
        return check_number(fps, "fps for a GIF", low=lo, high=hi)
    return check_number(fps, "fps", low=MP4_MIN_FPS, high=MP4_MAX_FPS)


def save_animation(
    frames: Sequence[Image.Image | np.ndarray], path: PathLike, *, fps: float = 24.0, protect: Iterable[PathLike] = ()
) -> Path:
    """Write frames (PIL images or H×W×3 float arrays in 0..1, all one size) as an animated GIF (Pillow, one
    palette) or an MP4 (H.264 in yuv420p through PyAV, which browsers play; odd sizes lose their last row or
    column), atomically: nothing is left at ``path`` unless the whole file was written, a full disk included.
    OutputError for another extension, an unwritable folder or an input file; InputError for a bad ``fps``."""
    protect = list(protect)
    dest = check_animation_path(path, protect)
    fps = check_fps(dest, fps)
    name = os.fspath(path)
    if not frames:
        raise InputError(f"cannot write {name}: no frames")
    rgb = [f.convert("RGB") if isinstance(f, Image.Image) else Image.fromarray(_quantize(f, 8)) for f in frames]
    if any(f.size != rgb[0].size for f in rgb):
        raise InputError(f"cannot write {name}: the frames differ in size")
    if dest.suffix.lower() == ".gif":
        with atomic_path(dest, name) as tmp:
            _write_gif(rgb, tmp, fps)
        return dest
    w, h = rgb[0].size
    if w < 2 or h < 2:
        raise OutputError(f"cannot write {name}: frames of {w}×{h} are too small for an MP4")
    with VideoWriter(dest, fps=fps, protect=protect) as writer:  # the one H.264 writer (video and animations)
        for frame in rgb:
            writer.write(np.asarray(frame))
    return dest


def _write_gif(frames: list[Image.Image], path: Path, fps: float) -> None:
    # Pillow, not VideoWriter's streaming GIF: with every frame in memory, one palette serves them all
    # one palette for all frames, from the first, middle and last: 20× faster than a palette per frame
    w, h = frames[0].size
    picks = sorted({0, len(frames) // 2, len(frames) - 1})
    montage = Image.new("RGB", (w, h * len(picks)))
    for k, i in enumerate(picks):
        montage.paste(frames[i], (0, h * k))
    palette = montage.quantize(256, method=Image.Quantize.MEDIANCUT)
    indexed = [f.quantize(palette=palette, dither=Image.Dither.FLOYDSTEINBERG) for f in frames]
    indexed[0].save(path, format="GIF", save_all=True, append_images=indexed[1:], duration=round(1000 / fps), loop=0)


# ---------------------------------------------------------------- resizing, folders, tensors


def resize(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize an H×W×C (or H×W) float32 image to ``size`` = (width, height).

    Uses cv2.INTER_AREA when shrinking and cv2.INTER_LANCZOS4 when enlarging; the result is clipped to 0..1.
    """
    width, height = int(size[0]), int(size[1])
    if width < 1 or height < 1:
        raise ValueError(f"size must be positive, got {size}")
    if (width, height) == (rgb.shape[1], rgb.shape[0]):
        return rgb
    import cv2

    shrinking = width * height < rgb.shape[0] * rgb.shape[1]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LANCZOS4
    out = cv2.resize(np.ascontiguousarray(rgb, dtype=np.float32), (width, height), interpolation=interpolation)
    if rgb.ndim == 3 and out.ndim == 2:  # OpenCV drops a trailing axis of size 1
        out = out[..., None]
    return np.clip(out, 0.0, 1.0)


def check_bounded_size(
    before: tuple[int, int], after: tuple[int, int], name: object, max_size: int | None, min_side: int = 16
) -> None:
    """InputError when a picture of ``before`` (width, height) bounded by ``max_size`` to ``after`` has a side
    under ``min_side``: naming the picture, and the max size when it is the bound that made it too thin."""
    (w0, h0), (w, h) = before, after
    if min(w, h) >= min_side:
        return
    if min(w0, h0) >= min_side:
        raise InputError(f"{name} ({w0}×{h0}) is too thin for max size {max_size}: it would be {w}×{h}, and both "
                         f"sides need {min_side} px (raise max size)")  # fmt: skip
    raise InputError(f"{name} is too small ({w}×{h}): both sides need {min_side} px")


def resize_to_max(rgb: np.ndarray, max_size: int | None) -> np.ndarray:
    """Shrink an H×W×C float32 image so that its longer side is at most ``max_size`` (aspect ratio kept).

    Images already small enough, and ``max_size=None``, are returned unchanged (never enlarged).
    """
    height, width = rgb.shape[:2]
    size = bounded_size((width, height), max_size)
    return rgb if size == (width, height) else resize(rgb, size)


def bounded_size(size: tuple[int, int], max_size: int | None) -> tuple[int, int]:
    """(width, height) after :func:`resize_to_max`, from the numbers alone (to check sizes before any pixel)."""
    w, h = size
    if max_size is None or max(w, h) <= max_size:
        return w, h
    scale = max_size / max(w, h)
    return max(1, round(w * scale)), max(1, round(h * scale))


def unique_names(paths: Iterable[Path]) -> dict[Path, str]:
    """Each file's name for the outputs made from it: its stem, or ``stem_ext`` when two of ``paths`` share a stem
    (``a.jpg`` and ``a.png`` must not both become ``a.png``)."""
    paths = list(dict.fromkeys(paths))
    counts = Counter(p.stem for p in paths)
    return {p: p.stem if counts[p.stem] == 1 else f"{p.stem}_{p.suffix[1:].lower()}" for p in paths}


def list_images(folder: PathLike) -> list[Path]:
    """Image files directly in ``folder`` (by :data:`IMAGE_EXTENSIONS`, hidden files skipped), sorted by name.

    Sub-folders are not read; when there are some, a :class:`~brushwork.errors.BrushworkWarning` says so.
    Raises InputError if the folder does not exist, cannot be read or holds no image.
    """
    return _list_files(folder, IMAGE_EXTENSIONS, "images")


def _list_files(folder: PathLike, extensions: frozenset[str], kind: str) -> list[Path]:
    path = Path(folder)
    name = os.fspath(folder)
    try:
        info = path.stat()
        if not stat.S_ISDIR(info.st_mode):
            raise InputError(f"cannot read {name}: not a folder")
        entries = sorted(path.iterdir())
    except FileNotFoundError:
        raise InputError(f"cannot read {name}: folder not found") from None
    except OSError as e:  # permission denied, a symbolic-link loop
        raise InputError(f"cannot read {name}: {_one_line(e.strerror or e).lower()}") from None
    found: list[Path] = []
    folders = 0
    for p in entries:
        if p.name.startswith("."):
            continue
        if p.is_dir():
            folders += 1
        elif p.suffix.lower() in extensions and p.is_file():
            found.append(p)
    if not found:
        raise InputError(f"cannot read {name}: no {kind} in the folder ({', '.join(sorted(extensions))})")
    if folders:
        warnings.warn(
            f"{name}: skipping {folders} sub-folder{'s' if folders > 1 else ''} (only the {kind} directly in "
            "the folder are read)",
            BrushworkWarning,
            stacklevel=3,
        )
    return found


def verify_image(
    path: PathLike, *, min_side: int = 1, max_pixels: int | None = None, decode: bool = True
) -> tuple[int, int]:
    """Check that ``path`` is an image :func:`load_image` can read, decoding it once (JPEGs at 1/8 scale, which
    still reads every byte); returns its (width, height). Raises InputError (one line, naming the file) otherwise,
    also for a side shorter than ``min_side`` pixels. ``decode=False`` checks the header only (fast)."""
    path = Path(path)
    name = os.fspath(path)
    _check_input_file(path, name)
    limit = _max_pixels(max_pixels)
    try:
        with open(path, "rb") as fh, warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with _open(fh, name) as img:
                width, height = img.size
                _check_pixels(img.size, limit, name)
                if min(width, height) < min_side:
                    raise InputError(f"cannot read {name}: {width}×{height} is too small (at least {min_side} pixels "
                                     "a side)")  # fmt: skip
                if not decode:
                    return width, height
                if img.format == "JPEG":
                    img.draft(img.mode, (max(1, width // 8), max(1, height // 8)))
                _decode(img, name)
                if img.mode == "F" and not np.isfinite(np.asarray(img)).all():
                    raise InputError(f"cannot read {name}: its pixels include NaN or infinite values")
    except OSError as e:
        raise InputError(f"cannot read {name}: {_one_line(e.strerror or e).lower()}") from None
    return width, height


def usable_images(
    paths: Iterable[PathLike],
    *,
    strict: bool = False,
    min_side: int = 1,
    max_pixels: int | None = None,
    where: str = "",
    check: Callable[[Path], object] | None = None,
    kind: str = "image",
) -> tuple[list[Path], list[tuple[Path, str]]]:
    """Check every file once (:func:`verify_image`, or ``check`` for other kinds of file such as videos; in
    threads) before a run uses them.

    Returns (usable paths in the given order, [(skipped path, one-line reason)]). Each skipped file is named in
    a :class:`~brushwork.errors.BrushworkWarning`. Raises InputError when ``strict`` and any file is unusable, or
    when no usable file remains (``where`` names the folder in that message); nothing is warned then.
    """
    from concurrent.futures import ThreadPoolExecutor

    from brushwork.errors import BrushworkError

    paths = [Path(p) for p in paths]

    def reason(p: Path) -> str | None:
        try:
            if check is None:
                verify_image(p, min_side=min_side, max_pixels=max_pixels)
            else:
                check(p)
        except BrushworkError as e:
            return str(e)
        return None

    workers = max(1, min(8, os.cpu_count() or 1, len(paths)))
    with ThreadPoolExecutor(workers) as pool:  # Pillow's decoders and FFmpeg release the GIL
        reasons = list(pool.map(reason, paths))
    good = [p for p, r in zip(paths, reasons, strict=True) if r is None]
    bad = [(p, r) for p, r in zip(paths, reasons, strict=True) if r is not None]
    place = f" in {where}" if where else ""
    if bad and strict:
        more = f" (and {len(bad) - 1} more unusable file{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
        raise InputError(f"{bad[0][1]}{more}; --strict refuses any unusable file")
    if not good:
        raise InputError(f"no usable {kind}{place}: {len(bad)} file{'s' if len(bad) > 1 else ''} unusable, e.g. "
                         f"{bad[0][1]}")  # fmt: skip
    for _, reason in bad:
        warnings.warn(f"{reason}; skipped", BrushworkWarning, stacklevel=2)
    return good, bad


def check_output_folder(path: PathLike) -> Path:
    """Validate a folder that a command will create or fill, without creating it; return it as a Path.

    OutputError (one line) when it is a file, has an image extension (``-o single.png`` with a folder of inputs),
    its name is too long, or it (or, when missing, its parent) is not a writable folder.
    """
    out = Path(path)
    name = os.fspath(path)
    check_name_length(out, name)
    try:
        info = out.stat()
    except FileNotFoundError:
        info = None
    except OSError as e:  # a file on the way (not a directory), a symbolic-link loop
        raise OutputError(f"cannot create the folder {name}: {_one_line(e.strerror or e).lower()}") from None
    if info is not None and not stat.S_ISDIR(info.st_mode):
        raise OutputError(f"cannot write to {name}: it is a file, and this command writes a folder")
    if info is None and out.suffix.lower() in IMAGE_EXTENSIONS:
        raise OutputError(f"cannot write to {name}: this command writes a folder, so -o must name a folder, "
                          "not an image file")  # fmt: skip
    if info is not None:
        check_folder_writable(out, name)
    elif not out.parent.is_dir():
        raise OutputError(f"cannot create the folder {name}: folder {os.fspath(out.parent)!r} does not exist")
    else:
        check_folder_writable(out.parent, name)
    return out


def to_tensor(rgb: np.ndarray, device: str | torch.device | None = None) -> torch.Tensor:
    """H×W×3 float array in 0..1 -> 1×3×H×W float32 tensor (on ``device`` if given)."""
    import torch

    if rgb.ndim == 2:
        rgb = rgb[..., None]
    t = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)).unsqueeze(0)
    return t if device is None else t.to(device)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """1×3×H×W or 3×H×W tensor -> H×W×3 float32 array clipped to 0..1 (on the CPU)."""
    if t.dim() == 4:
        if t.shape[0] != 1:
            raise ValueError(f"expected a single image (1×3×H×W), got a batch of shape {tuple(t.shape)}")
        t = t[0]
    if t.dim() != 3:
        raise ValueError(f"expected a 1×3×H×W or 3×H×W tensor, got shape {tuple(t.shape)}")
    a = t.detach().float().clamp(0.0, 1.0).cpu().numpy()
    return np.ascontiguousarray(a.transpose(1, 2, 0))


# ================================================================ video files (PyAV)
#
# Video decoding and encoding through PyAV (FFmpeg), imported lazily: ``pip install brushwork[video]``.
# Frames come out upright (the stream's rotation applied) as H×W×3 uint8 RGB with their presentation time, so
# variable frame rate timing survives; :class:`VideoWriter` writes H.264 MP4 (yuv420p, ``crf``), VP9 WebM or GIF
# to a temporary file beside the destination and renames it at the end, puts the rotation back as metadata, and
# copies the source's audio packets (re-encoding only where the container cannot hold the codec).

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif", ".mpg", ".ts"})
VIDEO_SAVE_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".webm", ".gif"})
_MUXERS = {".mp4": "mp4", ".webm": "webm", ".gif": "gif"}
# audio re-encoding where a copy is impossible: the container's usual codec
_AUDIO_FALLBACK = {".mp4": "aac", ".webm": "libopus"}


def _av():  # noqa: ANN202 - the module, imported on first use
    try:
        import av
    except ImportError:
        raise InputError("video needs PyAV: pip install 'brushwork[video]'") from None
    # FFmpeg's own chatter is not for our users (errors come as exceptions). None removes PyAV's Python log callback
    # altogether: with it installed (any level), a decoder's worker thread that logs waits for the GIL while the
    # thread closing that decoder holds the GIL and waits for the worker, a deadlock (seen when --end stops
    # decoding early; PyAV issues #751, #2276)
    av.logging.set_level(None)
    return av


@dataclass(frozen=True)
class VideoInfo:
    """What a video file holds. ``width``/``height`` are as displayed (after ``rotation``)."""

    path: Path
    width: int
    height: int
    fps: float  # average frame rate (frames may still carry variable timestamps)
    frames: int  # frame count from the container header; 0 when the container does not say
    duration: float  # seconds; 0 when unknown
    rotation: int  # display rotation, counter-clockwise degrees (0, 90, 180, 270)
    audio: str | None  # codec of the first audio stream, None without audio
    codec: str


@dataclass
class VideoFrame:
    """One decoded frame: ``rgb`` H×W×3 uint8, upright; ``time`` its presentation time in seconds from the
    start of the stream; ``index`` its position in decoding order (0-based, counted from the first frame read)."""

    rgb: np.ndarray
    time: float
    index: int


def _video_error(name: str, exc: BaseException) -> InputError:
    text = _one_line(getattr(exc, "strerror", None) or exc)
    return InputError(f"cannot read {name}: not a readable video ({text})")


def _open_input(path: PathLike):  # noqa: ANN202
    av = _av()
    p, name = Path(path), os.fspath(path)
    if not p.exists():
        raise InputError(f"cannot read {name}: no such file")
    if p.is_dir():
        raise InputError(f"cannot read {name}: it is a folder, not a video file")
    if p.stat().st_size == 0:
        raise InputError(f"cannot read {name}: file is empty")
    try:
        return av.open(os.fspath(p), "r")
    except PermissionError:
        raise InputError(f"cannot read {name}: permission denied") from None
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise _video_error(name, exc) from None


def _rotation(value: float | int | None) -> int:
    return int(round((value or 0) / 90.0)) % 4 * 90


def probe_video(path: PathLike, *, min_side: int = 1) -> VideoInfo:
    """Read a video's header and its first frame (to prove it decodes). InputError, one line, for a missing,
    empty, non-video, audio-only, zero-frame or undecodable file, or frames with a side under ``min_side`` pixels.

    A still image that FFmpeg opens as a one-frame video (``png_pipe``, ``image2``…) is also checked as an image
    (:func:`verify_image`): FFmpeg skips what Pillow refuses, such as a text or ICC chunk that inflates to a bomb.
    """
    name = os.fspath(path)
    with _open_input(path) as container:
        if not container.streams.video:
            kind = "an audio-only file" if container.streams.audio else "not a video"
            raise InputError(f"cannot read {name}: {kind} (no video stream)")
        fmt = container.format.name
        if (fmt == "image2" or fmt.endswith("_pipe")) and Path(path).suffix.lower() in IMAGE_EXTENSIONS:
            verify_image(path, min_side=min_side)
        stream = container.streams.video[0]
        _check_complete(container, name)
        try:
            first = next(iter(container.decode(stream)), None)
        except Exception as exc:  # FFmpeg decoding errors of every kind (InvalidData, EOF, ...)
            raise InputError(f"cannot read {name}: file is truncated or corrupt ({_one_line(exc)})") from None
        if first is None:
            raise InputError(f"cannot read {name}: the video stream has no frames")
        rotation = _rotation(first.rotation)
        w, h = first.width, first.height
        if rotation in (90, 270):
            w, h = h, w
        if min(w, h) < min_side:
            raise InputError(f"cannot read {name}: {w}×{h} is too small (at least {min_side} pixels a side)")
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        duration = 0.0
        if stream.duration is not None and stream.time_base:
            duration = float(stream.duration * stream.time_base)
        elif container.duration:
            duration = container.duration / 1_000_000
        audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
        return VideoInfo(
            path=Path(path),
            width=w,
            height=h,
            fps=float(rate) if rate else 25.0,
            frames=int(stream.frames or 0),
            duration=duration,
            rotation=rotation,
            audio=audio,
            codec=stream.codec_context.name,
        )


def _check_complete(container: Any, name: str) -> None:
    """InputError when the container's index points past the end of the file (a cut-off download or copy)."""
    size = Path(container.name).stat().st_size if os.path.isfile(container.name) else 0
    for stream in container.streams:
        try:
            entries = stream.index_entries
            if not len(entries):
                continue
            last = entries[len(entries) - 1]
            end = last.pos + last.size
        except (AttributeError, IndexError, TypeError):
            continue
        if size and end > size:
            raise InputError(f"cannot read {name}: file is truncated ({size:,} of {end:,} bytes)")


def read_video(path: PathLike, *, start: float | None = None, end: float | None = None) -> Iterator[VideoFrame]:
    """Decode the first video stream as upright RGB frames with presentation times (seconds from the stream's
    first timestamp). ``start``/``end`` (seconds) keep the frames with ``start <= time < end``.

    A file that stops decoding part-way raises InputError naming the frame (``truncated or corrupt``).
    """
    name = os.fspath(path)
    container = _open_input(path)
    try:
        if not container.streams.video:
            raise InputError(f"cannot read {name}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        origin: int | None = None
        index = 0
        if start:  # seek to the key frame before ``start``; decoding then drops the frames before it
            try:
                container.seek(int(start * 1_000_000), backward=True)
            except Exception:
                container.seek(0)
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except Exception as exc:
                raise InputError(
                    f"cannot read {name}: file is truncated or corrupt after {index} frames ({_one_line(exc)})"
                ) from None
            if frame.pts is None:
                continue
            if origin is None:
                origin = stream.start_time if stream.start_time is not None else frame.pts
            # the stream's time base, as the headers and the segment plans use: a frame's own may differ (threaded
            # decoding in some processes gave frames the codec's time base, so times jumped by orders of magnitude)
            t = float((frame.pts - origin) * (stream.time_base or frame.time_base))
            if start is not None and t < start - 1e-6:
                continue
            if end is not None and t >= end - 1e-6:
                break
            rgb = frame.to_ndarray(format="rgb24")
            k = _rotation(frame.rotation) // 90
            if k:
                rgb = np.ascontiguousarray(np.rot90(rgb, k))
            yield VideoFrame(rgb, t, index)
            index += 1
        expected = int(stream.frames or 0)
        if start is None and end is None and expected and index < expected * 0.98 - 1:
            raise InputError(f"cannot read {name}: file is truncated ({index} of {expected} frames decode)")
    finally:
        container.close()


def check_video_writable(path: PathLike, protect: Iterable[PathLike] = ()) -> Path:
    """Like :func:`check_writable`, for a video output (.mp4, .webm, .gif)."""
    dest = Path(path)
    ext = dest.suffix.lower()
    if ext not in VIDEO_SAVE_EXTENSIONS:
        known = ", ".join(sorted(VIDEO_SAVE_EXTENSIONS))
        raise OutputError(
            f"cannot write {os.fspath(path)}: {ext or 'no extension'!r} is not a video format (use {known})"
        )
    return check_output_path(dest, protect)


class VideoWriter:
    """Encode upright RGB frames into ``path`` atomically: frames go to a temporary file beside it, renamed
    over ``path`` by :meth:`close`; :meth:`abort` (or an exception inside ``with``) removes it.

    ``.mp4``: H.264 (libx264, yuv420p, ``crf``, fast start for browsers); ``.webm``: VP9 (``crf``);
    ``.gif``: adaptive 256-colour palette per frame. ``rotation`` (counter-clockwise degrees) is written back as
    display metadata with the pixels turned back (MP4/WebM), so the output holds the source's orientation.
    ``audio_from``: a video file whose first audio stream is copied (packets between ``audio_start`` and
    ``audio_end`` seconds, shifted to start at 0), or re-encoded where the container cannot hold its codec.
    Frame times (seconds) are kept, so variable frame rates survive.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        fps: float,
        crf: int = 20,
        rotation: int = 0,
        audio_from: PathLike | None = None,
        audio_start: float = 0.0,
        audio_end: float | None = None,
        protect: Iterable[PathLike] = (),
    ) -> None:
        av = _av()
        self.path = check_video_writable(path, protect)
        self.name = os.fspath(path)
        self.ext = self.path.suffix.lower()
        self.fps = float(fps) if fps and fps > 0 else 25.0
        self.crf = int(crf)
        self.rotation = _rotation(rotation) if self.ext != ".gif" else 0
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
        self._time_base = Fraction(1, 90_000) if self.ext != ".gif" else Fraction(1, 100)
        self._stream = None
        self._last_pts = -1
        self._frames = 0
        self._audio_src = None
        self._audio_in = self._audio_out = None
        self._audio_packets: Iterator | None = None
        self._audio_pending = None
        self._audio_codec = None
        self._audio_start, self._audio_end = float(audio_start or 0.0), audio_end
        self._origin = 0.0
        try:
            muxer_options = {"movflags": "+faststart"} if self.ext == ".mp4" else {}
            self._out = av.open(os.fspath(self.tmp), "w", format=_MUXERS[self.ext], container_options=muxer_options)
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self.name}: {_one_line(getattr(exc, 'strerror', None) or exc)}") from None
        if audio_from is not None and self.ext != ".gif":
            self._open_audio(audio_from)

    # -- audio -------------------------------------------------------------------------------------------

    def _open_audio(self, src: PathLike) -> None:
        av = _av()
        try:
            self._audio_src = av.open(os.fspath(src), "r")
        except (av.FFmpegError, OSError):
            return
        if not self._audio_src.streams.audio:
            self._audio_src.close()
            self._audio_src = None
            return
        self._audio_in = ain = self._audio_src.streams.audio[0]
        codec = ain.codec_context.name
        supported = getattr(self._out, "supported_codecs", None) or set()
        if codec in supported:
            self._audio_out = self._out.add_stream_from_template(ain)
            self._audio_codec = None  # copy
        else:
            rate = ain.codec_context.sample_rate or 48_000
            enc = _AUDIO_FALLBACK[self.ext]
            if enc == "libopus" and rate not in (8000, 12000, 16000, 24000, 48000):
                rate = 48_000
            self._audio_out = self._out.add_stream(enc, rate=rate)
            self._audio_codec = enc
            self._resampler = av.AudioResampler(format=self._audio_out.format.name, layout="stereo", rate=rate)
        # frame times count from the video stream's first timestamp: the audio keeps that clock (A/V sync)
        video = self._audio_src.streams.video[0] if self._audio_src.streams.video else None
        self._origin = float(video.start_time * video.time_base) if video and video.start_time is not None else 0.0
        if self._audio_start > 0:
            try:
                target = int((self._origin + self._audio_start) / ain.time_base)
                self._audio_src.seek(target, stream=ain, backward=True)
            except Exception:
                pass
        self._audio_packets = self._audio_src.demux(ain)

    def _mux_audio_until(self, t: float | None) -> None:
        """Mux the source's audio packets whose time (seconds, output clock) is before ``t`` (None: all)."""
        if self._audio_packets is None:
            return
        ain, aout = self._audio_in, self._audio_out
        while True:
            packet = self._audio_pending
            if packet is None:
                try:
                    packet = next(self._audio_packets)
                except (StopIteration, Exception):  # the end, or a damaged audio tail: stop copying audio
                    self._audio_packets = None
                    self._flush_audio()
                    return
                if packet.pts is None or packet.size == 0:
                    continue
            source_t = float(packet.pts * ain.time_base) - self._origin
            packet_end = source_t + float((packet.duration or 0) * ain.time_base)
            if self._audio_start > 0 and packet_end <= self._audio_start + 1e-6:
                continue  # before the cut (without a cut, priming packets at negative times are kept)
            if self._audio_end is not None and source_t >= self._audio_end - 1e-6:
                self._audio_packets = None
                self._flush_audio()
                return
            out_t = source_t - self._audio_start
            if t is not None and out_t > t:
                self._audio_pending = packet
                return
            self._audio_pending = None
            if self._audio_codec is None:  # copy: shift the timestamps, keep the bits
                shift = int(round((self._origin + self._audio_start) / ain.time_base))
                packet.pts -= shift
                if packet.dts is not None:
                    packet.dts -= shift
                packet.stream = aout
                self._out.mux(packet)
            else:
                for frame in packet.decode():
                    frame.pts = None
                    for f in self._resampler.resample(frame):
                        self._out.mux(aout.encode(f))

    def _flush_audio(self) -> None:
        if self._audio_codec is not None and self._audio_out is not None:
            for f in self._resampler.resample(None):
                self._out.mux(self._audio_out.encode(f))
            self._out.mux(self._audio_out.encode(None))
            self._audio_codec = "flushed"

    # -- video -------------------------------------------------------------------------------------------

    def _open_video(self, width: int, height: int) -> None:
        out = self._out
        if self.ext == ".gif":
            stream = out.add_stream("gif", rate=Fraction(self.fps).limit_denominator(1000))
            stream.pix_fmt = "pal8"
        else:
            codec = "libx264" if self.ext == ".mp4" else "libvpx-vp9"
            stream = out.add_stream(codec, rate=Fraction(self.fps).limit_denominator(1000))
            stream.pix_fmt = "yuv420p"
            if self.ext == ".mp4":
                stream.options = {"crf": str(self.crf), "preset": "medium"}
            else:
                stream.options = {"crf": str(self.crf), "b": "0", "deadline": "good", "cpu-used": "4", "row-mt": "1"}
            if self.rotation:
                stream.set_display_rotation(self.rotation)
        stream.width, stream.height = width, height
        stream.codec_context.time_base = self._time_base
        stream.time_base = self._time_base
        self._stream = stream

    def write(self, rgb: np.ndarray, time: float | None = None) -> None:
        """Append an upright H×W×3 frame (uint8, or float in 0..1) shown at ``time`` seconds (default: the
        previous time + 1/fps). Sizes must not change between frames; odd sizes lose their last row/column
        (yuv420p needs even sizes)."""
        av = _av()
        if rgb.dtype != np.uint8:
            rgb = _quantize(rgb, 8)
        if self.rotation:
            rgb = np.rot90(rgb, -self.rotation // 90)
        h, w = rgb.shape[:2]
        if self.ext != ".gif":
            h, w = h - h % 2, w - w % 2
            rgb = rgb[:h, :w]
        if self._stream is None:
            self._open_video(w, h)
        elif (w, h) != (self._stream.width, self._stream.height):
            raise OutputError(
                f"cannot write {self.name}: frame size changed from "
                f"{self._stream.width}×{self._stream.height} to {w}×{h}"
            )
        if time is None:
            time = self._frames / self.fps
        pts = max(int(round(time / self._time_base)), self._last_pts + 1)
        self._last_pts = pts
        self._mux_audio_until(time)
        if self.ext == ".gif":
            img = Image.fromarray(np.ascontiguousarray(rgb)).quantize(256, method=Image.Quantize.MEDIANCUT)
            palette = np.zeros((256, 4), np.uint8)
            pal = np.asarray(img.getpalette() or [], np.uint8)[: 256 * 3].reshape(-1, 3)
            palette[: len(pal), 0] = 255
            palette[: len(pal), 1:] = pal
            frame = av.VideoFrame.from_ndarray((np.asarray(img), palette), format="pal8")
        else:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = pts
        frame.time_base = self._time_base
        try:
            self._out.mux(self._stream.encode(frame))
        except (av.FFmpegError, OSError) as exc:
            raise OutputError(f"cannot write {self.name}: {_one_line(getattr(exc, 'strerror', None) or exc)}") from None
        self._frames += 1

    def close(self) -> Path:
        """Flush the encoder, copy the rest of the audio, and rename the file over ``path``."""
        av = _av()
        try:
            if self._stream is None:
                raise OutputError(f"cannot write {self.name}: no frames to write")
            self._out.mux(self._stream.encode(None))
            self._mux_audio_until(None)
            self._out.close()
            self._close_audio()
            with open(self.tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            os.replace(self.tmp, self.path)
        except (av.FFmpegError, OSError) as exc:
            self.abort()
            raise OutputError(f"cannot write {self.name}: {_one_line(getattr(exc, 'strerror', None) or exc)}") from None
        except BaseException:
            self.abort()
            raise
        return self.path

    def _close_audio(self) -> None:
        if self._audio_src is not None:
            self._audio_src.close()
            self._audio_src = None

    def abort(self) -> None:
        """Drop the unfinished file; ``path`` is left as it was."""
        try:
            self._out.close()
        except Exception:
            pass
        self._close_audio()
        self.tmp.unlink(missing_ok=True)

    @property
    def frames(self) -> int:
        return self._frames

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def list_videos(folder: PathLike) -> list[Path]:
    """Video files directly in ``folder`` (by :data:`VIDEO_EXTENSIONS`, hidden files skipped), sorted by name."""
    return _list_files(folder, VIDEO_EXTENSIONS, "videos")
