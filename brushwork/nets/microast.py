"""MicroAST (Wang et al., AAAI 2023): micro encoders, a modulator and a modulated micro decoder.

"Towards Super-Fast Ultra-Resolution Arbitrary Style Transfer" (arXiv 2211.15313). Written for brushwork from
the architecture sheet of the weights' folder and the state-dict shapes of the authors' files (MIT licence,
``brushwork/assets/models/microast-LICENSE.txt``).

- Two encoders with the same architecture (one for the photo, one for the style): a 9×9 convolution at full
  resolution, two strided depthwise/pointwise stages to 1/4 resolution and 64 channels, then two residual blocks;
  they return the features after the first and after the second residual block.
- The modulator turns the style's two feature maps into per-channel filter weights and biases (a depthwise 3×3
  convolution, then the spatial mean).
- The decoder applies AdaIN to the photo's deep features, runs a residual block whose filters are modulated by
  the style, AdaIN again at the shallower level, a second modulated residual block, then upsamples ×4 back to an
  RGB picture (no output activation).

Everything the decoder needs from a style is one **style signal** of :data:`SIGNAL_SIZE` numbers per image
(:data:`SIGNAL_PARTS`: the style features' channel means and standard deviations at both levels and the four
modulation vectors). Signals of several styles blend linearly (``style_weights``), and per-pixel signal maps
give each region of the photo its own style (masks in feature space, each region normalised by its own
statistics). :class:`StyleNet` (style image → signal), :class:`RenderNet` (photo + signal → picture) and
:class:`RegionRenderNet` (photo + signals + masks → picture) are the networks the engine runs and exports.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brushwork.nets.blocks import reflect_conv_space_to_depth

CHANNELS = 64
SIGNAL_PARTS = ("mean1", "std1", "weight1", "bias1", "mean0", "std0", "weight0", "bias0")
SIGNAL_SIZE = CHANNELS * len(SIGNAL_PARTS)
EPS = 1e-5  # added to the (unbiased) variance before the square root, as the authors
SCALE = 4  # the features are at 1/4 resolution: sides must be multiples of 4


class ConvLayer(nn.Module):
    """Reflection padding by ``k // 2``, then a convolution (the authors' key name ``conv_layer``).

    :meth:`forward` computes :meth:`reference` in a faster form for two kinds of layer (the same numbers up to
    float rounding; the ONNX export and the CPU runtimes gain most):

    - a large kernel with few outputs (the decoder's last 9×9 convolution, 16 → 3 at full resolution) runs on
      the 2×2 space-to-depth of the padded input as a 5×5 convolution with 4× the outputs, then pixel shuffle:
      a matrix shape that convolution kernels use well instead of 3 output channels;
    - a grouped convolution with 2 inputs and 1 output per group runs as a depthwise convolution and a 1×1
      convolution summing the pairs (both have fast kernels; 2-input groups have none).
    """

    def __init__(self, cin: int, cout: int, k: int, stride: int = 1, groups: int = 1) -> None:
        super().__init__()
        self.pad = k // 2
        self.conv_layer = nn.Conv2d(cin, cout, k, stride=stride, groups=groups)

    def reference(self, x: Tensor) -> Tensor:
        if self.pad:
            x = F.pad(x, (self.pad,) * 4, mode="reflect")
        return self.conv_layer(x)

    def forward(self, x: Tensor) -> Tensor:
        conv = self.conv_layer
        if conv.stride == (1, 1) and conv.groups == 1 and conv.kernel_size[0] >= 5 and conv.out_channels < 8:
            return self._space_to_depth(x)
        if conv.stride == (1, 1) and conv.groups > 1 and conv.in_channels == 2 * conv.groups == 2 * conv.out_channels:
            return self._pairs(x)
        return self.reference(x)

    def _space_to_depth(self, x: Tensor) -> Tensor:
        return reflect_conv_space_to_depth(self.conv_layer, x, self.pad)

    def _pairs(self, x: Tensor) -> Tensor:
        conv = self.conv_layer
        c, k = conv.in_channels, conv.kernel_size[0]
        y = F.conv2d(F.pad(x, (self.pad,) * 4, mode="reflect"), conv.weight.reshape(c, 1, k, k), groups=c)
        pairs = torch.eye(conv.out_channels, dtype=x.dtype, device=x.device).repeat_interleave(2, 1)
        return F.conv2d(y, pairs[:, :, None, None], conv.bias)


def split_depthwise(layer: ConvLayer, x: Tensor) -> list[Tensor]:
    """A grouped convolution with 1 input and 2 outputs per group as two depthwise convolutions: part ``j``'s
    channel ``g`` is the layer's channel ``2g + j`` (see :func:`pointwise_of_parts`)."""
    conv = layer.conv_layer
    g, k = conv.groups, conv.kernel_size[0]
    xp = F.pad(x, (layer.pad,) * 4, mode="reflect")
    w = conv.weight.reshape(g, 2, 1, k, k)
    b = conv.bias.reshape(g, 2)
    return [F.conv2d(xp, w[:, j], b[:, j], stride=conv.stride, groups=g) for j in range(2)]


def pointwise_of_parts(layer: ConvLayer, parts: list[Tensor]) -> Tensor:
    """A 1×1 layer applied to :func:`split_depthwise`'s parts without joining them: the sum of one 1×1
    convolution per part (its input columns), which the runtimes fuse, instead of a copy into one map."""
    conv = layer.conv_layer
    o, c = conv.weight.shape[:2]
    columns = conv.weight.reshape(o, c // 2, 2, 1, 1)
    return F.conv2d(parts[0], columns[:, :, 0], conv.bias) + F.conv2d(parts[1], columns[:, :, 1])


class ResBlock(nn.Module):
    """``x + conv2(relu(conv1(x)))`` with two 3×3 convolutions."""

    def __init__(self, channels: int = CHANNELS) -> None:
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3)
        self.conv2 = ConvLayer(channels, channels, 3)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(F.relu(self.conv1(x)))

    def modulated(self, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        """The decoder's form: each convolution's output is scaled by ``weight`` and gets ``bias`` times the
        convolution's input (``weight``/``bias``: ``N×C×1×1`` or per-pixel ``N×C×H×W``).

        With one picture and one signal (``1×C×1×1``) the modulation is folded into the convolutions' weights
        (each output's filter scaled, ``bias`` added to its own input's centre tap): the same numbers, and the
        exported graph has two convolutions where it had two convolutions and four elementwise passes over the
        feature map (OpenVINO: the whole network −2 to −3 %)."""
        if x.shape[0] == 1 and weight.shape[0] == 1 and weight.shape[2:] == (1, 1) and bias.shape[2:] == (1, 1):
            y = F.relu(_modulated_conv(self.conv1, x, weight, bias))
            return x + _modulated_conv(self.conv2, y, weight, bias)
        y = F.relu(weight * self.conv1(x) + bias * x)
        return x + weight * self.conv2(y) + bias * y


def _modulated_conv(layer: ConvLayer, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """``weight · layer(x) + bias · x`` for one picture (``weight``/``bias``: ``1×C×1×1``) as one convolution."""
    conv = layer.conv_layer
    c, k = conv.out_channels, conv.kernel_size[0]
    tap = F.pad(torch.ones(1, 1, 1, 1, dtype=x.dtype, device=x.device), (k // 2,) * 4)  # 1 at the centre
    centre = torch.eye(c, dtype=x.dtype, device=x.device)[:, :, None, None] * tap  # output o reads input o
    w = conv.weight * weight.reshape(c, 1, 1, 1) + centre * bias.reshape(c, 1, 1, 1)
    return F.conv2d(F.pad(x, (layer.pad,) * 4, mode="reflect"), w, conv.bias * weight.reshape(c))


class Encoder(nn.Module):
    """``N×3×H×W`` RGB 0..1 → two ``N×64×H/4×W/4`` feature maps."""

    def __init__(self) -> None:
        super().__init__()
        self.enc1 = nn.Sequential(
            ConvLayer(3, 16, 9),
            nn.ReLU(),
            ConvLayer(16, 32, 3, stride=2, groups=16),
            nn.ReLU(),
            ConvLayer(32, 32, 1),
            nn.ReLU(),
            ConvLayer(32, 64, 3, stride=2, groups=32),
            nn.ReLU(),
            ConvLayer(64, 64, 1),
            nn.ReLU(),
            ResBlock(),
        )
        self.enc2 = nn.Sequential(ResBlock())

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f0 = self._enc1(x)
        return f0, self.enc2(f0)

    def reference(self, x: Tensor) -> tuple[Tensor, Tensor]:
        f0 = self.enc1(x)
        return f0, self.enc2(f0)

    def _enc1(self, x: Tensor) -> Tensor:
        """``enc1`` with its strided 1-input-2-output grouped convolutions as pairs of depthwise convolutions
        (fast kernels), each part going into the next 1×1 convolution through its own columns."""
        e = self.enc1
        y = F.relu(e[0](x))
        y = F.relu(pointwise_of_parts(e[4], [F.relu(p) for p in split_depthwise(e[2], y)]))
        y = F.relu(pointwise_of_parts(e[8], [F.relu(p) for p in split_depthwise(e[6], y)]))
        return e[10](y)


class Modulator(nn.Module):
    """Style features ``(s0, s1)`` → filter weights and biases ``(w0, b0, w1, b1)``, each ``N×64×1×1``."""

    def __init__(self) -> None:
        super().__init__()
        for name in ("weight1", "bias1", "weight2", "bias2"):
            setattr(self, name, nn.Sequential(ConvLayer(CHANNELS, CHANNELS, 3, groups=CHANNELS)))

    def forward(self, s0: Tensor, s1: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        def pooled(layer: nn.Module, x: Tensor) -> Tensor:
            return layer(x).mean((2, 3), keepdim=True)

        return pooled(self.weight1, s0), pooled(self.bias1, s0), pooled(self.weight2, s1), pooled(self.bias2, s1)


def mean_std(x: Tensor) -> tuple[Tensor, Tensor]:
    """Channel mean and standard deviation over H×W (unbiased variance + :data:`EPS`), each ``N×C×1×1``."""
    n = x.shape[2] * x.shape[3]
    mean = x.mean((2, 3), keepdim=True)
    var = (x - mean).square().sum((2, 3), keepdim=True) / (n - 1)
    return mean, (var + EPS).sqrt()


def adain(x: Tensor, mean: Tensor, std: Tensor, alpha: Tensor | float = 1.0) -> Tensor:
    """``x`` normalised per channel and given ``mean``/``std`` (``N×C×1×1``), then ``alpha·that + (1 − alpha)·x``."""
    m, s = mean_std(x)
    t = (x - m) / s * std + mean
    return t if isinstance(alpha, float) and alpha == 1.0 else x + alpha * (t - x)


def upsample2(x: Tensor) -> Tensor:
    """Bilinear ×2 (``align_corners=False``, as ``nn.Upsample``), exported with the output size instead of the
    scale: onnxruntime then keeps it in plain layout (its blocked-layout resize at full resolution needs a
    reorder that cost more than the resize itself). The same numbers."""
    h, w = x.shape[2:]
    return F.interpolate(x, size=(2 * h, 2 * w), mode="bilinear", align_corners=False)


def region_adain(x: Tensor, masks: Tensor, mean: Tensor, std: Tensor) -> Tensor:
    """AdaIN per region: ``masks`` ``1×K×H×W`` (weights summing to 1 at each pixel) select K regions of ``x``
    (``1×C×H×W``); each region is normalised by its own (mask-weighted) statistics and given style ``k``'s
    ``mean``/``std`` (``K×C``), and the K results are blended by the masks. One region of ones is :func:`adain`.
    """
    k, c = mean.shape
    m = masks.flatten(2)[0]  # K×P
    xf = x.flatten(2)[0]  # C×P
    count = m.sum(1, keepdim=True)  # K×1
    mu = (m @ xf.t()) / count.clamp(min=1e-6)  # K×C
    var = (m[:, None] * (xf[None] - mu[:, :, None]).square()).sum(2) / (count - 1.0).clamp(min=1.0)
    gain = std / (var + EPS).sqrt()  # K×C: x·gain + shift is region k's AdaIN
    shift = mean - mu * gain
    gain_map = (gain.t() @ m).reshape(x.shape)
    shift_map = (shift.t() @ m).reshape(x.shape)
    return x * gain_map + shift_map


class Decoder(nn.Module):
    """Photo features + style signal → ``N×3×H×W`` (not clamped)."""

    def __init__(self) -> None:
        super().__init__()
        self.dec1 = ResBlock()
        self.dec2 = ResBlock()
        self.dec3 = nn.Sequential(
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ConvLayer(64, 32, 3, groups=32),
            nn.ReLU(),
            ConvLayer(32, 32, 1),
            nn.ReLU(),
            nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False),
            ConvLayer(32, 16, 3, groups=16),
            nn.ReLU(),
            ConvLayer(16, 16, 1),
            nn.ReLU(),
            ConvLayer(16, 3, 9),
        )

    def forward(self, c1: Tensor, signal: dict[str, Tensor], alpha: Tensor | float = 1.0) -> Tensor:
        """``c1``: the photo's deep features; ``signal``: :data:`SIGNAL_PARTS` → ``N×64×1×1``."""
        t = adain(c1, signal["mean1"], signal["std1"], alpha)
        out = self.dec1.modulated(t, signal["weight1"], signal["bias1"])
        u = adain(out, signal["mean0"], signal["std0"], alpha)
        return self.upsample(self.dec2.modulated(u, signal["weight0"], signal["bias0"]))

    def upsample(self, x: Tensor) -> Tensor:
        """``dec3`` with its upsampling layers as :func:`upsample2`."""
        for layer in self.dec3:
            x = upsample2(x) if isinstance(layer, nn.Upsample) else layer(x)
        return x

    def regions(self, c1: Tensor, signals: Tensor, masks: Tensor) -> Tensor:
        """A style per region: ``signals`` ``K×SIGNAL_SIZE``, ``masks`` ``1×K×H×W`` at ``c1``'s resolution
        (weights summing to 1 at each pixel). Each region gets its style's statistics (:func:`region_adain`)
        and per-pixel modulation, so the decoder draws the borders between regions."""
        parts = dict(zip(SIGNAL_PARTS, signals.split(CHANNELS, 1), strict=True))
        m = masks.flatten(2)[0]

        def per_pixel(name: str) -> Tensor:
            return (parts[name].t() @ m).reshape(1, CHANNELS, *masks.shape[2:])

        t = region_adain(c1, masks, parts["mean1"], parts["std1"])
        out = self.dec1.modulated(t, per_pixel("weight1"), per_pixel("bias1"))
        u = region_adain(out, masks, parts["mean0"], parts["std0"])
        return self.upsample(self.dec2.modulated(u, per_pixel("weight0"), per_pixel("bias0")))


def split_signal(signal: Tensor) -> dict[str, Tensor]:
    """``N×SIGNAL_SIZE`` → :data:`SIGNAL_PARTS` → ``N×64×1×1``."""
    return dict(zip(SIGNAL_PARTS, signal[:, :, None, None].split(CHANNELS, 1), strict=True))


class StyleNet(nn.Module):
    """Style image ``N×3×H×W`` (0..1, sides ≥ 8) → style signal ``N×SIGNAL_SIZE``."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.modulator = Modulator()

    def forward(self, style: Tensor) -> Tensor:
        s0, s1 = self.encoder(style)
        w0, b0, w1, b1 = self.modulator(s0, s1)
        (m0, sd0), (m1, sd1) = mean_std(s0), mean_std(s1)
        parts = {"mean1": m1, "std1": sd1, "weight1": w1, "bias1": b1, "mean0": m0, "std0": sd0}
        parts |= {"weight0": w0, "bias0": b0}
        return torch.cat([parts[p] for p in SIGNAL_PARTS], 1).flatten(1)


class RenderNet(nn.Module):
    """Photo ``1×3×H×W`` (sides multiples of 4) + one style signal ``1×SIGNAL_SIZE`` (a blend of styles is the
    weighted mean of their signals) → stylized ``1×3×H×W`` (not clamped)."""

    def __init__(self) -> None:
        super().__init__()
        self.encoder = Encoder()
        self.decoder = Decoder()

    def forward(self, content: Tensor, signal: Tensor) -> Tensor:
        _, c1 = self.encoder(content)
        return self.decoder(c1, split_signal(signal))


class RegionRenderNet(nn.Module):
    """:class:`RenderNet`'s weights with a style per region: photo ``1×3×H×W``, signals ``K×SIGNAL_SIZE`` and
    masks ``1×K×H/4×W/4`` (weights summing to 1 at each pixel) → ``1×3×H×W``."""

    def __init__(self, render: RenderNet) -> None:
        super().__init__()
        object.__setattr__(self, "net", render)  # shared, not a sub-module: the weights stay listed once

    def forward(self, content: Tensor, signals: Tensor, masks: Tensor) -> Tensor:
        _, c1 = self.net.encoder(content)
        return self.net.decoder.regions(c1, signals, masks)


class MicroAST(nn.Module):
    """The whole model: :attr:`style` (style encoder + modulator) and :attr:`render` (photo encoder + decoder);
    :attr:`regions` is ``render`` with a style per region.

    State-dict keys: ``style.encoder.*``, ``style.modulator.*``, ``render.encoder.*``, ``render.decoder.*``
    (the names below those are the authors').
    """

    def __init__(self) -> None:
        super().__init__()
        self.style = StyleNet()
        self.render = RenderNet()

    @property
    def regions(self) -> RegionRenderNet:
        return RegionRenderNet(self.render)

    def forward(self, content: Tensor, style: Tensor, alpha: float = 1.0) -> Tensor:
        """The authors' single-style forward: ``N×3×H×W`` photo and ``N×3×h×w`` style → ``N×3×H×W``.
        (``alpha`` below 1 interpolates the features as the authors do; their decoder was not trained for it.)"""
        _, c1 = self.render.encoder(content)
        return self.render.decoder(c1, split_signal(self.style(style)), alpha)


# the authors' four files and the prefix of each one's keys in :class:`MicroAST`
ORIGINAL_FILES = {
    "content_encoder": "render.encoder.",
    "style_encoder": "style.encoder.",
    "modulator": "style.modulator.",
    "decoder": "render.decoder.",
}
