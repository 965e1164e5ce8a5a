"""Contact sheets: a grid of labelled thumbnails (built-in styles, sampled styles, validation grids)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from brushwork import io


def contact_sheet(
    images: Sequence[np.ndarray],
    labels: Sequence[str] | None = None,
    *,
    columns: int = 6,
    tile: int = 256,
    pad: int = 6,
    label_height: int = 16,
) -> np.ndarray:
    """Lay out ``H×W×3`` float images (0..1) on a white grid, each fitted in a ``tile``-px box with its label.

    A label may hold several lines (``\n``); the label band grows to the longest one (``label_height`` per line).
    Returns an ``H×W×3`` float32 image in 0..1.
    """
    if not images:
        raise ValueError("contact_sheet needs at least one image")
    columns = max(1, min(columns, len(images)))
    rows = -(-len(images) // columns)
    lines = max((str(t).count("\n") + 1 for t in labels), default=1) if labels else 0
    label_height = label_height * lines if labels else 0
    thumbs = []
    for rgb in images:
        h, w = rgb.shape[:2]
        scale = tile / max(h, w)
        thumbs.append(io.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale)))))
    cell_w = max(t.shape[1] for t in thumbs)
    cell_h = max(t.shape[0] for t in thumbs) + label_height
    sheet = Image.new("RGB", (columns * (cell_w + pad) + pad, rows * (cell_h + pad) + pad), "white")
    draw = ImageDraw.Draw(sheet)
    for n, thumb in enumerate(thumbs):
        r, c = divmod(n, columns)
        x, y = pad + c * (cell_w + pad), pad + r * (cell_h + pad)
        sheet.paste(Image.fromarray((thumb * 255 + 0.5).astype(np.uint8)), (x, y + label_height))
        if labels:
            draw.multiline_text((x + 2, y + 2), str(labels[n]), fill="black", spacing=3)
    return np.asarray(sheet, dtype=np.float32) / 255.0
