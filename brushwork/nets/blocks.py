"""Small building blocks shared by the feed-forward transformer networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ReflectConv(nn.Module):
    """Reflect-pad by ``k // 2`` then a valid convolution, optionally preceded by nearest ×2 upsampling.

    ``N×Cin×H×W -> N×Cout×(H·up/stride)×(W·up/stride)``.

    With ``upsample=2`` (3×3, stride 1) the upsampled image is never built: nearest ×2 upsampling followed by
    reflect padding equals replicate padding at the low resolution, and each of the four output phases is a 2×2
    convolution of the low-resolution input (the "sub-pixel" form): the same result with 2.25× fewer
    multiply-adds and a quarter of the padding. :meth:`reference` keeps the literal definition for the tests.
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, upsample: int = 1, bias: bool = True) -> None:
        super().__init__()
        if upsample not in (1, 2) or (upsample == 2 and (k != 3 or stride != 1)):
            raise ValueError("upsample=2 is implemented for 3×3 stride-1 convolutions")
        self.pad = k // 2
        self.upsample = upsample
        self.conv = nn.Conv2d(cin, cout, k, stride=stride, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample == 2:
            return self._upsampled(x)
        return self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))

    def reference(self, x: Tensor) -> Tensor:
        """Upsample (nearest), reflect-pad, convolve: the definition :meth:`forward` computes faster."""
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))

    def _upsampled(self, x: Tensor) -> Tensor:
        w = self.conv.weight  # O×C×3×3

        # output phase 0 reads low-res offsets (-1, 0) with taps (w0, w1 + w2); phase 1 reads (0, +1), (w0 + w1, w2)
        def fold(k: Tensor, dim: int, phase: int) -> Tensor:
            a, b, c = k.unbind(dim)
            return torch.stack([a, b + c] if phase == 0 else [a + b, c], dim)

        xp = F.pad(x, (1, 1, 1, 1), mode="replicate")
        h, wd = x.shape[-2:]
        phases = [
            F.conv2d(xp[:, :, a : a + h + 1, b : b + wd + 1], fold(fold(w, 2, a), 3, b), self.conv.bias)
            for a in (0, 1)
            for b in (0, 1)
        ]
        return F.pixel_shuffle(torch.stack(phases, 2).flatten(1, 2), 2)  # channel o·4 + 2a + b → pixel (2i+a, 2j+b)


class Segment(nn.Module):
    """Steps ``start`` … ``stop − 1`` of a network with a ``step(i, state, scale, shift)`` method, as one module
    (brushwork.tiling): inputs are the state's tensors, then ``scale, shift`` of each normalisation applied."""

    def __init__(self, net: nn.Module, start: int, stop: int, inputs: int) -> None:
        super().__init__()
        self.net, self.start, self.stop, self.inputs = net, start, stop, inputs

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        state, affine = tuple(args[: self.inputs]), args[self.inputs :]
        for k, i in enumerate(range(self.start, self.stop)):
            j = 2 * (k - (1 if self.start == 0 else 0))
            state = self.net.step(i, state, *((None, None) if i == 0 else affine[j : j + 2]))
        return state
