"""Autoencoders for AdaIN and WCT: a frozen encoder cut from a backbone, and a decoder that mirrors it.

The encoder is any backbone whose layers are named stages run in order (VGG's ``conv1_1``, ``relu1_1`` … or
MobileNetV2's ``conv``, ``block0`` … ``block16``); it stops at the deepest layer asked for. The decoder inverts
the stages up to the cut in reverse: every stage with weights becomes a reflect-padded 3×3 convolution (+ ReLU,
except the last), every downsampling stage a nearest ×2 upsampling (Huang & Belongie 2017's VGG decoder is exactly
the mirror of VGG-19 up to relu4_1). A decoder is described by its ``spec``, a list of ``(cin, cout, upsample)``
rows, which is stored with its weights.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brushwork.nets.blocks import ReflectConv


@dataclass(frozen=True)
class StageInfo:
    """One stage of an encoder: its name, output channels, its downsampling factor and whether it has weights."""

    name: str
    channels: int
    stride: int
    has_weights: bool


class Encoder(nn.Module):
    """A frozen multi-layer feature extractor over named stages.

    ``stages`` is an ``nn.Sequential`` with named children (run in order); ``preprocess`` maps the ``N×3×H×W`` RGB
    input in 0..1 to what the backbone expects (e.g. ImageNet normalisation). ``layer`` is the cut used for AdaIN
    and WCT; ``style_layers`` are the layers of the style loss (the deepest of all bounds the stages kept).
    """

    def __init__(
        self,
        stages: nn.Sequential,
        layer: str,
        style_layers: Sequence[str] = (),
        preprocess: nn.Module | None = None,
    ) -> None:
        super().__init__()
        names = [name for name, _ in stages.named_children()]
        wanted = [layer, *style_layers]
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ValueError(f"unknown layer(s) {missing}; the backbone has {names}")
        last = max(names.index(n) for n in wanted)
        self.stages = nn.Sequential(*[s for _, s in list(stages.named_children())[: last + 1]])
        self.names = names[: last + 1]
        self.layer = layer
        self.style_layers = list(style_layers)
        self.preprocess = preprocess if preprocess is not None else nn.Identity()
        self.requires_grad_(False).eval()

    def features(self, x: Tensor, layers: Sequence[str]) -> dict[str, Tensor]:
        """``N×3×H×W`` in 0..1 → ``{layer: N×C×h×w}``; each stage runs once, stopping at the deepest layer."""
        wanted = set(layers)
        out: dict[str, Tensor] = {}
        x = self.preprocess(x)
        for name, stage in zip(self.names, self.stages, strict=True):
            x = stage(x)
            if name in wanted:
                out[name] = x
                if len(out) == len(wanted):
                    break
        return out

    def forward(self, x: Tensor) -> Tensor:
        """``N×3×H×W`` in 0..1 → the features at ``layer``, ``N×C×H/s×W/s``."""
        return self.features(x, [self.layer])[self.layer]

    @property
    def scale(self) -> int:
        """The total downsampling factor at ``layer`` (input sizes should be multiples of it)."""
        s = 1
        for info in self.stage_info():
            s *= info.stride
        return s

    def stage_info(self) -> list[StageInfo]:
        """Probe the stages up to ``layer`` with a small input: channels and stride of each."""
        infos = []
        size = 64
        with torch.no_grad():
            p = next(self.parameters(), None)
            x = torch.zeros(1, 3, size, size, device=p.device if p is not None else "cpu")
            x = self.preprocess(x)
            for name, stage in zip(self.names, self.stages, strict=True):
                y = stage(x)
                stride = max(1, round(x.shape[-1] / y.shape[-1]))
                infos.append(StageInfo(name, y.shape[1], stride, any(True for _ in stage.parameters())))
                x = y
                if name == self.layer:
                    break
        return infos


def mirror_spec(stages: Sequence[StageInfo], in_channels: int = 3, width: float = 1.0) -> list[tuple[int, int, bool]]:
    """The decoder spec mirroring ``stages`` (forward order, up to the cut): rows ``(cin, cout, upsample)``.

    Reversed, a downsampling stage becomes a nearest ×2 upsampling (merged into the next convolution) and a stage
    with weights a 3×3 convolution from its output channels back to its input channels. ``width`` scales the
    hidden channels (not the encoder's output nor the 3 RGB channels).
    """
    chans = [in_channels] + [s.channels for s in stages]
    rows: list[tuple[int, int, bool]] = []
    pending_up = False
    for i in reversed(range(len(stages))):
        s = stages[i]
        if s.stride > 1:
            pending_up = True
        if s.has_weights:
            rows.append((chans[i + 1], chans[i], pending_up))
            pending_up = False
    if pending_up:  # a leading downsampling stage without weights: upsample into a final 3×3 convolution
        rows.append((in_channels, in_channels, True))
    if not rows:
        raise ValueError("the encoder has no stage with weights to mirror")
    last = len(rows) - 1
    scaled = []
    for j, (cin, cout, up) in enumerate(rows):
        cin_s = cin if j == 0 else max(8, round(cin * width))
        cout_s = cout if j == last else max(8, round(cout * width))
        scaled.append((cin_s, cout_s, up))
    return scaled


class Decoder(nn.Module):
    """Features ``N×C×h×w`` → image ``N×3×H×W`` (about 0..1; clamp for display).

    ``spec`` rows ``(cin, cout, upsample)``: nearest ×2 upsampling if asked, reflect padding, 3×3 convolution,
    and ReLU on every layer but the last.
    """

    def __init__(self, spec: Sequence[Sequence[int | bool]]) -> None:
        super().__init__()
        self.spec = [(int(cin), int(cout), bool(up)) for cin, cout, up in spec]
        self.layers = nn.ModuleList(ReflectConv(cin, cout, 3, upsample=2 if up else 1) for cin, cout, up in self.spec)

    @property
    def in_channels(self) -> int:
        return self.spec[0][0]

    def forward(self, f: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            f = layer(f)
            if i < len(self.layers) - 1:
                f = F.relu(f)
        return f
