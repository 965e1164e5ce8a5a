"""Multi-layer feature extraction, backbone construction and SWAG (random weights; MobileNet from the store)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from brushwork.errors import InputError, ModelUnavailable
from brushwork.nets.backbone import FeatureExtractor, build_backbone, swag
from tests.test_vgg import vgg19_file


@pytest.fixture(scope="module")
def vgg() -> FeatureExtractor:
    return build_backbone("vgg19", "random", seed=1)


def test_each_layer_once_and_stop_after_deepest(vgg: FeatureExtractor) -> None:
    calls: Counter[str] = Counter()
    hooks = [
        stage.register_forward_hook(lambda m, i, o, name=name: calls.update([name]))
        for name, stage in vgg.net.features.named_children()
    ]
    try:
        x = torch.rand(1, 3, 32, 32)
        feats = vgg(x, ["relu1_1", "relu3_1", "conv2_1", "relu3_1"])
    finally:
        for h in hooks:
            h.remove()
    assert set(feats) == {"relu1_1", "relu3_1", "conv2_1"}
    assert all(n == 1 for n in calls.values())
    assert "relu3_1" in calls and "conv3_2" not in calls and "pool5" not in calls
    with torch.no_grad():  # same values as running the stack by hand
        h = vgg.net.normalize(x)
        for name, stage in vgg.net.features.named_children():
            h = stage(h)
            if name == "relu3_1":
                break
    assert torch.allclose(feats["relu3_1"], h, atol=1e-6)
    assert feats["relu1_1"].shape == (1, 64, 32, 32) and feats["relu3_1"].shape == (1, 256, 8, 8)


def test_unknown_layer(vgg: FeatureExtractor) -> None:
    with pytest.raises(InputError, match="relu9_9"):
        vgg(torch.rand(1, 3, 16, 16), ["relu9_9"])


def test_defaults_and_identity_style_transform(vgg: FeatureExtractor) -> None:
    assert vgg.content_layers == ("relu4_2",)
    assert list(vgg.style_layers) == ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    f = torch.randn(1, 8, 4, 4)
    assert vgg.style_transform(f) is f
    assert not any(p.requires_grad for p in vgg.parameters())


def test_random_weights_are_seeded() -> None:
    a = build_backbone("mobilenet", "random", seed=3)
    b = build_backbone("mobilenet", "random", seed=3)
    c = build_backbone("mobilenet", "random", seed=4)
    w = "net.features.block3.depthwise.weight"
    assert torch.equal(a.state_dict()[w], b.state_dict()[w])
    assert not torch.equal(a.state_dict()[w], c.state_dict()[w])


def test_vgg_from_local_torchvision_file(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    path, src = vgg19_file(tmp_path_factory)
    net = build_backbone("vgg19", path, pool="avg")
    x = torch.rand(1, 3, 24, 24)
    with torch.no_grad():
        ref = src.features[:4](src.normalize(x))  # through relu1_2: before the first pooling
        assert torch.allclose(net(x, ["relu1_2"])["relu1_2"], ref, atol=1e-5)
    with pytest.raises(ModelUnavailable, match="do not fit"):
        build_backbone("vgg16", path)
    with pytest.raises(ModelUnavailable, match="not found"):
        build_backbone("vgg19", tmp_path / "missing.pth")


def test_bad_options() -> None:
    with pytest.raises(InputError, match="backbone"):
        build_backbone("resnet50", "random")
    with pytest.raises(InputError, match="VGG"):
        build_backbone("mobilenet", "random", pool="avg")
    with pytest.raises(InputError, match="temperature"):
        build_backbone("mobilenet", "random", swag=-1.0)


def test_swag_softmax() -> None:
    f = torch.randn(2, 6, 5, 5) * 10
    s = swag(f, 4.0)
    assert (s > 0).all()
    assert torch.allclose(s.sum(dim=1), torch.full((2, 5, 5), 6.0))
    assert torch.allclose(swag(f, 4.0), swag(f * 2, 8.0))  # only f / T matters


def test_mobilenet_pretrained_offline() -> None:
    net = build_backbone("mobilenet")  # converted from the installed wheel: no download
    assert net.swag_temperature is not None
    feats = net(torch.rand(1, 3, 64, 48), ["conv", "block5"])
    assert feats["conv"].shape == (1, 32, 32, 24) and feats["block5"].shape == (1, 32, 8, 6)
    s = net.style_transform(feats["block5"])
    assert torch.allclose(s.sum(dim=1), torch.full((1, 8, 6), 32.0), atol=1e-4)
    assert build_backbone("mobilenet", "random", swag=False).swag_temperature is None
