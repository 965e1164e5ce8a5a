"""Make the fast-path pictures in docs/img/ from the project's own sample images (run from the repo root)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from brushwork import api, io, samples
from brushwork.draw import labelled_grid
from brushwork.methods.fast import FastStylizer

OUT = Path(__file__).resolve().parents[1] / "docs" / "img"


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    photo = io.load_image(samples.SAMPLE_PHOTO).rgb

    def render(styles: list, **options: object) -> np.ndarray:
        return api.renderer(styles, method="fast", device="cpu", max_size=None, **options).render(photo)

    tiles, labels = [photo], ["photo"]
    for name in ("swirls", "mosaic", "ink", "dots"):
        tiles.append(render([samples.STYLES[name]]))
        labels.append(f"style: {name}.jpg")
    tiles.append(render([samples.STYLES["mosaic"]], preserve_color=True))
    labels.append("mosaic, --preserve-color")
    for n in (3, 19):
        tiles.append(render([f"builtin:{n}"]))
        labels.append(f"builtin:{n}")
    tiles.append(render(["builtin:3", "builtin:19"]))
    labels.append("builtin:3 + builtin:19")
    io.save_image(labelled_grid(tiles, labels, columns=3, tile=300), OUT / "fast_examples.jpg", quality=88)

    st = FastStylizer("cpu")
    target = st.target([io.load_image(samples.SAMPLE_STYLE).rgb])
    tiles = [st.render(photo, target, s)[60:300, 150:470] for s in (0.5, 1.0, 2.0)]
    h, w = photo.shape[:2]
    up = io.resize(st.render(io.resize(photo, (w // 2, h // 2)), target), (w, h))[60:300, 150:470]
    labels = ["--stroke-scale 0.5", "--stroke-scale 1", "--stroke-scale 2", "half size, upscaled (blurred)"]
    io.save_image(labelled_grid([*tiles, up], labels, columns=4, tile=320), OUT / "fast_stroke_scale.jpg", quality=88)


if __name__ == "__main__":
    main()
