"""MicroAST: the port against the authors' implementation, the shipped weights, and the engine's controls."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from brushwork import api, store
from brushwork.errors import InputError
from brushwork.methods.microast import Engine
from brushwork.options import MicroastOptions

WEIGHTS = Path(os.environ.get("BRUSHWORK_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "weights"
FOLDER = WEIGHTS / "microast"
ROOT = Path(__file__).resolve().parents[1]

# The authors' implementation on the two procedural pictures of _pattern below (computed with their four files
# through the port, which test_port_matches_reference checks against their own outputs): per tensor its mean,
# standard deviation and the elements at flat indices 0, n // 3 and n - 1.
REFERENCE = {
    "content_feat0": (0.00656686, 0.0238307, (0.0566427, 0.029752, 0.0136285)),
    "content_feat1": (0.00323333, 0.0867277, (0.0881483, 0.15044, -0.014785)),
    "style_feat0": (-0.0312948, 1.35484, (1.03129, -1.26782, 2.92834)),
    "style_feat1": (-0.1027, 2.329, (2.89918, 1.20649, 2.74254)),
    "filter_weight0": (0.0942687, 1.18973, (0.198852, -0.77206, 0.60813)),
    "filter_bias0": (-0.210775, 1.15274, (-0.00523311, 0.0209213, 1.27469)),
    "filter_weight1": (0.309492, 2.08413, (2.04109, 1.88299, 3.0514)),
    "filter_bias1": (-0.0798022, 0.909745, (0.725552, -0.720475, -0.852936)),
    "output_alpha1": (0.472234, 0.181028, (0.660974, 0.757791, 0.533093)),
    "output_alpha05": (4.36851, 5.0405, (-0.883191, 2.72872, 11.1357)),
}


def _pattern(h: int, w: int, phase: float) -> np.ndarray:
    """A smooth deterministic ``1×3×H×W`` picture in 0.05..0.95."""
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    channels = [
        0.5 + 0.45 * np.sin(x / (5 + 2 * c) + phase * (c + 1)) * np.cos(y / (4 + 3 * c) - phase) for c in range(3)
    ]
    return np.stack(channels)[None].astype(np.float32)


def _intermediates(net, content, style) -> dict:  # noqa: ANN001 (torch types imported lazily)
    import torch

    with torch.no_grad():
        c0, c1 = net.render.encoder(content)
        s0, s1 = net.style.encoder(style)
        w0, b0, w1, b1 = net.style.modulator(s0, s1)
        return {
            "content_feat0": c0,
            "content_feat1": c1,
            "style_feat0": s0,
            "style_feat1": s1,
            "filter_weight0": w0,
            "filter_bias0": b0,
            "filter_weight1": w1,
            "filter_bias1": b1,
            "output_alpha1": net(content, style, 1.0),
            "output_alpha05": net(content, style, 0.5),
        }


def _original_state() -> dict:
    import torch

    from brushwork.nets.microast import ORIGINAL_FILES

    if not (FOLDER / "reference.npz").is_file():
        pytest.skip("../shared/weights/microast is not available")
    state = {}
    for part, prefix in ORIGINAL_FILES.items():
        path = FOLDER / f"{part}_iter_160000.pth.tar"
        state |= {prefix + k: v for k, v in torch.load(path, map_location="cpu", weights_only=True).items()}
    return state


# -- the port and the shipped weights ---------------------------------------------------------------------------


def test_port_matches_reference() -> None:
    """Each intermediate output and the final outputs of the authors' implementation, on their own files."""
    import torch

    from brushwork.nets.microast import MicroAST

    net = MicroAST().eval()
    net.load_state_dict(_original_state())
    ref = {k: torch.from_numpy(v) for k, v in np.load(FOLDER / "reference.npz").items()}
    ours = _intermediates(net, ref["content"], ref["style"])
    for name, value in ours.items():
        assert value.shape == ref[name].shape, name
        torch.testing.assert_close(value, ref[name], atol=2e-5, rtol=1e-5, msg=name)


def test_shipped_file_holds_the_original_tensors() -> None:
    from safetensors.torch import load_file

    shipped = load_file(str(store.source_path(store.entry("microast"))))
    original = _original_state()
    assert shipped.keys() == original.keys()
    for key, value in original.items():
        assert torch_equal(shipped[key], value), key


def torch_equal(a, b) -> bool:  # noqa: ANN001
    return bool((a == b).all()) and a.shape == b.shape


def test_shipped_weights_give_the_reference_numbers() -> None:
    """The shipped safetensors through the store, against the authors' numbers stored above."""
    import torch

    net = store.load_net("microast")
    content, style = torch.from_numpy(_pattern(32, 48, 0.3)), torch.from_numpy(_pattern(48, 40, 1.7))
    for name, value in _intermediates(net, content, style).items():
        mean, std, picks = REFERENCE[name]
        flat = value.flatten()
        got = [flat.mean().item(), flat.std().item(), *(flat[i].item() for i in (0, flat.numel() // 3, -1))]
        scale = max(1.0, abs(std))
        np.testing.assert_allclose(got, [mean, std, *picks], atol=1e-4 * scale, rtol=1e-4, err_msg=name)


def test_store_entry_lists_licence_and_origin() -> None:
    e = store.entry("microast")
    assert e.licence == "MIT" and len(e.origin) == 4
    assert all(url.startswith("https://raw.githubusercontent.com/EndyWon/MicroAST/") for url, _, _ in e.origin)
    assert store.source_path(e).with_name("microast-LICENSE.txt").read_text().startswith("MIT License")
    path = store.source_path(e)
    assert path.stat().st_size == e.size
    store._verify(e, path)  # the shipped file matches the registered checksum


def test_models_command_lists_microast() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "brushwork", "models"], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout
    assert "microast" in out and "MIT" in out and "decoder_iter_160000.pth.tar" in out


def test_split_networks_match_the_single_forward() -> None:
    """The exported pair (style → signal, photo + signals → picture) computes the authors' forward."""
    import torch

    net = store.load_net("microast")
    content, style = torch.from_numpy(_pattern(32, 48, 0.3)), torch.from_numpy(_pattern(48, 40, 1.7))
    with torch.no_grad():
        signal = net.style(style)
        out = net.render(content, signal)
        torch.testing.assert_close(out, net(content, style), atol=1e-5, rtol=1e-5)
        # one region covering everything is the global AdaIN
        out_regions = net.regions(content, signal, torch.ones(1, 1, 8, 12))
        torch.testing.assert_close(out_regions, out, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(
    ("cin", "cout", "k", "groups", "size"),
    [(16, 3, 9, 1, (13, 22)), (16, 3, 9, 1, (16, 20)), (32, 16, 3, 16, (9, 11)), (64, 32, 3, 32, (8, 8))],
)
def test_fast_conv_forms_equal_the_definition(cin: int, cout: int, k: int, groups: int, size: tuple) -> None:
    """Space-to-depth (9×9, 3 outputs; odd sizes too) and depthwise + pair sums (2-input groups)."""
    import torch

    from brushwork.nets.microast import ConvLayer

    torch.manual_seed(0)
    layer = ConvLayer(cin, cout, k, groups=groups)
    x = torch.randn(2, cin, *size)
    torch.testing.assert_close(layer(x), layer.reference(x), atol=1e-5, rtol=1e-5)


def test_fast_encoder_equals_the_definition() -> None:
    """The encoder's strided 1-to-2 grouped convolutions as depthwise pairs, each through its columns of the 1×1."""
    import torch

    from brushwork.nets.microast import Encoder

    torch.manual_seed(0)
    encoder = Encoder()
    x = torch.rand(1, 3, 36, 44)
    for fast, reference in zip(encoder(x), encoder.reference(x), strict=True):
        torch.testing.assert_close(fast, reference, atol=1e-5, rtol=1e-5)


def test_folded_modulation_equals_the_literal_form() -> None:
    """One picture's modulation folded into the convolution weights gives the literal ``weight · conv + bias · x``
    (which a batch of two, or per-pixel signals, still computes), and gradients reach the signal."""
    import torch
    import torch.nn.functional as F

    from brushwork.nets.microast import ResBlock

    torch.manual_seed(0)
    block = ResBlock(8)
    x = torch.randn(1, 8, 10, 14)
    weight = (torch.rand(1, 8, 1, 1) + 0.5).requires_grad_()
    bias = torch.randn(1, 8, 1, 1) * 0.3
    folded = block.modulated(x, weight, bias)
    y = F.relu(weight * block.conv1(x) + bias * x)
    literal = x + weight * block.conv2(y) + bias * y
    torch.testing.assert_close(folded, literal, atol=1e-5, rtol=1e-5)
    pair = block.modulated(torch.cat([x, x]), torch.cat([weight, weight]), torch.cat([bias, bias]))  # literal
    torch.testing.assert_close(pair[:1], folded, atol=1e-5, rtol=1e-5)
    per_pixel = block.modulated(x, weight.expand(1, 8, 10, 14), bias.expand(1, 8, 10, 14))  # literal
    torch.testing.assert_close(per_pixel, folded, atol=1e-5, rtol=1e-5)
    folded.sum().backward()
    assert weight.grad is not None and weight.grad.abs().sum() > 0


def test_decoder_upsampling_by_size_equals_the_definition() -> None:
    """``Decoder.upsample`` (bilinear ×2 exported by output size) computes ``dec3`` (``nn.Upsample`` by scale)."""
    import torch

    from brushwork.nets.microast import Decoder

    torch.manual_seed(0)
    decoder = Decoder().eval()
    x = torch.randn(1, 64, 6, 10)
    with torch.no_grad():
        torch.testing.assert_close(decoder.upsample(x), decoder.dec3(x), atol=1e-6, rtol=1e-6)


def test_region_adain_normalises_each_region_by_its_own_statistics() -> None:
    import torch

    from brushwork.nets.microast import adain, region_adain

    torch.manual_seed(0)
    x = torch.randn(1, 4, 6, 10) * 3 + 1
    masks = torch.zeros(1, 2, 6, 10)
    masks[:, 0, :, :4] = 1.0
    masks[:, 1, :, 4:] = 1.0
    mean, std = torch.randn(2, 4), torch.rand(2, 4) + 0.5
    out = region_adain(x, masks, mean, std)
    left = adain(x[..., :4], mean[0].reshape(1, 4, 1, 1), std[0].reshape(1, 4, 1, 1))
    right = adain(x[..., 4:], mean[1].reshape(1, 4, 1, 1), std[1].reshape(1, 4, 1, 1))
    torch.testing.assert_close(out, torch.cat([left, right], 3), atol=1e-5, rtol=1e-5)


# -- the engine -------------------------------------------------------------------------------------------------


def _rgb(h: int, w: int, phase: float) -> np.ndarray:
    return _pattern(h, w, phase)[0].transpose(1, 2, 0).copy()


def stylize_microast(photo: np.ndarray, styles: list, masks: np.ndarray | None = None, **options) -> np.ndarray:  # noqa: ANN003
    """The contract's path: ``renderer(method="microast")`` then ``render`` (onnxruntime unless told: the automatic
    runtime compiles OpenVINO for every repeated size, which is slow for tests)."""
    options.setdefault("runtime", "onnxruntime")
    return api.renderer(styles, method="microast", **options).render(photo, masks)


@pytest.fixture(scope="module")
def pictures() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return _rgb(45, 62, 0.3), _rgb(64, 64, 1.7), _rgb(50, 70, 4.1)


def test_onnx_runtime_matches_torch(pictures) -> None:  # noqa: ANN001
    photo, style, _ = pictures
    cpu = stylize_microast(photo, [style], runtime="onnxruntime")
    eager = stylize_microast(photo, [style], runtime="torch", device="cpu")
    assert cpu.shape == photo.shape and cpu.dtype == np.float32  # 45×62: padded to 48×64 and cropped back
    np.testing.assert_allclose(cpu, eager, atol=1e-4)


def test_strength_moves_from_the_photo_to_the_style(pictures) -> None:  # noqa: ANN001
    photo, style, _ = pictures
    outs = [stylize_microast(photo, [style], strength=s) for s in (0.0, 0.5, 1.0)]
    np.testing.assert_array_equal(outs[0], photo)
    distances = [float(np.abs(o - photo).mean()) for o in outs]
    assert distances[0] < distances[1] < distances[2]


def test_style_weights_blend_signals(pictures) -> None:  # noqa: ANN001
    photo, a, b = pictures
    only_a = stylize_microast(photo, [a])
    np.testing.assert_allclose(stylize_microast(photo, [a, b], style_weights=[1, 0]), only_a, atol=1e-5)
    only_b = stylize_microast(photo, [b])
    mixed = stylize_microast(photo, [a, b], style_weights=[1, 1])
    assert np.abs(mixed - only_a).mean() > 1e-3 and np.abs(mixed - only_b).mean() > 1e-3


def test_masks_give_each_region_its_style(pictures) -> None:  # noqa: ANN001
    _, a, b = pictures
    photo = _rgb(96, 128, 0.3)
    left = np.zeros((96, 128), np.float32)
    left[:, :64] = 1.0
    out = stylize_microast(photo, [a, b], masks=np.stack([left, 1.0 - left]))
    only_a, only_b = stylize_microast(photo, [a]), stylize_microast(photo, [b])

    def distance(x: np.ndarray, y: np.ndarray, cols: slice) -> float:
        return float(np.abs(x[:, cols] - y[:, cols]).mean())

    # away from the border (the decoder draws it), each half is much nearer its own style than the other one
    # (not equal to it: each region is normalised by its own statistics, not by the whole photo's)
    assert distance(out, only_a, np.s_[:48]) < 0.5 * distance(out, only_b, np.s_[:48])
    assert distance(out, only_b, np.s_[80:]) < 0.5 * distance(out, only_a, np.s_[80:])
    # one style: black keeps the photo
    single = stylize_microast(photo, [a], masks=left[None])
    np.testing.assert_allclose(single[:, 64:], photo[:, 64:], atol=1e-6)


@pytest.mark.parametrize("scale", [0.5, 2.0])
def test_stroke_scale_keeps_the_size(pictures, scale: float) -> None:  # noqa: ANN001
    photo, style, _ = pictures
    out = stylize_microast(photo, [style], stroke_scale=scale)
    assert out.shape == photo.shape and 0.0 <= out.min() and out.max() <= 1.0
    assert np.abs(out - stylize_microast(photo, [style])).mean() > 1e-3


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strength": 1.5}, "strength"),
        ({"stroke_scale": 9.0}, "stroke scale"),
        ({"style_weights": (1.0, 2.0)}, "style weights"),
        ({"runtime": "tpu"}, "runtime"),
        ({"style_size": 4}, "style size"),
    ],
)
def test_bad_options_are_input_errors(pictures, options: dict, message: str) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match=message):
        stylize_microast(pictures[0], [pictures[1]], **options)


def test_bad_inputs_are_input_errors(pictures) -> None:  # noqa: ANN001
    photo, style, _ = pictures
    with pytest.raises(InputError, match="builtin"):
        Engine([3], MicroastOptions())
    with pytest.raises(InputError, match="builtin"):
        stylize_microast(photo, ["builtin:3"])
    with pytest.raises(InputError, match="too small"):
        stylize_microast(photo[:10], [style])
    with pytest.raises(InputError, match="masks are"):
        Engine([style], MicroastOptions()).render(photo, np.ones((1, 5, 5), np.float32))


def test_cpu_path_does_not_import_torch(pictures, tmp_path: Path) -> None:  # noqa: ANN001
    photo, style, _ = pictures
    stylize_microast(photo, [style])  # exports the networks once (this session's cache)
    np.save(tmp_path / "photo.npy", photo)
    np.save(tmp_path / "style.npy", style)
    code = (
        "import sys, numpy as np\n"
        "from brushwork import api\n"
        f"p, s = np.load({str(tmp_path / 'photo.npy')!r}), np.load({str(tmp_path / 'style.npy')!r})\n"
        "out = api.renderer([s], method='microast', device='cpu').render(p)\n"
        "assert out.shape == p.shape, out.shape\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
