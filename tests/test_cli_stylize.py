"""``brushwork stylize``, ``styles`` and ``models`` end to end: every flag and every user error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from brushwork import io, samples
from brushwork.cli import main

PHOTO, STYLE = str(samples.SAMPLE_PHOTO), str(samples.SAMPLE_STYLE)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def size(path: Path) -> tuple[int, int]:
    with Image.open(path) as im:
        return im.size


def test_single_image_with_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "out.jpg"
    code, stdout, _ = run(capsys, "stylize", PHOTO, STYLE, "-o", str(out), "--max-size", "96", "--json")
    assert code == 0
    record = json.loads(stdout)
    assert record["output"] == str(out) and (record["width"], record["height"]) == (96, 64)
    assert size(out) == (96, 64)


def test_builtin_blend_weights_strength_colour_stroke(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    common = ["--max-size", "96", "--device", "cpu"]
    outs = {}
    for name, extra in {
        "a": ["builtin:3"],
        "b": ["builtin:3", "builtin:20", "--style-weights", "1", "3"],
        "c": ["builtin:3", "--strength", "0.3"],
        "d": ["builtin:3", "--preserve-color"],
        "e": ["builtin:3", "--stroke-scale", "2"],
    }.items():
        outs[name] = tmp_path / f"{name}.png"
        assert run(capsys, "stylize", PHOTO, *extra, "-o", str(outs[name]), *common)[0] == 0
    img = {k: io.load_image(v).rgb for k, v in outs.items()}
    photo = io.resize_to_max(io.load_image(PHOTO).rgb, 96)
    assert all(x.shape == (64, 96, 3) for x in img.values())
    assert np.abs(img["a"] - img["b"]).mean() > 0.02  # the blend differs from style 3 alone
    assert np.abs(img["c"] - photo).mean() < np.abs(img["a"] - photo).mean()  # weaker style
    chroma = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)[..., 1:]  # noqa: E731
    assert np.abs(chroma(img["d"]) - chroma(photo)).mean() < np.abs(chroma(img["a"]) - chroma(photo)).mean()
    assert np.abs(img["e"] - img["a"]).mean() > 0.02


def test_folder_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    for i, photo in enumerate(samples.SAMPLE_PHOTOS):
        shutil.copy(photo, src / f"p{i}.jpg")
    (src / "notes.txt").write_text("not an image")
    dst = tmp_path / "out"
    code, stdout, _ = run(capsys, "stylize", str(src), "builtin:1", "-o", str(dst), "--max-size", "64", "--json",
                          "--format", "webp", "--quality", "80")  # fmt: skip
    assert code == 0
    records = json.loads(stdout)
    assert sorted(Path(r["output"]).name for r in records) == ["p0.webp", "p1.webp"]
    assert all(size(dst / n)[0] <= 64 for n in ("p0.webp", "p1.webp"))


def test_batch_reports_bad_files_and_continues(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(PHOTO, src / "good.jpg")
    (src / "bad.jpg").write_bytes(b"")
    code, out, err = run(capsys, "stylize", str(src), "builtin:1", "-o", str(tmp_path / "out"), "--max-size", "48")
    assert code == 0 and "1 skipped" in out  # skipped with a warning, counted in the summary
    assert "warning" in err and "bad.jpg" in err and "Traceback" not in err
    assert (tmp_path / "out" / "good.png").is_file() and not (tmp_path / "out" / "bad.png").exists()
    code, _, err = run(capsys, "stylize", str(src), "builtin:1", "-o", str(tmp_path / "strict"), "--strict")
    assert code == 2 and "bad.jpg" in err and len(err.strip().splitlines()) == 1
    (src / "good.jpg").unlink()
    code, _, err = run(capsys, "stylize", str(src), "builtin:1", "-o", str(tmp_path / "none"))
    assert code == 2 and "no usable image" in err.splitlines()[-1]


def test_styles_contact_sheet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sheet.png"
    assert run(capsys, "styles", PHOTO, "-o", str(out), "--tile", "32", "--columns", "9")[0] == 0
    w, h = size(out)
    assert w > 9 * 32 and h > 3 * 32  # 27 tiles in 3 rows of 9


def test_models_listing(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, "models", "--json")
    rows = {r["name"]: r for r in json.loads(stdout)}
    assert code == 0
    assert rows["dumoulin-26"]["status"] in ("cached", "source")
    assert rows["vgg19"]["source"].endswith("vgg19-dcbb9e9d.pth")
    code, stdout, _ = run(capsys, "models")
    assert code == 0 and "vgg19" in stdout and "Apache-2.0" in stdout


def _truncated(tmp_path: Path) -> Path:
    data = Path(PHOTO).read_bytes()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t: ["stylize", str(t / "missing.jpg"), STYLE, "-o", str(t / "o.png")], "not found"),
        (lambda t: ["stylize", PHOTO, str(t / "missing.jpg"), "-o", str(t / "o.png")], "not found"),
        (lambda t: ["stylize", str(_empty(t)), STYLE, "-o", str(t / "o.png")], "empty"),
        (lambda t: ["stylize", str(_truncated(t)), STYLE, "-o", str(t / "o.png")], "truncated"),
        (lambda t: ["stylize", str(_text(t)), STYLE, "-o", str(t / "o.png")], "not a supported image"),
        (lambda t: ["stylize", PHOTO, str(_text(t)), "-o", str(t / "o.png")], "not a supported image"),
        (lambda t: ["stylize", PHOTO, "builtin:99", "-o", str(t / "o.png")], "no built-in style 99"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", str(t / "nodir" / "o.png")], "does not exist"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", str(t / "o.xyz")], "xyz"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", PHOTO], "input"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", STYLE], "input"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", str(t / "o.png"), "--strength", "1.5"], "--strength"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", str(t / "o.png"), "--strength", "nan"], "--strength"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", str(t / "o.png"), "--max-size", "0"], "--max-size"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", str(t / "o.png"), "--stroke-scale", "10"], "stroke scale"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", str(t / "o.png"), "--style-weights", "1", "2"], "2 style weights"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", str(t / "o.png"), "--device", "tpu"], "--device"),
        (lambda t: ["stylize", PHOTO, STYLE, "-o", str(t / "o.jpg"), "--quality", "101"], "quality"),
        (lambda t: ["stylize", PHOTO, "builtin:1", STYLE, "-o", str(t / "o.png")], "cannot blend"),
        (lambda t: ["stylize", PHOTO, "builtin:1", "-o", str(t / "o.png"), "--max-pixels", "1000"], "pixel"),
        (lambda t: ["stylize", PHOTO, STYLE], "-o"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], make_args, message):
    args = make_args(tmp_path)
    before = {p: p.stat().st_mtime_ns for p in (Path(PHOTO), Path(STYLE))}
    code, _, err = run(capsys, *args)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert not any(p.suffix in (".png", ".xyz") and p.name.startswith("o.") for p in tmp_path.rglob("*"))
    assert before == {p: p.stat().st_mtime_ns for p in before}  # inputs untouched


def _empty(tmp_path: Path) -> Path:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    return path


def _text(tmp_path: Path) -> Path:
    path = tmp_path / "text.jpg"
    path.write_text("hello")
    return path


def test_cuda_request_without_cuda_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = run(capsys, "stylize", PHOTO, "builtin:1", "-o", str(tmp_path / "o.png"), "--device", "cuda")
    assert code == 2 and "not available" in err and not (tmp_path / "o.png").exists()


def test_real_process_no_traceback_and_exit_2(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-m", "brushwork", "stylize", PHOTO, "builtin:42", "-o", str(tmp_path / "o.png")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip() == "brushwork: error: no built-in style 42: use builtin:0 to builtin:25"
    cmd = [sys.executable, "-m", "brushwork", "stylize", PHOTO, "builtin:2", "-o", str(tmp_path / "o.png")]
    ok = subprocess.run(
        [*cmd, "--max-size", "64"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert ok.returncode == 0, ok.stderr
    assert size(tmp_path / "o.png") == (64, 43)


def test_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run(capsys, "stylize", "--help")
    assert code == 0
    for flag in ("--style-weights", "--strength", "--preserve-color", "--max-size", "--stroke-scale", "--device",
                 "--json", "--method", "--decoder", "--format", "--quality", "--max-pixels"):  # fmt: skip
        assert flag in stdout


def test_autoencoder_methods_decoder_and_mask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    mosaic, ink = str(samples.STYLES["mosaic"]), str(samples.STYLES["ink"])
    common = ["--max-size", "96", "--device", "cpu"]
    out = {k: tmp_path / f"{k}.png" for k in ("adain", "wct", "half", "masked")}
    assert run(capsys, "stylize", PHOTO, mosaic, "--method", "adain", "-o", str(out["adain"]), *common)[0] == 0
    assert run(capsys, "stylize", PHOTO, mosaic, "--method", "wct", "--decoder", "decoder-mobilenet",
               "-o", str(out["wct"]), *common)[0] == 0  # fmt: skip
    assert run(capsys, "stylize", PHOTO, mosaic, "--method", "adain", "--strength", "0.3",
               "-o", str(out["half"]), *common)[0] == 0  # fmt: skip
    mask = np.zeros((64, 96), np.uint8)
    mask[:, :48] = 255  # left: first style (mosaic), right: second (ink)
    Image.fromarray(mask).save(tmp_path / "mask.png")
    assert run(capsys, "stylize", PHOTO, mosaic, ink, "--method", "adain", "--mask", str(tmp_path / "mask.png"),
               "-o", str(out["masked"]), *common)[0] == 0  # fmt: skip
    img = {k: io.load_image(v).rgb for k, v in out.items()}
    assert all(x.shape == (64, 96, 3) for x in img.values())
    photo = io.resize_to_max(io.load_image(PHOTO).rgb, 96)
    assert np.abs(img["half"] - photo).mean() < np.abs(img["adain"] - photo).mean()
    saturation = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2HSV)[..., 1]  # noqa: E731
    left, right = saturation(img["masked"])[:, 8:40].mean(), saturation(img["masked"])[:, 56:88].mean()
    assert left > right + 0.05  # the colourful mosaic on the left, grey ink on the right


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["builtin:2", "--method", "adain"], "builtin: styles belong to method 'fast'"),
        ([STYLE, "--mask", "nomask.png"], "mask image not found"),
        ([STYLE, "--method", "optimize", "--decoder", "x"], "method 'optimize' does not take the option 'decoder'"),
        ([STYLE, "--mask", PHOTO, "--style-weights", "1"], "either style weights or a mask"),
        ([STYLE, "--method", "wct", "--mask", "nomask.png"], "mask image not found"),
        ([STYLE, "--method", "adain", "--decoder", "no-such-decoder"], "no-such-decoder"),
    ],
)
def test_autoencoder_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str):
    code, _, err = run(capsys, "stylize", PHOTO, *extra, "-o", str(tmp_path / "o.png"))
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "o.png").exists()


def test_folder_with_same_stem_writes_distinct_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(PHOTO, src / "a.jpg")
    Image.open(PHOTO).save(src / "a.png")
    code, stdout, _ = run(capsys, "stylize", str(src), "builtin:1", "-o", str(tmp_path / "out"), "--max-size", "32",
                          "--json")  # fmt: skip
    assert code == 0
    assert sorted(Path(r["output"]).name for r in json.loads(stdout)) == ["a_jpg.png", "a_png.png"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--max-size", "8"], "max size must be from 16 to"),
        (["--stroke-scale", "9"], "stroke scale must be at least 0.25 and at most 4"),
        (["--quality", "200"], "quality must be 1-100"),
    ],
)
def test_folder_mode_checks_values_once_before_making_the_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(PHOTO, src / "a.jpg")
    shutil.copy(PHOTO, src / "b.jpg")
    code, _, err = run(capsys, "stylize", str(src), "builtin:1", "-o", str(tmp_path / "out"), *extra)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    assert not (tmp_path / "out").exists()


def test_folder_output_that_cannot_be_made(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(PHOTO, src / "a.jpg")
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    code, _, err = run(capsys, "stylize", str(src), "builtin:1", "-o", str(blocker / "sub"))
    assert code == 2 and "cannot create the folder" in err and len(err.strip().splitlines()) == 1


def test_other_value_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["stylize", PHOTO, STYLE, "--method", "adain", "--iterations", "2"], "does not take the option 'iterations'"),
        (["styles", PHOTO, "--tile", "5000"], "--tile must be at most 1024"),
    ]
    for argv, message in cases:
        code, _, err = run(capsys, *argv, "-o", str(tmp_path / "o.png"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
        assert not (tmp_path / "o.png").exists()


def test_unusable_cache_folder_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    not_a_folder = tmp_path / "home"
    not_a_folder.write_text("x")
    monkeypatch.setenv("BRUSHWORK_HOME", str(not_a_folder))
    from brushwork.methods import fast

    fast.get_stylizer.cache_clear()
    code, _, err = run(capsys, "stylize", PHOTO, STYLE, "-o", str(tmp_path / "o.png"), "--max-size", "32")
    assert code == 2 and "cannot use the cache folder" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.png").exists()


def test_adain_respects_max_pixels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "stylize", PHOTO, STYLE, "--method", "adain", "--max-pixels", "100",
                       "-o", str(tmp_path / "o.png"))  # fmt: skip
    assert code == 2 and "pixels, more than the limit" in err and not (tmp_path / "o.png").exists()


def test_runtimes_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(PHOTO, src / "a.jpg")
    shutil.copy(samples.SAMPLE_PHOTOS[1], src / "b.jpg")
    outs = {}
    for runtime in ("onnxruntime", "openvino", "torch", "auto"):
        outs[runtime] = tmp_path / runtime
        code, _, err = run(capsys, "stylize", str(src), "builtin:3", "-o", str(outs[runtime]), "--max-size", "64",
                           "--runtime", runtime)  # fmt: skip
        assert code == 0, err
    for name in ("a.png", "b.png"):
        ref = io.load_image(outs["onnxruntime"] / name).rgb
        for runtime in ("openvino", "torch", "auto"):
            assert np.abs(io.load_image(outs[runtime] / name).rgb - ref).max() <= 2 / 255


def test_runtime_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "stylize", PHOTO, STYLE, "--method", "adain", "--runtime", "openvino",
                       "-o", str(tmp_path / "o.png"))  # fmt: skip
    assert code == 2 and "method 'adain' does not take the option 'runtime'" in err
    code, _, err = run(capsys, "stylize", PHOTO, STYLE, "--runtime", "tensorrt", "-o", str(tmp_path / "o.png"))
    assert code == 2 and "--runtime" in err and len(err.strip().splitlines()) == 1


def test_the_command_ends_its_process_with_the_exit_code_and_atexit_handlers(tmp_path: Path) -> None:
    # brushwork.cli.entry skips the interpreter's teardown after a command (os._exit) but keeps atexit and stdio
    code = (
        "import atexit, sys; from brushwork.cli import entry; "
        "atexit.register(lambda: print('atexit ran')); sys.argv = ['brushwork', *sys.argv[1:]]; entry()"
    )
    out = tmp_path / "out.png"
    ok = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "stylize",
            str(samples.SAMPLE_PHOTO),
            "builtin:3",
            "-o",
            str(out),
            "--max-size",
            "64",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ok.returncode == 0, ok.stderr
    assert out.is_file() and "wrote" in ok.stdout and ok.stdout.rstrip().endswith("atexit ran")
    bad = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "stylize",
            str(tmp_path / "missing.jpg"),
            "builtin:3",
            "-o",
            str(tmp_path / "x.png"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 2 and bad.stderr.strip().startswith("brushwork: error:") and "atexit ran" in bad.stdout
    assert len(bad.stderr.strip().splitlines()) == 1
