"""VGG-16/19 with named layers, options, and conversion of torchvision state dicts (random weights only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from brushwork.errors import ModelUnavailable
from brushwork.nets.vgg import VGG16, VGG19, _torchvision_index, convert_state, from_torchvision, layer_names


def torchvision_state(net: torch.nn.Module, config: str = "vgg19") -> dict[str, torch.Tensor]:
    """The state dict of ``net`` in torchvision's key layout (``features.<i>.weight``), plus a classifier."""
    state = {}
    for name, index in _torchvision_index(config).items():
        conv = getattr(net.features, name)
        state[f"features.{index}.weight"] = conv.weight.detach().clone()
        state[f"features.{index}.bias"] = conv.bias.detach().clone()
    state["classifier.0.weight"] = torch.zeros(4, 8)
    return state


def vgg19_file(factory: pytest.TempPathFactory) -> tuple[Path, VGG19]:
    """A random VGG-19 saved once per session as a torchvision-layout ``.pth`` (and the module it came from)."""
    path = factory.getbasetemp() / "vgg19-random-torchvision.pth"
    cached = getattr(vgg19_file, "cache", None)
    if cached is None or not path.is_file():
        src = VGG19().eval()
        torch.save(torchvision_state(src), path)
        vgg19_file.cache = (path, src)  # type: ignore[attr-defined]
    return vgg19_file.cache  # type: ignore[attr-defined]


def test_layer_names() -> None:
    names = layer_names("vgg19")
    assert names[:5] == ["conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1"]
    assert "relu5_4" in names and names[-1] == "pool5"
    assert sum(n.startswith("conv") for n in names) == 16
    assert sum(n.startswith("conv") for n in layer_names("vgg16")) == 13
    assert VGG16().layer_names == layer_names("vgg16")


def test_forward_normalizes_inside_and_shapes() -> None:
    net = VGG19().eval()
    x = torch.rand(1, 3, 37, 45)
    with torch.no_grad():
        y = net(x)
        ref = net.features(
            (x - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
            / torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
        )
    assert torch.allclose(y, ref)
    assert y.shape == (1, 512, 2, 2)  # ceil-mode pooling keeps border pixels: 37 → 19 → 10 → 5 → 3 → 2


def test_options() -> None:
    net = VGG16()  # defaults: max pooling, replicate padding in the first convolution only
    assert isinstance(net.features.pool3, torch.nn.MaxPool2d)
    assert net.features.conv1_1.padding_mode == "replicate"
    assert net.features.conv1_2.padding_mode == "zeros"
    avg = VGG16(pool="avg", pad_mode="zeros")
    assert isinstance(avg.features.pool1, torch.nn.AvgPool2d)
    assert avg.features.conv1_1.padding_mode == "zeros"
    with pytest.raises(ValueError):
        VGG19(pool="median")


def test_from_torchvision_roundtrip(tmp_path_factory: pytest.TempPathFactory) -> None:
    path, src = vgg19_file(tmp_path_factory)
    arrays = from_torchvision(path)
    assert "features.conv5_4.weight" in arrays and not any(k.startswith("classifier") for k in arrays)
    dst = VGG19(init=False).eval()
    dst.load_state_dict({k: torch.from_numpy(v) for k, v in arrays.items()})
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(src(x), dst(x))


def test_convert_recognises_vgg16_and_own_layout() -> None:
    src = VGG16()
    out = convert_state(torchvision_state(src, "vgg16"))
    assert len(out) == 26 and "features.conv5_3.bias" in out
    own = src.state_dict()
    assert convert_state(own).keys() == own.keys()


def test_bad_files(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(ModelUnavailable, match="cannot read"):
        from_torchvision(junk)
    other = tmp_path / "other.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, other)
    with pytest.raises(ModelUnavailable, match="not a torchvision"):
        from_torchvision(other)
