"""Encoders cut from a backbone and decoders that mirror them (random weights; no download)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brushwork.errors import ModelUnavailable
from brushwork.methods.autoencoder import (
    build_encoder,
    decoder_config,
    load_decoder,
    read_decoder_config,
    save_decoder,
)
from brushwork.nets.decoder import Decoder, Encoder, StageInfo, mirror_spec

# Huang & Belongie's decoder for VGG-19 relu4_1 (pytorch-AdaIN net.py): (cin, cout, upsample before the conv)
ADAIN_VGG_DECODER = [
    (512, 256, False),
    (256, 256, True),
    (256, 256, False),
    (256, 256, False),
    (256, 128, False),
    (128, 128, True),
    (128, 64, False),
    (64, 64, True),
    (64, 3, False),
]


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> object:
    """One torch thread: the test machine's cores are shared, and these networks are tiny."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def vgg() -> Encoder:
    return build_encoder("vgg19", weights="random")


@pytest.fixture(scope="module")
def mobile() -> Encoder:
    return build_encoder("mobilenet", weights="random")


def test_vgg19_relu4_1_decoder_mirrors_the_encoder_as_in_adain(vgg: Encoder) -> None:
    assert vgg.layer == "relu4_1" and vgg.scale == 8
    assert vgg.style_layers == ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]
    assert mirror_spec(vgg.stage_info()) == ADAIN_VGG_DECODER


def test_mobilenet_block5_decoder(mobile: Encoder) -> None:
    assert mobile.layer == "block5" and mobile.scale == 8
    spec = mirror_spec(mobile.stage_info(), width=2.0)
    assert spec[0][0] == 32 and spec[-1][1] == 3
    assert sum(up for _, _, up in spec) == 3  # three stride-2 stages to undo
    assert spec[-1][2]  # the last convolution works at full resolution
    for (_, cout, _), (cin, _, _) in zip(spec, spec[1:], strict=False):
        assert cout == cin


@pytest.mark.parametrize("name", ["vgg", "mobile"])
def test_decoder_inverts_the_encoder_shape(name: str, request: pytest.FixtureRequest) -> None:
    enc: Encoder = request.getfixturevalue(name)
    dec = Decoder(mirror_spec(enc.stage_info(), width=0.25))
    x = torch.rand(2, 3, 32, 40)
    f = enc(x)
    assert f.shape[-2:] == (4, 5)
    assert dec(f).shape == x.shape


def test_encoder_features_computes_several_layers_in_one_pass(vgg: Encoder) -> None:
    x = torch.rand(1, 3, 16, 16)
    feats = vgg.features(x, ["relu1_1", "relu3_1"])
    assert set(feats) == {"relu1_1", "relu3_1"}
    assert feats["relu1_1"].shape == (1, 64, 16, 16) and feats["relu3_1"].shape == (1, 256, 4, 4)
    assert torch.equal(vgg(x), vgg.features(x, ["relu4_1"])["relu4_1"])
    assert not any(p.requires_grad for p in vgg.parameters())


def test_encoder_rejects_unknown_layers(vgg: Encoder) -> None:
    from brushwork.errors import InputError

    with pytest.raises(InputError, match="relu9_9"):
        build_encoder("vgg19", layer="relu9_9", weights="random")
    with pytest.raises(InputError, match="unknown encoder"):
        build_encoder("resnet", weights="random")


def test_mirror_spec_handles_a_leading_pool() -> None:
    stages = [StageInfo("pool", 3, 2, False), StageInfo("conv", 8, 1, True)]
    assert mirror_spec(stages) == [(8, 8, False), (8, 3, True)]  # hidden channels are at least 8
    with pytest.raises(ValueError):
        mirror_spec([])


def test_decoder_file_round_trip(tmp_path: Path, mobile: Encoder) -> None:
    config = decoder_config(mobile, "mobilenet", "random", width=0.5)
    torch.manual_seed(0)
    dec = Decoder(config["spec"])
    path = save_decoder(tmp_path / "d.safetensors", dec, config)
    assert path.with_suffix(".json").is_file()
    assert read_decoder_config(path)["spec"] == config["spec"]
    loaded, conf = load_decoder(path)
    assert conf["encoder"] == "mobilenet" and conf["layer"] == "block5"
    for a, b in zip(dec.state_dict().values(), loaded.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    loaded_dir, _ = load_decoder(tmp_path / "d.safetensors")  # by path, and a folder holding decoder.safetensors
    assert isinstance(loaded_dir, Decoder)


def test_decoder_config_falls_back_to_the_json_beside(tmp_path: Path, mobile: Encoder) -> None:
    from safetensors.torch import save_file

    config = decoder_config(mobile, "mobilenet", "random", width=0.5)
    dec = Decoder(config["spec"])
    save_decoder(tmp_path / "d.safetensors", dec, config)
    save_file(dec.state_dict(), str(tmp_path / "d.safetensors"))  # no metadata
    assert read_decoder_config(tmp_path / "d.safetensors")["layer"] == "block5"


def test_non_decoder_files_are_refused(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(2)}, str(tmp_path / "x.safetensors"), metadata={"brushwork": '{"format": "vae"}'})
    with pytest.raises(ModelUnavailable, match="not a brushwork decoder"):
        load_decoder(tmp_path / "x.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"not safetensors")
    with pytest.raises(ModelUnavailable, match="cannot read decoder"):
        load_decoder(tmp_path / "junk.safetensors")
