"""Make the sample style images that ship in brushwork/assets/styles/ (Apache-2.0, made by this project).

They are procedural "paintings": brush strokes that follow a smooth flow field, a stained-glass mosaic, ink
hatching and pointillist dots. Deterministic: running this again gives the same files.

    python tools/make_sample_styles.py
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "brushwork" / "assets" / "styles"
SIZE = 512


def _palette(rng: np.random.Generator, colours: list[tuple[int, int, int]], n: int) -> np.ndarray:
    base = np.array(colours, dtype=np.float64)
    picks = base[rng.integers(0, len(base), n)] + rng.normal(0, 14, (n, 3))
    return np.clip(picks, 0, 255)


def _flow(rng: np.random.Generator) -> np.ndarray:
    """A smooth angle field from a few random vortices."""
    y, x = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    angle = np.zeros((SIZE, SIZE))
    for _ in range(5):
        cx, cy, s = rng.uniform(0, SIZE), rng.uniform(0, SIZE), rng.choice([-1, 1])
        angle += s * np.arctan2(y - cy, x - cx) / 2
    return angle + np.pi / 2


def swirls(rng: np.random.Generator) -> np.ndarray:
    """Thick strokes along a vortex field, blue and yellow (a nod to night skies)."""
    img = np.full((SIZE, SIZE, 3), (40, 60, 120), np.uint8)
    angle = _flow(rng)
    colours = _palette(rng, [(30, 60, 140), (60, 110, 190), (230, 200, 60), (250, 230, 120), (20, 30, 70)], 5000)
    for colour in colours:
        x, y = rng.uniform(0, SIZE, 2)
        pts = []
        for _ in range(int(rng.integers(6, 16))):
            pts.append((x, y))
            a = angle[int(y) % SIZE, int(x) % SIZE]
            x, y = x + 4 * np.cos(a), y + 4 * np.sin(a)
        cv2.polylines(img, [np.int32(pts)], False, colour[::-1].tolist(), int(rng.integers(3, 7)), cv2.LINE_AA)
    return img


def mosaic(rng: np.random.Generator) -> np.ndarray:
    """Stained-glass Voronoi tiles with dark leading."""
    points = rng.uniform(0, SIZE, (260, 2))
    subdiv = cv2.Subdiv2D((0, 0, SIZE, SIZE))
    for p in points:
        subdiv.insert((float(p[0]), float(p[1])))
    facets, _ = subdiv.getVoronoiFacetList([])
    img = np.zeros((SIZE, SIZE, 3), np.uint8)
    colours = _palette(rng, [(200, 40, 40), (240, 180, 30), (40, 120, 200), (60, 160, 80), (150, 60, 160)], len(facets))
    for facet, colour in zip(facets, colours, strict=True):
        cv2.fillConvexPoly(img, np.int32(facet), colour[::-1].tolist(), cv2.LINE_AA)
        cv2.polylines(img, [np.int32(facet)], True, (20, 20, 20), 4, cv2.LINE_AA)
    return img


def ink(rng: np.random.Generator) -> np.ndarray:
    """Black ink hatching on warm paper."""
    img = np.full((SIZE, SIZE, 3), (205, 228, 240), np.uint8)
    for _ in range(1400):
        x, y = rng.uniform(-20, SIZE + 20, 2)
        a = rng.choice([0.6, 2.3]) + rng.normal(0, 0.12)
        length = rng.uniform(15, 60)
        p2 = (x + length * np.cos(a), y + length * np.sin(a))
        shade = int(rng.uniform(10, 70))
        width = 1 + int(rng.random() < 0.3)
        cv2.line(img, (int(x), int(y)), (int(p2[0]), int(p2[1])), (shade, shade, shade), width, cv2.LINE_AA)
    return img


def dots(rng: np.random.Generator) -> np.ndarray:
    """Pointillist dots of pure colour on white."""
    img = np.full((SIZE, SIZE, 3), 245, np.uint8)
    colours = _palette(rng, [(230, 70, 50), (250, 170, 40), (60, 170, 90), (50, 110, 210), (150, 80, 170)], 9000)
    for colour in colours:
        x, y = rng.uniform(0, SIZE, 2)
        cv2.circle(img, (int(x), int(y)), int(rng.integers(2, 6)), colour[::-1].tolist(), -1, cv2.LINE_AA)
    return img


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for seed, make in enumerate([swirls, mosaic, ink, dots]):
        img = make(np.random.default_rng(seed))
        cv2.imwrite(str(OUT / f"{make.__name__}.jpg"), img, [cv2.IMWRITE_JPEG_QUALITY, 90])
        print(OUT / f"{make.__name__}.jpg")


if __name__ == "__main__":
    main()
