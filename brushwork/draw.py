"""Drawing: every picture brushwork composes from other pictures or numbers (contact sheets, strips, maps, plots).

Functions take PIL images (or H×W×3 float arrays in 0..1) and return PIL images; they never read or write files
(the caller saves the result with :func:`brushwork.io.save_image`). matplotlib is imported only where a plot is
drawn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from brushwork import io

# latent space drawings ----------------------------------------------------------------------------------------------

PALETTE = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
    (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
]  # fmt: skip


def font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    """Pillow's built-in font at ``size`` pixels (a fixed small one on Pillow < 10.1)."""
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def to_pil(image: Image.Image | np.ndarray) -> Image.Image:
    """An RGB PIL image from a PIL image or an H×W×3 float array in 0..1."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    return io.Picture(np.asarray(image, dtype=np.float32)).pil()


def square_thumbnail(image: Image.Image | np.ndarray, size: int) -> Image.Image:
    """Centre square crop of a picture, resized to ``size``×``size``: a PIL image."""
    rgb = image if isinstance(image, np.ndarray) else np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    h, w = rgb.shape[:2]
    side = min(h, w)
    y, x = (h - side) // 2, (w - side) // 2
    return to_pil(io.resize(np.ascontiguousarray(rgb[y : y + side, x : x + side]), (size, size)))


def contact_sheet(
    images: Sequence[Image.Image], captions: Sequence[str] | None = None, *, cell: int = 256, columns: int = 0
) -> Image.Image:
    """A grid of pictures with an optional caption under each: a PIL image. Cells are ``cell`` pixels wide and
    shaped like the first picture (every picture is fitted into its cell); ``columns=0`` makes the grid square."""
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    n = len(images)
    cols = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    w0, h0 = images[0].size
    cell_w, cell_h = cell, max(1, round(cell * h0 / w0))
    pad, text_h = 8, (24 if captions else 0)
    size = (cols * (cell_w + pad) + pad, rows * (cell_h + pad + text_h) + pad)
    sheet = Image.new("RGB", size, (250, 250, 248))
    draw = ImageDraw.Draw(sheet)
    text_font = font(16)
    for i, img in enumerate(images):
        thumb = img.convert("RGB")
        thumb.thumbnail((cell_w, cell_h), Image.Resampling.LANCZOS)
        x0 = pad + (i % cols) * (cell_w + pad)
        y0 = pad + (i // cols) * (cell_h + pad + text_h)
        sheet.paste(thumb, (x0 + (cell_w - thumb.width) // 2, y0 + (cell_h - thumb.height) // 2))
        if captions:
            draw.text((x0 + cell_w // 2, y0 + cell_h + 4), captions[i], fill=(40, 40, 40), font=text_font, anchor="ma")
    return sheet


def strip(images: Sequence[Image.Image], *, count: int = 8, height: int = 192) -> Image.Image:
    """``count`` evenly spaced pictures of a sequence (first and last included), side by side at ``height``
    pixels: a PIL image."""
    idx = np.unique(np.round(np.linspace(0, len(images) - 1, min(count, len(images)))).astype(int))
    picked = [images[i].convert("RGB") for i in idx]
    picked = [
        im.resize((max(1, round(im.width * height / im.height)), height), Image.Resampling.LANCZOS) for im in picked
    ]
    gap = 4
    out = Image.new("RGB", (sum(im.width for im in picked) + gap * (len(picked) - 1), height), (255, 255, 255))
    x = 0
    for im in picked:
        out.paste(im, (x, 0))
        x += im.width + gap
    return out


def style_map(
    coords: np.ndarray,
    thumbnails: Sequence[Image.Image],
    *,
    labels: Sequence[str] | None = None,
    title: str = "",
    width: int = 1200,
) -> Image.Image:
    """Thumbnails placed at 2-D coordinates ``N×2`` on a square canvas ``width`` pixels wide (taller by the legend):
    a PIL image. With labels, each thumbnail gets a frame in its label's colour and a legend is drawn."""
    coords = np.asarray(coords, dtype=np.float64)
    thumb = max(t.width for t in thumbnails) if thumbnails else 64
    label_names = sorted(set(labels)) if labels else []
    legend_h = 26 * math.ceil(len(label_names) / 3) + 10 if label_names else 0
    top = 44 if title else 12
    canvas = Image.new("RGB", (width, width + legend_h), (247, 246, 242))
    draw = ImageDraw.Draw(canvas)
    if title:
        draw.text((width // 2, 12), title, fill=(30, 30, 30), font=font(22), anchor="ma")
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    span = np.where(hi - lo > 0, hi - lo, 1.0)
    area = np.array([width - thumb - 24, width - thumb - top - 12], dtype=np.float64)
    pos = (coords - lo) / span * area + np.array([12, top])
    for i in np.argsort(-coords[:, 1]):  # draw from the bottom up so that upper thumbnails do not hide lower ones
        x, y = int(pos[i, 0]), int(width - thumb - pos[i, 1] + top - 12)
        if label_names:
            colour = PALETTE[label_names.index(labels[i]) % len(PALETTE)]  # type: ignore[index]
            draw.rectangle((x - 4, y - 4, x + thumb + 3, y + thumb + 3), fill=colour)
        canvas.paste(thumbnails[i].convert("RGB"), (x, y))
    legend_font = font(18)
    for j, name in enumerate(label_names):
        x, y = 16 + (j % 3) * (width // 3), width + 6 + 26 * (j // 3)
        draw.rectangle((x, y + 2, x + 18, y + 20), fill=PALETTE[j % len(PALETTE)])
        draw.text((x + 26, y + 2), name, fill=(30, 30, 30), font=legend_font)
    return canvas


def style_vae_losses(history: Sequence[Mapping[str, float]], best_epoch: int = 0) -> Image.Image:
    """The loss plot of a style-VAE training (negative ELBO of training and validation; reconstruction and KL
    terms of validation), one record per epoch as :func:`brushwork.train.style_vae.fit` keeps them: a PIL image."""
    import io as pyio

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [r["epoch"] for r in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    try:
        a.plot(epochs, [r["train_loss"] for r in history], label="train (−ELBO, warm-up beta)")
        a.plot(epochs, [r["val_loss"] for r in history], label="validation (−ELBO)")
        b.plot(epochs, [r["val_nll"] for r in history], label="validation reconstruction NLL")
        b.plot(epochs, [r["val_kl"] for r in history], label="validation KL")
        for ax in (a, b):
            if best_epoch:
                ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch {best_epoch}")
            ax.set_xlabel("epoch")
            ax.set_ylabel("nats per code")
            ax.legend()
            ax.grid(alpha=0.3)
        a.set_title("loss")
        b.set_title("terms")
        fig.tight_layout()
        buffer = pyio.BytesIO()
        fig.savefig(buffer, format="png", dpi=100)
    finally:
        plt.close(fig)
    buffer.seek(0)
    with Image.open(buffer) as im:
        return im.convert("RGB")
