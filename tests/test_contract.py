"""The contract, over every method: one entry point, one vocabulary, one mask convention, one progress event."""

from __future__ import annotations

import argparse
import importlib
import sys
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork import api, io, options, samples
from brushwork.errors import BrushworkError, InputError

# small and quick settings per method; every other option takes its default
QUICK: dict[str, dict] = {
    "fast": {},
    "microast": {},
    "adain": {},
    "wct": {},
    "optimize": {"iterations": 6, "backbone": "mobilenet"},
}
SIZE = 64


def quick(method: str, **extra: object) -> dict:
    return {"max_size": SIZE, "device": "cpu", **QUICK[method], **extra}


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return io.resize_to_max(io.load_image(samples.SAMPLE_PHOTO).rgb, SIZE)  # 64×43


@pytest.fixture(scope="module")
def styles() -> list[np.ndarray]:
    return [io.load_image(samples.STYLES[name]).rgb for name in ("mosaic", "ink")]


def test_every_registered_method_is_covered() -> None:
    assert set(QUICK) == set(api.METHODS)


@pytest.mark.parametrize("method", sorted(QUICK))
def test_same_return_type_and_size(method: str, styles: list[np.ndarray]) -> None:
    out = api.stylize(samples.SAMPLE_PHOTO, styles[0], method=method, **quick(method))
    assert isinstance(out, Image.Image) and out.mode == "RGB" and out.size == (64, 43)
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., :3] = 180
    rgba[:, 30:, 3] = 255
    out = api.stylize(rgba, styles[0], method=method, **quick(method))
    assert out.mode == "RGBA" and out.size == (60, 40)
    alpha = np.asarray(out)[..., 3]
    assert alpha[:, :29].max() == 0 and alpha[:, 31:].min() == 255


@pytest.mark.parametrize("method", sorted(QUICK))
@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("strength", 1.5, "strength must be at least 0 and at most 1"),
        ("strength", float("nan"), "strength must be a finite number"),
        ("stroke_scale", 9, "stroke scale must be at least 0.25 and at most 4"),
        ("max_size", 8, "max size must be from"),
        ("style_weights", (1, 2), "got 2 style weights for 1 styles"),
        ("style_weights", (-1,), "not negative"),
        ("seed", -1, "seed must be"),
        ("device", "tpu", "unknown device"),
        ("preserve_color", "yes", "preserve_color is true or false"),
        ("no_such_option", 1, "does not take the option 'no_such_option'"),
    ],
)
def test_same_options_refused_the_same_way(method: str, option: str, value: object, message: str) -> None:
    with pytest.raises(BrushworkError, match=message) as exc:
        api.renderer([samples.SAMPLE_STYLE], method=method, **{option: value})
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("method", "kwargs", "message"),
    [
        ("fast", {"style_weights": 1}, "style weights must be a list of numbers"),
        ("fast", {"style_weights": "12"}, "style weights must be a list of numbers"),
        ("fast", {"style_weights": []}, "style weights: give at least one number"),
        ("fast", {"style_weights": [[1]]}, "style weights must be a number"),
        ("fast", {"method": ["fast"]}, "unknown method"),
        ("fast", {"progress": 5}, "progress must be a function"),
        ("fast", {"max_pixels": "x"}, "max pixels must be a whole number"),
        ("fast", {"max_pixels": 0}, "max pixels must be a whole number"),
        ("microast", {"decoder": 5}, "decoder must be a string"),
        ("microast", {"style_size": "512"}, "style size must be a whole number"),
        ("microast", {"style_size": None}, "style size cannot be None"),
        ("microast", {"style_size": 0}, "style size must be from 16"),
        ("optimize", {"min_size": 0}, "min size must be from 16"),
        ("optimize", {"content_weight": "1"}, "content weight must be a number"),
        ("optimize", {"tv_weight": -1}, "tv weight must be at least 0"),
        ("optimize", {"learning_rate": 0}, "learning rate must be more than 0"),
        ("optimize", {"style_layers": 5}, "style layers must be a name or a list of names"),
        ("optimize", {"style_layer_weights": ("a",)}, "style layer weights must be a number"),
        ("optimize", {"weights": None}, "weights cannot be None"),
        ("optimize", {"swag": "x"}, "swag must be a number"),
        ("optimize", {"preview_every": "2"}, "preview every must be a whole number"),
        ("optimize", {"preview_every": -1}, "preview every must be from 0"),
        ("optimize", {"normalize_gradients": "yes"}, "normalize_gradients is true or false"),
        ("optimize", {"loss": "l1"}, "loss must be one of gram, mean_std, w2"),
        ("optimize", {"min_size": 16, "max_size": 512, "iterations": 2}, "iterations must be at least"),
    ],
)
def test_wrong_types_and_ranges_are_refused_before_any_work(method: str, kwargs: dict, message: str) -> None:
    kwargs = {"method": method, **kwargs}
    with pytest.raises(BrushworkError, match=message) as exc:
        api.renderer([samples.SAMPLE_STYLE], **kwargs)
    assert "\n" not in str(exc.value)


def test_one_layer_name_is_one_layer_not_its_letters() -> None:
    checked = api.check_options("optimize", {"content_layers": "relu4_2", "style_layers": ["a", "b"]})
    assert checked.content_layers == ("relu4_2",) and checked.style_layers == ("a", "b")


@pytest.mark.parametrize(
    ("content", "style", "kwargs", "message"),
    [
        (None, "S", {}, "cannot use NoneType None as an image"),
        (5, "S", {}, "cannot use int 5 as an image"),
        (b"x.png", "S", {}, "cannot use bytes"),
        ("P", None, {}, "styles must be a style or a list of styles"),
        ("P", [1.5], {}, "cannot use float 1.5 as an image"),
        ("P", True, {}, "a style must be an image or builtin:N"),
        ("P", "builtin:²", {}, "use builtin:0 to builtin:25"),
        ("P", np.zeros((8, 8, 3), np.float32), {}, r"style image is too small \(8×8\)"),
        ("P", "S", {"mask": 5}, "cannot use int 5 as an image"),
        ("P", "S", {"mask": np.zeros((0, 64))}, "mask must be an H×W array of numbers"),
        ("P", "S", {"mask": np.full((64, 64), "a")}, "mask must be an H×W array of numbers"),
        (np.linspace(0, 255, 64 * 64 * 3).reshape(64, 64, 3), "S", {}, "float pixels must be in 0..1"),
    ],
)
def test_wrong_inputs_are_one_line_errors(content: object, style: object, kwargs: dict, message: str) -> None:
    content = samples.SAMPLE_PHOTO if isinstance(content, str) and content == "P" else content
    style = samples.SAMPLE_STYLE if isinstance(style, str) and style == "S" else style
    with pytest.raises(BrushworkError, match=message) as exc:
        api.stylize(content, style, max_size=SIZE, **kwargs)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_renderer_refuses_pixels_that_are_not_finite(bad: float) -> None:
    render = api.renderer([samples.SAMPLE_STYLE], max_size=SIZE).render
    with pytest.raises(InputError, match="NaN or infinite"):
        render(np.full((32, 32, 3), bad, np.float32))
    with pytest.raises(InputError, match="H×W×3 image of numbers"):
        render(np.full((32, 32, 3), "a"))


def test_long_thin_photos_work_or_say_why() -> None:
    thin = np.random.default_rng(0).random((20, 2000, 3)).astype(np.float32)
    out = api.stylize(thin, samples.SAMPLE_STYLE, method="microast", strength=0.5, max_size=None)
    assert out.size == (2000, 20)  # the photo's own signal keeps 16 px on its shorter side
    with pytest.raises(InputError, match=r"too thin for max size 512: it would be 512×5.*raise max size"):
        api.stylize(thin, samples.SAMPLE_STYLE, method="optimize", iterations=1, backbone="mobilenet")


def test_method_specific_options_are_refused_by_the_others() -> None:
    with pytest.raises(InputError, match="method 'fast' does not take the option 'iterations'"):
        api.renderer([samples.SAMPLE_STYLE], method="fast", iterations=3)
    with pytest.raises(InputError, match="method 'optimize' does not take the option 'runtime'"):
        api.renderer([samples.SAMPLE_STYLE], method="optimize", runtime="openvino")
    with pytest.raises(InputError, match="unknown method 'gatys'"):
        api.renderer([samples.SAMPLE_STYLE], method="gatys")
    with pytest.raises(InputError, match="builtin: styles belong to method 'fast'"):
        api.renderer(["builtin:3"], method="adain")


@pytest.mark.parametrize("method", sorted(QUICK))
def test_the_mask_selects_the_same_region_in_every_method(
    method: str, photo: np.ndarray, styles: list[np.ndarray]
) -> None:
    """White selects the first style: the white half of the result is closer to the first style's rendering."""
    h, w = photo.shape[:2]
    mask = np.zeros((h, w), np.float32)
    mask[:, : w // 2] = 1.0
    both = api.renderer(styles, method=method, **quick(method)).render(photo, mask)
    first = api.renderer(styles[:1], method=method, **quick(method)).render(photo)
    second = api.renderer(styles[1:], method=method, **quick(method)).render(photo)
    left, right = slice(0, w // 2 - 6), slice(w // 2 + 6, w)

    def d(a: np.ndarray, b: np.ndarray, part: slice) -> float:
        return float(np.abs(a[:, part] - b[:, part]).mean())

    assert d(both, first, left) < d(both, second, left)
    assert d(both, second, right) < d(both, first, right)
    # one style: white stylized, black keeps the photo
    single = api.renderer(styles[:1], method=method, **quick(method)).render(photo, mask)
    assert d(single, photo, right) < 0.5 * d(single, photo, left)


@pytest.mark.parametrize("method", sorted(QUICK))
def test_strength_and_preserve_color_mean_the_same(method: str, photo: np.ndarray, styles: list[np.ndarray]) -> None:
    import cv2

    full = api.renderer(styles[:1], method=method, **quick(method)).render(photo)
    zero = api.renderer(styles[:1], method=method, **quick(method, strength=0.0)).render(photo)
    assert np.abs(zero - photo).mean() < 0.25 * np.abs(full - photo).mean()  # 0 = the photo
    kept = api.renderer(styles[:1], method=method, **quick(method, preserve_color=True)).render(photo)

    def chroma(x: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)[..., 1:]

    assert np.abs(chroma(kept) - chroma(photo)).mean() < 0.5 * np.abs(chroma(full) - chroma(photo)).mean()


@pytest.mark.parametrize("method", sorted(QUICK))
def test_progress_events(method: str, styles: list[np.ndarray]) -> None:
    events: list[api.Progress] = []
    api.stylize(samples.SAMPLE_PHOTO, styles[0], method=method, progress=events.append, **quick(method))
    if method == "optimize":  # the long one reports every iteration, in order, ending at total
        steps = [e.step for e in events if e.stage == "optimize"]
        assert steps == list(range(1, 7)) and events[-1].total == 6 and events[-1].step == events[-1].total
        assert all("total" in e.losses for e in events) and events[-1].preview is not None
        assert all(b.elapsed >= a.elapsed for a, b in zip(events, events[1:], strict=False))
    for e in events:
        assert isinstance(e, api.Progress) and e.step >= 1


def test_reporter_without_a_callable_does_nothing() -> None:
    api.Reporter(None, "x", 3).step(1)


def test_masks_for_several_styles(photo: np.ndarray, styles: list[np.ndarray]) -> None:
    h, w = photo.shape[:2]
    a = np.zeros((h, w), np.float32)
    a[:, : w // 3] = 1
    b = np.zeros((h, w), np.float32)
    b[:, w // 3 : 2 * w // 3] = 1
    c = 1 - a - b
    planes = api.load_masks([a, b, c], 3, (w, h))
    assert planes.shape == (3, h, w) and np.allclose(planes.sum(0), 1)
    with pytest.raises(InputError, match="got 2 masks for 3 styles"):
        api.load_masks([a, b], 3, (w, h))
    with pytest.raises(InputError, match="at most two styles"):
        api.load_masks(a, 3, (w, h))
    out = api.renderer([*styles, styles[0]], method="fast", **quick("fast")).render(photo, [a, b, c])
    assert out.shape == photo.shape


def test_defaults_come_from_the_options_classes(capsys: pytest.CaptureFixture[str]) -> None:
    """The CLI passes only what the user typed, so every default is the API's; the help shows those values."""
    from brushwork.cli import build_parser
    from brushwork.cli.flags import option_classes, options_from_args

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    args = parser.parse_args(["stylize", "c.png", "s.png", "-o", "o.png"])
    assert options_from_args(args, option_classes(api.METHODS)) == {}
    stylize_help = " ".join(sub.choices["stylize"].format_help().split())
    optimize_help = " ".join(sub.choices["optimize"].format_help().split())
    for spec in api.METHODS.values():
        for f in fields(spec.options):
            flag = "--" + f.name.replace("_", "-")
            assert flag in stylize_help, flag
    assert f"default: fast {options.FastOptions.max_size}" in stylize_help
    assert f"optimize {options.OptimizeOptions.max_size}" in stylize_help
    assert f"default: {options.OptimizeOptions.iterations}" in optimize_help
    args = parser.parse_args(["stylize", "c.png", "s.png", "-o", "o.png", "--strength", "0.5", "--decoder", "d"])
    assert options_from_args(args, option_classes(api.METHODS)) == {"strength": 0.5, "decoder": "d"}


def test_one_image_fast_path_imports_no_torch(tmp_path: Path, photo: np.ndarray) -> None:
    import subprocess

    api.renderer(["builtin:2"], method="fast", device="cpu").render(photo)  # the ONNX export exists (made once)

    code = (
        "import sys; from brushwork.cli import main; "
        f"rc = main(['stylize', {str(samples.SAMPLE_PHOTO)!r}, 'builtin:2', '-o', {str(tmp_path / 'o.png')!r}, "
        "'--max-size', '64', '--device', 'cpu']); "
        "assert rc == 0; assert 'torch' not in sys.modules, 'torch was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (tmp_path / "o.png").is_file()


def test_stdin_and_stdout(tmp_path: Path) -> None:
    import subprocess

    data = Path(samples.SAMPLE_PHOTO).read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "brushwork", "stylize", "-", "builtin:1", "-o", "-", "--max-size", "48"],
        input=data,
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout[:8] == b"\x89PNG\r\n\x1a\n"
    from io import BytesIO

    assert Image.open(BytesIO(proc.stdout)).size == (48, 32)
    bad = subprocess.run(
        [sys.executable, "-m", "brushwork", "stylize", "-", "builtin:1", "-o", "-"], input=b"nope", capture_output=True
    )
    assert bad.returncode == 2 and bad.stdout == b"" and len(bad.stderr.decode().strip().splitlines()) == 1
    cut = subprocess.run(
        [sys.executable, "-m", "brushwork", "stylize", "-", "builtin:1", "-o", "-"],
        input=data[:3000],
        capture_output=True,
    )
    assert cut.returncode == 2 and cut.stdout == b"" and "truncated" in cut.stderr.decode(), cut.stderr


def test_sixteen_bit_png_stays_sixteen_bit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import cv2

    from brushwork.cli import main

    values = (np.random.default_rng(0).random((40, 60, 3)) * 65535).astype(np.uint16)
    cv2.imwrite(str(tmp_path / "in.png"), values[..., ::-1])
    assert main(["stylize", str(tmp_path / "in.png"), "builtin:1", "-o", str(tmp_path / "out.png"),
                 "--strength", "0"]) == 0  # fmt: skip
    out = cv2.imread(str(tmp_path / "out.png"), cv2.IMREAD_UNCHANGED)
    assert out.dtype == np.uint16 and out.shape == (40, 60, 3)
    assert np.abs(out[..., ::-1].astype(np.int64) - values).max() <= 1  # strength 0: the photo, all 16 bits


def test_runtimes_leave_the_users_home_alone(tmp_path: Path) -> None:
    """onnxruntime and OpenVINO write telemetry IDs into the home at import: brushwork points them at its cache."""
    import os
    import subprocess

    home = tmp_path / "home"
    home.mkdir()
    code = (
        "import numpy as np; from brushwork import api; r = api.renderer(['builtin:2'], device='cpu'); "
        "x = np.random.default_rng(0).random((32, 32, 3), dtype=np.float32); [r.render(x) for _ in range(3)]"
    )
    env = {**os.environ, "HOME": str(home), "BRUSHWORK_HOME": os.environ["BRUSHWORK_HOME"]}
    env.pop("XDG_CACHE_HOME", None)
    env.pop("CI", None)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert list(home.iterdir()) == []


def test_one_renderer_in_several_threads(photo: np.ndarray) -> None:
    """Video and the studio call one renderer from several threads: the automatic runtime (first onnxruntime, then
    an OpenVINO compilation once a size repeats) must stay consistent under that."""
    from concurrent.futures import ThreadPoolExecutor

    r = api.renderer(["builtin:5"], method="fast", device="cpu")
    frame = photo[:40, :56]  # a size no other test uses: the threads race to export and compile it
    with ThreadPoolExecutor(4) as pool:
        outs = list(pool.map(lambda _: r.render(frame), range(8)))
    for out in outs:
        assert out.shape == frame.shape
        assert np.abs(out - outs[0]).max() < 2e-3


@pytest.mark.parametrize("method", ["fast", "microast"])
def test_a_first_onnx_export_is_reported(
    method: str, photo: np.ndarray, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))  # an empty cache: the networks export again
    shared = importlib.import_module(f"brushwork.methods.{method}").get_stylizer
    shared.cache_clear()  # and no sessions loaded earlier in this process
    events: list[api.Progress] = []
    api.renderer([samples.STYLES["ink"]], method=method, progress=events.append, **quick(method)).render(photo)
    exports = [e for e in events if e.stage == "export"]
    assert exports and exports[0].step == 1 and exports[-1].step == 2 and "ONNX" in exports[0].message
    assert list((tmp_path / "onnx").glob("*.onnx"))
    events.clear()
    api.renderer([samples.STYLES["ink"]], method=method, progress=events.append, **quick(method)).render(photo)
    assert not [e for e in events if e.stage == "export"]  # cached: nothing to report
