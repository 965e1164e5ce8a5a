"""MobileNetV2 (Sandler et al. 2018) as used by Ghiasi et al.'s arbitrary-style predictor.

The trunk follows TensorFlow-slim's MobileNetV2 (depth multiplier 1.0): stride-2 convolutions use TensorFlow's
SAME padding (zero; 0 before and 1 after at even sizes), so the network runs at any input size. Input ``N×3×H×W``
RGB in 0..1, as the Magenta model was trained.
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import Tensor, nn

STYLE_DIM = 100

# (expansion t, output channels c, stride s) for block0 ... block16, as in slim's V2_DEF
BLOCKS: list[tuple[int, int, int]] = [
    (1, 16, 1),
    (6, 24, 2), (6, 24, 1),
    (6, 32, 2), (6, 32, 1), (6, 32, 1),
    (6, 64, 2), (6, 64, 1), (6, 64, 1), (6, 64, 1),
    (6, 96, 1), (6, 96, 1), (6, 96, 1),
    (6, 160, 2), (6, 160, 1), (6, 160, 1),
    (6, 320, 1),
]  # fmt: skip


class SameConv2d(nn.Conv2d):
    """``nn.Conv2d`` with TensorFlow SAME zero padding, computed from the input size at run time."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1], strict=True):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _conv(cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> nn.Conv2d:
    if stride == 1:
        return nn.Conv2d(cin, cout, k, padding=k // 2, groups=groups)
    return SameConv2d(cin, cout, k, stride=stride, groups=groups)


class InvertedResidual(nn.Module):
    """Expand (1×1, ReLU6) → depthwise 3×3 (ReLU6) → project (1×1, linear), with a skip when shapes match."""

    def __init__(self, cin: int, t: int, cout: int, stride: int) -> None:
        super().__init__()
        mid = cin * t
        self.expand = _conv(cin, mid, 1) if t != 1 else None
        self.depthwise = _conv(mid, mid, 3, stride, groups=mid)
        self.project = _conv(mid, cout, 1)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: Tensor) -> Tensor:
        y = F.relu6(self.expand(x)) if self.expand is not None else x
        y = self.project(F.relu6(self.depthwise(y)))
        return x + y if self.residual else y


class MobileNetV2(nn.Module):
    """The MobileNetV2 trunk: ``N×3×H×W`` in 0..1 → ``N×1280×H/32×W/32``.

    ``features`` is an ordered ``nn.Sequential`` whose stage names (``conv``, ``block0`` … ``block16``, ``conv_1``)
    are the layer names that feature extractors ask for.
    """

    def __init__(self) -> None:
        super().__init__()
        stages: OrderedDict[str, nn.Module] = OrderedDict()
        stages["conv"] = nn.Sequential(_conv(3, 32, 3, 2), nn.ReLU6())
        cin = 32
        for i, (t, c, s) in enumerate(BLOCKS):
            stages[f"block{i}"] = InvertedResidual(cin, t, c, s)
            cin = c
        stages["conv_1"] = nn.Sequential(_conv(cin, 1280, 1), nn.ReLU6())
        self.features = nn.Sequential(stages)

    @property
    def layer_names(self) -> list[str]:
        return [name for name, _ in self.features.named_children()]

    def forward(self, x: Tensor) -> Tensor:
        return self.features(x)


class StylePredictor(nn.Module):
    """Ghiasi et al.'s style predictor: MobileNetV2, global average pool, then a 1×1 conv to the style vector.

    ``N×3×H×W`` RGB in 0..1 (the reference uses 256×256) → ``N×100``.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trunk = MobileNetV2()
        self.head = nn.Conv2d(1280, STYLE_DIM, 1)

    def forward(self, x: Tensor) -> Tensor:
        pooled = self.trunk(x).mean(dim=(2, 3), keepdim=True)
        return torch.flatten(self.head(pooled), 1)
