"""Small building blocks shared by the feed-forward transformer networks."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn


class ReflectConv(nn.Module):
    """Reflect-pad by ``k // 2`` then a valid convolution, optionally preceded by nearest ×``upsample``.

    ``N×Cin×H×W -> N×Cout×(H·up/stride)×(W·up/stride)``.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, upsample: int = 1, bias: bool = True) -> None:
        super().__init__()
        self.pad = k // 2
        self.upsample = upsample
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))
