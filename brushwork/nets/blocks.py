"""Small building blocks shared by the feed-forward transformer networks."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class _SpaceToDepth(torch.autograd.Function):
    """ONNX ``SpaceToDepth`` (channel ``(dy·f + dx)·C + c``) for the export; :func:`space_to_depth` otherwise."""

    @staticmethod
    def forward(ctx: object, x: Tensor, f: int) -> Tensor:  # noqa: ARG004
        return _space_to_depth(x, f)

    @staticmethod
    def symbolic(g: object, x: object, f: int) -> object:
        return g.op("SpaceToDepth", x, blocksize_i=f)  # type: ignore[attr-defined]


def space_to_depth(x: Tensor, f: int) -> Tensor:
    """``N×C×H×W`` → ``N×(f·f·C)×H/f×W/f`` with channel ``(dy·f + dx)·C + c`` (ONNX's order)."""
    if torch.onnx.is_in_onnx_export():
        return _SpaceToDepth.apply(x, f)
    return _space_to_depth(x, f)


def _space_to_depth(x: Tensor, f: int) -> Tensor:
    n, c, h, w = x.shape
    return x.reshape(n, c, h // f, f, w // f, f).permute(0, 3, 5, 1, 2, 4).reshape(n, f * f * c, h // f, w // f)


def space_to_depth_weight(w: Tensor, f: int) -> Tensor:
    """The weight of a stride-1 convolution ``w`` (``O×C×k×k``) rewritten for :func:`space_to_depth` input and
    :func:`~torch.nn.functional.pixel_shuffle` output: ``(O·f·f)×(f·f·C)×k'×k'`` with ``k' = ceil((k+f−1)/f)``.

    Output phase ``(a, b)`` at block ``i`` reads input pixel ``f·(i+j) + dy`` = tap ``f·j + dy − a`` of ``w``.
    """
    o, c, k, _ = w.shape
    kk = -(-(k + f - 1) // f)
    phases = []
    for a in range(f):
        row = []
        for b in range(f):
            wp = F.pad(w, (b, kk * f - k - b, a, kk * f - k - a))  # tap t of w at index t + a (rows), t + b (cols)
            row.append(wp.reshape(o, c, kk, f, kk, f))  # O, C, j, dy, l, dx
        phases.append(torch.stack(row, 1))
    wt = torch.stack(phases, 1)  # O, a, b, C, j, dy, l, dx
    return wt.permute(0, 1, 2, 5, 7, 3, 4, 6).reshape(o * f * f, f * f * c, kk, kk)


def reflect_conv_space_to_depth(conv: nn.Conv2d, x: Tensor, pad: int, f: int = 2) -> Tensor:
    """``conv`` (stride 1) of ``x`` reflect-padded by ``pad``, computed on the ``f×f`` space-to-depth of the padded
    input as a convolution with ``f·f``× the outputs and a kernel of ``ceil((k+f−1)/f)``, then pixel shuffle: the
    same numbers up to float rounding, and a matrix shape that convolution kernels use well where a large kernel
    has few outputs (a last 9×9 convolution to 3 channels at full resolution)."""
    h, w = x.shape[2:]
    xp = F.pad(x, (pad,) * 4, mode="reflect")
    eh, ew = (-(h + 2 * pad)) % f, (-(w + 2 * pad)) % f
    if eh or ew:  # zeros that no output reads
        xp = F.pad(xp, (0, ew, 0, eh))
    bias = conv.bias.repeat_interleave(f * f) if conv.bias is not None else None
    y = F.conv2d(space_to_depth(xp, f), space_to_depth_weight(conv.weight, f), bias)
    return F.pixel_shuffle(y, f)[..., :h, :w]


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
        conv = self.conv
        if conv.stride == (1, 1) and conv.kernel_size[0] >= 5 and conv.out_channels < 8:
            # a large kernel with few outputs (the last 9×9 convolution to RGB at full resolution): 25 % faster
            # in onnxruntime in space-to-depth form
            return reflect_conv_space_to_depth(conv, x, self.pad)
        return conv(F.pad(x, (self.pad,) * 4, mode="reflect"))

    def reference(self, x: Tensor) -> Tensor:
        """Upsample (nearest), reflect-pad, convolve: the definition :meth:`forward` computes faster."""
        if self.upsample > 1:
            x = F.interpolate(x, scale_factor=self.upsample, mode="nearest")
        return self.conv(F.pad(x, (self.pad,) * 4, mode="reflect"))

    def _upsampled(self, x: Tensor) -> Tensor:
        return F.pixel_shuffle(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), *self._phase_weights()), 2)

    def _phase_weights(self) -> tuple[Tensor, Tensor | None]:
        """One 3×3 convolution of the replicate-padded low-resolution input giving the four output phases as
        channels ``o·4 + 2a + b`` (pixel ``(2i+a, 2j+b)`` after the pixel shuffle). Phase 0 of an axis reads
        low-resolution offsets (−1, 0) with taps (w0, w1 + w2), phase 1 offsets (0, +1) with (w0 + w1, w2); the
        third tap of each phase is zero. One convolution instead of four on slices of the input: in onnxruntime
        the slices and the concatenation cost more than the zero taps' multiply-adds (docs/tiling.md)."""
        w = self.conv.weight  # O×C×3×3

        def fold(k: Tensor, dim: int, phase: int) -> Tensor:
            a, b, c = k.unbind(dim)
            zero = torch.zeros_like(a)
            return torch.stack([a, b + c, zero] if phase == 0 else [zero, a + b, c], dim)

        phases = [fold(fold(w, 2, a), 3, b) for a in (0, 1) for b in (0, 1)]  # each O×C×3×3
        weight = torch.stack(phases, 1).flatten(0, 1)  # (o, phase) → channel o·4 + 2a + b
        bias = None if self.conv.bias is None else self.conv.bias.repeat_interleave(4)
        return weight, bias


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


class NativeSpan(nn.Module):
    """Steps ``start`` … ``stop − 1`` of a network with a ``step`` method over the *whole* image, as one module
    (brushwork.tiling): step ``start`` applies the normalisation before it as the given affine map, and every later
    normalisation in the span is a real instance norm of the whole map, computed inside the module. Inputs are the
    state's tensors, then ``scale, shift`` of that first affine map, then ``gamma, beta`` of each normalisation the
    span computes (``start`` … ``stop − 2``); the outputs are the state after step ``stop − 1``.
    """

    def __init__(self, net: nn.Module, start: int, stop: int, inputs: int, eps: float) -> None:
        super().__init__()
        self.net, self.start, self.stop, self.inputs, self.eps = net, start, stop, inputs, eps

    def forward(self, *args: Tensor) -> tuple[Tensor, ...]:
        state = self.net.step(self.start, tuple(args[: self.inputs]), *args[self.inputs : self.inputs + 2])
        norms = args[self.inputs + 2 :]
        for k, i in enumerate(range(self.start + 1, self.stop)):
            t = F.instance_norm(state[-1], weight=norms[2 * k], bias=norms[2 * k + 1], eps=self.eps)
            state = self.net.step(i, (*state[:-1], t), None, None)  # no affine map: t is normalised already
        return state
