"""Pictures made from results: labelled comparison sheets and plots.

Drawing only: nothing here computes a metric or writes a file; each function returns an ``H×W×3`` float32 image
in 0..1 for :func:`brushwork.io.save_image` (which writes atomically). Matplotlib is imported lazily, inside the
plotting functions, and only through its object API (``Figure`` + the Agg canvas): no pyplot, no global backend.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

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
    from brushwork.sheet import contact_sheet

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
    return contact_sheet(images, labels, columns=width, tile=tile, label_height=14)


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
