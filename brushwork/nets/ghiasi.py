"""Ghiasi et al. (2017) arbitrary-style transformer: an image network conditioned on a 100-d style vector.

Every normalisation after the contracting layers is a conditional instance norm whose ``gamma`` and ``beta``
are linear maps of the style vector. Input ``N×3×H×W`` RGB in 0..1 with H and W multiples of 4 (callers
reflect-pad and crop; see ``brushwork.methods.fast``); output the same shape in 0..1.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brushwork.nets.blocks import ReflectConv
from brushwork.nets.mobilenet import STYLE_DIM
from brushwork.transforms import conditional_instance_norm


class StyleNorm(nn.Module):
    """Conditional instance norm with ``gamma = W_g s + b_g`` and ``beta = W_b s + b_b`` for style vector ``s``."""

    def __init__(self, channels: int, style_dim: int = STYLE_DIM) -> None:
        super().__init__()
        self.gamma = nn.Linear(style_dim, channels)
        self.beta = nn.Linear(style_dim, channels)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        return conditional_instance_norm(x, self.gamma(style), self.beta(style))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = ReflectConv(channels, channels, 3)
        self.norm1 = StyleNorm(channels)
        self.conv2 = ReflectConv(channels, channels, 3)
        self.norm2 = StyleNorm(channels)

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        y = F.relu(self.norm1(self.conv1(x), style))
        return x + self.norm2(self.conv2(y), style)


class StyleTransformer(nn.Module):
    """``(N×3×H×W image, N×100 style) -> N×3×H×W`` stylized image."""

    def __init__(self) -> None:
        super().__init__()
        self.contract = nn.ModuleList([ReflectConv(3, 8, 9), ReflectConv(8, 16, 3, 2), ReflectConv(16, 32, 3, 2)])
        self.residual = nn.ModuleList([ResidualBlock(32) for _ in range(5)])
        self.expand = nn.ModuleList(
            [ReflectConv(32, 16, 3, upsample=2), ReflectConv(16, 8, 3, upsample=2), ReflectConv(8, 3, 9)]
        )
        self.expand_norm = nn.ModuleList([StyleNorm(16), StyleNorm(8), StyleNorm(3)])

    def forward(self, x: Tensor, style: Tensor) -> Tensor:
        for conv in self.contract:
            x = F.relu(conv(x))
        for block in self.residual:
            x = block(x, style)
        for i, (conv, norm) in enumerate(zip(self.expand, self.expand_norm, strict=True)):
            x = norm(conv(x), style)
            x = F.relu(x) if i < 2 else torch.sigmoid(x)
        return x

    # -- the network as steps between normalisations (for exact tiled rendering, brushwork.tiling) ------------

    def step(self, i: int, state: tuple[Tensor, ...], scale: Tensor | None, shift: Tensor | None) -> tuple[Tensor, ...]:
        """Step ``i`` of :data:`brushwork.tiling.GHIASI`: apply normalisation ``i − 1`` as the affine map
        ``scale · x + shift`` (statistics and style folded in), then run on to the next normalisation's input.

        Normalisations 0..9 are the residual blocks' (two each), 10..12 the expanding part's.
        """
        if i == 0:
            x = state[0]
            for conv in self.contract:
                x = F.relu(conv(x))
            return (x, self.residual[0].conv1(x))

        def aff(t: Tensor) -> Tensor:
            if scale is None:  # normalised already (brushwork.nets.blocks.NativeSpan)
                return t
            return t * scale[None, :, None, None] + shift[None, :, None, None]

        if i <= 9 and i % 2 == 1:  # second convolution of residual block (i - 1) / 2
            return (state[0], self.residual[i // 2].conv2(F.relu(aff(state[1]))))
        if i <= 10:
            x = state[0] + aff(state[1])
            return (x, self.residual[i // 2].conv1(x)) if i < 10 else (self.expand[0](x),)
        if i <= 12:
            return (self.expand[i - 10](F.relu(aff(state[0]))),)
        return (torch.sigmoid(aff(state[0])),)
