"""Feature backbones for perceptual losses: a multi-layer extractor over VGG-19, VGG-16 or MobileNetV2.

:class:`FeatureExtractor` wraps a network whose ``features`` is an ``nn.Sequential`` of *named* stages and returns
the requested stages' outputs as a dict, computing each stage once per forward pass and stopping after the deepest
requested one. :func:`build_backbone` builds one by name with ImageNet weights from the model store, weights from a
local file, or seeded random weights (for tests)::

    enc = build_backbone("vgg19", weights="imagenet", pool="avg", device="cuda")
    feats = enc(image, ["relu1_1", "relu2_1", "relu3_1", "relu4_1"])   # {name: N×C×h×w}

Layer names: VGG ``conv1_1, relu1_1, …, relu5_4, pool1 … pool5`` (see :mod:`brushwork.nets.vgg`); MobileNetV2
``conv, block0 … block16, conv_1`` (see :mod:`brushwork.nets.mobilenet`). Every backbone takes ``N×3×H×W`` RGB in
0..1; VGG's ImageNet normalisation happens inside.

SWAG (Wang, Li & Vasconcelos, "Rethinking and Improving the Robustness of Image Style Transfer", CVPR 2021):
Gram matching works poorly on non-VGG networks because their deep activations are peaky (a few huge values,
low entropy), so the Gram matrix is dominated by them. A softmax transformation of the activations before the
style statistics smooths them out. :meth:`FeatureExtractor.style_transform` applies it: ``C · softmax(f / T)`` over
the channels at each position (``T`` the temperature, ``C`` the channel count so that values average 1). The
reference code normalises jointly over all positions and channels; the per-position softmax used here gives the
same smoothing but statistics that do not depend on the image size, which matters because the style image, the
output and the scales of the pyramid all differ in size. It is on by default for MobileNetV2 and off for VGG.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brushwork.errors import InputError, ModelUnavailable

BACKBONES = ("vgg19", "vgg16", "mobilenet")
WEIGHTS = ("imagenet", "random")
MOBILENET_PAD = 16  # reflect padding of MobileNet's input (pixels), cropped off the features again
SWAG_TEMPERATURE = 8.0  # default SWAG temperature of the MobileNetV2 backbone (tuned on the corpus; docs/optimize.md)

# Default loss layers per backbone: content layer(s) and style layers with their weights.
DEFAULT_LAYERS: dict[str, tuple[tuple[str, ...], dict[str, float]]] = {
    "vgg19": (("relu4_2",), {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0}),
    "vgg16": (("relu4_2",), {"relu1_1": 1.0, "relu2_1": 1.0, "relu3_1": 1.0, "relu4_1": 1.0, "relu5_1": 1.0}),
    "mobilenet": (("block5",), {"conv": 1.0, "block2": 1.0, "block5": 1.0, "block9": 1.0, "block12": 1.0}),
}


def swag(features: Tensor, temperature: float) -> Tensor:
    """SWAG softmax transformation: ``N×C×H×W`` → ``C · softmax(features / temperature)`` over channels.

    Every position becomes a distribution over the C channels scaled to mean 1 (values in 0..C).
    """
    return features.shape[1] * torch.softmax(features / temperature, dim=1)


class FeatureExtractor(nn.Module):
    """Several named layers of a network in one pass: ``N×3×H×W`` RGB in 0..1 → ``{name: N×C×h×w}``.

    net: a module with ``features``, an ``nn.Sequential`` of named stages, and optionally ``normalize(x)`` applied
    to the input first (VGG's ImageNet normalisation).
    name: the backbone's name ("vgg19", "vgg16", "mobilenet", …).
    swag_temperature: temperature of :func:`swag` in :meth:`style_transform`, or None for the identity.
    content_layers / style_layers: this backbone's default loss layers (style layers with weights).
    pad: reflect-pad the input by this many pixels and crop the features back (at each layer's resolution), so
        that the image's borders are seen with context instead of the network's zero padding, which otherwise
        draws a frame into stylized borders (MobileNet's stride-2 first layer has no replicate-padding remedy).
    channels_last: run the convolutions in the channels-last memory format (several times faster on CPUs for
        MobileNet's depthwise convolutions); the returned features keep that format (their values and shapes are
        the same; call ``.contiguous()`` where a standard layout matters).
    """

    def __init__(
        self,
        net: nn.Module,
        *,
        name: str = "custom",
        swag_temperature: float | None = None,
        content_layers: Sequence[str] = (),
        style_layers: dict[str, float] | None = None,
        channels_last: bool = True,
        pad: int = 0,
    ) -> None:
        super().__init__()
        if not isinstance(getattr(net, "features", None), nn.Sequential):
            raise TypeError("net must have a `features` nn.Sequential of named stages")
        self.net = net
        self.name = name
        self.swag_temperature = swag_temperature
        self.channels_last = channels_last
        self.pad = int(pad)
        if channels_last:
            net.to(memory_format=torch.channels_last)
        self.layer_names: list[str] = [n for n, _ in net.features.named_children()]
        self._index = {n: i for i, n in enumerate(self.layer_names)}
        self.content_layers: tuple[str, ...] = tuple(content_layers)
        self.style_layers: dict[str, float] = dict(style_layers or {})
        self.check_layers([*self.content_layers, *self.style_layers])

    def check_layers(self, layers: Iterable[str]) -> list[str]:
        """Return ``layers`` as a list; raise InputError (one line) naming any layer this backbone lacks."""
        layers = list(layers)
        unknown = [n for n in layers if n not in self._index]
        if unknown:
            raise InputError(
                f"{self.name} has no layer {', '.join(map(repr, unknown))}; its layers are "
                f"{self.layer_names[0]} … {self.layer_names[-1]} ({', '.join(self.layer_names)})"
            )
        return layers

    def forward(self, x: Tensor, layers: Iterable[str] | None = None) -> dict[str, Tensor]:
        """``N×3×H×W`` in 0..1 → ``{layer: N×C×h×w}`` for each requested layer (default: the last stage).

        Each stage runs once; the pass stops after the deepest requested layer.
        """
        wanted = set(self.check_layers(layers) if layers is not None else [self.layer_names[-1]])
        if not wanted:
            return {}
        last = max(self._index[n] for n in wanted)
        normalize: Callable[[Tensor], Tensor] | None = getattr(self.net, "normalize", None)
        h = normalize(x) if normalize is not None else x
        pad = min(self.pad, x.shape[-1] - 1, x.shape[-2] - 1)
        if pad > 0:
            h = F.pad(h, (pad, pad, pad, pad), mode="reflect")
        if self.channels_last:
            h = h.contiguous(memory_format=torch.channels_last)
        out: dict[str, Tensor] = {}
        for i, (name, stage) in enumerate(self.net.features.named_children()):
            h = stage(h)
            if name in wanted:
                out[name] = h
            if i == last:
                break
        if pad > 0:  # crop the padding off again, at each layer's resolution
            height, width = x.shape[-2] + 2 * pad, x.shape[-1] + 2 * pad
            for name, f in out.items():
                cy, cx = round(pad * f.shape[-2] / height), round(pad * f.shape[-1] / width)
                if f.shape[-2] > 2 * cy and f.shape[-1] > 2 * cx:
                    out[name] = f[..., cy : f.shape[-2] - cy, cx : f.shape[-1] - cx]
        return out

    def style_transform(self, features: Tensor) -> Tensor:
        """The transformation applied to features before style statistics: SWAG, or the identity."""
        if self.swag_temperature is None:
            return features
        return swag(features, self.swag_temperature)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, swag_temperature={self.swag_temperature}"


def _random_init(net: nn.Module, seed: int) -> None:
    """Seeded Kaiming-normal (fan-out) weights and zero biases, without touching the global RNG state."""
    gen = torch.Generator().manual_seed(int(seed))
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            fan_out = m.out_channels // m.groups * m.kernel_size[0] * m.kernel_size[1]
            with torch.no_grad():
                m.weight.copy_(torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_out) ** 0.5)
                if m.bias is not None:
                    m.bias.zero_()


def _load(net: nn.Module, state: dict[str, Tensor], source: str, name: str) -> None:
    try:
        net.load_state_dict(state)
    except RuntimeError as exc:
        first = " ".join(str(exc).split())
        raise ModelUnavailable(f"weights {source} do not fit {name}: {first[:200]}") from None


def build_backbone(
    name: str = "vgg19",
    weights: str | os.PathLike[str] = "imagenet",
    *,
    pool: str = "max",
    pad_mode: str = "replicate",
    swag: float | bool | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> FeatureExtractor:
    """Build a feature backbone in eval mode, gradients off for its parameters, on ``device``.

    name: "vgg19", "vgg16" or "mobilenet" (the ImageNet-trained MobileNetV2 trunk of Ghiasi et al.'s style
        predictor, which ships with brushwork's dependencies and needs no download).
    weights: "imagenet" (from the model store: VGG needs its torchvision file cached or downloadable), "random"
        (seeded by ``seed``; for tests), or the path of a local file — for VGG a torchvision ``.pth`` state dict
        or a ``.safetensors`` in this module's layout, for MobileNet the predictor's ONNX file or a
        ``.safetensors`` of the trunk.
    pool: "max" or "avg" (VGG only). pad_mode: padding of VGG's first convolution ("replicate", "zeros",
        "reflect").
    swag: SWAG temperature (float), True (default temperature), False (off), or None (the backbone's default:
        on for MobileNet, off for VGG).

    Raises InputError for unknown names or options, ModelUnavailable when weights cannot be had or do not fit.
    """
    from brushwork import store
    from brushwork.nets.mobilenet import MobileNetV2
    from brushwork.nets.vgg import PAD_MODES, POOLS, VGG

    if not isinstance(name, str) or name not in BACKBONES:
        raise InputError(f"unknown backbone {name!r:.40}; choose one of {', '.join(BACKBONES)}")
    if not isinstance(weights, str | os.PathLike):
        raise InputError(f"weights must be imagenet, random or a file, got {weights!r:.40}")
    if pool not in POOLS:
        raise InputError(f"unknown pooling {pool!r}; choose one of {', '.join(POOLS)}")
    if pad_mode not in PAD_MODES:
        raise InputError(f"unknown padding {pad_mode!r}; choose one of {', '.join(PAD_MODES)}")
    is_path = not (isinstance(weights, str) and weights in WEIGHTS)
    source = os.fspath(weights) if is_path else str(weights)

    net: nn.Module
    if name == "mobilenet":
        if pool != "max":
            raise InputError("--pool applies to the VGG backbones only (MobileNetV2 has no pooling layers)")
        net = MobileNetV2()
        if weights == "random":
            _random_init(net, seed)
        else:
            path = Path(weights) if is_path else None
            if path is not None:
                store.check_weights_file(path)
            state = store.load_state("ghiasi-predictor", path)
            trunk = {k[len("trunk.") :]: v for k, v in state.items() if k.startswith("trunk.")}
            _load(net, trunk or state, source, name)
        default_swag: float | None = SWAG_TEMPERATURE
    else:
        net = VGG(name, pool=pool, pad_mode=pad_mode, init=False)
        if weights == "random":
            _random_init(net, seed)
        else:
            path = Path(weights) if is_path else None
            if path is not None:
                store.check_weights_file(path)
            state = store.load_state(name, path)
            from brushwork.nets.vgg import convert_state

            _load(net, convert_state(state, source), source, name)
        default_swag = None

    if swag is None:
        temperature = default_swag
    elif swag is True:
        temperature = SWAG_TEMPERATURE
    elif swag is False or swag == 0:
        temperature = None
    else:
        from brushwork.validate import check_number

        temperature = check_number(swag, "the SWAG temperature", low=0.0, high=1000.0, low_open=True)
    content, style = DEFAULT_LAYERS[name]
    extractor = FeatureExtractor(
        net,
        name=name,
        swag_temperature=temperature,
        content_layers=content,
        style_layers=style,
        pad=MOBILENET_PAD if name == "mobilenet" else 0,
    )
    return extractor.to(device).eval().requires_grad_(False)
