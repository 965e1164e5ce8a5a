"""The fast path's behaviour: sizes, blends, strength, colour, stroke scale, alpha, runtimes, errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from PIL import Image

import brushwork
from brushwork import api, io, samples
from brushwork.errors import DeviceError, InputError
from brushwork.methods import fast


def stylize(stylizer: fast.FastStylizer, content, styles, **options) -> io.Picture:
    """The contract's fast method with this stylizer (its runtime) in place of the shared one."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(fast, "get_stylizer", lambda *a, **k: stylizer)
        return api.stylize_picture(content, styles, method="fast", **options)


@pytest.fixture(scope="module")
def st() -> fast.FastStylizer:
    return fast.FastStylizer("cpu")


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return io.resize_to_max(io.load_image(samples.SAMPLE_PHOTO).rgb, 150)  # 150×100


def _edge_strength(rgb: np.ndarray) -> float:
    """90th percentile of the luminance gradient magnitude: high for crisp edges, low for blur."""
    grey = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)
    return float(np.percentile(np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)), 90))


def _stroke_length(rgb: np.ndarray) -> float:
    """Lag (px, interpolated) at which the luminance autocorrelation falls to 1/2: a stroke-size measure."""
    grey = cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2GRAY)
    grey = grey - grey.mean()
    ac = np.real(np.fft.ifft2(np.abs(np.fft.fft2(grey)) ** 2))
    ac = np.fft.fftshift(ac / ac.flat[0])
    cy, cx = np.array(ac.shape) // 2
    radial = np.array([np.mean([ac[cy, cx + r], ac[cy, cx - r], ac[cy + r, cx], ac[cy - r, cx]]) for r in range(60)])
    i = int(np.argmax(radial < 0.5))
    return i - 1 + (radial[i - 1] - 0.5) / (radial[i - 1] - radial[i])


def _layout_correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Correlation of two renderings at the scale of large strokes (Gaussian blur, sigma 3 px)."""
    blur = [cv2.GaussianBlur(x, (0, 0), 3).ravel() for x in (a, b)]
    return float(np.corrcoef(*blur)[0, 1])


def test_output_keeps_odd_sizes_and_range(st: fast.FastStylizer) -> None:
    rgb = np.random.default_rng(0).random((37, 53, 3), dtype=np.float32)
    for style in (["builtin:7"], [samples.SAMPLE_STYLE]):
        out = stylize(st, rgb, style).rgb
        assert out.shape == (37, 53, 3) and out.dtype == np.float32
        assert 0.0 <= out.min() and out.max() <= 1.0


def test_style_changes_the_picture(st: fast.FastStylizer, photo: np.ndarray) -> None:
    a = stylize(st, photo, [samples.STYLES["mosaic"]]).rgb
    b = stylize(st, photo, [samples.STYLES["ink"]]).rgb
    assert np.abs(a - photo).mean() > 0.05
    assert np.abs(a - b).mean() > 0.05
    # the ink style is nearly grey, the mosaic style saturated: the outputs follow
    sat = [cv2.cvtColor(x, cv2.COLOR_RGB2HSV)[..., 1].mean() for x in (a, b)]
    assert sat[0] > sat[1] + 0.1


def test_builtin_blend_is_a_weighted_mix_of_rows(st: fast.FastStylizer) -> None:
    kind, table = st.target(["builtin:2", "builtin:9"], [3, 1])
    assert kind == "builtin"
    assert table[2] == pytest.approx(0.75) and table[9] == pytest.approx(0.25) and table.sum() == pytest.approx(1)


def test_image_blend_is_a_weighted_mean_of_codes(st: fast.FastStylizer) -> None:
    dots, ink = (io.load_image(samples.STYLES[n]).rgb for n in ("dots", "ink"))
    a, b = st.style_code(dots), st.style_code(ink)
    kind, code = st.target([dots, ink], [1, 3])
    assert kind == "code" and code.shape == (100,)
    np.testing.assert_allclose(code, 0.25 * a + 0.75 * b, atol=1e-5)


def test_strength_zero_is_the_photo(st: fast.FastStylizer, photo: np.ndarray) -> None:
    zero = stylize(st, photo, [samples.SAMPLE_STYLE], strength=0.0).rgb
    full = stylize(st, photo, [samples.SAMPLE_STYLE], strength=1.0).rgb
    half = stylize(st, photo, [samples.SAMPLE_STYLE], strength=0.5).rgb
    np.testing.assert_allclose(zero, photo, atol=1e-6)
    np.testing.assert_allclose(half, 0.5 * (full + photo), atol=1e-5)
    assert np.abs(zero - photo).mean() < np.abs(full - photo).mean()
    assert np.abs(half - photo).mean() < np.abs(full - photo).mean()


def test_preserve_color_keeps_the_photos_chroma(st: fast.FastStylizer, photo: np.ndarray) -> None:
    def chroma(x: np.ndarray) -> np.ndarray:
        return cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)[..., 1:]

    plain = stylize(st, photo, [samples.STYLES["mosaic"]]).rgb
    kept = stylize(st, photo, [samples.STYLES["mosaic"]], preserve_color=True).rgb
    assert np.abs(chroma(kept) - chroma(photo)).mean() < 0.02
    assert np.abs(chroma(plain) - chroma(photo)).mean() > 2 * np.abs(chroma(kept) - chroma(photo)).mean()
    y = lambda x: cv2.cvtColor(x, cv2.COLOR_RGB2YCrCb)[..., 0]  # noqa: E731
    assert np.abs(y(kept) - y(plain)).mean() < 0.01  # luminance from the stylization (clipping aside)


def test_max_size_bounds_the_output(st: fast.FastStylizer) -> None:
    out = stylize(st, samples.SAMPLE_PHOTO, ["builtin:1"], max_size=120).rgb
    assert max(out.shape[:2]) == 120 and out.shape[:2] == (80, 120)


def test_stroke_scale_changes_strokes_not_resolution_or_sharpness(st: fast.FastStylizer) -> None:
    photo = io.resize_to_max(io.load_image(samples.SAMPLE_PHOTO).rgb, 360)
    h, w = photo.shape[:2]
    for style in (io.load_image(samples.SAMPLE_STYLE).rgb, "builtin:3"):
        target = st.target([style])
        base = st.render(photo, target)
        big = st.render(photo, target, stroke_scale=2.0)
        small = st.render(photo, target, stroke_scale=0.5)
        assert base.shape == big.shape == small.shape == photo.shape
        # plain upscaling of a half-size rendering has the big strokes, blurred
        upscaled = io.resize(st.render(io.resize(photo, (w // 2, h // 2)), target), (w, h))
        assert _layout_correlation(big, upscaled) > _layout_correlation(base, upscaled) + 0.1  # big strokes
        assert _edge_strength(big) > 1.3 * _edge_strength(upscaled)  # ... drawn crisply
        assert _edge_strength(big) > 0.8 * _edge_strength(base)
        assert _stroke_length(small) < 0.8 * _stroke_length(base)  # smaller strokes


def test_alpha_is_kept(st: fast.FastStylizer) -> None:
    rgba = np.zeros((40, 60, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, 30:, 3] = 255
    picture = stylize(st, rgba, ["builtin:0"])
    assert picture.alpha is not None and picture.alpha.shape == (40, 60)
    assert picture.alpha[:, :29].max() == 0 and picture.alpha[:, 31:].min() == 1


def test_public_api_accepts_paths_pil_and_arrays(photo: np.ndarray) -> None:
    pil = Image.fromarray((photo * 255).astype(np.uint8))
    for content in (samples.SAMPLE_PHOTO, pil, photo, (photo * 255).astype(np.uint8)):
        out = brushwork.stylize(content, "builtin:4", max_size=150, device="cpu")
        assert isinstance(out, Image.Image) and out.size == (150, 100) and out.mode == "RGB"
    assert brushwork.stylize(photo, samples.SAMPLE_STYLE, device="cpu").size == (150, 100)


def test_torch_runtime_agrees_with_onnxruntime(st: fast.FastStylizer, photo: np.ndarray) -> None:
    torch_st = fast.FastStylizer("cpu")
    torch_st.runtime = fast._TorchRuntime("cpu")
    for style in (["builtin:11"], [samples.SAMPLE_STYLE]):
        np.testing.assert_allclose(stylize(torch_st, photo, style).rgb, stylize(st, photo, style).rgb, atol=1e-4)


def test_tensor_helpers(photo: np.ndarray) -> None:
    content = io.to_tensor(photo)
    code = fast.style_vector(io.load_image(samples.SAMPLE_STYLE).rgb)
    assert code.shape == (100,)
    out = fast.render(content, code)
    assert out.shape == content.shape
    style = io.to_tensor(io.load_image(samples.SAMPLE_STYLE).rgb)
    assert fast.fast_stylize_tensor(content, style).shape == content.shape
    assert fast.predict_codes(io.to_tensor(np.zeros((256, 256, 3), np.float32)).repeat(2, 1, 1, 1)).shape == (2, 100)


@pytest.mark.parametrize(
    ("styles", "kwargs", "message"),
    [
        (["builtin:26"], {}, "no built-in style 26"),
        (["builtin:x"], {}, "bad built-in style"),
        (["builtin:1", samples.SAMPLE_STYLE], {}, "cannot blend builtin"),
        (["builtin:1", "builtin:2"], {"style_weights": [1]}, "got 1 style weights for 2 styles"),
        (["builtin:1"], {"style_weights": [-1]}, "not negative"),
        (["builtin:1"], {"strength": 1.5}, "strength must be at least 0 and at most 1"),
        (["builtin:1"], {"stroke_scale": 9}, "stroke scale must be at least 0.25 and at most 4"),
        ([], {}, "at least one style"),
    ],
)
def test_bad_requests_raise_input_errors(st: fast.FastStylizer, photo: np.ndarray, styles, kwargs, message) -> None:
    with pytest.raises(InputError, match=message):
        stylize(st, photo, styles, **kwargs)


def test_tiny_image_is_refused(st: fast.FastStylizer) -> None:
    with pytest.raises(InputError, match="too small"):
        stylize(st, np.zeros((8, 40, 3), np.float32), ["builtin:0"])


def test_devices() -> None:
    assert fast.resolve_device("cpu") == "cpu"
    assert fast.resolve_device("auto") in ("cpu", "cuda", "mps")
    with pytest.raises(DeviceError, match="unknown device"):
        fast.resolve_device("tpu")
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="cuda is not available"):
            fast.resolve_device("cuda")


def test_a_thin_style_image_is_cropped_before_resizing(st: fast.FastStylizer) -> None:
    thin = np.random.default_rng(1).random((8000, 16, 3), dtype=np.float32)  # no 128000×256 intermediate
    assert st.style_code(thin).shape == (100,)
    with pytest.raises(InputError, match=r"style image is too small \(1×800\)"):
        st.style_code(thin[:800, :1])


def test_huge_weights_do_not_overflow() -> None:
    np.testing.assert_allclose(fast.normalize_weights([1e308, 1e308], 2), [0.5, 0.5])


def test_a_damaged_onnx_export_is_rebuilt(tmp_path, monkeypatch: pytest.MonkeyPatch, photo: np.ndarray) -> None:
    from brushwork import store

    monkeypatch.setenv("BRUSHWORK_HOME", str(tmp_path))
    first = stylize(fast.FastStylizer("cpu"), photo, ["builtin:2"]).rgb
    path = store.onnx_path("dumoulin-26")
    damaged = [path, *path.parent.glob(f"{path.stem}-ort.onnx")]  # the export and onnxruntime's variant of it
    assert len(damaged) == 2
    for p in damaged:
        p.write_bytes(p.read_bytes()[:1000])  # truncated
    again = stylize(fast.FastStylizer("cpu"), photo, ["builtin:2"]).rgb
    np.testing.assert_allclose(again, first, atol=1e-6)


def test_openvino_runtime_agrees_and_recompiles_per_size(photo: np.ndarray) -> None:
    ov = fast.FastStylizer("cpu", runtime="openvino")
    ref = fast.FastStylizer("cpu", runtime="onnxruntime")
    for rgb in (photo, photo[:60, :90]):  # two sizes: two compiled models
        for style in (["builtin:6"], [samples.SAMPLE_STYLE]):
            np.testing.assert_allclose(stylize(ov, rgb, style).rgb, stylize(ref, rgb, style).rgb, atol=2e-3)
    assert len(ov.runtime._compiled) >= 2


def test_unknown_runtime() -> None:
    with pytest.raises(InputError, match="unknown runtime"):
        fast.FastStylizer("cpu", runtime="tensorrt")


def test_onnxruntime_variant_replaces_the_pixel_shuffles_exactly() -> None:
    import onnx
    import onnxruntime as ort

    from brushwork import store

    path = store.export_onnx("dumoulin-26", *fast._EXPORTS["dumoulin-26"])
    model = onnx.load(str(path))
    shuffles = sum(n.op_type == "DepthToSpace" for n in model.graph.node)
    rewritten = fast.for_onnxruntime(onnx.load(str(path)))
    assert shuffles >= 3 and not any(n.op_type == "DepthToSpace" for n in rewritten.graph.node)
    assert sum(n.op_type == "ConvTranspose" for n in rewritten.graph.node) == shuffles
    rng = np.random.default_rng(0)
    feed = {"image": rng.random((1, 3, 36, 52), dtype=np.float32), "style": np.eye(26, dtype=np.float32)[[4]]}
    plain = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    variant = ort.InferenceSession(rewritten.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in plain.get_inputs()]
    feed = dict(zip(names, feed.values(), strict=True))
    np.testing.assert_allclose(variant.run(None, feed)[0], plain.run(None, feed)[0], atol=1e-6)


@pytest.mark.parametrize("net", ["dumoulin-26", "microast/render"])
def test_openvino_variant_pads_convolution_outputs_exactly(net: str) -> None:
    import openvino as ov

    from brushwork import store
    from brushwork.methods import microast  # noqa: F401  (registers microast's exports)

    path = str(store.export_onnx(net, *fast._EXPORTS[net]))
    core = ov.Core()
    plain, padded = core.read_model(path), fast.for_openvino(core.read_model(path))
    convs = [n for n in padded.get_ordered_ops() if n.get_type_name() == "Convolution"]
    widths = [n.get_output_partial_shape(0)[1].get_length() for n in convs]
    # the space-to-depth convolution to 12 channels now computes 16, and a slice keeps the 12
    assert 12 not in widths and 16 in widths
    sliced = [
        n
        for n in padded.get_ordered_ops()
        if n.get_type_name() == "Slice" and n.input_value(0).get_node().get_type_name() == "Convolution"
    ]
    assert [s.get_output_partial_shape(0)[1].get_length() for s in sliced] == [12]
    rng = np.random.default_rng(0)
    second = np.eye(26, dtype=np.float32)[[4]] if net == "dumoulin-26" else rng.random((1, 512), dtype=np.float32) + 0.5
    arrays = [rng.random((1, 3, 36, 52), dtype=np.float32), second]
    outputs = []
    for model in (plain, padded):
        names = [i.get_any_name() for i in model.inputs]
        model.reshape({n: list(a.shape) for n, a in zip(names, arrays, strict=True)})
        request = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}).create_infer_request()
        outputs.append(np.array(request.infer(dict(zip(names, arrays, strict=True)))[0]))
    np.testing.assert_allclose(outputs[1], outputs[0], atol=1e-5)  # other CPUs may pick other kernels
