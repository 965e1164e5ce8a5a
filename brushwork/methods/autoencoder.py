"""Autoencoder style transfer (AdaIN, WCT): encode the photo, move its features to the style's statistics, decode.

One forward pass per image for any style. The encoder is a frozen backbone cut at one layer (VGG-19 relu4_1 by
default, or the offline MobileNetV2 trunk); the decoder is trained to invert it (:mod:`brushwork.train.decoder`).
brushwork ships ``decoder-mobilenet``, a decoder for the MobileNetV2 trunk cut at ``block5`` (1/8 resolution,
32 channels), so this works offline out of the box.

A decoder file is a ``.safetensors`` state dict whose metadata (and a ``.json`` beside it) hold its config:
``{"format": "brushwork-decoder", "encoder": ..., "layer": ..., "encoder_weights": ..., "spec": [[cin, cout, up], …]}``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import Tensor

# decoder files are read and written by brushwork.decoders (methods never touch files); re-exported here
from brushwork.decoders import (  # noqa: F401
    DEFAULT_DECODER,
    FORMAT,
    load_decoder,
    read_decoder_config,
    save_decoder,
    shipped_config,
    shipped_decoder,
    write_shipped,
)
from brushwork.errors import InputError
from brushwork.nets.decoder import Decoder, Encoder, mirror_spec
from brushwork.transforms import ContentMoments, _region_masks, match_color, transfer
from brushwork.validate import check_number

if TYPE_CHECKING:
    import numpy as np
    from torch import nn

METHODS = ("adain", "wct")
MIN_SIDE = 16  # both sides of the photo, in pixels (as the fast path)

# encoder name -> (default cut layer, style-loss layers)
ENCODERS: dict[str, tuple[str, list[str]]] = {
    "vgg19": ("relu4_1", ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]),
    "vgg16": ("relu4_1", ["relu1_1", "relu2_1", "relu3_1", "relu4_1"]),
    "mobilenet": ("block5", ["conv", "block2", "block5"]),
}


# -- encoders ------------------------------------------------------------------------------------------------


class _Normalize(torch.nn.Module):
    """RGB 0..1 → the backbone's input (VGG: ImageNet mean/std)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone_normalize = backbone.normalize

    def forward(self, x: Tensor) -> Tensor:
        return self.backbone_normalize(x)


def _backbone(name: str, weights: str, device: str | torch.device) -> tuple[nn.Sequential, nn.Module | None]:
    """The named stages of backbone ``name`` (via :func:`brushwork.nets.backbone.build_backbone`) and its input
    preprocessing (VGG's ImageNet normalisation; None for MobileNetV2, which takes RGB 0..1 as it is)."""
    from brushwork.nets.backbone import build_backbone

    if name not in ENCODERS:
        raise InputError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    net = build_backbone(name, "imagenet" if weights == "pretrained" else weights, device=device).net
    return net.features, (_Normalize(net) if hasattr(net, "normalize") else None)


def build_encoder(
    name: str = "vgg19",
    layer: str | None = None,
    weights: str = "imagenet",
    device: str | torch.device = "cpu",
    style_layers: Sequence[str] | None = None,
) -> Encoder:
    """A frozen :class:`Encoder` from backbone ``name`` (``vgg19``, ``vgg16`` or ``mobilenet``) cut at ``layer``.

    ``weights``: ``"imagenet"`` (VGG from torchvision via the store; for ``mobilenet`` the offline trunk of the
    Ghiasi style predictor), ``"random"`` (same architecture, random weights: for tests), or a local weights file.
    Defaults: relu4_1 and relu1_1…relu4_1 for VGG; block5 and conv, block2, block5 for MobileNetV2.
    """
    if name not in ENCODERS:
        raise InputError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")
    default_layer, default_style = ENCODERS[name]
    layer = layer or default_layer
    stages = _backbone_names(name)
    if layer not in stages:  # checked before the backbone is built
        raise InputError(f"encoder {name} has no layer {layer!r}; choose one of {', '.join(stages)}")
    if style_layers is None:
        style_layers = [n for n in default_style if stages.index(n) <= stages.index(layer)]
        if layer not in style_layers:
            style_layers = [*style_layers, layer]
    stages, preprocess = _backbone(name, weights, device)
    try:
        return Encoder(stages, layer, style_layers, preprocess).to(device)
    except ValueError as exc:
        raise InputError(f"encoder {name}: {exc}") from None


def _backbone_names(name: str) -> list[str]:
    """The stage names of backbone ``name``, in order."""
    if name in ("vgg19", "vgg16"):
        from brushwork.nets.vgg import layer_names

        return layer_names(name)
    from brushwork.nets.mobilenet import BLOCKS

    return ["conv", *[f"block{i}" for i in range(len(BLOCKS))], "conv_1"]


def decoder_config(encoder: Encoder, encoder_name: str, encoder_weights: str, width: float = 1.0) -> dict[str, Any]:
    """The config of a new decoder mirroring ``encoder``: format, encoder, layer, encoder_weights, spec."""
    spec = mirror_spec(encoder.stage_info(), width=width)
    return {
        "format": FORMAT,
        "encoder": encoder_name,
        "layer": encoder.layer,
        "encoder_weights": encoder_weights,
        "width": width,
        "spec": [list(row) for row in spec],
    }


# -- stylization ---------------------------------------------------------------------------------------------


def _pad_to(x: Tensor, multiple: int) -> tuple[Tensor, tuple[int, int]]:
    """Reflect-pad ``N×C×H×W`` on the right and bottom to multiples of ``multiple``; returns it and (H, W)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if ph < h and pw < w else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    return x, (h, w)


def _image_tensor(value: object, what: str) -> Tensor:
    """A ``1×3×H×W`` (or ``3×H×W``) image tensor, checked: InputError for anything else."""
    if not isinstance(value, torch.Tensor):
        raise InputError(f"{what} must be a 1×3×H×W tensor in 0..1, got {type(value).__name__}")
    if value.dim() == 3:
        value = value.unsqueeze(0)
    if value.dim() != 4 or value.shape[0] != 1 or value.shape[1] != 3:
        raise InputError(f"{what} must be a 1×3×H×W tensor in 0..1, got shape {tuple(value.shape)}")
    if not value.is_floating_point() or not torch.isfinite(value).all():
        raise InputError(f"{what} must hold finite float values in 0..1")
    return value


def stylize_autoencoder(
    content: Tensor,
    styles: Sequence[Tensor],
    *,
    method: str = "adain",
    decoder: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = DEFAULT_DECODER,
    alpha: float = 1.0,
    style_weights: Sequence[float] | None = None,
    mask: Tensor | None = None,
    preserve_color: bool = False,
    device: str | torch.device = "cpu",
) -> Tensor:
    """Stylize ``content`` (``1×3×H×W`` RGB 0..1) with ``styles`` (each ``1×3×h×w``) in one pass per decoder.

    - ``method``: ``"adain"`` (channel mean/std) or ``"wct"`` (whitening and colouring).
    - ``decoder``: a registered name (default: the shipped ``decoder-mobilenet``) or a decoder file; the encoder
      comes from the decoder's config. With ``method="wct"`` a list of decoders (deepest layer first) runs the
      multi-level cascade of Li et al. 2017.
    - ``alpha``: 0 = the content reconstructed, 1 = fully stylized.
    - ``style_weights``: blend several styles (default equal). ``mask``: ``K×H×W`` (K = number of styles) giving
      each style its region; with one style an ``H×W`` mask stylizes only where it is 1.
    - ``preserve_color``: recolour the styles to the photo's colours first (keeps the photo's colours).

    Returns ``1×3×H×W`` in 0..1.
    """
    if not isinstance(method, str) or method not in METHODS:
        raise InputError(f"unknown method {method!r:.40}; choose adain or wct")
    content = _image_tensor(content, "content")
    if isinstance(styles, torch.Tensor):
        styles = [styles]
    if not isinstance(styles, Sequence) or not styles:
        raise InputError("give at least one style image (a 1×3×H×W tensor)")
    styles = [_image_tensor(s, f"style {i + 1}") for i, s in enumerate(styles)]
    alpha = check_number(alpha, "alpha", low=0.0, high=1.0)
    if mask is not None and not isinstance(mask, torch.Tensor):
        raise InputError(f"mask must be a tensor (K×H×W, or H×W for one style), got {type(mask).__name__}")
    from brushwork.device import resolve_device

    device = device if isinstance(device, torch.device) else resolve_device(device)
    if style_weights is not None and len(style_weights) != len(styles):
        raise InputError(f"got {len(style_weights)} style weights for {len(styles)} styles")
    if style_weights is not None and mask is not None:
        raise InputError("give either style weights or a mask, not both")
    if min(content.shape[-2:]) < MIN_SIDE:
        raise InputError(f"image is too small ({content.shape[-1]}×{content.shape[-2]}): both sides need {MIN_SIDE} px")
    names = [decoder] if isinstance(decoder, (str, os.PathLike)) else list(decoder)
    if len(names) > 1 and method != "wct":
        raise InputError("several decoders (the multi-level cascade) need --method wct")
    content = content.to(device, torch.float32)
    styles = [s.to(device, torch.float32) for s in styles]
    if preserve_color:
        styles = [match_color(s, content) for s in styles]
    if mask is not None:
        mask = mask.to(device, torch.float32)
        if mask.dim() == 2 or (mask.dim() == 3 and mask.shape[0] == 1 and len(styles) > 1):
            mask = mask.reshape(1, *mask.shape[-2:])
            if len(styles) == 2:
                mask = torch.cat([mask, 1.0 - mask])
        if mask.shape[-2:] != content.shape[-2:]:
            raise InputError(
                f"mask is {mask.shape[-1]}×{mask.shape[-2]}, the photo {content.shape[-1]}×{content.shape[-2]}"
            )
    try:
        levels = []
        scale = 1
        for name in names:
            dec, config = load_decoder(name, device)
            enc = build_encoder(config["encoder"], config["layer"], config.get("encoder_weights", "imagenet"), device)
            levels.append((enc, dec))
            scale = max(scale, enc.scale)
        with torch.no_grad():
            x, (h, w) = _pad_to(content, scale)
            padded_mask = _pad_to(mask[None], scale)[0][0] if mask is not None else None
            for enc, dec in levels:
                feats = transfer(
                    enc(x),
                    [enc(s) for s in styles],
                    method=method,
                    alpha=alpha,
                    style_weights=style_weights,
                    masks=padded_mask,
                )
                x = dec(feats).clamp(0.0, 1.0)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return x[..., :h, :w].contiguous()


# -- tiled rendering (brushwork.tiling) ----------------------------------------------------------------------

TILE_BYTES_PER_PIXEL = 600  # working memory of an encoder-decoder pass per tile pixel (VGG to relu4_1, measured)
UNTILED_BYTES_PER_PIXEL = 1200  # peak of an untiled rendering per pixel (MobileNet decoder; VGG needs more)


def receptive_radius(enc: Encoder, dec: Decoder) -> int:
    """An upper bound of how far (image pixels, one side) an output pixel of ``dec(enc(x))`` reaches into ``x``:
    every ``k×k`` convolution or pooling adds ``(k − 1)·jump`` (the bound holds for any padding, TensorFlow's
    asymmetric SAME included), every decoder convolution ``jump`` at its input resolution."""
    radius, jump = 0, 1
    for module in enc.stages.modules():
        if isinstance(module, torch.nn.Conv2d | torch.nn.MaxPool2d | torch.nn.AvgPool2d):
            k = module.kernel_size if isinstance(module.kernel_size, int) else module.kernel_size[0]
            stride = module.stride if isinstance(module.stride, int) else module.stride[0]
            dilation = getattr(module, "dilation", 1)
            dilation = dilation if isinstance(dilation, int) else dilation[0]
            radius += (k - 1) * dilation * jump
            jump *= stride
    jump = enc.scale
    for layer in dec.layers:
        radius += (layer.conv.kernel_size[0] // 2) * jump
        jump //= layer.upsample
    return radius


def stylize_tiled(
    source: Any,
    styles: Sequence[Tensor],
    *,
    method: str = "adain",
    decoder: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] = DEFAULT_DECODER,
    alpha: float = 1.0,
    style_weights: Sequence[float] | None = None,
    mask: Any = None,
    preserve_color: bool = False,
    device: str | torch.device = "cpu",
    tile: int | None = None,
    budget: int = 2**30,
    out_dtype: Any = None,
    sink: Any = None,
) -> np.ndarray | None:
    """:func:`stylize_autoencoder` in tiles, equal to it up to float rounding, in bounded memory.

    ``source``: a :class:`brushwork.tiling.Source` (the photo); ``mask``: a Source of the same size with one
    channel of weights per style (as the API's ``K×H×W`` masks) or None. Pass 1 streams tiles through the
    encoder to accumulate the content statistics over the whole image (per mask region); pass 2 renders tiles
    with a halo of the encoder-decoder's receptive field and those statistics fixed. Returns H×W×3
    ``out_dtype`` pixels (uint8 by default), or hands each tile's float32 ``h×w×3`` result to
    ``sink(region, rgb)`` instead (then returns None).
    """
    import numpy as np

    from brushwork import tiling

    if method not in METHODS:
        raise InputError(f"unknown method {method!r}; choose adain or wct")
    if not 0.0 <= alpha <= 1.0:
        raise InputError(f"alpha must be between 0 and 1, got {alpha}")
    if style_weights is not None and len(style_weights) != len(styles):
        raise InputError(f"got {len(style_weights)} style weights for {len(styles)} styles")
    if style_weights is not None and mask is not None:
        raise InputError("give either style weights or a mask, not both")
    names = [decoder] if isinstance(decoder, (str, os.PathLike)) else list(decoder)
    if len(names) > 1 and method != "wct":
        raise InputError("several decoders (the multi-level cascade) need --method wct")
    h, w = source.shape
    if min(h, w) < MIN_SIDE:
        raise InputError(f"image is too small ({w}×{h}): both sides need {MIN_SIDE} px")
    out_dtype = out_dtype or np.uint8
    top = 65535.0 if out_dtype == np.uint16 else 255.0
    levels = []
    for name in names:
        dec, config = load_decoder(name, device)
        enc = build_encoder(config["encoder"], config["layer"], config.get("encoder_weights", "imagenet"), device)
        levels.append((enc, dec))
    scale = max(enc.scale for enc, _ in levels)
    height, width = tiling.round_up(h, scale), tiling.round_up(w, scale)
    styles = [s.to(device, torch.float32) for s in styles]
    regions_k = len(styles) if mask is not None else 1

    def nchw(a: np.ndarray) -> Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))[None]).to(device)

    with torch.no_grad():
        if preserve_color:  # the photo's colour mean and covariance, streamed
            colour = ContentMoments("wct", 1, 3)
            for y0, y1, x0, x1 in tiling.tiles(h, w, 1024):
                colour.add(nchw(source.read(y0, y1, x0, x1)), None)
            styles = [match_color(s, s, target_stats=colour.stats(False)[0]) for s in styles]
        fixed = h * w * 3 * np.dtype(out_dtype).itemsize
        side = tile or int(math.sqrt(max(budget - tiling.BASELINE_BYTES - fixed, 2**25) / 3 / TILE_BYTES_PER_PIXEL))
        current: Any = tiling.Padded(source, (height, width))
        mask_source = tiling.Padded(mask, (height, width)) if mask is not None else None

        def mask_weights(y0: int, y1: int, x0: int, x1: int, feat: Tensor) -> Tensor | None:
            if mask_source is None:
                return None
            m = torch.from_numpy(np.ascontiguousarray(mask_source.read(y0, y1, x0, x1).transpose(2, 0, 1)))
            return _region_masks(m.to(device), len(styles), feat)

        out = np.empty((h, w, 3), out_dtype) if sink is None else None
        report = tiling.pass_reporter(2 * len(levels))
        for level, (enc, dec) in enumerate(levels):
            last = level == len(levels) - 1
            enc_halo = tiling.round_up(receptive_radius(enc, Decoder([])), scale)
            halo = tiling.round_up(receptive_radius(enc, dec), scale)
            step = tiling.round_up(tile, scale) if tile else max(4 * scale, tiling.round_up(side - 2 * halo, scale))
            feats_style = [enc(s) for s in styles]
            moments = None
            for y0, y1, x0, x1 in tiling.tiles(height, width, step):  # pass 1: the content statistics
                iy0, iy1 = max(0, y0 - enc_halo), min(height, y1 + enc_halo)
                ix0, ix1 = max(0, x0 - enc_halo), min(width, x1 + enc_halo)
                feat = enc(nchw(current.read(iy0, iy1, ix0, ix1)))
                f = feat[:, :, (y0 - iy0) // scale : (y1 - iy0) // scale, (x0 - ix0) // scale : (x1 - ix0) // scale]
                if moments is None:
                    moments = ContentMoments(method, regions_k, f.shape[1])
                moments.add(f, mask_weights(y0, y1, x0, x1, f))
            stats = moments.stats(mask is not None)
            report.step(2 * level + 1, message="content statistics")
            nxt = np.empty((height, width, 3), np.float32) if not last else None
            for y0, y1, x0, x1 in tiling.tiles(height, width, step):  # pass 2: render with the statistics fixed
                iy0, iy1 = max(0, y0 - halo), min(height, y1 + halo)
                ix0, ix1 = max(0, x0 - halo), min(width, x1 + halo)
                feat = enc(nchw(current.read(iy0, iy1, ix0, ix1)))
                try:
                    moved = transfer(
                        feat,
                        feats_style,
                        method=method,
                        alpha=alpha,
                        style_weights=style_weights,
                        masks=mask_weights(iy0, iy1, ix0, ix1, feat),
                        content_stats=stats,
                    )
                except ValueError as exc:
                    raise InputError(str(exc)) from None
                rgb = dec(moved).clamp(0.0, 1.0)[0, :, y0 - iy0 : y1 - iy0, x0 - ix0 : x1 - ix0]
                rgb = rgb.permute(1, 2, 0).cpu().numpy()
                if nxt is not None:
                    nxt[y0:y1, x0:x1] = rgb
                elif y0 < h and x0 < w:
                    centre = rgb[: min(y1, h) - y0, : min(x1, w) - x0]
                    if sink is not None:
                        sink((y0, min(y1, h), x0, min(x1, w)), centre)
                    else:
                        out[y0 : min(y1, h), x0 : min(x1, w)] = centre * top + 0.5
            report.step(2 * level + 2, message="render")
            if nxt is not None:
                current = tiling.ArraySource(nxt)
    return out


class AdainEngine:
    """The contract's engine of ``method="adain"`` (see :mod:`brushwork.api`): decoders loaded once."""

    method = "adain"
    native = frozenset({"mask"})  # strength is the API's blend with the photo (0 = the photo, as every method)

    def __init__(self, styles: list[Any], options: Any, progress: Any = None) -> None:
        from brushwork import io
        from brushwork.device import resolve_device

        self.device = resolve_device(options.device)
        self.styles = [io.to_tensor(s, self.device) for s in styles]
        decoder = options.decoder if options.decoder is not None else DEFAULT_DECODER
        self.decoder = list(decoder) if isinstance(decoder, list | tuple) else decoder
        self.options = options

    def render(self, rgb: np.ndarray, masks: np.ndarray | None = None) -> np.ndarray:
        from brushwork import io

        mask = None
        if masks is not None:
            mask = torch.from_numpy(masks[0] if len(masks) == 1 else masks).to(self.device)
        out = stylize_autoencoder(
            io.to_tensor(rgb, self.device),
            self.styles,
            method=self.method,
            decoder=self.decoder,
            style_weights=self.options.style_weights if masks is None else None,
            mask=mask,
            device=self.device,
        )
        return io.to_numpy(out)

    UNTILED_BYTES_PER_PIXEL = UNTILED_BYTES_PER_PIXEL
    TILE_ALIGN = 8

    def render_tiled(self, source: Any, masks: Any, sink: Any, tile: int | None, budget: int, fixed_bytes: int) -> None:
        """Render ``source`` in tiles exactly as :meth:`render` (``masks``: a K-channel Source or None)."""
        stylize_tiled(
            source,
            self.styles,
            method=self.method,
            decoder=self.decoder,
            style_weights=self.options.style_weights if masks is None else None,
            mask=masks,
            device=self.device,
            tile=tile,
            budget=max(budget - fixed_bytes, 2**26),
            sink=sink,
        )


class WctEngine(AdainEngine):
    """The contract's engine of ``method="wct"``; a list of decoders runs the multi-level cascade."""

    method = "wct"
