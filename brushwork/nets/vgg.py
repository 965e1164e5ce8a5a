"""VGG-16 and VGG-19 (Simonyan & Zisserman 2014) feature stacks with named layers, for perceptual losses.

Only the convolutional part (torchvision's ``features``) is built. Every stage has its conventional name —
``conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, …, relu5_4, pool5`` — so feature extractors ask for
layers by name. Input ``N×3×H×W`` RGB in 0..1; the ImageNet mean/std normalisation happens inside
(:meth:`VGG.normalize`), so callers never see normalised tensors.

Options, as in ``neural-style`` and ``style-transfer-pytorch``:

- ``pool="max"`` (as trained) or ``"avg"`` (Gatys et al. found average pooling gives smoother results). Both use
  ``ceil_mode`` so that odd sizes lose no border pixels.
- ``pad_mode`` of the first convolution: ``"replicate"`` (default) avoids the dark frame that zero padding of the
  raw image draws into stylized borders; deeper layers keep the zero padding they were trained with.

Weights: :func:`from_torchvision` converts torchvision's ``vgg16-397923af.pth`` / ``vgg19-dcbb9e9d.pth`` state dicts
(keys ``features.0.weight`` …) into this module's keys (``features.conv1_1.weight`` …).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from brushwork.errors import ModelUnavailable

if TYPE_CHECKING:
    import numpy as np

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# convolutions per block (output channels), as in the paper's configurations D (VGG-16) and E (VGG-19)
CONFIGS: dict[str, list[list[int]]] = {
    "vgg16": [[64, 64], [128, 128], [256, 256, 256], [512, 512, 512], [512, 512, 512]],
    "vgg19": [[64, 64], [128, 128], [256, 256, 256, 256], [512, 512, 512, 512], [512, 512, 512, 512]],
}
POOLS = ("max", "avg")
PAD_MODES = ("zeros", "replicate", "reflect")


def layer_names(config: str) -> list[str]:
    """Names of the stages of ``config`` ("vgg16"/"vgg19") in order: ``conv1_1, relu1_1, …, pool5``."""
    names = []
    for b, block in enumerate(CONFIGS[config], start=1):
        for i in range(1, len(block) + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def _torchvision_index(config: str) -> dict[str, int]:
    """Our conv name -> index of that conv in torchvision's ``features`` Sequential."""
    out, index = {}, 0
    for b, block in enumerate(CONFIGS[config], start=1):
        for i in range(1, len(block) + 1):
            out[f"conv{b}_{i}"] = index
            index += 2  # conv, relu
        index += 1  # pool
    return out


class VGG(nn.Module):
    """A VGG feature stack: ``N×3×H×W`` RGB in 0..1 → ``N×512×H/32×W/32`` (``pool5``).

    ``init=False`` leaves the weights uninitialised, for callers that load or initialise them next.

    ``features`` is an ``nn.Sequential`` of named stages (see :func:`layer_names`); ReLUs are not in-place, so
    every stage's output can be kept. ``forward`` normalises with the ImageNet mean/std and runs every stage;
    use :class:`brushwork.nets.backbone.FeatureExtractor` to get several named layers at once.
    """

    def __init__(
        self, config: str = "vgg19", pool: str = "max", pad_mode: str = "replicate", init: bool = True
    ) -> None:
        super().__init__()
        if config not in CONFIGS:
            raise ValueError(f"config must be one of {sorted(CONFIGS)}, got {config!r}")
        if pool not in POOLS:
            raise ValueError(f"pool must be one of {POOLS}, got {pool!r}")
        if pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.config, self.pool, self.pad_mode = config, pool, pad_mode
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        cin = 3
        for b, block in enumerate(CONFIGS[config], start=1):
            for i, cout in enumerate(block, start=1):
                first = b == 1 and i == 1
                stages[f"conv{b}_{i}"] = nn.Conv2d(
                    cin, cout, 3, padding=1, padding_mode=pad_mode if first else "zeros", device="meta"
                )
                stages[f"relu{b}_{i}"] = nn.ReLU(inplace=False)
                cin = cout
            stages[f"pool{b}"] = nn.MaxPool2d(2, ceil_mode=True) if pool == "max" else nn.AvgPool2d(2, ceil_mode=True)
        # built on the meta device and allocated once: the weights are either initialised below or loaded
        self.features = nn.Sequential(stages).to_empty(device="cpu")
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if init:
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """torchvision's VGG initialisation (Kaiming normal, fan-out, zero bias): keeps activations at a stable
        scale through all 16 layers, so random-weight networks (used by the tests) give usable features."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.zeros_(m.bias)

    @property
    def layer_names(self) -> list[str]:
        return [name for name, _ in self.features.named_children()]

    def normalize(self, x: Tensor) -> Tensor:
        """``N×3×H×W`` RGB in 0..1 → ImageNet-normalised input of the first convolution."""
        return (x - self.mean) / self.std

    def forward(self, x: Tensor) -> Tensor:
        return self.features(self.normalize(x))


class VGG19(VGG):
    """VGG-19 (configuration E): 16 convolutions, layers ``conv1_1`` … ``relu5_4``, ``pool5``."""

    def __init__(self, pool: str = "max", pad_mode: str = "replicate", init: bool = True) -> None:
        super().__init__("vgg19", pool=pool, pad_mode=pad_mode, init=init)


class VGG16(VGG):
    """VGG-16 (configuration D): 13 convolutions, layers ``conv1_1`` … ``relu5_3``, ``pool5``."""

    def __init__(self, pool: str = "max", pad_mode: str = "replicate", init: bool = True) -> None:
        super().__init__("vgg16", pool=pool, pad_mode=pad_mode, init=init)


def convert_state(state: dict[str, Tensor], source: str = "weights") -> dict[str, Tensor]:
    """A torchvision VGG state dict (``features.<i>.weight``; ``classifier.*`` ignored) → this module's keys.

    The configuration is recognised from the number of convolutions (13: VGG-16, 16: VGG-19). A state dict
    already in this module's layout (``features.conv1_1.weight`` …) is returned as it is. Raises
    ModelUnavailable (one line) for anything else.
    """
    if any(k.startswith("features.conv1_1.") for k in state):
        return {k: v for k, v in state.items() if k.startswith("features.")}
    if all(k.startswith("module.") for k in state):  # saved from nn.DataParallel
        state = {k[len("module.") :]: v for k, v in state.items()}
    convs = sorted(
        int(k.split(".")[1])
        for k in state
        if k.startswith("features.") and k.endswith(".weight") and state[k].dim() == 4
    )
    config = {13: "vgg16", 16: "vgg19"}.get(len(convs))
    if config is None:
        raise ModelUnavailable(
            f"{source} is not a torchvision VGG-16/VGG-19 state dict "
            f"({len(convs)} convolution weights under 'features.', expected 13 or 16)"
        )
    out: dict[str, Tensor] = {}
    for name, index in _torchvision_index(config).items():
        for part in ("weight", "bias"):
            key = f"features.{index}.{part}"
            if key not in state:
                raise ModelUnavailable(f"{source} is not a torchvision {config} state dict (no {key})")
            out[f"features.{name}.{part}"] = state[key].detach().float()
    return out


def from_torchvision(path: Path) -> dict[str, np.ndarray]:
    """Store converter: read a torchvision VGG ``.pth`` state dict and return this module's state dict as arrays.

    Only the convolution weights and biases of ``features`` are kept (the classifier is dropped).
    """
    try:
        state = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, truncated files, zip errors: all mean "not a usable .pth"
        raise ModelUnavailable(f"cannot read {path} as a PyTorch state dict ({type(exc).__name__})") from None
    if isinstance(state, nn.Module):  # pragma: no cover - weights_only=True refuses modules
        state = state.state_dict()
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ModelUnavailable(f"{path} does not hold a state dict of tensors")
    return {k: v.contiguous().numpy() for k, v in convert_state(state, source=str(path)).items()}
