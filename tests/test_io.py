"""Tests for brushwork.io. Every test image is generated in tmp_path; nothing is read from outside."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image, ImageCms, ImageOps

from brushwork import io as bio
from brushwork.errors import BrushworkWarning, InputError, OutputError
from brushwork.io import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    Picture,
    check_writable,
    list_images,
    load_image,
    resize,
    resize_to_max,
    save_image,
    to_numpy,
    to_tensor,
)


def gradient(h: int = 24, w: int = 32) -> np.ndarray:
    """A smooth H×W×3 float32 image in 0..1 (smooth, so lossy codecs stay close)."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    return np.stack([x / (w - 1), y / (h - 1), 1 - (x + y) / (w + h - 2)], axis=2)


def noise(h: int = 64, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares ``width``×``height`` but holds almost no pixel data (decoding it would fail)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b"")


def linear_rgb_icc() -> bytes:
    """A minimal ICC v2 RGB profile with sRGB primaries but a linear (gamma 1.0) tone curve."""

    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \0\0\0\0" + struct.pack(">iii", *(round(v * 65536) for v in (x, y, z)))

    text = b"Linear RGB test\0"
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text)) + text + b"\0" * 8 + b"\0\0\0" + b"\0" * 67
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, 0x0100)
    tags = [
        (b"desc", desc),
        (b"wtpt", xyz(0.9642, 1.0, 0.8249)),
        (b"rXYZ", xyz(0.4361, 0.2225, 0.0139)),
        (b"gXYZ", xyz(0.3851, 0.7169, 0.0971)),
        (b"bXYZ", xyz(0.1431, 0.0606, 0.7141)),
        (b"rTRC", curve),
        (b"gTRC", curve),
        (b"bTRC", curve),
    ]
    start = 128 + 4 + 12 * len(tags)
    table, body = struct.pack(">I", len(tags)), b""
    for sig, data in tags:
        table += sig + struct.pack(">II", start + len(body), len(data))
        body += data + b"\0" * (-len(data) % 4)
    size = start + len(body)
    header = struct.pack(">III", size, 0, 0x02100000) + b"mntrRGB XYZ " + b"\0" * 12 + b"acsp" + b"\0" * 28
    header += struct.pack(">iii", *(round(v * 65536) for v in (0.9642, 1.0, 0.8249))) + b"\0" * 48
    return header + table + body


# ---------------------------------------------------------------- formats


@pytest.mark.parametrize(("ext", "tol"), [(".png", 0.5 / 255), (".bmp", 0.5 / 255), (".tif", 1e-4), (".jpg", 0.03)])
def test_round_trip(tmp_path: Path, ext: str, tol: float) -> None:
    rgb = gradient()
    out = save_image(rgb, tmp_path / f"out{ext}")
    assert out == tmp_path / f"out{ext}"
    pic = load_image(out)
    assert pic.rgb.dtype == np.float32 and pic.rgb.shape == (24, 32, 3)
    assert pic.size == (32, 24) and pic.alpha is None and pic.path == out
    assert np.abs(pic.rgb - rgb).mean() <= tol


def test_webp_round_trip_keeps_alpha(tmp_path: Path) -> None:
    alpha = np.linspace(0, 1, 32, dtype=np.float32)[None].repeat(24, 0)
    pic = load_image(save_image(gradient(), tmp_path / "out.webp", alpha=alpha, quality=100))
    assert np.abs(pic.rgb - gradient()).mean() < 0.03
    assert pic.alpha is not None and np.abs(pic.alpha - alpha).max() < 0.02


def test_gif_first_frame(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (8, 6), c) for c in ((255, 0, 0), (0, 0, 255))]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    pic = load_image(tmp_path / "anim.gif")
    assert pic.size == (8, 6)
    np.testing.assert_allclose(pic.rgb[0, 0], [1, 0, 0])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation(tmp_path: Path, orientation: int) -> None:
    img = Image.fromarray(noise(4, 6))
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(tmp_path / "o.png", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(tmp_path / "o.png")), dtype=np.float32) / 255
    pic = load_image(tmp_path / "o.png")
    np.testing.assert_array_equal(pic.rgb, expected)
    if orientation == 6:  # rotate 90° clockwise: the top-left pixel moves to the top-right
        assert pic.size == (4, 6)
        np.testing.assert_array_equal(pic.rgb[0, -1], np.asarray(img)[0, 0] / np.float32(255))


# ---------------------------------------------------------------- modes and alpha


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (4, 3), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.putpixel((0, 0), 0)
    img.save(tmp_path / "p.png", transparency=0)
    pic = load_image(tmp_path / "p.png")
    assert pic.alpha is not None and pic.alpha[0, 0] == 0 and pic.alpha[1, 1] == 1
    np.testing.assert_array_equal(pic.rgb[1, 1], [1, 0, 0])


@pytest.mark.parametrize(
    ("mode", "colour", "rgb", "alpha"),
    [
        ("L", 128, (128, 128, 128), None),
        ("LA", (200, 64), (200, 200, 200), 64),
        ("RGBA", (10, 20, 30, 40), (10, 20, 30), 40),
        ("CMYK", (0, 255, 255, 0), (255, 0, 0), None),
    ],
)
def test_modes(tmp_path: Path, mode: str, colour: object, rgb: tuple[int, ...], alpha: int | None) -> None:
    path = tmp_path / ("m.tif" if mode == "CMYK" else "m.png")
    Image.new(mode, (5, 4), colour).save(path)
    pic = load_image(path)
    assert pic.rgb.shape == (4, 5, 3) and pic.bit_depth == 8
    np.testing.assert_allclose(pic.rgb[2, 3], np.array(rgb) / 255, atol=1e-6)
    if alpha is None:
        assert pic.alpha is None
    else:
        assert pic.alpha is not None and pic.alpha.shape == (4, 5)
        assert pic.alpha[0, 0] == pytest.approx(alpha / 255)


def test_alpha_reattached_on_save(tmp_path: Path) -> None:
    rgba = noise(6, 7)
    a = np.arange(42, dtype=np.uint8).reshape(6, 7) * 6
    Image.fromarray(np.dstack([rgba, a])).save(tmp_path / "in.png")
    pic = load_image(tmp_path / "in.png")
    for ext in (".png", ".tif"):
        back = load_image(save_image(pic, tmp_path / f"out{ext}"))
        assert back.alpha is not None
        np.testing.assert_allclose(back.alpha, a / 255, atol=1e-4)
        np.testing.assert_allclose(back.rgb, rgba / 255, atol=1e-4)
    assert load_image(save_image(pic, tmp_path / "out.jpg")).alpha is None
    assert Image.open(save_image(pic, tmp_path / "out.bmp")).mode == "RGB"


@pytest.mark.parametrize(("size", "encoder"), [((37, 53), "Pillow"), ((1000, 2001), "ISA-L"), ((1000, 2001), "OpenCV")])
def test_png_is_lossless_and_readable_by_pillow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int], encoder: str
) -> None:
    """Large PNGs are written by io._png (ISA-L's deflate), or by OpenCV at zlib level 1 without it: still exact,
    8-bit, a standard file."""
    if encoder == "OpenCV":
        monkeypatch.setattr(bio, "_isal", lambda: None)
    assert encoder != "ISA-L" or bio._isal() is not None
    rgb = np.random.default_rng(3).integers(0, 256, (*size, 3), dtype=np.uint8)
    alpha = np.random.default_rng(4).integers(0, 256, size, dtype=np.uint8)
    plain = Image.open(save_image(rgb, tmp_path / "rgb.png"))
    assert plain.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(plain), rgb)
    rgba = Image.open(save_image(rgb, tmp_path / "rgba.png", alpha=alpha / 255))
    assert rgba.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(rgba), np.dstack([rgb, alpha]))


def test_16bit_png_of_a_large_picture_is_exact(tmp_path: Path) -> None:
    values = np.random.default_rng(5).integers(0, 65536, (1100, 1900, 3), dtype=np.uint16)
    alpha = np.random.default_rng(6).integers(0, 65536, (1100, 1900), dtype=np.uint16)
    pic = load_image(values)
    assert pic.bit_depth == 16
    out = save_image(pic, tmp_path / "big16.png", alpha=alpha / 65535)
    again = cv2.imread(str(out), cv2.IMREAD_UNCHANGED)  # BGRA, 16 bits
    assert again.dtype == np.uint16
    np.testing.assert_array_equal(again[..., 2::-1], values)
    np.testing.assert_array_equal(again[..., 3], alpha)


def test_alpha_resized_to_image(tmp_path: Path) -> None:
    out = save_image(gradient(24, 32), tmp_path / "a.png", alpha=np.full((12, 16), 0.5, np.float32))
    pic = load_image(out)
    assert pic.alpha is not None and pic.alpha.shape == (24, 32)
    assert np.allclose(pic.alpha, 128 / 255)


def test_arrays(tmp_path: Path) -> None:
    gray = load_image(np.full((3, 4), 65535, np.uint16))
    assert gray.rgb.shape == (3, 4, 3) and gray.bit_depth == 16 and gray.rgb.min() == 1
    rgba = load_image(np.zeros((3, 4, 4), np.uint8))
    assert rgba.alpha is not None and rgba.bit_depth == 8
    assert load_image(np.full((2, 2, 3), 1.2)).rgb.max() == 1  # a resampling overshoot is clipped
    with pytest.raises(InputError, match=r"float pixels must be in 0\.\.1, these run from 0 to 254"):
        load_image(np.linspace(0, 254, 12).reshape(2, 2, 3))  # 0..255 values in a float array: a mistake
    with pytest.raises(InputError):
        load_image(np.zeros((2, 2, 5)))


# ---------------------------------------------------------------- 16 bit and ICC


def test_16bit_precision(tmp_path: Path) -> None:
    values = (np.arange(12 * 10 * 3).reshape(12, 10, 3) * 181 + 7).astype(np.uint16)
    assert np.any(values % 257 != 0)  # not representable in 8 bits
    cv2.imwrite(str(tmp_path / "rgb16.png"), values[..., ::-1])
    cv2.imwrite(str(tmp_path / "rgb16.tif"), values[..., ::-1])
    Image.fromarray(values[..., 0]).save(tmp_path / "gray16.png")  # mode I;16
    for name in ("rgb16.png", "rgb16.tif"):
        pic = load_image(tmp_path / name)
        assert pic.bit_depth == 16
        np.testing.assert_allclose(pic.rgb, values / 65535, atol=1e-6)
    gray = load_image(tmp_path / "gray16.png")
    assert gray.bit_depth == 16
    np.testing.assert_allclose(gray.rgb[..., 1], values[..., 0] / 65535, atol=1e-6)
    # and 16-bit TIFF output keeps it
    again = cv2.imread(str(save_image(pic, tmp_path / "out.tiff")), cv2.IMREAD_UNCHANGED)
    assert again.dtype == np.uint16
    np.testing.assert_array_equal(again[..., ::-1], values)


def test_icc_on_16bit(tmp_path: Path) -> None:
    """16-bit colour with a non-sRGB profile: colours converted (at 8-bit precision, Pillow's limit)."""
    cv2.imwrite(str(tmp_path / "a.png"), np.full((4, 4, 3), 32896, np.uint16))  # 0.502
    data = (tmp_path / "a.png").read_bytes()
    payload = b"lin\0\0" + zlib.compress(linear_rgb_icc())
    iccp = struct.pack(">I", len(payload)) + b"iCCP" + payload + struct.pack(">I", zlib.crc32(b"iCCP" + payload))
    (tmp_path / "a.png").write_bytes(data[:33] + iccp + data[33:])  # right after IHDR
    pic = load_image(tmp_path / "a.png")
    assert pic.bit_depth == 16 and np.all(np.abs(pic.rgb * 255 - 188) <= 2)


def test_icc_srgb_unchanged(tmp_path: Path) -> None:
    rgb = noise(8, 8)
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(rgb).save(tmp_path / "s.png", icc_profile=srgb)
    np.testing.assert_array_equal(load_image(tmp_path / "s.png").rgb, rgb / np.float32(255))


def test_icc_converted_to_srgb(tmp_path: Path) -> None:
    img = Image.new("RGBA", (4, 4), (128, 128, 128, 77))
    img.save(tmp_path / "lin.png", icc_profile=linear_rgb_icc())
    pic = load_image(tmp_path / "lin.png")
    # linear 0.502 is sRGB 0.736 (188/255): the profile was applied, the alpha left alone
    assert np.all(np.abs(pic.rgb * 255 - 188) <= 2)
    assert pic.alpha is not None and pic.alpha[0, 0] == pytest.approx(77 / 255)


# ---------------------------------------------------------------- limits and errors


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_pixel_limit_checked_before_decoding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = tmp_path / "big.png"
    big.write_bytes(png_header_only(20_000, 5_000))  # 100 MP declared, a few bytes of data
    with pytest.raises(InputError, match="pixels, more than the limit"):
        load_image(big)
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_header_only(100_000, 100_000))  # beyond Pillow's decompression-bomb limit
    with pytest.raises(InputError, match="huge.png"):
        load_image(huge)
    Image.new("RGB", (10, 10)).save(tmp_path / "small.png")
    with pytest.raises(InputError, match="small.png"):
        load_image(tmp_path / "small.png", max_pixels=99)
    monkeypatch.setenv("BRUSHWORK_MAX_PIXELS", "50")
    with pytest.raises(InputError, match="limit"):
        load_image(tmp_path / "small.png")
    assert load_image(tmp_path / "small.png", max_pixels=100).size == (10, 10)
    assert DEFAULT_MAX_PIXELS == 64_000_000


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / f"photo.{fmt.lower()}"
    Image.fromarray(noise()).save(path, fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="truncated") as err:
        load_image(path)
    assert path.name in str(err.value) and "\n" not in str(err.value)


def test_bad_inputs(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "notes.png").write_text("not an image at all\n" * 10)
    for name, problem in [("missing.jpg", "no such file"), ("empty.jpg", "empty"), ("notes.png", "not a supported")]:
        with pytest.raises(InputError, match=problem) as err:
            load_image(tmp_path / name)
        assert name in str(err.value) and "\n" not in str(err.value)


# ---------------------------------------------------------------- saving safely


def test_never_overwrites_an_input(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "in.png"
    Image.fromarray(noise(8, 8)).save(src)
    before = src.read_bytes()
    monkeypatch.chdir(tmp_path)
    for dest in (src, "in.png", tmp_path / "sub" / ".." / "in.png"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        with pytest.raises(OutputError, match="input"):
            save_image(gradient(), dest, protect=[src])
    os.symlink(src, tmp_path / "link.png")
    with pytest.raises(OutputError, match="input"):
        save_image(gradient(), tmp_path / "link.png", protect=["in.png"])
    assert src.read_bytes() == before


def test_failed_save_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(OutputError, match=r"out\.xyz: '\.xyz' is not a format"):
        save_image(gradient(), tmp_path / "out.xyz")
    with pytest.raises(OutputError, match="does not exist"):
        save_image(gradient(), tmp_path / "nowhere" / "out.png")

    def broken_replace(a: object, b: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bio.os, "replace", broken_replace)
    with pytest.raises(OutputError, match="out.png: No space left"):
        save_image(gradient(), tmp_path / "out.png")
    assert list(tmp_path.iterdir()) == []


def test_existing_output_replaced_whole(tmp_path: Path) -> None:
    out = tmp_path / "o.png"
    out.write_bytes(b"old")
    save_image(gradient(), out)
    assert load_image(out).size == (32, 24) and [p.name for p in tmp_path.iterdir()] == ["o.png"]


def test_unwritable_folder(tmp_path: Path) -> None:
    """A real probe, not os.access: root may pass os.access where nothing can be created (/proc)."""
    if not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    with pytest.raises(OutputError, match="o.png: folder .* is not writable"):
        save_image(gradient(), Path("/proc/self/o.png"))
    with pytest.raises(OutputError, match="is not writable"):
        check_writable(Path("/proc/o.png"))


def test_check_writable(tmp_path: Path) -> None:
    assert check_writable(str(tmp_path / "a.JPG")) == tmp_path / "a.JPG"
    with pytest.raises(OutputError, match="no file extension"):
        check_writable(tmp_path / "noext")
    (tmp_path / "d.png").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_writable(tmp_path / "d.png")


def test_jpeg_quality_affects_size(tmp_path: Path) -> None:
    rgb = noise(64, 64) / np.float32(255)
    low = save_image(rgb, tmp_path / "low.jpg", quality=20).stat().st_size
    high = save_image(rgb, tmp_path / "high.jpeg", quality=95).stat().st_size
    assert low < high / 2


# ---------------------------------------------------------------- helpers


def test_resize() -> None:
    rgb = gradient(30, 60)
    assert resize_to_max(rgb, None) is rgb and resize_to_max(rgb, 100) is rgb
    small = resize_to_max(rgb, 20)
    assert small.shape == (10, 20, 3) and small.dtype == np.float32
    big = resize(rgb, (120, 50))
    assert big.shape == (50, 120, 3) and 0 <= big.min() and big.max() <= 1


def test_list_images(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no images"):
        list_images(tmp_path)
    for name in ("b.PNG", "a.jpg", "c.txt", ".hidden.jpg"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub.png").mkdir()
    with pytest.warns(BrushworkWarning, match="skipping 1 sub-folder"):
        assert [p.name for p in list_images(tmp_path)] == ["a.jpg", "b.PNG"]
    assert ".gif" in IMAGE_EXTENSIONS and ".tiff" in IMAGE_EXTENSIONS


def test_tensor_round_trip(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    rgb = gradient(5, 7)
    t = to_tensor(rgb)
    assert t.shape == (1, 3, 5, 7) and t.dtype == torch.float32
    np.testing.assert_array_equal(to_numpy(t), rgb)
    assert to_numpy(t[0] * 2).max() == 1 and to_numpy(t[0]).shape == (5, 7, 3)
    pic = load_image(save_image(t, tmp_path / "t.png"))
    assert pic.size == (7, 5)
    assert isinstance(pic, Picture) and pic.pil().mode == "RGB" and pic.pil().size == (7, 5)


def test_io_does_not_import_torch() -> None:
    code = "import sys, brushwork.io; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_save_image_refuses_wrong_arguments_and_keeps_the_input(tmp_path: Path) -> None:
    import torch

    src = tmp_path / "in.png"
    save_image(np.full((8, 8, 3), 0.5, np.float32), src)
    before = src.read_bytes()
    image = np.zeros((8, 8, 3), np.float32)
    with pytest.raises(OutputError, match="it is an input file"):
        save_image(image, src, protect=str(src))  # one path as a string, not its letters
    assert src.read_bytes() == before
    for path in (None, 5, b"x.png", ""):
        with pytest.raises(OutputError, match="give a file path"):
            save_image(image, path)  # type: ignore[arg-type]
    for quality in ("x", float("nan"), 0, True):
        with pytest.raises(OutputError, match="quality must be a whole number"):
            save_image(image, tmp_path / "q.jpg", quality=quality)  # type: ignore[arg-type]
    for alpha in (np.zeros((3, 3, 3, 3)), np.zeros((0, 3))):
        with pytest.raises(OutputError, match="alpha must be an H×W array"):
            save_image(image, tmp_path / "a.png", alpha=alpha)
    with pytest.raises(OutputError, match="a file name is too long"):
        save_image(image, tmp_path / ("x" * 300 + ".png"))
    for tensor in (torch.rand(2, 3, 8, 8), torch.rand(8, 8)):
        with pytest.raises(OutputError, match="expected"):
            save_image(tensor, tmp_path / "t.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]  # nothing else written


@pytest.mark.parametrize("src", [None, 3, b"x.png", "", [1, 2]])
def test_load_image_refuses_what_is_not_an_image_source(src: object) -> None:
    with pytest.raises(InputError, match="as an image: give a file path, a PIL image or an H×W×3 array"):
        load_image(src)  # type: ignore[arg-type]


def test_max_pixels_given_in_code_is_checked() -> None:
    for bad in ("x", float("nan"), 0, -1, True):
        with pytest.raises(InputError, match="max pixels must be a whole number"):
            load_image(Image.new("RGB", (4, 4)), max_pixels=bad)
