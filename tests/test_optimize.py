"""The optimization engine and ``brushwork optimize``, with random-weight backbones (no downloads)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from brushwork import color, io
from brushwork.cli import main
from brushwork.errors import DeviceError, InputError
from brushwork.methods.optimize import DEFAULTS, optimize, pyramid_sizes
from brushwork.nets.backbone import FeatureExtractor, build_backbone
from tests.test_vgg import vgg19_file


@pytest.fixture(scope="module")
def vgg() -> FeatureExtractor:
    return build_backbone("vgg19", "random", seed=0)


def photo(h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    """A smooth colourful ``1×3×h×w`` test picture: gradients and a disc."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    disc = (((yy - 0.5) ** 2 + (xx - 0.4) ** 2) < 0.08).float()
    img = torch.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.7 - 0.4 * disc]) + 0.02 * torch.randn(3, h, w, generator=g)
    return img.clamp(0, 1)[None]


def texture(rgb: tuple[float, float, float], h: int = 32, w: int = 32, seed: int = 1) -> torch.Tensor:
    """A ``1×3×h×w`` stripy texture whose colours vary around ``rgb``."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    stripes = 0.5 + 0.5 * torch.sin((xx + yy) * 0.9)
    base = torch.tensor(rgb).view(3, 1, 1)
    img = base * (0.6 + 0.4 * stripes) + 0.05 * torch.rand(3, h, w, generator=g)
    return img.clamp(0, 1)[None]


FAST = dict(size=32, iterations=12)


# ------------------------------------------------------------------------------------------------ engine


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_total_loss_falls(vgg: FeatureExtractor, optimizer: str) -> None:
    r = optimize(photo(), texture((0.9, 0.2, 0.1)), backbone=vgg, optimizer=optimizer, **FAST)
    first, best = r.history[0]["total"], r.best_loss
    assert r.iterations == 12 and len(r.history) == 12 and not r.interrupted
    assert best < 0.75 * first
    assert r.image.shape == (1, 3, 32, 32) and 0 <= r.image.min() and r.image.max() <= 1


@pytest.mark.parametrize("loss", ["mean_std", "w2"])
def test_other_style_losses_fall(vgg: FeatureExtractor, loss: str) -> None:
    r = optimize(photo(), texture((0.1, 0.3, 0.9)), backbone=vgg, loss=loss, size=24, iterations=8)
    assert r.best_loss < 0.7 * r.history[0]["total"]


def test_normalized_gradients_and_noise_init(vgg: FeatureExtractor) -> None:
    r = optimize(photo(), texture((0.1, 0.8, 0.2)), backbone=vgg, init="noise", normalize_gradients=True, **FAST)
    assert r.best_loss < r.history[0]["total"]


def test_multiscale_ends_at_requested_size(vgg: FeatureExtractor) -> None:
    seen: list[tuple[int, int]] = []
    r = optimize(
        photo(30, 40), texture((0.8, 0.8, 0.1)), backbone=vgg, size=48, min_size=24, iterations=2, init="style",
        callback=lambda i, losses, img: seen.append((img.shape[-1], img.shape[-2])),
    )  # fmt: skip
    assert pyramid_sizes(48, 24) == [24, 34, 48]
    assert r.sizes == [(24, 18), (34, 26), (48, 36)]
    assert seen == [(24, 18)] * 2 + [(34, 26)] * 2 + [(48, 36)] * 2
    assert r.image.shape == (1, 3, 36, 48) and r.iterations == 6
    per_scale = optimize(photo(30, 40), texture((0.8, 0.8, 0.1)), backbone=vgg, size=32, min_size=16,
                         iterations=[1, 2, 3])  # fmt: skip
    assert per_scale.iterations == 6 and [s[0] for s in per_scale.sizes] == [16, 23, 32]
    with pytest.raises(InputError, match="3 scales"):
        optimize(photo(), texture((0.8, 0.8, 0.1)), backbone=vgg, size=32, min_size=16, iterations=[1, 2])


def test_callback_gets_iteration_losses_image_and_can_stop(vgg: FeatureExtractor) -> None:
    calls: list[tuple[int, dict[str, float], tuple[int, ...]]] = []

    def callback(i: int, losses: dict[str, float], img: torch.Tensor) -> bool:
        calls.append((i, losses, tuple(img.shape)))
        return i == 3

    r = optimize(photo(), texture((0.5, 0.1, 0.5)), backbone=vgg, callback=callback, **FAST)
    assert [c[0] for c in calls] == [1, 2, 3] and r.iterations == 3 and r.interrupted
    assert set(calls[0][1]) == {"content", "style", "tv", "total"} and calls[0][2] == (1, 3, 32, 32)
    parts = calls[1][1]
    assert abs(parts["content"] + parts["style"] + parts["tv"] - parts["total"]) < 1e-3 * parts["total"]


def test_ctrl_c_returns_best_image_at_full_size(vgg: FeatureExtractor) -> None:
    def callback(i: int, losses: dict[str, float], img: torch.Tensor) -> None:
        if i == 3:
            raise KeyboardInterrupt

    r = optimize(photo(24, 32), texture((0.9, 0.5, 0.1)), backbone=vgg, size=32, min_size=16, iterations=5,
                 callback=callback)  # fmt: skip
    assert r.interrupted and r.iterations == 3
    assert r.image.shape == (1, 3, 24, 32)  # stopped in the first scale (16×12), returned at the output size
    assert r.best_loss == min(h["total"] for h in r.history)


def test_preserve_color_keeps_the_photos_chroma(vgg: FeatureExtractor) -> None:
    content, style = photo(), texture((0.1, 0.9, 0.1))
    kept = optimize(content, style, backbone=vgg, preserve_color="luminance", **FAST).image
    free = optimize(content, style, backbone=vgg, **FAST).image
    chroma = color.rgb_to_ycbcr(content)[:, 1:]
    kept_err = (color.rgb_to_ycbcr(kept)[:, 1:] - chroma).abs().mean()
    free_err = (color.rgb_to_ycbcr(free)[:, 1:] - chroma).abs().mean()
    assert kept_err < 0.01, kept_err
    assert free_err > 3 * kept_err
    # the luminance did change: the style was transferred to it
    assert (color.luminance(kept) - color.luminance(content)).abs().mean() > 0.01


def test_color_match_recolours_the_style(vgg: FeatureExtractor) -> None:
    content, style = photo(), texture((0.1, 0.9, 0.1))
    r = optimize(content, style, backbone=vgg, preserve_color="histogram", **FAST)
    free = optimize(content, style, backbone=vgg, **FAST)
    green = lambda img: float((img[:, 1] - img[:, [0, 2]].mean(1)).mean())  # noqa: E731
    assert green(r.image) < green(free.image) - 0.02


def test_mask_confines_each_style_to_its_region(vgg: FeatureExtractor) -> None:
    content = torch.full((1, 3, 32, 32), 0.5) + 0.02 * torch.randn(1, 3, 32, 32, generator=torch.Generator())
    red, blue = texture((0.95, 0.1, 0.1)), texture((0.1, 0.1, 0.95), seed=2)
    mask = torch.zeros(1, 1, 32, 32)
    mask[..., 16:] = 1.0  # left (dark): first style, right (light): second style
    r = optimize(content.clamp(0, 1), [red, blue], mask=mask, backbone=vgg, size=32, iterations=40)
    redness = r.image[:, 0] - r.image[:, 2]
    left, right = float(redness[..., 2:14].mean()), float(redness[..., 18:30].mean())
    assert left > 0.1 and right < -0.1, (left, right)


def test_style_mix_weights(vgg: FeatureExtractor) -> None:
    content, a, b = photo(), texture((0.9, 0.1, 0.1)), texture((0.1, 0.1, 0.9), seed=3)
    only_a = optimize(content, [a], backbone=vgg, size=24, iterations=4).image
    weighted = optimize(content, [a, b], style_weights=[1.0, 0.0], backbone=vgg, size=24, iterations=4).image
    assert torch.equal(only_a, weighted)
    mixed = optimize(content, [a, b], style_weights=[1.0, 1.0], backbone=vgg, size=24, iterations=4).image
    assert not torch.equal(only_a, mixed)


def test_same_seed_is_bit_identical() -> None:
    kwargs = dict(backbone="mobilenet", weights="random", init="noise", size=32, iterations=4)
    a = optimize(photo(), texture((0.2, 0.6, 0.9)), seed=7, **kwargs)
    b = optimize(photo(), texture((0.2, 0.6, 0.9)), seed=7, **kwargs)
    c = optimize(photo(), texture((0.2, 0.6, 0.9)), seed=8, **kwargs)
    assert torch.equal(a.image, b.image) and a.history == b.history
    assert not torch.equal(a.image, c.image)


def test_style_scale_and_layer_choices(vgg: FeatureExtractor) -> None:
    base = dict(backbone=vgg, size=24, iterations=3)
    a = optimize(photo(), texture((0.9, 0.6, 0.1)), **base).image
    b = optimize(photo(), texture((0.9, 0.6, 0.1)), style_scale=0.5, **base).image
    c = optimize(photo(), texture((0.9, 0.6, 0.1)), content_layers=["relu2_2"], style_layers=["relu1_1", "relu2_1"],
                 style_layer_weights=[1.0, 0.5], **base).image  # fmt: skip
    assert not torch.equal(a, b) and not torch.equal(a, c)


def test_init_fast_uses_the_fast_path(vgg: FeatureExtractor) -> None:
    pytest.importorskip("brushwork.methods.fast")
    seen: list[torch.Tensor] = []
    optimize(photo(), texture((0.9, 0.2, 0.6)), backbone=vgg, init="fast", size=32, iterations=1,
             callback=lambda i, losses, img: seen.append(img))  # fmt: skip
    assert (seen[0] - photo()).abs().mean() > 0.02  # starts from a stylized image, not the photo


def test_bad_values(vgg: FeatureExtractor) -> None:
    c, s = photo(), texture((0.5, 0.5, 0.5))
    for kwargs in [
        dict(loss="l1"),
        dict(optimizer="sgd"),
        dict(init="zeros"),
        dict(style_weight=-1.0),
        dict(tv_weight=float("nan")),
        dict(iterations=0),
        dict(size=8),
        dict(style_weights=[1.0, 2.0]),
        dict(style_layers=["relu9_1"]),
        dict(style_layers=["relu1_1"], style_layer_weights=[1.0, 1.0]),
        dict(preserve_color="sepia"),
        dict(mask=torch.zeros(1, 2, 8, 8, 1)),
    ]:
        with pytest.raises(InputError):
            optimize(c, s, backbone=vgg, **kwargs)
    with pytest.raises(InputError):
        optimize(c, s, backbone="resnet")
    with pytest.raises(InputError):
        optimize(torch.rand(1, 4, 8, 8), s, backbone=vgg)
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            optimize(c, s, backbone=vgg, device="cuda")


def test_defaults_are_one_source_of_truth() -> None:
    import inspect

    import brushwork

    assert brushwork.optimize is optimize

    params = inspect.signature(optimize).parameters
    for name in ("content_weight", "style_weight", "tv_weight", "loss", "optimizer", "iterations", "init", "size",
                 "min_size", "style_scale", "backbone", "weights", "pool", "seed", "device"):  # fmt: skip
        assert params[name].default == getattr(DEFAULTS, name)
    from brushwork.options import OptimizeOptions

    api_defaults = OptimizeOptions()
    for name in ("content_weight", "style_weight", "tv_weight", "loss", "optimizer", "backbone", "weights", "pool"):
        assert getattr(DEFAULTS, name) == getattr(api_defaults, name)  # the tensor-level function's come from it


# ------------------------------------------------------------------------------------------------ CLI


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    paths = {"content": tmp_path / "photo.png", "style": tmp_path / "style.png", "mask": tmp_path / "mask.png"}
    io.save_image(photo(30, 40), paths["content"])
    io.save_image(texture((0.9, 0.3, 0.1), 40, 40), paths["style"])
    mask = np.zeros((30, 40), np.float32)
    mask[:, 20:] = 1
    io.save_image(np.dstack([mask] * 3), paths["mask"])
    return paths


def test_cli_end_to_end(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, plot = tmp_path / "out.png", tmp_path / "losses.png"
    rc = main([
        "optimize", str(files["content"]), str(files["style"]), str(files["style"]), "-o", str(out),
        "--backbone", "mobilenet", "--weights", "random", "--max-size", "32", "--min-size", "16", "--iterations", "6",
        "--save-every", "3", "--loss-plot", str(plot), "--mask", str(files["mask"]),
        "--seed", "3", "--tv-weight", "5", "--loss", "mean_std", "--optimizer", "adam", "--device", "cpu",
    ])  # fmt: skip
    assert rc == 0
    assert io.load_image(out).size == (32, 24)
    assert plot.stat().st_size > 1000 and plot.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.glob("out.*.png")) == ["out.00003.png", "out.00006.png"]
    err = capsys.readouterr().err
    assert "done: 6 iterations" in err


def test_cli_vgg_from_local_weights_file(
    files: dict[str, Path], tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    weights, _ = vgg19_file(tmp_path_factory)
    out = tmp_path / "vgg.jpg"
    rc = main(["optimize", str(files["content"]), str(files["style"]), "-o", str(out), "--weights", str(weights),
               "--max-size", "32", "--iterations", "2", "--pool", "avg", "--preserve-color", "-q"])  # fmt: skip
    assert rc == 0 and io.load_image(out).size == (32, 24)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--tv-weight", "-1"], "non-negative"),
        (["--loss", "l2"], "invalid choice"),
        (["--iterations", "0"], "positive"),
        (["--max-size", "8"], "max size must be from 16"),
        (["--style-weights", "1", "2"], "got 2 style weights for 1 styles"),
        (["--backbone", "mobilenet", "--pool", "avg"], "VGG"),
        (["--style-layers", "relu1_1", "--style-layer-weights", "1", "2"], "2 style layer weights for 1"),
        (["--loss-plot", "plot.txt"], "loss plot"),
        (["--device", "cuda"] if not torch.cuda.is_available() else ["--device", "tpu"], "cuda"),
        (["--mask", "missing-mask.png"], "missing-mask.png"),
    ],
)
def test_cli_bad_values(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "out.png"
    with pytest.raises(SystemExit) if message in ("invalid choice", "non-negative", "positive", "cuda")\
            and extra[0] != "--device" else _nullcontext():  # fmt: skip
        rc = main(["optimize", str(files["content"]), str(files["style"]), "-o", str(out), "--weights", "random",
                   "--backbone", "vgg19", "--max-size", "24", "--iterations", "1", *extra])  # fmt: skip
        assert rc == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return False


def test_cli_bad_files(files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"garbage")
    out = tmp_path / "out.png"
    cases = [
        ([str(tmp_path / "nope.jpg"), str(files["style"]), "-o", str(out)], "nope.jpg"),
        ([str(files["content"]), str(files["style"]), "-o", str(out), "--weights", str(junk)], "junk.pth"),
        ([str(files["content"]), str(files["style"]), "-o", str(tmp_path / "out.xyz")], ".xyz"),
        ([str(files["content"]), str(files["style"]), "-o", str(files["style"])], "input"),
        ([str(files["content"]), str(files["style"]), "-o", str(tmp_path / "no" / "out.png")], "does not exist"),
    ]
    for argv, message in cases:
        assert main(["optimize", *argv, "--max-size", "24", "--iterations", "1"]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("brushwork: error:") and message in err and len(err.splitlines()) == 1, err
    assert not out.exists() and files["style"].read_bytes()[:4] == b"\x89PNG"


def test_cli_ctrl_c_saves_best_so_far(
    files: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from brushwork import losses

    calls = {"n": 0}
    tv = losses.tv_loss

    def interrupting_tv(image: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return tv(image)

    monkeypatch.setattr(losses, "tv_loss", interrupting_tv)
    out = tmp_path / "out.png"
    rc = main(["optimize", str(files["content"]), str(files["style"]), "-o", str(out), "--backbone", "mobilenet",
               "--weights", "random", "--max-size", "32", "--iterations", "10", "-q"])  # fmt: skip
    assert rc == 130 and io.load_image(out).size == (32, 24)
    assert "interrupted" in capsys.readouterr().err


def test_cli_subprocess_error_is_one_line(tmp_path: Path) -> None:
    out = tmp_path / "out.png"
    proc = subprocess.run(
        [sys.executable, "-m", "brushwork", "optimize", str(tmp_path / "missing.jpg"), "s.jpg", "-o", str(out)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("brushwork: error:") and len(proc.stderr.strip().splitlines()) == 1
    assert not out.exists()


@pytest.mark.corpus
def test_corpus_photo_with_pretrained_mobilenet(corpus: Path) -> None:
    content = next(iter(sorted((corpus / "content").glob("*.jpg"))))
    style = corpus / "styles" / "vincent-van-gogh_the-starry-night.jpg"
    if not style.is_file():
        style = next(iter(sorted((corpus / "styles").glob("*.jpg"))))
    r = optimize(io.load_image(content), io.load_image(style), backbone="mobilenet", size=64, iterations=10)
    assert r.backbone == "mobilenet" and max(r.image.shape[-2:]) == 64
    assert r.best_loss < 0.5 * r.history[0]["total"]


# ------------------------------------------------------------------------------------------------ regressions


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--seed", "99999999999999999999999"], "2**63"),
        (["--seed", "-1"], "2**63"),
        (["--max-size", "100000"], "max size must be from 16 to 65536"),
        (["--learning-rate", "1e300", "--optimizer", "adam"], "at most 10"),
        (["--learning-rate", "0"], "learning rate"),
    ],
)
def test_cli_refuses_out_of_range_flags(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    out = tmp_path / "out.png"
    try:
        code = main(["optimize", str(files["content"]), str(files["style"]), "-o", str(out), "--backbone", "mobilenet",
                     "--weights", "random", "--iterations", "1", *extra])  # fmt: skip
    except SystemExit as exc:
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def _no_backbone(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make building a backbone fail loudly: the checks under test must come before it."""
    from brushwork.nets import backbone

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a backbone was built before the sizes were checked")

    monkeypatch.setattr(backbone, "build_backbone", refuse)


@pytest.mark.parametrize(
    "content_shape, extra, message",
    [
        ((30, 40), ["--stroke-scale", "1e9"], "stroke scale must be at least 0.25 and at most 4"),
        ((30, 40), ["--stroke-scale", "1e300"], "stroke scale must be at least 0.25 and at most 4"),
        ((1, 64), ["--max-size", "32"], "too small"),  # a 64×1 photo at 32 px would be 32×1
        ((3, 64), ["--max-size", "64"], "too small"),
    ],
)
def test_cli_checks_sizes_before_loading_a_network(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    content_shape: tuple[int, int],
    extra: list[str],
    message: str,
) -> None:
    _no_backbone(monkeypatch)
    content, style, out = tmp_path / "c.png", tmp_path / "s.png", tmp_path / "out.png"
    io.save_image(np.full((*content_shape, 3), 0.5, np.float32), content)
    io.save_image(texture((0.9, 0.3, 0.1), 40, 40), style)
    rc = main(["optimize", str(content), str(style), "-o", str(out), "--backbone", "vgg19", "--weights", "random",
               "--iterations", "1", "-q", *extra])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("brushwork: error:") and message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_engine_refuses_out_of_range_values(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_backbone(monkeypatch)
    c, s = photo(), texture((0.5, 0.5, 0.5))
    for kwargs, message in [
        (dict(seed=2**63), "seed"),
        (dict(seed=-1), "seed"),
        (dict(size=8193), "8192"),
        (dict(min_size=9000), "8192"),
        (dict(learning_rate=11.0), "at most 10"),
        (dict(learning_rate=float("inf")), "learning rate"),
        (dict(style_scale=1e9), "pixels"),
        (dict(size=None, style_scale=1e300), "pixels"),
    ]:
        with pytest.raises(InputError, match=message):
            optimize(c, s, backbone="vgg19", weights="random", **kwargs)
    with pytest.raises(InputError, match="too thin"):
        optimize(torch.rand(1, 3, 1, 64), s, backbone="vgg19", weights="random", size=32)
    with pytest.raises(InputError, match="pixels"):  # size=None keeps the content's size: 9000×9000 is too many
        from brushwork.methods.optimize import check_sizes

        check_sizes(9000, 9000, 9000, [(32, 32)], 1.0)
    assert check_sizes(40, 30, 32, [(40, 40)], 2.0) == (32, 24)


def test_intermediate_image_names_match_help_and_docs() -> None:
    from brushwork.cli import build_parser
    from brushwork.cli.optimize import _intermediate_path

    assert _intermediate_path(Path("dir/out.png"), 50) == Path("dir/out.00050.png")
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, __import__("argparse")._SubParsersAction))
    text = " ".join(sub.choices["optimize"].format_help().split())
    assert "out.00050.png for -o out.png" in text and "OUT-stem" not in text
    docs = (Path(__file__).resolve().parents[1] / "docs" / "optimize.md").read_text()
    assert "`out.00050.png` for `-o out.png`" in docs and "OUT-stem" not in docs


def test_cli_unreadable_safetensors_weights_is_one_line(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    out = tmp_path / "out.png"
    rc = main(["optimize", str(files["content"]), str(files["style"]), "-o", str(out), "--backbone", "vgg19",
               "--weights", str(garbage), "--max-size", "24", "--iterations", "1", "-q"])  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.startswith("brushwork: error:") and "garbage.safetensors" in err, err
    assert len(err.splitlines()) == 1 and not out.exists()
