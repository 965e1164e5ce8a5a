"""Bad input over every command, one table: each row is (command line, expected substring of the error).

Every row must end with exit code 2 and exactly one line on stderr (``brushwork: error: …`` or argparse's one
line), no traceback, no warning or library noise before it (stderr is captured at the file-descriptor level, so
OpenCV's and libpng's C-level messages count), no file left behind and no input changed (the whole fixture tree
is hashed before and after).

A new command gets the whole corpus by adding a :class:`Command` to ``COMMANDS``: its command line with
``{slots}`` for the image inputs, the folder inputs and the output, and its numeric flags. Rows that are special
to one command go to ``EXTRA``.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from brushwork.cli import main

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0
READ_ONLY = Path("/sys")  # nothing can be created here, not even by root
LONG_NAME = "x" * 300 + ".png"  # over the 255-byte limit of a file name


# ---------------------------------------------------------------- fixtures


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _png(width: int, height: int, extra: bytes = b"", pixels: bytes | None = None) -> bytes:
    """A minimal 8-bit RGB PNG (grey pixels) with ``extra`` chunks before the image data."""
    raw = pixels if pixels is not None else b"".join(b"\0" + b"\x80" * (3 * width) for _ in range(height))
    head = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    return b"\x89PNG\r\n\x1a\n" + head + extra + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")


def _picture(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width] / max(width, height)
    a = np.stack([np.sin(xx * rng.uniform(3, 9) + yy * rng.uniform(1, 4) + k) for k in range(3)], -1) * 0.5 + 0.5
    return (a * 255).astype(np.uint8)


def build_fixtures(root: Path) -> dict[str, Path]:
    """Good inputs and every kind of bad one, under ``root``; returns name -> path."""
    f: dict[str, Path] = {}

    def put(name: str, data: bytes) -> None:
        f[name] = root / name
        f[name].write_bytes(data)

    for name, (w, h, seed) in {"photo.png": (64, 48, 0), "style.jpg": (64, 64, 1), "mask.png": (64, 48, 2)}.items():
        f[name] = root / name
        Image.fromarray(_picture(w, h, seed)).save(f[name])
    put("r.00001.png", f["photo.png"].read_bytes())  # a name optimize --save-every would write for -o r.png
    put("notimage.png", b"this is not a picture\n" * 20)
    put("empty.png", b"")
    good_png = f["photo.png"].read_bytes()
    put("truncated.png", good_png[: len(good_png) // 2])
    good_jpg = f["style.jpg"].read_bytes()
    put("truncated.jpg", good_jpg[: len(good_jpg) // 2])
    ok, buf = cv2.imencode(".png", (_picture(64, 48, 3).astype(np.uint16) * 257))
    assert ok
    put("truncated16.png", buf.tobytes()[: len(buf) // 2])  # 16 bits: read by OpenCV, whose libpng talks
    # decompression bombs: a header of 20000×20000 (Pillow's error), 9500×9500 (Pillow's warning, then ours),
    # and PNGs whose text or ICC chunk inflates to 64 MB from 64 kB
    put("bomb.png", _png(20000, 20000, pixels=b""))
    put("bomb90m.png", _png(9500, 9500, pixels=b""))
    zeros = zlib.compress(b"\0" * 64_000_000, 9)
    put("textbomb.png", _png(32, 32, _chunk(b"zTXt", b"Comment\0\0" + zeros)))
    put("iccbomb.png", _png(32, 32, _chunk(b"iCCP", b"icc\0\0" + zeros)))
    put("itxtbomb.png", _png(32, 32, _chunk(b"iTXt", b"Comment\0\1\0\0\0" + zeros)))
    for n in (1, 3):
        f[f"tiny{n}.png"] = root / f"tiny{n}.png"
        Image.fromarray(_picture(n, n, 4)).save(f[f"tiny{n}.png"])
    f["nan.tif"] = root / "nan.tif"
    Image.fromarray(np.full((48, 64), np.nan, np.float32), "F").save(f["nan.tif"])
    f["loop.png"] = root / "loop.png"
    os.symlink("loop.png", f["loop.png"])  # a link to itself: ELOOP on open
    f["missing.png"] = root / "missing.png"
    f["folder.png"] = root / "folder.png"
    f["folder.png"].mkdir()
    # folders of images
    for name, count, seed in (("photos", 3, 10), ("paintings", 5, 20)):
        f[name] = root / name
        f[name].mkdir()
        for i in range(count):
            Image.fromarray(_picture(48, 40, seed + i)).save(f[name] / f"{i}.png")
    f["empty_dir"] = root / "empty_dir"
    f["empty_dir"].mkdir()
    f["bad_dir"] = root / "bad_dir"  # only unusable files
    f["bad_dir"].mkdir()
    for name in ("notimage.png", "truncated.png", "textbomb.png", "tiny1.png", "nan.tif"):
        os.link(f[name], f["bad_dir"] / name)
    f["mixed_dir"] = root / "mixed_dir"  # good photos and one bad file
    f["mixed_dir"].mkdir()
    for name in ("photo.png", "truncated.png"):
        os.link(f[name], f["mixed_dir"] / name)
    put("vae.json", b"".join(b"%d.png,%s\n" % (i, b"ab"[i % 2 : i % 2 + 1]) for i in range(5)))  # labels, named
    f["loop_dir"] = root / "loop_dir"
    os.symlink("loop_dir", f["loop_dir"])
    f["out"] = root / "out"  # an existing, empty output folder
    f["out"].mkdir()
    f["npy_empty.npy"] = root / "npy_empty.npy"
    np.save(f["npy_empty.npy"], np.zeros((0,), np.float32))
    f["npy_huge.npy"] = root / "npy_huge.npy"
    np.save(f["npy_huge.npy"], np.full((16,), 1e30, np.float32))
    return f


# each row's error line must name the bad file (images, folders), the flag (numbers) or the reason (outputs)
BAD_IMAGES = (
    "notimage.png",  # text with an image extension
    "empty.png",
    "truncated.png",
    "truncated.jpg",
    "truncated16.png",  # 16 bits: OpenCV's libpng must not print its own lines
    "bomb.png",  # 20000×20000 header: Pillow's DecompressionBombError
    "bomb90m.png",  # 9500×9500: Pillow's DecompressionBombWarning, then brushwork's limit
    "textbomb.png",  # zTXt chunk inflating to 64 MB
    "iccbomb.png",  # iCCP chunk inflating to 64 MB
    "itxtbomb.png",  # compressed iTXt chunk
    "tiny1.png",
    "tiny3.png",
    "nan.tif",  # float TIFF of NaN
    "loop.png",  # a symbolic link to itself
    "missing.png",
    "folder.png",  # a folder named like an image
)
BAD_FOLDERS = ("missing_dir", "photo.png", "empty_dir", "bad_dir", "loop_dir")
BAD_OUTPUTS: dict[str, str] = {  # {out} replaced by … -> substring of the error
    "{tmp}/nowhere/result.png": "does not exist",
    f"{READ_ONLY}/result.png": "not writable",
    "{tmp}/out/" + LONG_NAME: "too long",
    "{tmp}/loop.png": "symbolic links",
    "{tmp}/out": "folder",
    "{tmp}/out/result.xyz": "result.xyz",  # an extension brushwork does not write
}
BAD_NUMBERS = ("nan", "inf", "-1", "1e308", "99999999999999999999")
HUGE = ("1e308", "99999999999999999999")


@dataclass
class Command:
    """A command line with ``{photo}``-style slots: ``images`` name the image slots, ``folders`` the folder slots;
    ``out`` is the output slot (``None``: the command writes nothing), ``numbers`` the numeric flags (each with the
    values it must refuse; default :data:`BAD_NUMBERS`)."""

    argv: str
    images: tuple[str, ...] = ()
    folders: tuple[str, ...] = ()
    out: str | None = "out"
    numbers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    inputs: tuple[str, ...] = ()  # slots an output must not overwrite
    skip: tuple[str, ...] = ()  # corpus entries that are valid for this command


def _n(*flags: str, skip: tuple[str, ...] = ()) -> dict[str, tuple[str, ...]]:
    return {flag: tuple(v for v in BAD_NUMBERS if v not in skip) for flag in flags}


TRAIN_DECODER = (
    "train decoder --content {photos} --style {paintings} --out {outdir} --encoder mobilenet --encoder-weights random "
    "--steps 1 --crop 32 --batch-size 1 --quiet"
)
COMMANDS: dict[str, Command] = {
    "stylize": Command(
        "stylize {photo} {style} -o {out}",
        images=("photo", "style"),
        skip=("folder.png",),  # a folder of photos is a valid CONTENT
        numbers=_n("--max-size", "--stroke-scale", "--strength", "--quality", "--max-pixels")
        | _n("--style-weights", skip=HUGE),  # one style: any positive weight is 100 %
        inputs=("photo", "style"),
    ),
    "stylize-adain-mask": Command(
        "stylize {photo} {style} --method adain --mask {mask} -o {out}",
        images=("mask",),
        inputs=("mask",),
        skip=("tiny1.png", "tiny3.png"),  # a tiny mask is stretched to the photo: valid
    ),
    "stylize-folder": Command(
        "stylize {photos} builtin:3 -o {outdir}", folders=("photos",), out=None, skip=("photo.png",)
    ),
    "styles": Command(
        "styles {photo} -o {out}", images=("photo",), numbers=_n("--tile", "--columns"), inputs=("photo",)
    ),
    "demo": Command("demo -o {out}"),
    "models": Command("models", out=None),
    "optimize": Command(
        "optimize {photo} {style} -o {out} --iterations 1 --max-size 64",
        images=("photo", "style"),
        numbers=_n("--max-size", "--min-size", "--iterations", "--learning-rate", "--content-weight", "--style-weight")
        | _n("--tv-weight", "--stroke-scale", "--strength", "--swag", "--save-every", "--preview-every", "--seed"),
        inputs=("photo", "style"),
    ),
    "optimize-plot": Command(
        "optimize {photo} {style} -o {tmp}/out/result.png --loss-plot {out} --iterations 1 --max-size 64",
        inputs=("photo",),
    ),
    "mix": Command(
        "mix {photo} --styles {style} {style2} -o {out}",
        images=("photo", "style", "style2"),
        numbers=_n("--max-size", "--stroke-scale") | _n("--weights", skip=HUGE),
        inputs=("photo", "style"),
    ),
    "mix-compare": Command("mix {photo} --styles {style} -o {tmp}/out/result.png --compare {out}", inputs=("photo",)),
    "sample": Command(
        "sample {photo} -n 2 -o {outdir}",
        images=("photo",),
        out=None,
        numbers=_n("-n", "--temperature", "--seed", "--max-size", "--stroke-scale"),
    ),
    "interpolate": Command(
        "interpolate {photo} {style} {style2} --frames 2 -o {outgif}",
        images=("photo", "style", "style2"),
        out=None,
        numbers=_n("--frames", "--fps", "--max-size", "--stroke-scale"),
    ),
    "interpolate-strip": Command(
        "interpolate {photo} {style} {style2} --frames 2 -o {tmp}/out/walk.gif --strip {out}", inputs=("photo",)
    ),
    "style-map": Command(
        "style-map {paintings} -o {out}", folders=("paintings",), numbers=_n("--thumb", "--size", "--seed")
    ),
    "train-decoder": Command(
        TRAIN_DECODER,
        folders=("photos", "paintings"),
        out=None,
        numbers=_n("--steps", "--batch-size", "--crop", "--max-scale", "--lr", "--lr-decay", "--width")
        | _n("--threads", "--time-limit", "--seed", "--save-every", "--keep", "--val-count", "--log-every"),
    ),
    "train-style-vae": Command(
        "train style-vae --styles {paintings} -o {outst} --epochs 1 --quiet",
        folders=("paintings",),
        out=None,
        numbers=_n("--latent-dim", "--hidden", "--beta", "--epochs", "--batch-size", "--lr", "--weight-decay")
        | _n("--val-fraction", "--patience", "--warmup", "--augment", "--seed"),
    ),
    "stylize-microast": Command(
        "stylize {photo} {style} --method microast -o {out}",
        images=("photo", "style"),
        skip=("folder.png",),
        numbers=_n("--tile", "--memory-budget", skip=HUGE),
        inputs=("photo", "style"),
    ),
    "compare": Command(
        "compare {photo} {style} --methods fast -o {out} --max-size 64",
        images=("photo", "style"),
        numbers=_n("--max-size", "--metric-size"),
        inputs=("photo", "style"),
    ),
    "tune": Command(
        "tune {photo} {style} --method fast -o {outdir} --max-size 64", images=("photo", "style"), out=None
    ),
    "eval": Command(
        "eval --content {photos} --styles {paintings} --methods fast --out {outdir} --limit 1 --max-size 64 -q",
        folders=("photos", "paintings"),
        out=None,
        numbers=_n("--limit", "--max-size"),
    ),
    "video": Command("video {photo} builtin:3 -o {outmp4}", images=("photo",), out=None, numbers=_n("--crf")),
    "eval-video": Command("eval-video {photo} {photo}", images=("photo",), out=None),
}


def _env(value: str) -> dict[str, str]:
    return {"BRUSHWORK_MAX_PIXELS": value}


# rows special to one command: (id, argv template, substring, environment)
EXTRA: list[tuple[str, str, str, dict[str, str]]] = [
    ("stylize-out-is-mask", "stylize {photo} {style} --method adain --mask {mask} -o {mask}", "input", {}),
    ("stylize-folder-to-file", "stylize {photos} builtin:3 -o {tmp}/out/single.png", "folder", {}),
    ("stylize-folder-empty", "stylize {empty_dir} builtin:3 -o {outdir}", "no images", {}),
    ("stylize-folder-all-bad", "stylize {bad_dir} builtin:3 -o {outdir}", "no usable", {}),
    ("stylize-folder-strict", "stylize {mixed_dir} builtin:3 -o {outdir} --strict", "strict", {}),
    *[
        (f"stylize-max-pixels-env-{v}", "stylize {photo} {style} -o {out}", "BRUSHWORK_MAX_PIXELS", _env(v))
        for v in BAD_NUMBERS
    ],
    ("optimize-plot-is-output", "optimize {photo} {style} -o {out} --loss-plot {out} --iterations 1", "", {}),
    ("stylize-home-read-only", "stylize {photo} builtin:3 -o {out}", "BRUSHWORK_HOME", {"BRUSHWORK_HOME": "/sys/bw"}),
    ("style-map-strict", "style-map {mixed_dir} -o {out} --strict", "strict", {}),
    ("style-vae-strict", "train style-vae --styles {mixed_dir} -o {outst} --strict", "strict", {}),
    ("stylize-folder-empty-output", "stylize {photos} builtin:3 -o=", "output name is empty", {}),
    ("sample-empty-output", "sample {photo} -n 1 -o=", "output name is empty", {}),
    ("stylize-json-and-stdout", "stylize {photo} builtin:3 -o - --json", "json", {}),
    ("stylize-out-trailing-slash", "stylize {photo} builtin:3 -o {out}/", "ending in /", {}),
    ("stylize-style-is-folder", "stylize {photo} {folder.png} -o {out}", "folder.png is a folder", {}),
    ("stylize-mask-is-folder", "stylize {photo} builtin:3 --mask {folder.png} -o {out}", "is a folder", {}),
    ("stylize-tile-huge", "stylize {photo} builtin:3 -o {out} --tile 99999999999999999999", "tile", {}),
    ("stylize-budget-huge", "stylize {photo} builtin:3 -o {out} --memory-budget 99999999TB", "too large", {}),
    (
        "optimize-save-every-over-an-input",
        "optimize {photo} {r.00001.png} -o {tmp}/r.png --iterations 1 --save-every 1",
        "save every",
        {},
    ),
    ("optimize-loss-plot-empty", "optimize {photo} {style} -o {out} --iterations 1 --loss-plot=", "loss plot", {}),
    (
        "optimize-weights-folder",
        "optimize {photo} {style} -o {out} --iterations 1 --backbone mobilenet --weights {folder.png}",
        "is a folder",
        {},
    ),
    ("interpolate-fps-tiny", "interpolate {photo} {style} {style2} --frames 2 -o {outmp4} --fps 1e-300", "fps", {}),
    ("style-map-of-a-file", "style-map {photo} -o {out}", "is a file", {}),
    ("serve-max-size", "serve --max-size 8", "max size", {}),
    ("serve-workers", "serve --workers 2147483647", "workers", {}),
    ("serve-unknown-host", "serve --host nonexistent.invalid --token 0123456789", "nonexistent.invalid", {}),
    ("train-decoder-init-for-microast-only", TRAIN_DECODER + " --init random", "init", {}),
    ("mix-npy-empty", "mix {photo} --styles {npy_empty.npy} {style} -o {out}", "npy_empty.npy", {}),
    ("mix-npy-huge", "mix {photo} --styles {npy_huge.npy} {style} -o {out}", "npy_huge.npy", {}),
    (
        "style-vae-labels-is-config",
        "train style-vae --styles {paintings} -o {tmp}/vae.safetensors --labels {vae.json}",
        "",
        {},
    ),
    ("train-decoder-out-is-content", TRAIN_DECODER.replace("{outdir}", "{photos}"), "photos", {}),
    ("train-decoder-strict", TRAIN_DECODER.replace("{photos}", "{mixed_dir}") + " --strict", "strict", {}),
    ("train-decoder-encoder", TRAIN_DECODER + " --encoder resnet", "encoder", {}),
    ("train-decoder-out-read-only", TRAIN_DECODER.replace("{outdir}", f"{READ_ONLY}/run"), "not writable", {}),
    ("train-decoder-out-long", TRAIN_DECODER.replace("{outdir}", "{tmp}/out/" + "r" * 300), "too long", {}),
    ("train-decoder-out-loop", TRAIN_DECODER.replace("{outdir}", "{loop_dir}"), "symbolic links", {}),
    ("train-decoder-out-file", TRAIN_DECODER.replace("{outdir}", "{photo}"), "file", {}),
    ("style-vae-out-read-only", "train style-vae --styles {paintings} -o /sys/v.safetensors", "not writable", {}),
    ("style-map-coords-read-only", "style-map {paintings} -o {out} --coords /sys/c.csv", "not writable", {}),
]


# ---------------------------------------------------------------- the table


def _rows() -> Iterator[tuple[str, str, str, dict[str, str]]]:
    for name, cmd in COMMANDS.items():
        for slot in cmd.images:
            for bad in BAD_IMAGES:
                if bad not in cmd.skip:
                    yield f"{name}-{slot}-{bad}", cmd.argv.replace(f"{{{slot}}}", f"{{{bad}}}"), bad, {}
        for slot in cmd.folders:
            for bad in BAD_FOLDERS:
                if bad not in cmd.skip:
                    yield f"{name}-{slot}-{bad}", cmd.argv.replace(f"{{{slot}}}", f"{{{bad}}}"), bad, {}
        if cmd.out:
            for bad, why in BAD_OUTPUTS.items():
                key = bad.rsplit("/", 1)[-1][:20]
                yield f"{name}-out-{key}", cmd.argv.replace(f"{{{cmd.out}}}", bad), why, {}
            for slot in cmd.inputs:
                yield f"{name}-out-is-{slot}", cmd.argv.replace(f"{{{cmd.out}}}", f"{{{slot}}}"), "input", {}
        for flag, values in cmd.numbers.items():
            for value in values:
                yield f"{name}{flag}={value}", f"{cmd.argv} {flag} {value}", flag.lstrip("-"), {}
    yield from EXTRA


ROWS = list(_rows())


@pytest.fixture(scope="module")
def fx(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("bad_input")
    return {"tmp": root, **build_fixtures(root)}


def _snapshot(root: Path) -> dict[str, str]:
    """Every entry under ``root`` -> a hash of its content (links and folders by what they are)."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder) / name
            rel = os.fspath(p.relative_to(root))
            if p.is_symlink():
                found[rel] = "link:" + os.readlink(p)
            elif p.is_dir():
                found[rel] = "dir"
            else:
                found[rel] = hashlib.sha256(p.read_bytes()).hexdigest()
    return found


def _argv(template: str, fx: dict[str, Path]) -> list[str]:
    values = {k: os.fspath(v) for k, v in fx.items()}
    values.update(
        photo=os.fspath(fx["photo.png"]),
        style=os.fspath(fx["style.jpg"]),
        style2=os.fspath(fx["photo.png"]),
        mask=os.fspath(fx["mask.png"]),
        out=os.fspath(fx["out"] / "result.png"),
        outdir=os.fspath(fx["out"] / "run"),
        outgif=os.fspath(fx["out"] / "walk.gif"),
        outmp4=os.fspath(fx["out"] / "clip.mp4"),
        outst=os.fspath(fx["out"] / "vae.safetensors"),
        missing_dir=os.fspath(fx["tmp"] / "missing_dir"),
    )
    return [re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], word) for word in template.split()]


def _words(text: str) -> str:
    """Lower case, with - and _ as spaces: "--stroke-scale" matches "stroke scale"."""
    return re.sub(r"[-_ ]+", " ", text.lower()).strip()


LINE = re.compile(r"^brushwork( [\w-]+)*: error: \S")


@pytest.mark.parametrize("argv, expected, env", [r[1:] for r in ROWS], ids=[r[0] for r in ROWS])
def test_bad_input_is_one_line_and_exit_2(
    argv: str,
    expected: str,
    env: dict[str, str],
    fx: dict[str, Path],
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    if "BRUSHWORK_HOME" in env:  # a store the networks must come from: none loaded by an earlier test may serve
        from brushwork.methods import fast

        fast.get_stylizer.cache_clear()
    for left in fx["out"].iterdir():  # a failed row must not change the next one
        shutil.rmtree(left) if left.is_dir() and not left.is_symlink() else left.unlink()
    before = _snapshot(fx["tmp"])
    capfd.readouterr()
    try:
        code = main(_argv(argv, fx))
    except SystemExit as exc:  # argparse
        code = exc.code
    out, err = capfd.readouterr()
    assert code == 2, f"exit code {code}; stdout {out!r}; stderr {err[-2000:]!r}"
    lines = err.splitlines()
    assert len(lines) == 1 and LINE.match(lines[0]), f"stderr is not one error line: {err[-3000:]!r}"
    assert _words(expected) in _words(lines[0]), lines[0]
    assert _snapshot(fx["tmp"]) == before


# ---------------------------------------------------------------- what a run does with a few bad files


def _run(argv: list[str], capfd: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capfd.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capfd.readouterr()
    return code, out, err


def test_a_folder_run_skips_a_bad_file_with_one_warning_and_counts_it(
    fx: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "sub").mkdir()
    for name in ("photo.png", "truncated.png", "style.jpg"):
        os.link(fx[name], folder / name)
    code, out, err = _run(["stylize", str(folder), "builtin:3", "-o", str(tmp_path / "out"), "--max-size", "32"], capfd)
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("brushwork: warning:")]
    assert len(warnings) == 2, err  # the bad file, and the sub-folder that is not read
    assert any("truncated.png" in w and "skipped" in w for w in warnings)
    assert any("sub-folder" in w for w in warnings)
    assert "wrote 2 of 3 images" in out and "1 skipped" in out
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png", "style.png"]


def test_a_legal_250_byte_name_is_written(fx: dict[str, Path], tmp_path: Path) -> None:
    from brushwork import io

    dest = tmp_path / ("n" * 246 + ".png")
    io.save_image(np.zeros((8, 8, 3), np.float32), dest)
    assert dest.is_file() and os.listdir(tmp_path) == [dest.name]


def test_train_decoder_skips_bad_images_counts_them_and_strict_refuses(
    fx: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        os.link(fx["photos"] / f"{i}.png", photos / f"{i}.png")
    os.link(fx["truncated.png"], photos / "bad.png")
    out = tmp_path / "run"
    argv = _argv(TRAIN_DECODER, fx)
    argv[argv.index("--content") + 1] = str(photos)
    argv[argv.index("--out") + 1] = str(out)
    code, stdout, err = _run([*argv, "--val-every", "0"], capfd)
    assert code == 0, err
    assert [line for line in err.splitlines() if line.strip()] == [
        f"brushwork: warning: cannot read {photos / 'bad.png'}: file is truncated; skipped"
    ]
    assert "trained on 2 photos and 5 paintings; 1 unusable file skipped" in stdout
    assert (out / "decoder.safetensors").is_file()
    code, _, err = _run([*argv, "--strict"], capfd)  # --strict: the bad file is the error, before any work
    assert code == 2 and "bad.png" in err and "strict" in err


def test_train_decoder_refuses_a_second_run_into_one_folder(fx: dict[str, Path], tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "run"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        argv = _argv(TRAIN_DECODER.replace("{outdir}", os.fspath(out)), fx)
        assert main(argv) == 2
    assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing else written


def test_stale_checkpoint_temporaries_are_removed(tmp_path: Path) -> None:
    from brushwork.train import checkpoint

    root = tmp_path / "checkpoints"
    (root / ".step-0000010.1234.tmp").mkdir(parents=True)
    (root / ".step-0000010.1234.tmp" / "model.safetensors").write_bytes(b"half")
    (root / ".last.json.1234.tmp").write_text("{")
    (root / "step-0000005").mkdir()
    removed = checkpoint.remove_stale(root)
    assert len(removed) == 2 and sorted(p.name for p in root.iterdir()) == ["step-0000005"]


def test_train_decoder_default_encoder_works_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from brushwork.train.decoder import DecoderTrainConfig, default_encoder

    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))  # no VGG weights in the store
    assert DecoderTrainConfig().encoder == ""  # the arch's default, below
    assert default_encoder("autoencoder") == "mobilenet" and default_encoder("microast") == "mobilenet"


def _deny(monkeypatch: pytest.MonkeyPatch, folder: Path, file: Path) -> None:
    """Make ``folder`` unlistable and ``file`` unreadable in this process (root reads everything, so chmod cannot
    show it)."""
    import builtins
    import pathlib

    import brushwork.io

    iterdir, real_open = pathlib.Path.iterdir, builtins.open

    def fake_iterdir(self: Path) -> Iterator[Path]:
        if os.fspath(self) == os.fspath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(self))
        return iterdir(self)

    def fake_open(path: object, *a: object, **k: object) -> object:
        if os.fspath(path) == os.fspath(file):  # type: ignore[arg-type]
            raise PermissionError(13, "Permission denied", os.fspath(file))
        return real_open(path, *a, **k)  # type: ignore[call-overload]

    monkeypatch.setattr(pathlib.Path, "iterdir", fake_iterdir)
    monkeypatch.setattr(brushwork.io, "open", fake_open, raising=False)


def test_unreadable_folder_and_file(
    fx: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    locked, mixed = tmp_path / "locked", tmp_path / "mixed"
    for folder in (locked, mixed):
        folder.mkdir()
        os.link(fx["photo.png"], folder / "a.png")
    os.link(fx["style.jpg"], mixed / "b.jpg")
    _deny(monkeypatch, locked, mixed / "b.jpg")
    for argv in (["stylize", str(locked), "builtin:3", "-o", str(tmp_path / "o1")], _argv(TRAIN_DECODER, fx)):
        if argv[0] == "train":
            argv[argv.index("--content") + 1] = str(locked)
        code, _, err = _run(argv, capfd)
        assert code == 2 and err.splitlines() == [f"brushwork: error: cannot read {locked}: permission denied"], err
    assert not (tmp_path / "o1").exists()
    code, out, err = _run(["stylize", str(mixed), "builtin:3", "-o", str(tmp_path / "o2"), "--max-size", "32"], capfd)
    assert code == 0 and "1 skipped" in out, err
    assert [line for line in err.splitlines() if "warning" in line] == [
        f"brushwork: warning: cannot read {mixed / 'b.jpg'}: permission denied; skipped"
    ]


@pytest.mark.skipif(IS_ROOT, reason="root reads every folder: the test above covers it in-process")
def test_unreadable_folder_by_permissions(
    fx: dict[str, Path], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    os.link(fx["photo.png"], locked / "a.png")
    locked.chmod(0)
    try:
        code, _, err = _run(["stylize", str(locked), "builtin:3", "-o", str(tmp_path / "o")], capfd)
    finally:
        locked.chmod(0o755)
    assert code == 2 and len(err.splitlines()) == 1 and "permission denied" in err


def test_a_checkpoint_that_cannot_be_written_leaves_no_temporary_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from brushwork.errors import OutputError
    from brushwork.train import checkpoint

    def full(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", full)  # the optimizer state: the disk fills up halfway through
    with pytest.raises(OutputError, match="No space left on device"):
        checkpoint.save(tmp_path / "ck", 10, {"w": torch.zeros(2)}, {"optimizer": {}}, {})
    assert os.listdir(tmp_path / "ck") == []
