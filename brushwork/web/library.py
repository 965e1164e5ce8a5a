"""The studio's pictures: uploads (photos and styles), the shipped samples, built-in styles and latent styles.

Every stored file gets a name the server makes (a random hex id and the extension of the format Pillow found in
its bytes); a request names a picture only by a reference that is looked up in a table, never joined to a path:

- ``upload:<id>``: a picture uploaded to this server (photo or style);
- ``sample:<name>``: one of the pictures shipped in ``brushwork/assets`` (see :mod:`brushwork.samples`);
- ``builtin:<N>``: one of the fast method's 26 built-in styles;
- ``latent:<id>``: a style code drawn from or mixed in the latent space of styles, kept here with its swatch.

Uploads are sniffed by content (Pillow's decoders), limited in bytes and pixels, and expire with their jobs.
"""

from __future__ import annotations

import io as _bytes_io
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from brushwork import io, samples
from brushwork.errors import InputError

ID = re.compile(r"[0-9a-f]{32}")
# formats Pillow may report → the stored file's extension (MPO: a camera's JPEG with extra frames, opened as JPEG)
_EXT = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png", "WEBP": ".webp", "TIFF": ".tif", "BMP": ".bmp", "GIF": ".gif"}
THUMB = 256
MIN_SIDE = 16


class TooLarge(InputError):
    """An upload over the byte or pixel limit (HTTP 413)."""


class NotFound(InputError):
    """A reference to nothing this server holds (HTTP 404 for ids in paths, 422 inside a request body)."""


def new_id() -> str:
    return secrets.token_hex(16)


@dataclass
class Picture:
    id: str
    path: Path
    width: int
    height: int
    thumb: bytes  # JPEG, longer side THUMB
    created: float = field(default_factory=time.time)


@dataclass
class Latent:
    id: str
    code: np.ndarray  # the fast predictor's 100-d code
    swatch: Picture  # the code rendered on the sample photo: the style as a picture, for the other methods
    created: float = field(default_factory=time.time)


def jpeg(rgb: np.ndarray, max_side: int | None = THUMB, quality: int = 85) -> bytes:
    """H×W×3 float 0..1 → JPEG bytes, its longer side at most ``max_side``."""
    small = io.resize_to_max(np.asarray(rgb, dtype=np.float32), max_side)
    buf = _bytes_io.BytesIO()
    Image.fromarray((np.clip(small, 0, 1) * 255 + 0.5).astype(np.uint8)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class Library:
    """Uploaded and latent pictures of one server, in ``folder``; at most ``max_items`` of each (oldest dropped)."""

    def __init__(self, folder: Path, *, max_bytes: int, max_pixels: int, max_items: int = 500) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.max_items = max_items
        self._pictures: OrderedDict[str, Picture] = OrderedDict()
        self._latents: OrderedDict[str, Latent] = OrderedDict()
        self._lock = threading.Lock()

    # -- uploads

    def add(self, data: bytes) -> Picture:
        """Check and keep an uploaded picture. TooLarge (413) over the limits, InputError (422) if not a picture."""
        if len(data) > self.max_bytes:
            raise TooLarge(f"upload is {len(data)} bytes; the limit is {self.max_bytes}")
        if not data:
            raise InputError("upload is empty")
        try:
            with Image.open(_bytes_io.BytesIO(data), formats=[f for f in _EXT if f != "MPO"]) as img:
                fmt, (width, height) = img.format, img.size
        except Image.DecompressionBombError:
            raise TooLarge(f"image has too many pixels; the limit is {self.max_pixels} pixels") from None
        except (UnidentifiedImageError, OSError, ValueError):
            raise InputError("not a supported image (JPEG, PNG, WebP, TIFF, BMP or GIF)") from None
        if width * height > self.max_pixels:
            raise TooLarge(f"image is {width}×{height} pixels; the limit is {self.max_pixels} pixels")
        if min(width, height) < MIN_SIDE:
            raise InputError(f"image is too small ({width}×{height}): both sides need {MIN_SIDE} px")
        pid = new_id()
        path = self.folder / f"{pid}{_EXT[fmt or 'PNG']}"
        io.write_atomic(path, data)
        try:
            picture = io.load_image(path, max_pixels=self.max_pixels)  # decodes fully: truncated files fail here
        except InputError as exc:
            path.unlink(missing_ok=True)
            raise InputError(str(exc).replace(str(path), "upload")) from None
        entry = Picture(pid, path, picture.size[0], picture.size[1], jpeg(picture.rgb))
        self._keep(self._pictures, pid, entry)
        return entry

    def add_array(self, rgb: np.ndarray) -> Picture:
        """Keep a picture the server made (a latent style's swatch) as PNG."""
        pid = new_id()
        path = io.save_image(rgb, self.folder / f"{pid}.png")
        entry = Picture(pid, path, rgb.shape[1], rgb.shape[0], jpeg(rgb))
        self._keep(self._pictures, pid, entry)
        return entry

    def _keep(self, table: OrderedDict, key: str, entry: Picture | Latent) -> None:
        with self._lock:
            table[key] = entry
            while len(table) > self.max_items:
                _, old = table.popitem(last=False)
                self._drop(old)

    def _drop(self, entry: Picture | Latent) -> None:
        if isinstance(entry, Picture):
            entry.path.unlink(missing_ok=True)

    def picture(self, pid: str) -> Picture:
        with self._lock:
            entry = self._pictures.get(pid) if ID.fullmatch(pid or "") else None
        if entry is None:
            raise NotFound("no such upload (it may have expired)")
        return entry

    def latent(self, lid: str) -> Latent:
        with self._lock:
            entry = self._latents.get(lid) if ID.fullmatch(lid or "") else None
        if entry is None:
            raise NotFound("no such latent style (it may have expired)")
        return entry

    def add_latent(self, code: np.ndarray, swatch: np.ndarray) -> Latent:
        entry = Latent(new_id(), np.asarray(code, dtype=np.float32).reshape(-1), self.add_array(swatch))
        self._keep(self._latents, entry.id, entry)
        return entry

    def expire(self, older_than: float) -> int:
        """Forget and delete what was made before ``older_than`` (a time.time()); returns how many."""
        n = 0
        with self._lock:
            for table in (self._pictures, self._latents):
                for key in [k for k, e in table.items() if e.created < older_than]:
                    self._drop(table.pop(key))
                    n += 1
        return n

    # -- references

    def resolve(self, ref: object, what: str) -> Picture | Latent | str:
        """A reference → a Picture, a Latent, or ``builtin:N`` (checked); InputError (422) for anything else."""
        if not isinstance(ref, str) or len(ref) > 80:
            raise InputError(f"{what}: expected a reference such as upload:<id>, sample:<name> or builtin:<N>")
        kind, _, key = ref.partition(":")
        try:
            if kind == "upload":
                return self.picture(key)
            if kind == "latent":
                return self.latent(key)
        except NotFound as exc:
            raise InputError(f"{what}: {exc}") from None
        if kind == "sample":
            if key not in samples_table():
                raise InputError(f"{what}: no sample named {key[:40]!r}; see /api/styles")
            return samples_table()[key]
        if kind == "builtin":
            if not re.fullmatch(r"[0-9]{1,3}", key) or not 0 <= int(key) < NUM_BUILTIN:
                raise InputError(f"{what}: built-in styles are builtin:0 to builtin:{NUM_BUILTIN - 1}")
            return f"builtin:{int(key)}"
        raise InputError(f"{what}: expected upload:<id>, sample:<name>, builtin:<N> or latent:<id>")


NUM_BUILTIN = 26


@lru_cache(maxsize=1)
def samples_table() -> dict[str, Picture]:
    """The shipped sample pictures (photos ``photo-<name>`` and styles ``<name>``), keyed by name."""
    paths = {f"photo-{p.stem}": p for p in samples.SAMPLE_PHOTOS} | dict(samples.STYLES)
    out = {}
    for name, path in paths.items():
        picture = io.load_image(path)
        out[name] = Picture(name, path, picture.size[0], picture.size[1], jpeg(picture.rgb), created=float("inf"))
    return out
