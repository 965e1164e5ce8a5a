"""The latent space of styles (brushwork.latent, brushwork.methods.latent) and its commands: mix, sample,
interpolate, style-map.

Operations on codes use a random-weights VAE (exactness does not depend on training); the rendering tests and the
CLI use the shipped models on 64-pixel pictures.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork import io, store
from brushwork import latent as api
from brushwork.cli import main
from brushwork.errors import InputError, OutputError
from brushwork.methods import latent
from brushwork.nets.vae import StyleVAE
from brushwork.samples import SAMPLE_PHOTO, STYLES
from brushwork.validate import normalise_weights

D = 100


def random_space(labels: list[str] | None = None, seed: int = 0) -> latent.StyleSpace:
    torch.manual_seed(seed)
    net = StyleVAE(D, latent_dim=6, hidden=32, num_labels=len(labels or []))
    net.code_mean.normal_()
    net.code_std.uniform_(0.5, 2.0)
    return latent.StyleSpace(net.eval().requires_grad_(False), labels or [], "random")


def codes(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, D, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def pics(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The project's sample photo and styles, shrunk to 64 px (the style codes still see 256×256 crops)."""
    root = tmp_path_factory.mktemp("pics")
    out = {}
    for name, src in [("photo", SAMPLE_PHOTO), *STYLES.items()]:
        out[name] = io.save_image(io.resize_to_max(io.load_image(src).rgb, 64), root / f"{name}.png")
    return out


# -- operations on codes ------------------------------------------------------------------------------------------


def test_mix_weights_one_zero_reproduce_the_first_style() -> None:
    space, c = random_space(), codes(3)
    assert torch.equal(latent.mix_codes(space, c[:2], [1.0, 0.0]), c[0])
    assert torch.equal(latent.mix_codes(space, c, [0, 3, 0]), c[1])  # weights are normalised first
    halfway = latent.mix_codes(space, c[:2], [0.5, 0.5])
    assert not torch.allclose(halfway, (c[0] + c[1]) / 2, atol=1e-3)  # a latent mix is not the plain average


def test_mix_is_continuous_near_the_endpoints() -> None:
    space, c = random_space(), codes(2)
    near = latent.mix_codes(space, c, [1.0 - 1e-4, 1e-4])
    assert torch.allclose(near, c[0], atol=1e-2)


def test_interpolation_endpoints_equal_the_two_styles() -> None:
    space, c = random_space(), codes(2, seed=5)
    path = latent.interpolate_codes(space, c[0], c[1], 7)
    assert path.shape == (7, D)
    assert torch.equal(path[0], c[0]) and torch.equal(path[-1], c[1])
    steps = (path[1:] - path[:-1]).norm(dim=1)
    assert float(steps.max()) < 0.6 * float((c[1] - c[0]).norm())  # no jumps: a smooth walk
    with pytest.raises(InputError, match="at least 2"):
        latent.interpolate_codes(space, c[0], c[1], 1)


def test_same_seed_gives_same_samples() -> None:
    space = random_space()
    a = latent.sample_codes(space, 5, seed=7)
    assert torch.equal(a, latent.sample_codes(space, 5, seed=7))
    assert not torch.allclose(a, latent.sample_codes(space, 5, seed=8))
    # the first k of n are the k of fewer (up to float rounding: CPU matrix products depend on the batch size)
    assert torch.allclose(latent.sample_codes(space, 2, seed=7), a[:2], atol=1e-5, rtol=1e-5)
    hot = latent.sample_codes(space, 64, seed=1, temperature=2.0)
    cold = latent.sample_codes(space, 64, seed=1, temperature=0.1)
    assert float(hot.std(0).mean()) > float(cold.std(0).mean())


def test_sampling_near_styles_stays_near_them() -> None:
    space, c = random_space(), codes(2, seed=3)
    near = latent.sample_codes(space, 16, like=c, temperature=0.2, seed=0)
    prior = latent.sample_codes(space, 16, temperature=1.0, seed=0)
    centre = space.decode(space.encode(c)[0].mean(0, keepdim=True))
    assert float((near - centre).norm(dim=1).mean()) < float((prior - centre).norm(dim=1).mean())


def test_labels_of_a_conditional_space() -> None:
    space = random_space(["Japanese Ukiyo-e", "Modern"])
    a = latent.sample_codes(space, 3, label="japanese ukiyo e", seed=0)  # case and punctuation are ignored
    b = latent.sample_codes(space, 3, label="Modern", seed=0)
    assert a.shape == (3, D) and not torch.allclose(a, b)
    with pytest.raises(InputError, match="known labels: Japanese Ukiyo-e, Modern"):
        latent.sample_codes(space, 1, label="Cubism")
    with pytest.raises(InputError, match="conditional"):
        latent.sample_codes(space, 1)
    with pytest.raises(InputError, match="has no labels"):
        latent.sample_codes(random_space(), 1, label="Modern")


def test_bad_weights_and_counts() -> None:
    with pytest.raises(InputError, match="2 style weights for 3 styles"):
        normalise_weights([1, 2], 3)
    with pytest.raises(InputError, match="negative"):
        normalise_weights([1, -1], 2)
    with pytest.raises(InputError, match="zero"):
        normalise_weights([0, 0], 2)
    assert np.allclose(normalise_weights(None, 4), 0.25)
    with pytest.raises(InputError, match="temperature"):
        latent.sample_codes(random_space(), 1, temperature=0)


def test_pca_and_tsne_layouts() -> None:
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(0, 0.1, (20, 5)), rng.normal(3, 0.1, (20, 5))])
    xy, ratio = latent.pca_2d(blobs)
    assert xy.shape == (40, 2) and ratio[0] > 0.9
    assert np.array_equal(latent.pca_2d(blobs)[0], xy)
    ts = latent.tsne_2d(blobs, seed=0)
    assert ts.shape == (40, 2) and np.array_equal(ts, latent.tsne_2d(blobs, seed=0))
    within = np.linalg.norm(ts[:20] - ts[:20].mean(0), axis=1).mean()
    assert np.linalg.norm(ts[:20].mean(0) - ts[20:].mean(0)) > 3 * within  # the two clusters stay apart
    with pytest.raises(InputError, match="unknown projection"):
        latent.project(blobs, "umap")


# -- shipped models -------------------------------------------------------------------------------------------


def test_shipped_models_load_offline() -> None:
    vae = api.load_style_space(device="cpu")
    cvae = api.load_style_space(conditional=True, device="cpu")
    assert vae.name == "style-vae" and not vae.conditional and vae.net.code_dim == D
    assert cvae.name == "style-cvae" and cvae.conditional and len(cvae.labels) >= 4
    assert "metrics" in vae.config and vae.config["metrics"]["val_paintings"] > 0
    for name in ("style-vae", "style-cvae"):
        path = store.source_path(store.entry(name))
        assert path.stat().st_size < 1_000_000  # tiny models
    with pytest.raises(InputError, match="unknown style model"):
        api.load_style_space("nope")


def test_code_files_round_trip(tmp_path: Path) -> None:
    c = codes(1)[0].numpy()
    path = api.save_code(c, tmp_path / "c.npy")
    assert np.array_equal(api.style_code(path), c)
    np.save(tmp_path / "bad.npy", np.zeros((2, 3)))
    with pytest.raises(InputError, match="one style code"):
        api.load_code(tmp_path / "bad.npy")


# -- rendering through the API ------------------------------------------------------------------------------------


def test_api_mix_sample_interpolate(pics: dict[str, Path]) -> None:
    a, b = pics["swirls"], pics["ink"]
    first = api.mix(pics["photo"], [a, b], style_weights=[1, 0], device="cpu")
    same = api.render_codes(pics["photo"], api.style_code(a)[None], device="cpu")[0]
    assert first.size == io.load_image(pics["photo"]).size
    diff = np.abs(np.asarray(first, dtype=np.int16) - np.asarray(same, dtype=np.int16))
    assert diff.mean() < 0.5 and diff.max() <= 3  # the runtime may change between calls (onnxruntime, OpenVINO)
    result = api.sample(pics["photo"], 2, seed=3, device="cpu")
    again = api.sample(pics["photo"], 2, seed=3, device="cpu")
    assert len(result.images) == 2 and result.style_codes.shape == (2, D)
    assert np.array_equal(result.style_codes, again.style_codes)
    walk = api.interpolate(pics["photo"], a, b, 3, device="cpu")
    assert len(walk.images) == 3
    # the ends are the two styles' codes (up to the runtime's rounding: onnxruntime first, then OpenVINO)
    np.testing.assert_allclose(walk.style_codes[0], api.style_code(a), atol=1e-3)
    np.testing.assert_allclose(walk.style_codes[-1], api.style_code(b), atol=1e-3)
    family = api.sample(pics["photo"], 1, label=api.load_style_space(conditional=True).labels[0], device="cpu")
    assert family.style_codes.shape == (1, D)


def test_api_style_map(pics: dict[str, Path], tmp_path: Path) -> None:
    folder = tmp_path / "styles"
    for i, name in enumerate(STYLES):
        sub = folder / ("warm" if i % 2 else "cool")
        sub.mkdir(parents=True, exist_ok=True)
        Image.open(pics[name]).save(sub / f"{name}.png")
    result = api.style_map(folder, thumb=32, width=400, device="cpu")
    assert result.coords.shape == (len(STYLES), 2) and result.image.size[0] == 400
    assert sorted(set(result.labels or [])) == ["cool", "warm"]
    rendered = api.style_map([pics[n] for n in STYLES], projection="tsne", content=pics["photo"], thumb=32, width=300)
    assert rendered.latents.shape[0] == len(STYLES)


def test_save_animation_gif_and_mp4(tmp_path: Path) -> None:
    frames = [Image.new("RGB", (33, 20), (i * 40, 0, 0)) for i in range(4)]
    gif = io.save_animation(frames, tmp_path / "a.gif", fps=10)
    with Image.open(gif) as im:
        assert im.n_frames == 4
    mp4 = io.save_animation(frames, tmp_path / "a.mp4", fps=10)
    assert mp4.stat().st_size > 0
    with pytest.raises(OutputError, match=".gif or .mp4"):
        io.save_animation(frames, tmp_path / "a.avi")
    with pytest.raises(OutputError, match="does not exist"):
        io.save_animation(frames, tmp_path / "no" / "a.gif")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gif", "a.mp4"]  # no temporary files left


# -- the CLI --------------------------------------------------------------------------------------------------------


def test_cli_mix_with_compare(pics: dict[str, Path], tmp_path: Path) -> None:
    out, cmp_ = tmp_path / "mix.png", tmp_path / "cmp.jpg"
    argv = ["mix", str(pics["photo"]), "--styles", str(pics["swirls"]), str(pics["dots"]), "--weights", "2", "1"]
    assert main([*argv, "-o", str(out), "--compare", str(cmp_), "--device", "cpu"]) == 0
    assert io.load_image(out).size == io.load_image(pics["photo"]).size
    assert io.load_image(cmp_).size[0] > 2 * io.load_image(out).size[0]


def test_cli_sample_interpolate_style_map(pics: dict[str, Path], tmp_path: Path) -> None:
    photo = str(pics["photo"])
    out = tmp_path / "samples"
    assert main(["sample", photo, "-n", "2", "--seed", "4", "-o", str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "contact_sheet.jpg", "sample_00.jpg", "sample_00.npy", "sample_01.jpg", "sample_01.npy",
    ]  # fmt: skip
    # a sampled code is a style: interpolate from it to a picture
    anim = tmp_path / "walk.gif"
    argv = ["interpolate", photo, str(out / "sample_00.npy"), str(pics["ink"]), "--frames", "3", "-o", str(anim)]
    assert main([*argv, "--strip", str(tmp_path / "strip.jpg"), "--boomerang", "--device", "cpu"]) == 0
    with Image.open(anim) as im:
        assert im.n_frames == 4
    folder = tmp_path / "styles"
    folder.mkdir()
    for name in STYLES:
        Image.open(pics[name]).save(folder / f"{name}.png")
    argv = ["style-map", str(folder), "-o", str(tmp_path / "map.png"), "--coords", str(tmp_path / "map.csv")]
    assert main([*argv, "--thumb", "32", "--size", "400", "--device", "cpu"]) == 0
    assert len((tmp_path / "map.csv").read_text().splitlines()) == len(STYLES) + 1


def test_cli_bad_input_exits_2_and_writes_nothing(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, a, b = str(pics["photo"]), str(pics["swirls"]), str(pics["ink"])
    out = str(tmp_path / "o.png")
    cases = [
        ["mix", str(tmp_path / "missing.jpg"), "--styles", a, "-o", out],
        ["mix", photo, "--styles", a, b, "--weights", "1", "-o", out],
        ["mix", photo, "--styles", a, b, "--weights", "0", "0", "-o", out],
        ["mix", photo, "--styles", a, "-o", str(tmp_path / "no" / "o.png")],
        ["mix", photo, "--styles", a, "-o", photo],
        ["sample", photo, "--label", "Cubism", "-o", str(tmp_path / "s")],
        ["sample", photo, "--temperature", "0", "-o", str(tmp_path / "s")],
        ["sample", photo, "--model", str(tmp_path / "none.safetensors"), "-o", str(tmp_path / "s")],
        ["interpolate", photo, a, b, "--frames", "1", "-o", str(tmp_path / "w.gif")],
        ["interpolate", photo, a, b, "-o", str(tmp_path / "w.avi")],
        ["interpolate", photo, a, str(tmp_path / "missing.jpg"), "-o", str(tmp_path / "w.gif")],
        ["style-map", str(tmp_path / "nowhere"), "-o", out],
        ["style-map", str(tmp_path), "-o", str(tmp_path / "map.txt")],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error" in err, (argv, err)
    assert list(tmp_path.iterdir()) == []  # no partial files, no output folder for a bad label


def test_cli_defaults_are_the_apis() -> None:
    """The CLI reads its defaults from brushwork.latent, which imports no torch."""
    import inspect

    from brushwork.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices
    assert sub["mix"].get_default("max_size") == inspect.signature(api.mix).parameters["max_size"].default
    for command, function in (("sample", api.sample), ("interpolate", api.interpolate)):
        assert sub[command].get_default("max_size") == inspect.signature(function).parameters["max_size"].default
    assert sub["style-map"].get_default("width") == inspect.signature(api.style_map).parameters["width"].default


# -- regressions: bad input is refused before any work, and nothing is written or overwritten ------------------------


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err, err
    return err


def test_cli_sample_never_overwrites_a_like_code(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s"
    out.mkdir()
    code = api.save_code(codes(1)[0].numpy(), out / "sample_00.npy")
    before = code.read_bytes()
    argv = ["sample", str(pics["photo"]), "-n", "1", "-o", str(out), "--like", str(code), "--device", "cpu"]
    assert main(argv) == 2
    assert "input file" in _one_line_error(capsys)
    assert code.read_bytes() == before and [p.name for p in out.iterdir()] == ["sample_00.npy"]


def test_cli_sample_bad_photo_or_style_creates_no_folder(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_text("not an image")
    out = tmp_path / "s"
    assert main(["sample", str(bad), "-n", "1", "-o", str(out), "--device", "cpu"]) == 2
    _one_line_error(capsys)
    argv = ["sample", str(pics["photo"]), "-n", "1", "--like", str(bad), "-o", str(out), "--device", "cpu"]
    assert main(argv) == 2
    _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_cli_style_map_unwritable_coords_writes_nothing(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "styles"
    folder.mkdir()
    for name in list(STYLES)[:2]:
        Image.open(pics[name]).save(folder / f"{name}.png")
    out = tmp_path / "map.png"
    argv = ["style-map", str(folder), "-o", str(out), "--coords", "/proc/brushwork.csv", "--thumb", "16"]
    assert main([*argv, "--size", "256", "--device", "cpu"]) == 2  # even root cannot create files in /proc
    assert "not writable" in _one_line_error(capsys)
    assert not out.exists()
    photo, a = str(pics["photo"]), str(pics["swirls"])
    for argv in (
        ["mix", photo, "--styles", a, "-o", "/proc/brushwork.png"],
        ["mix", photo, "--styles", a, "-o", str(out), "--compare", "/proc/brushwork.png"],
        ["interpolate", photo, a, a, "-o", "/proc/brushwork.gif"],
        ["style-map", str(folder), "-o", "/proc/brushwork.png"],
    ):
        assert main([*argv, "--device", "cpu"]) == 2, argv
        assert "not writable" in _one_line_error(capsys)
    assert not out.exists()


@pytest.mark.parametrize("seed", ["-5", "-1", str(2**63), "99999999999999999999999", "1.5"])
def test_cli_seeds_out_of_range_are_one_line_errors(
    seed: str, pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo = str(pics["photo"])
    for argv in (
        ["sample", photo, "--seed", seed, "-o", str(tmp_path / "s")],
        ["style-map", str(tmp_path), "--method", "tsne", "--seed", seed, "-o", str(tmp_path / "m.png")],
    ):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 2
        assert "--seed" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_seeds_are_checked_by_the_api() -> None:
    space = random_space()
    for seed in (-1, 2**63):
        with pytest.raises(InputError, match="seed"):
            latent.sample_codes(space, 1, seed=seed)
        with pytest.raises(InputError, match="seed"):
            latent.project(np.zeros((5, 2)), "tsne", seed=seed)
    assert latent.sample_codes(space, 1, seed=2**63 - 1).shape == (1, D)


def test_temperature_is_bounded(pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for t in ("1e300", "10.5", "-1"):
        assert main(["sample", str(pics["photo"]), "--temperature", t, "-o", str(tmp_path / "s")]) == 2
        assert "temperature" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(InputError, match="temperature"):
        latent.sample_codes(random_space(), 1, temperature=1e300)
    assert torch.isfinite(latent.sample_codes(random_space(), 2, temperature=10)).all()


def test_fps_is_bounded_by_the_format(
    pics: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    photo, a, b = str(pics["photo"]), str(pics["swirls"]), str(pics["ink"])
    for fps, out in [("0.001", "x.gif"), ("60", "x.gif"), ("0", "x.mp4"), ("300", "x.mp4")]:
        assert main(["interpolate", photo, a, b, "--fps", fps, "-o", str(tmp_path / out)]) == 2
        assert "fps" in _one_line_error(capsys)
    assert list(tmp_path.iterdir()) == []
    frames = [Image.new("RGB", (8, 8), (i * 80, 0, 0)) for i in range(3)]
    slow = io.save_animation(frames, tmp_path / "slow.gif", fps=0.002)  # one frame every 500 s
    with Image.open(slow) as im:
        assert im.info["duration"] == 500_000
    fast = io.save_animation(frames, tmp_path / "fast.gif", fps=50)
    with Image.open(fast) as im:
        assert im.info["duration"] == 20
    with pytest.raises(InputError, match="fps"):
        io.save_animation(frames, tmp_path / "x.gif", fps=0.001)


def test_huge_weights_are_normalised_without_overflow() -> None:
    with np.errstate(all="raise"):
        assert np.allclose(normalise_weights([1e308, 1e308], 2), [0.5, 0.5])
        assert np.allclose(normalise_weights([1e308, 0, 1e307], 3), [1 / 1.1, 0, 0.1 / 1.1])
    for bad in ([float("inf"), 1], [float("nan"), 1], [-1e308, 1e308]):
        with pytest.raises(InputError, match="finite and not negative"):
            normalise_weights(bad, 2)
    with pytest.raises(InputError, match="not all be zero"):
        normalise_weights([0.0, 0.0], 2)


def test_style_code_with_nan_is_reported_as_not_finite(tmp_path: Path) -> None:
    c = np.zeros(D, dtype=np.float32)
    c[3] = np.nan
    np.save(tmp_path / "nan.npy", c)
    with pytest.raises(InputError, match="contains values that are not finite"):
        api.load_code(tmp_path / "nan.npy")


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: api.load_style_space(3), "model must be a style model's name"),
        (lambda: api.load_style_space(conditional="yes"), "conditional is true or false"),
        (lambda: api.mix(SAMPLE_PHOTO, [STYLES["ink"]], label=3, max_size=32), "label must be the name"),
        (lambda: api.mix(SAMPLE_PHOTO, None, max_size=32), "styles to mix: give a style or a list"),
        (lambda: api.sample(SAMPLE_PHOTO, 1, like="no-such.jpg", max_size=32), "cannot read no-such.jpg: no such file"),
        (lambda: api.interpolate(SAMPLE_PHOTO, STYLES["ink"], None, 2, max_size=32), "cannot use NoneType None"),
    ],
)
def test_wrong_arguments_are_one_line_errors(call, message: str) -> None:  # noqa: ANN001
    with pytest.raises(InputError, match=message):
        call()


def test_train_options_as_a_dict_or_refused(tmp_path: Path) -> None:
    from brushwork.train.style_vae import _train_options

    assert _train_options({"epochs": 3}).epochs == 3
    with pytest.raises(InputError, match="training options: .*bogus"):
        _train_options({"bogus": 1})
    with pytest.raises(InputError, match="options must be a TrainOptions"):
        _train_options(5)  # type: ignore[arg-type]
