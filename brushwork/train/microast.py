"""Training or fine-tuning the whole MicroAST model (:mod:`brushwork.nets.microast`) on photos and paintings.

Used by :func:`brushwork.train.decoder.train_decoder` with ``arch="microast"`` (same loop, checkpoints, log,
validation grids and DDP as the AdaIN/WCT decoders). Everything is trained: both micro encoders, the modulator and
the decoder, starting from the shipped weights (``init="shipped"``), a MicroAST file, or random weights.

Loss of a batch of photos ``c_i`` and paintings ``s_i`` (``o_i`` = MicroAST(c_i, s_i)), measured in a frozen loss
network φ (the offline MobileNetV2 trunk with SWAG by default, VGG-19 when its weights are here):

- ``content``: ``Σ_l ||norm(φ_l(o)) − norm(φ_l(c))||²`` over the content layer(s), ``norm`` = per-channel
  mean/std normalisation (the layout of the photo's features, not their statistics, which the style sets);
- ``style``: ``Σ_l ||μ(ψ_l(o)) − μ(ψ_l(s))||² + ||σ(ψ_l(o)) − σ(ψ_l(s))||²`` over the style layers, ψ = φ then
  SWAG (MobileNet) or φ itself (VGG);
- ``contrast``: the style-signal contrastive term of MicroAST. The modulation signal ``m(x)`` (the modulator's
  four filter vectors, 256 numbers, computed by the style encoder and modulator being trained) of each output
  should be close to the signal of its own painting and far from the other paintings' in the batch::

      contrast = mean_i ||m(o_i) − m(s_i)||² / mean_{j≠i} ||m(o_i) − m(s_j)||²

  (0 for a batch of one). Gradients flow into both sides, so the style encoder and modulator learn signals that
  separate styles while the decoder learns to render outputs whose signals match their style's.

``loss = content_weight · content + style_weight · style + contrast_weight · contrast``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brushwork.errors import InputError
from brushwork.nets.microast import CHANNELS, SIGNAL_PARTS, MicroAST, split_signal
from brushwork.transforms import calc_mean_std

LOSS_NAMES = ("loss", "content", "style", "contrast")
LOSS_NETS = ("auto", "mobilenet", "vgg19")
# loss network -> (content layers, style layers); VGG-19's are the authors' (content relu4_1, style relu1_1..4_1)
LAYERS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "mobilenet": (("block5",), ("conv", "block2", "block5", "block9", "block12")),
    "vgg19": (("relu4_1",), ("relu1_1", "relu2_1", "relu3_1", "relu4_1")),
}
_MODULATION = [i for i, p in enumerate(SIGNAL_PARTS) if p.startswith(("weight", "bias"))]


def choose_loss_net(name: str, weights: str) -> str:
    """``auto`` → ``vgg19`` when its weights are given as a file or are in the store already, else ``mobilenet``."""
    if name not in LOSS_NETS:
        raise InputError(f"unknown loss network {name!r} for microast; choose one of {', '.join(LOSS_NETS)}")
    from brushwork.methods.optimize import choose_backbone

    return choose_backbone(name, weights)


def build_model(init: str, seed: int = 0) -> MicroAST:
    """The starting weights: ``shipped`` (the authors'), ``random`` (seeded) or a MicroAST ``.safetensors`` file."""
    torch.manual_seed(seed)
    net = MicroAST()
    if init == "random":
        return net
    if init == "shipped":
        from brushwork import store

        net.load_state_dict(store.load_state("microast"))
        return net
    from brushwork.decoders import load_microast_state

    net.load_state_dict(load_microast_state(init))
    return net


def modulation(signal: Tensor) -> Tensor:
    """``N×SIGNAL_SIZE`` style signals → their modulation part ``N×256`` (the modulator's four filter vectors)."""
    parts = signal.split(CHANNELS, 1)
    return torch.cat([parts[i] for i in _MODULATION], 1)


def contrastive(out_signal: Tensor, style_signal: Tensor) -> Tensor:
    """The style-signal contrastive term (module docstring): 0 for a batch of one."""
    n = out_signal.shape[0]
    if n < 2:
        return out_signal.sum() * 0.0
    mo, ms = modulation(out_signal), modulation(style_signal)
    d = (mo[:, None, :] - ms[None, :, :]).square().mean(2)  # d[i, j] = ||m(o_i) − m(s_j)||² / 256
    pos = d.diagonal()
    neg = (d.sum(1) - pos) / (n - 1)
    return (pos / neg.clamp_min(1e-8)).mean()


def _normalized(f: Tensor) -> Tensor:
    mean, std = calc_mean_std(f)
    return (f - mean) / std


class MicroastTrainer(nn.Module):
    """The model being trained and its frozen loss network; :meth:`forward` returns the loss terms of a batch
    (one forward for DDP, which wraps this module)."""

    def __init__(self, net: MicroAST, lossnet: nn.Module, loss_name: str, weights: tuple[float, float, float]) -> None:
        super().__init__()
        self.net = net
        self.lossnet = lossnet.requires_grad_(False).eval()
        self.content_layers, self.style_layers = LAYERS[loss_name]
        self.weights = weights

    def train(self, mode: bool = True) -> MicroastTrainer:
        super().train(mode)
        self.lossnet.eval()  # frozen, always
        return self

    def forward(self, content: Tensor, style: Tensor) -> dict[str, Tensor]:
        net, phi = self.net, self.lossnet
        s_signal = net.style(style)
        _, c1 = net.render.encoder(content)
        out = net.render.decoder(c1, split_signal(s_signal))
        o_signal = net.style(out)
        layers = [*self.content_layers, *self.style_layers]
        with torch.no_grad():
            fc = phi(content, self.content_layers)
            fs = phi(style, self.style_layers)
        fo = phi(out, layers)
        content_loss = sum(F.mse_loss(_normalized(fo[n]), _normalized(fc[n])) for n in self.content_layers)
        style_loss = out.new_zeros(())
        transform = getattr(phi, "style_transform", lambda f: f)
        for name in self.style_layers:
            om, osd = calc_mean_std(transform(fo[name]))
            sm, ssd = calc_mean_std(transform(fs[name]))
            style_loss = style_loss + F.mse_loss(om, sm) + F.mse_loss(osd, ssd)
        contrast = contrastive(o_signal, s_signal)
        wc, ws, wk = self.weights
        total = wc * content_loss + ws * style_loss + wk * contrast
        return {"loss": total, "content": content_loss, "style": style_loss, "contrast": contrast}


def build_trainer(config: Any, device: torch.device) -> tuple[MicroastTrainer, str]:
    """The trainer for a :class:`brushwork.train.decoder.DecoderTrainConfig` with ``arch="microast"`` and the
    resolved loss network's name."""
    from brushwork.nets.backbone import build_backbone
    from brushwork.train.decoder import resolve_defaults

    config = resolve_defaults(config)
    loss_name = choose_loss_net(config.encoder or "auto", config.encoder_weights)
    weights = "imagenet" if config.encoder_weights == "pretrained" else config.encoder_weights
    lossnet = build_backbone(loss_name, weights, device=device, seed=config.seed)
    net = build_model(config.init, config.seed)
    w = (config.content_weight, config.style_weight, config.contrast_weight)
    return MicroastTrainer(net, lossnet, loss_name, w).to(device), loss_name


def validation_grid(net: MicroAST, photos: Tensor, paintings: Tensor) -> Tensor:
    """A picture ``3×H×W``: a header row of the paintings, then per photo the photo and its stylization with each
    painting. ``photos`` ``P×3×s×s``, ``paintings`` ``Q×3×s×s``."""
    with torch.no_grad():
        signals = net.style(paintings)
        rows = [torch.cat([torch.ones_like(photos[0]), *paintings], dim=2)]
        for i in range(photos.shape[0]):
            _, c1 = net.render.encoder(photos[i : i + 1].expand_as(paintings))
            stylized = net.render.decoder(c1, split_signal(signals)).clamp(0, 1)
            rows.append(torch.cat([photos[i], *stylized], dim=2))
    return torch.cat(rows, dim=1)


def file_config(loss_name: str, init: str) -> dict[str, Any]:
    """The config written into a trained MicroAST file (format, provenance, licence, how it was trained)."""
    from brushwork.methods.microast import CONFIG

    base = init if init in ("shipped", "random") else str(Path(init))
    return {**CONFIG, "base": base, "loss_net": loss_name}
