"""Make the pictures of docs/latent.md from the project's own sample images (brushwork/assets) only.

    python bench/bench_latent_docs.py        # writes docs/img/latent_*.jpg|png, about a minute on a CPU

Uses the shipped models (style-vae, style-cvae) and the sample photo and styles; no corpus image is read.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "img"


def main() -> int:
    from brushwork import draw, io
    from brushwork import latent as api
    from brushwork.methods import latent
    from brushwork.samples import SAMPLE_PHOTO, STYLES

    OUT.mkdir(parents=True, exist_ok=True)
    dev = "cpu"
    vae = api.load_style_space("style-vae", device=dev)
    cvae = api.load_style_space("style-cvae", device=dev)

    # 1. eight new styles from the prior
    samples = api.sample(SAMPLE_PHOTO, 8, seed=0, model=vae, max_size=320, device=dev)
    sheet = draw.contact_sheet(samples.images, [f"sample {k}" for k in range(8)], cell=240, columns=4)
    io.save_image(sheet, OUT / "latent_samples.jpg", quality=88)

    # 2. families: four draws from each of four labels of the conditional model
    families = ["Impressionism", "Japanese Ukiyo-e", "Romanticism & Realism", "Drawings & prints"]
    images, captions = [], []
    for k, label in enumerate(families):
        result = api.sample(SAMPLE_PHOTO, 4, label=label, seed=10 + k, model=cvae, max_size=320, device=dev)
        images += result.images
        captions += [label] * 4
    io.save_image(draw.contact_sheet(images, captions, cell=200, columns=4), OUT / "latent_families.jpg", quality=88)

    # 3. a walk between two of the project's sample styles
    walk = api.interpolate(SAMPLE_PHOTO, STYLES["swirls"], STYLES["ink"], 8, model=vae, max_size=320, device=dev)
    io.save_image(draw.strip(walk.images, count=8, height=150), OUT / "latent_interpolation.jpg", quality=88)

    # 4. latent mix against the average of the codes
    codes = api.mixed_codes([STYLES["swirls"], STYLES["dots"]], style_weights=[0.5, 0.5], model=vae, device=dev)
    styles = [api.style_code(STYLES[n]) for n in ("swirls", "dots")]
    pics = api.render_codes(
        SAMPLE_PHOTO, [styles[0], codes["latent"], codes["average"], styles[1]], max_size=320, device=dev
    )
    captions = ["swirls", "latent mix 50/50", "average of codes", "dots"]
    io.save_image(draw.contact_sheet(pics, captions, cell=240, columns=4), OUT / "latent_mix.jpg", quality=88)

    # 5. a map: the project's styles among 48 draws from the prior, all shown on the sample photo
    style_codes = torch.from_numpy(np.stack([api.style_code(p) for p in STYLES.values()]))
    drawn = latent.sample_codes(vae, 48, seed=2)
    all_codes = torch.cat([style_codes, drawn])
    latents = vae.encode(all_codes)[0].numpy()
    coords = latent.project(latents, "tsne", seed=0)
    rendered = api.render_codes(SAMPLE_PHOTO, all_codes.numpy(), max_size=160, device=dev)
    thumbs = [draw.square_thumbnail(im, 80) for im in rendered]
    labels = [f"sample style: {n}" for n in STYLES] + ["drawn from the prior"] * len(drawn)
    picture = draw.style_map(
        coords, thumbs, labels=labels, title="The style space (t-SNE of latent means), on the sample photo", width=1000
    )
    # a 256-colour PNG keeps the picture small; written beside, then renamed, like io.save_image does
    tmp = OUT / ".latent_map.tmp.png"
    picture.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(tmp, optimize=True)
    tmp.replace(OUT / "latent_map.png")
    for f in sorted(OUT.glob("latent_*")):
        print(f"{f.relative_to(ROOT)}: {f.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
