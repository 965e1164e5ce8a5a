"""Autoencoder stylization: the shipped decoder works offline; AdaIN, WCT, masks, weights, colour, cascades."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from brushwork import store
from brushwork.errors import InputError, ModelUnavailable
from brushwork.methods.autoencoder import (
    DEFAULT_DECODER,
    build_encoder,
    decoder_config,
    load_decoder,
    save_decoder,
    stylize_autoencoder,
)
from brushwork.nets.decoder import Decoder


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> object:
    """One torch thread: the test machine's cores are shared, and these networks are tiny."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _image(h: int, w: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(1, 3, max(2, h // 8), max(2, w // 8), generator=g)
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return _image(36, 44, 0)  # not multiples of 8: padded and cropped back


@pytest.fixture(scope="module")
def paintings() -> list[torch.Tensor]:
    return [_image(32, 40, 1), _image(40, 32, 2) * 0.5 + 0.3]


def test_the_shipped_decoder_is_registered_and_loads_offline() -> None:
    e = store.entry(DEFAULT_DECODER)
    assert e.licence == "Apache-2.0" and e.package_file.startswith("brushwork/assets/models/")
    assert store.source_path(e).is_file() and store.source_path(e).stat().st_size == e.size < 20_000_000
    net = store.load_net(DEFAULT_DECODER)  # verifies the sha256, converts, caches
    assert isinstance(net, Decoder) and net.in_channels == 32
    dec, config = load_decoder(DEFAULT_DECODER)
    assert config["encoder"] == "mobilenet" and config["layer"] == "block5"


def test_adain_with_the_shipped_decoder(photo: torch.Tensor, paintings: list[torch.Tensor]) -> None:
    out = stylize_autoencoder(photo, paintings[:1])
    assert out.shape == photo.shape and out.dtype == torch.float32
    assert 0 <= out.min() and out.max() <= 1
    assert not torch.allclose(out, stylize_autoencoder(photo, paintings[:1], alpha=0.0), atol=1e-3)


def test_wct_alpha_weights_mask_and_colour(photo: torch.Tensor, paintings: list[torch.Tensor]) -> None:
    out = stylize_autoencoder(photo, paintings, method="wct", alpha=0.7, style_weights=[2, 1])
    assert out.shape == photo.shape
    mask = torch.zeros(36, 44)
    mask[:, :22] = 1
    split = stylize_autoencoder(photo, paintings, mask=mask)  # left: painting 0, right: painting 1
    left_only = stylize_autoencoder(photo, paintings[:1], mask=mask)  # right half keeps the photo's features
    assert split.shape == left_only.shape == photo.shape
    # colour preservation = stylizing with the painting recoloured to the photo's colour statistics
    from brushwork.transforms import match_color

    kept = stylize_autoencoder(photo, paintings[1:], preserve_color=True)
    torch.testing.assert_close(kept, stylize_autoencoder(photo, [match_color(paintings[1], photo)]))
    assert not torch.allclose(kept, stylize_autoencoder(photo, paintings[1:]), atol=1e-3)


def test_user_errors_are_one_line_input_errors(photo: torch.Tensor, paintings: list[torch.Tensor]) -> None:
    with pytest.raises(InputError, match="method"):
        stylize_autoencoder(photo, paintings, method="gatys")
    with pytest.raises(InputError, match="alpha"):
        stylize_autoencoder(photo, paintings, alpha=1.5)
    with pytest.raises(InputError, match="style weights"):
        stylize_autoencoder(photo, paintings, style_weights=[1.0])
    with pytest.raises(InputError, match="at least one"):
        stylize_autoencoder(photo, [])
    with pytest.raises(InputError, match="mask is"):
        stylize_autoencoder(photo, paintings, mask=torch.ones(2, 10, 10))
    with pytest.raises(InputError, match="wct"):
        stylize_autoencoder(photo, paintings, decoder=[DEFAULT_DECODER, DEFAULT_DECODER])
    with pytest.raises(InputError, match="not found"):
        stylize_autoencoder(photo, paintings, decoder="missing/decoder.safetensors")
    with pytest.raises(ModelUnavailable, match="unknown decoder"):
        stylize_autoencoder(photo, paintings, decoder="nonesuch")


@pytest.fixture(scope="module")
def vgg_decoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A (random-weight) decoder file for VGG-19 relu2_1, the encoder's weights random too."""
    enc = build_encoder("vgg19", layer="relu2_1", weights="random")
    config = decoder_config(enc, "vgg19", "random", width=0.25)
    torch.manual_seed(0)
    return save_decoder(tmp_path_factory.mktemp("vgg") / "decoder.safetensors", Decoder(config["spec"]), config)


def test_a_user_decoder_file_for_vgg(photo: torch.Tensor, paintings: list[torch.Tensor], vgg_decoder: Path) -> None:
    out = stylize_autoencoder(photo, paintings[:1], decoder=str(vgg_decoder))
    assert out.shape == photo.shape
    folder = stylize_autoencoder(photo, paintings[:1], decoder=str(vgg_decoder.parent))
    torch.testing.assert_close(out, folder)


def test_multi_level_wct_cascade(photo: torch.Tensor, paintings: list[torch.Tensor], vgg_decoder: Path) -> None:
    out = stylize_autoencoder(photo, paintings[:1], method="wct", decoder=[DEFAULT_DECODER, str(vgg_decoder)])
    assert out.shape == photo.shape and 0 <= out.min() and out.max() <= 1


def test_api_adain_for_the_cli(tmp_path: Path) -> None:
    import numpy as np
    from PIL import Image

    from brushwork.api import stylize_picture

    def stylize_files(content, styles, **options):
        return stylize_picture(content, styles, method=options.pop("method", "adain"), **options)

    rgba = (np.random.default_rng(0).random((30, 50, 4)) * 255).astype(np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "photo.png")
    Image.fromarray(rgba[..., :3]).save(tmp_path / "style.png")
    Image.fromarray(np.tile(np.arange(50, dtype=np.uint8) * 5, (30, 1))).save(tmp_path / "mask.png")
    photo, style = tmp_path / "photo.png", tmp_path / "style.png"
    picture = stylize_files(photo, [style], max_size=40, device="auto")
    assert picture.rgb.shape == (24, 40, 3) and picture.alpha is not None and picture.alpha.shape == (24, 40)
    masked = stylize_files(photo, [style, style], method="wct", mask=tmp_path / "mask.png", max_size=40)
    assert masked.rgb.shape == (24, 40, 3)


# -- regressions ---------------------------------------------------------------------------------------------


def _png(path: Path, h: int, w: int) -> Path:
    import numpy as np
    from PIL import Image

    Image.fromarray((np.random.default_rng(h * 1000 + w).random((h, w, 3)) * 255).astype(np.uint8)).save(path)
    return path


def photo_tensor() -> torch.Tensor:
    return _image(32, 32, 3)


@pytest.mark.parametrize("shape, max_size", [((1, 1), 2048), ((1, 60), 2048), ((12, 60), 2048), ((40, 40), 8)])
def test_api_adain_refuses_tiny_photos(tmp_path: Path, shape: tuple[int, int], max_size: int) -> None:
    from brushwork.api import stylize_picture

    photo, style = _png(tmp_path / "photo.png", *shape), _png(tmp_path / "style.png", 32, 32)
    with pytest.raises(InputError, match="16"):
        stylize_picture(photo, [style], method="adain", max_size=max_size)
    with pytest.raises(InputError, match="too small"):  # the tensor API too: before any decoder is loaded
        stylize_autoencoder(torch.rand(1, 3, *shape) if max_size > 16 else torch.rand(1, 3, 8, 8), [photo_tensor()])


def test_api_adain_passes_max_pixels_to_every_file(tmp_path: Path) -> None:
    from brushwork.api import stylize_picture

    small, big = _png(tmp_path / "small.png", 20, 20), _png(tmp_path / "big.png", 40, 40)
    for content, styles, mask in [(big, [small], None), (small, [big], None), (small, [small], big)]:
        with pytest.raises(InputError, match="pixels"):
            stylize_picture(content, styles, method="adain", mask=mask, max_pixels=1000)
    assert stylize_picture(small, [small], method="adain", mask=small, max_pixels=1000).rgb.shape == (20, 20, 3)


def test_cli_adain_on_a_one_pixel_photo_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from brushwork.cli import main

    photo, style, out = _png(tmp_path / "one.png", 1, 1), _png(tmp_path / "style.png", 32, 32), tmp_path / "o.png"
    assert main(["stylize", str(photo), str(style), "-o", str(out), "--method", "adain"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brushwork: error:") and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_unknown_encoder_layer_is_named_once() -> None:
    with pytest.raises(InputError) as exc:
        build_encoder("mobilenet", layer="nope", weights="random")
    assert str(exc.value).count("nope") == 1 and "block5" in str(exc.value)


def test_malformed_decoder_config_names_the_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    from brushwork.methods.autoencoder import read_decoder_config

    meta = tmp_path / "meta.safetensors"
    save_file({"w": torch.zeros(1)}, str(meta), metadata={"brushwork": "{not json"})
    with pytest.raises(ModelUnavailable, match="meta.safetensors"):
        read_decoder_config(meta)
    with pytest.raises(ModelUnavailable, match="meta.safetensors"):
        load_decoder(meta)
    side = tmp_path / "side.safetensors"
    save_file({"w": torch.zeros(1)}, str(side))
    side.with_suffix(".json").write_text("{'format': ")
    with pytest.raises(ModelUnavailable, match="side.json"):
        read_decoder_config(side)
    side.with_suffix(".json").write_text("[1, 2]")
    with pytest.raises(ModelUnavailable, match="side"):
        read_decoder_config(side)


def test_save_decoder_leaves_no_temporary_files_when_it_fails(tmp_path: Path) -> None:
    config = {"format": "brushwork-decoder", "spec": [[8, 3, False]]}
    (tmp_path / "decoder.json").mkdir()  # the side file cannot replace a folder
    with pytest.raises(OSError):
        save_decoder(tmp_path / "decoder.safetensors", Decoder(config["spec"]), config)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["decoder.json"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": torch.rand(1, 2, 32, 32)}, "content must be a 1×3×H×W tensor"),
        ({"content": np.zeros((32, 32, 3))}, "content must be a 1×3×H×W tensor"),
        ({"styles": [torch.full((1, 3, 32, 32), float("nan"))]}, "finite float values"),
        ({"styles": []}, "at least one style"),
        ({"device": "x"}, "unknown device"),
        ({"mask": np.ones((32, 32))}, "mask must be a tensor"),
        ({"alpha": "x"}, "alpha must be a number"),
        ({"method": ["adain"]}, "unknown method"),
    ],
)
def test_stylize_autoencoder_refuses_wrong_arguments(kwargs: dict, message: str) -> None:
    from brushwork.errors import BrushworkError
    from brushwork.methods.autoencoder import stylize_autoencoder

    args = {"content": torch.rand(1, 3, 32, 32), "styles": [torch.rand(1, 3, 32, 32)], **kwargs}
    with pytest.raises(BrushworkError, match=message):
        stylize_autoencoder(**args)


def test_build_backbone_refuses_wrong_arguments() -> None:
    from brushwork.nets.backbone import build_backbone

    for kwargs, message in (({"swag": "x"}, "SWAG temperature must be a number"), ({"weights": 5}, "weights must be")):
        with pytest.raises(InputError, match=message):
            build_backbone("mobilenet", **kwargs)
