"""Dumoulin et al. (2017) multi-style network: 26 styles in one network through conditional instance norm.

Each normalisation holds a ``26×C`` table of ``gamma`` and ``beta``; a style is a weight vector over the 26 rows,
so blends of built-in styles are weighted sums of rows. Input ``N×3×H×W`` RGB in 0..1 with H and W multiples of
4; output the same shape in 0..1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brushwork.nets.blocks import ReflectConv
from brushwork.transforms import conditional_instance_norm

NUM_STYLES = 26


class TableNorm(nn.Module):
    """Conditional instance norm whose ``gamma``/``beta`` are rows of a table mixed by style weights ``N×26``."""

    def __init__(self, channels: int, num_styles: int = NUM_STYLES) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(num_styles, channels))
        self.beta = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        return conditional_instance_norm(x, weights @ self.gamma, weights @ self.beta)


class ConvNorm(nn.Module):
    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, upsample: int = 1) -> None:
        super().__init__()
        self.conv = ReflectConv(cin, cout, k, stride, upsample, bias=False)
        self.norm = TableNorm(cout)

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        return self.norm(self.conv(x), weights)


class MultiStyleTransformer(nn.Module):
    """``(N×3×H×W image, N×26 style weights) -> N×3×H×W`` stylized image."""

    def __init__(self) -> None:
        super().__init__()
        self.contract = nn.ModuleList([ConvNorm(3, 32, 9), ConvNorm(32, 32, 3, 2), ConvNorm(32, 32, 3, 2)])
        self.res = nn.ModuleList([nn.ModuleList([ConvNorm(32, 32, 3), ConvNorm(32, 32, 3)]) for _ in range(6)])
        self.expand = nn.ModuleList([ConvNorm(32, 8, 3, upsample=2), ConvNorm(8, 4, 3, upsample=2), ConvNorm(4, 3, 9)])

    def forward(self, x: Tensor, weights: Tensor) -> Tensor:
        for layer in self.contract:
            x = F.relu(layer(x, weights))
        for a, b in self.res:
            x = x + b(F.relu(a(x, weights)), weights)
        x = F.relu(self.expand[0](x, weights))
        x = F.relu(self.expand[1](x, weights))
        return torch.sigmoid(self.expand[2](x, weights))

    # -- the network as steps between normalisations (for exact tiled rendering, brushwork.tiling) ------------

    def _conv(self, i: int) -> ReflectConv:
        layers = [*self.contract, *(layer for block in self.res for layer in block), *self.expand]
        return layers[i].conv

    def step(self, i: int, state: tuple[Tensor, ...], scale: Tensor | None, shift: Tensor | None) -> tuple[Tensor, ...]:
        """Step ``i`` of :data:`brushwork.tiling.DUMOULIN`: apply normalisation ``i − 1`` as the affine map
        ``scale · x + shift`` (statistics and style folded in), then run on to the next normalisation's input.

        The last tensor of every state is the input of normalisation ``i``; a residual stream comes first.
        """
        if i == 0:
            return (self._conv(0)(state[0]),)

        def aff(t: Tensor) -> Tensor:
            if scale is None:  # normalised already (brushwork.nets.blocks.NativeSpan)
                return t
            return t * scale[None, :, None, None] + shift[None, :, None, None]

        if i in (1, 2, 16, 17):
            return (self._conv(i)(F.relu(aff(state[-1]))),)
        if i == 3:
            x = F.relu(aff(state[0]))
            return (x, self._conv(3)(x))
        if 4 <= i <= 14 and i % 2 == 0:  # second convolution of residual block (i - 4) / 2
            return (state[0], self._conv(i)(F.relu(aff(state[1]))))
        if 5 <= i <= 15:  # close a residual block, open the next one (or the expanding part)
            x = state[0] + aff(state[1])
            return (x, self._conv(i)(x)) if i < 15 else (self._conv(15)(x),)
        return (torch.sigmoid(aff(state[-1])),)
