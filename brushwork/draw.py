"""Drawing: every picture brushwork composes from other pictures or numbers (contact sheets, strips, maps, plots).

Functions take PIL images (or H×W×3 float arrays in 0..1) and return PIL images; they never read or write files
(the caller saves the result with :func:`brushwork.io.save_image`). matplotlib is imported only where a plot is
drawn, through its object API (``Figure`` + the Agg canvas: no pyplot, no global backend). Two sections: the
latent-space drawings, and the evaluation pictures (compare sheets, scatter plots, Pareto fronts) of
``brushwork compare / eval / tune``, which return ``H×W×3`` float32 arrays in 0..1.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from brushwork import io

# latent space drawings ----------------------------------------------------------------------------------------------


def labelled_grid(
    images: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    *,
    columns: int = 6,
    tile: int = 256,
) -> np.ndarray:
    """:func:`contact_sheet` for ``H×W×3`` float images (0..1), labels above the pictures, each picture fitted in
    a ``tile``-px box: an ``H×W×3`` float32 image in 0..1 (the form the evaluation and CLI sheets compose)."""
    if not images:
        raise ValueError("labelled_grid needs at least one image")
    sheet = contact_sheet([to_pil(rgb) for rgb in images], labels, cell=tile, columns=columns, above=True)
    return np.asarray(sheet, dtype=np.float32) / 255.0


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
    images: Sequence[Image.Image],
    captions: Sequence[str] | None = None,
    *,
    cell: int = 256,
    columns: int = 0,
    above: bool = False,
) -> Image.Image:
    """A grid of pictures with an optional caption under each (``above=True``: over each): a PIL image.

    The one grid layout of brushwork. By default cells are ``cell`` pixels wide and shaped like the first picture;
    with ``above=True`` each picture is fitted in a ``cell``-px square box and the cells take the largest fitted
    size (sheets mixing styles and results of different shapes). Every picture is centred in its cell; a caption
    may hold several lines (``\\n``). ``columns=0`` makes the grid square.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    n = len(images)
    cols = max(1, min(columns, n)) if columns else math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    pictures = [img.convert("RGB") for img in images]
    if above:
        box_w = box_h = cell
    else:
        box_w, box_h = cell, max(1, round(cell * pictures[0].height / pictures[0].width))
    thumbs = [_fit(p, box_w, box_h) for p in pictures]
    cell_w, cell_h = (max(t.width for t in thumbs), max(t.height for t in thumbs)) if above else (box_w, box_h)
    text_font = font(16 if not above else 12)
    lines = max((str(c).count("\n") + 1 for c in captions), default=1) if captions else 0
    line_h = int(getattr(text_font, "size", 12)) + 6
    pad, text_h = 8, lines * line_h
    size = (cols * (cell_w + pad) + pad, rows * (cell_h + pad + text_h) + pad)
    sheet = Image.new("RGB", size, (250, 250, 248))
    draw = ImageDraw.Draw(sheet)
    for i, thumb in enumerate(thumbs):
        x0 = pad + (i % cols) * (cell_w + pad)
        y0 = pad + (i // cols) * (cell_h + pad + text_h)
        y_pic = y0 + (text_h if above else 0)
        sheet.paste(thumb, (x0 + (cell_w - thumb.width) // 2, y_pic + (cell_h - thumb.height) // 2))
        if captions:
            y_text = y0 + 2 if above else y0 + cell_h + 4
            draw.multiline_text(
                (x0 + cell_w // 2, y_text),
                str(captions[i]),
                fill=(40, 40, 40),
                font=text_font,
                anchor="ma",
                spacing=3,
                align="center",
            )
    return sheet


def _fit(image: Image.Image, width: int, height: int) -> Image.Image:
    """``image`` scaled (up or down, aspect kept) to fit a ``width``×``height`` box."""
    scale = min(width / image.width, height / image.height)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image if size == image.size else image.resize(size, Image.Resampling.LANCZOS)


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


# =============================================================================================================
# Evaluation pictures: compare sheets, scatter plots, Pareto fronts (brushwork compare / eval / tune)
# =============================================================================================================

# one colour per method, stable across pictures (matplotlib's tab10, in the order methods usually appear)
METHOD_COLORS = {
    "photo": "#7f7f7f",
    "fast": "#1f77b4",
    "microast": "#17becf",
    "adain": "#ff7f0e",
    "wct": "#2ca02c",
    "optimize": "#d62728",
    "latent": "#9467bd",
}
_FALLBACK_COLORS = ["#8c564b", "#e377c2", "#bcbd22", "#17becf", "#9467bd"]


def method_color(name: str, index: int = 0) -> str:
    """The colour of a method in every plot (a fallback colour by ``index`` for unknown names)."""
    return METHOD_COLORS.get(name, _FALLBACK_COLORS[index % len(_FALLBACK_COLORS)])


def compare_sheet(
    photo: np.ndarray,
    rows: Sequence[tuple[np.ndarray, str, Sequence[tuple[np.ndarray, str]]]],
    *,
    tile: int = 256,
    photo_label: str = "photo",
) -> np.ndarray:
    """A grid with one row per style: the photo, the style, then each method's result, every tile labelled.

    rows: ``(style image, style label, [(result image, label), …])`` per style, the same number of results in
    each row. Labels may hold several lines (method, time, metrics).
    """

    if not rows:
        raise ValueError("compare_sheet needs at least one row")
    width = 2 + len(rows[0][2])
    if any(len(r[2]) != width - 2 for r in rows):
        raise ValueError("every row of a compare sheet needs the same number of results")
    images: list[np.ndarray] = []
    labels: list[str] = []
    for style, style_label, results in rows:
        images += [photo, style] + [im for im, _ in results]
        labels += [photo_label, style_label] + [text for _, text in results]
    lines = max(t.count("\n") + 1 for t in labels)
    labels = [t + "\n" * (lines - 1 - t.count("\n")) for t in labels]  # equal bands: tiles stay aligned
    return labelled_grid(images, labels, columns=width, tile=tile)


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _to_array(fig: Any) -> np.ndarray:
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    return rgba[..., :3].astype(np.float32) / 255.0


def scatter_plot(
    rows: Sequence[Mapping[str, Any]],
    x: str,
    y: str,
    *,
    by: str = "method",
    x_label: str | None = None,
    y_label: str | None = None,
    title: str = "",
    log_y: bool | None = None,
    width: float = 7.0,
    height: float = 5.0,
) -> np.ndarray:
    """Scatter of ``rows[i][x]`` against ``rows[i][y]``, one colour per ``rows[i][by]``, with each group's median
    as a large marker. Rows whose x or y is missing or not finite are left out. ``log_y``: a logarithmic y axis
    (None: when every y is positive and they span more than a factor of 20, as style distances do)."""
    fig = _figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    groups: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        try:
            px, py = float(r[x]), float(r[y])
        except (KeyError, TypeError, ValueError):
            continue
        if np.isfinite(px) and np.isfinite(py):
            groups.setdefault(str(r.get(by, "")), []).append((px, py))
    for k, (name, pts) in enumerate(groups.items()):
        arr = np.asarray(pts)
        color = method_color(name, k)
        ax.scatter(arr[:, 0], arr[:, 1], s=18, alpha=0.55, color=color, label=f"{name} ({len(arr)})")
        ax.scatter(*np.median(arr, axis=0), s=160, marker="X", color=color, edgecolor="black", linewidth=0.8)
    ys = np.asarray([p[1] for pts in groups.values() for p in pts])
    if log_y is None:
        log_y = bool(ys.size) and ys.min() > 0 and ys.max() / ys.min() > 20
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel(x_label or x)
    ax.set_ylabel(y_label or y)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3, which="both" if log_y else "major")
    if groups:
        ax.legend(fontsize=8, title="× median", title_fontsize=8)
    fig.tight_layout()
    return _to_array(fig)


def pareto_plot(
    points: Sequence[tuple[float, float]],
    front: Sequence[int],
    *,
    labels: Sequence[str] | None = None,
    thumbnails: Sequence[np.ndarray] | None = None,
    chosen: int | None = None,
    x_label: str = "content preservation",
    y_label: str = "style distance",
    title: str = "",
    width: float = 9.0,
    height: float = 6.5,
    thumb_zoom: float = 0.35,
) -> np.ndarray:
    """Every tried setting as a dot, the Pareto front as a line with each front point's thumbnail beside it, and
    the ``chosen`` point ringed. ``points`` are in display units (x right is better content, y as measured)."""
    from matplotlib.offsetbox import AnnotationBbox, OffsetImage

    fig = _figure(width, height)
    ax = fig.add_subplot(1, 1, 1)
    arr = np.asarray(points, dtype=np.float64)
    ax.scatter(arr[:, 0], arr[:, 1], s=16, color="#999999", label="tried", zorder=2)
    f = np.asarray(front, dtype=int)
    if f.size:
        ax.plot(arr[f, 0], arr[f, 1], "-o", color="#d62728", ms=5, label="Pareto front", zorder=3)
    if chosen is not None:
        ax.scatter(*arr[chosen], s=260, facecolors="none", edgecolors="black", linewidth=2, label="recommended")
    for n, i in enumerate(f):
        if labels is not None:
            ax.annotate(labels[i], arr[i], textcoords="offset points", xytext=(4, -12), fontsize=7)
        if thumbnails is not None:
            offset = (-40, 40) if n % 2 else (40, -40)
            box = AnnotationBbox(
                OffsetImage(thumbnails[i], zoom=thumb_zoom),
                arr[i],
                xybox=offset,
                boxcoords="offset points",
                arrowprops={"arrowstyle": "-", "color": "#888888", "lw": 0.6},
                pad=0.15,
            )
            ax.add_artist(box)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    if title:
        ax.set_title(title)
    ax.margins(0.25)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return _to_array(fig)
