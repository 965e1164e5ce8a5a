"""Compare autoencoder style transfer (AdaIN, WCT with the shipped decoder) with the fast path (Ghiasi et al.).

Over ``--pairs`` photo/painting pairs spread evenly over ../shared/corpus (photos and paintings resized to
``--size`` px on the longer side), each method stylizes each photo, and the result is measured in the features of
the offline MobileNetV2 trunk (pretrained, the ``mobilenet`` backbone, no SWAG), with the metrics of
:mod:`brushwork.evaluate`:

- content: mean squared difference of the ``block5`` features to the photo's (lower = more of the photo kept);
- style (mean/std): the AdaIN statistic distance to the painting, summed over ``conv, block2, block5, block9,
  block12`` (lower = closer to the painting);
- style (Gram): the Gram-matrix distance over the same layers;
- time: median seconds per image on this machine (networks already loaded for the fast path; the autoencoder
  call includes loading its networks).

``block9`` and ``block12`` are deeper than anything the decoder was trained on (its losses use conv, block2 and
block5), so they check the result beyond its training objective. Rows "photo" (no stylization) and
"reconstruction" (AdaIN with alpha 0) are references. ``--pictures DIR`` also writes the documentation pictures,
made only from brushwork's own sample images.

    python bench/bench_autoencoder.py [--pairs 20] [--size 384] [--decoder decoder-mobilenet] [--pictures docs/img]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
STYLE_LAYERS = ["conv", "block2", "block5", "block9", "block12"]  # = brushwork.evaluate.STYLE_LAYERS
CONTENT_LAYER = "block5"  # = brushwork.evaluate.CONTENT_LAYER


def _load(path: Path, size: int) -> torch.Tensor:
    from brushwork import io

    return io.to_tensor(io.resize_to_max(io.load_image(path).rgb, size))


def _methods(decoder: str) -> dict[str, Callable[[torch.Tensor, torch.Tensor], torch.Tensor]]:
    from brushwork.methods.autoencoder import stylize_autoencoder
    from brushwork.methods.fast import fast_stylize_tensor

    return {
        "photo (no stylization)": lambda c, s: c,
        "reconstruction (AdaIN, alpha 0)": lambda c, s: stylize_autoencoder(c, [s], decoder=decoder, alpha=0.0),
        "fast (Ghiasi et al., shipped)": fast_stylize_tensor,
        "AdaIN (decoder-mobilenet)": lambda c, s: stylize_autoencoder(c, [s], decoder=decoder, method="adain"),
        "WCT (decoder-mobilenet)": lambda c, s: stylize_autoencoder(c, [s], decoder=decoder, method="wct"),
    }


def measure(pairs: int, size: int, decoder: str) -> list[tuple[str, float, float, float, float]]:
    """Rows (method, content, style mean/std, style Gram, median seconds) averaged over the pairs."""
    from brushwork import evaluate, io

    net = evaluate.feature_net()
    photos, paintings = io.list_images(CORPUS / "content"), io.list_images(CORPUS / "styles")
    chosen = [(photos[i * len(photos) // pairs], paintings[(i * len(paintings) // pairs + 7) % len(paintings)])
              for i in range(pairs)]  # fmt: skip
    methods = _methods(decoder)
    sums = {m: [0.0, 0.0, 0.0] for m in methods}
    times: dict[str, list[float]] = {m: [] for m in methods}
    with torch.no_grad():
        for k, (p, s) in enumerate(chosen):
            photo, painting = _load(p, size), _load(s, size)
            pf = net(photo, [CONTENT_LAYER])[CONTENT_LAYER]
            style_stats = evaluate.style_statistics(net(painting, STYLE_LAYERS))
            for name, fn in methods.items():
                out, cost = evaluate.measure(lambda fn=fn, c=photo, s=painting: fn(c, s))
                times[name].append(cost.seconds)
                of = net(out, STYLE_LAYERS)
                sums[name][0] += evaluate.feature_content_distance(of[CONTENT_LAYER], pf)
                d = evaluate.statistics_distances(evaluate.style_statistics(of), style_stats)
                sums[name][1] += d["mean_std"]
                sums[name][2] += d["gram"]
            print(f"pair {k + 1}/{pairs}: {p.name} × {s.name}", file=sys.stderr)
    return [(m, *(v / pairs for v in sums[m]), statistics.median(times[m])) for m in methods]


def pictures(dest: Path, decoder: str) -> list[Path]:
    """Documentation pictures from the project's sample images only (brushwork/assets)."""
    from brushwork import io
    from brushwork.methods.autoencoder import stylize_autoencoder
    from brushwork.methods.fast import fast_stylize_tensor

    assets = ROOT / "brushwork" / "assets"
    photo = _load(assets / "sample_photo.jpg", 384)
    swirls, mosaic = _load(assets / "styles" / "swirls.jpg", 384), _load(assets / "styles" / "mosaic.jpg", 384)
    ink = _load(assets / "styles" / "ink.jpg", 384)
    h, w = photo.shape[-2:]

    def fit(x: torch.Tensor) -> torch.Tensor:  # a painting shown at the photo's height
        return torch.nn.functional.interpolate(x, size=(h, round(x.shape[-1] * h / x.shape[-2])), mode="area")

    def row(*images: torch.Tensor) -> torch.Tensor:
        gap = torch.ones(1, 3, h, 6)
        parts = []
        for im in images:
            parts += [im.clamp(0, 1), gap]
        return torch.cat(parts[:-1], dim=3)

    dest.mkdir(parents=True, exist_ok=True)
    written = []
    ad = stylize_autoencoder(photo, [swirls], decoder=decoder)
    wc = stylize_autoencoder(photo, [swirls], decoder=decoder, method="wct")
    fast = fast_stylize_tensor(photo, swirls)
    written.append(io.save_image(row(photo, fit(swirls), fast, ad, wc), dest / "autoencoder_compare.png"))
    alphas = [stylize_autoencoder(photo, [mosaic], decoder=decoder, alpha=a) for a in (0.0, 0.33, 0.66, 1.0)]
    written.append(io.save_image(row(fit(mosaic), *alphas), dest / "autoencoder_alpha.png"))
    mask = torch.zeros(h, w)
    mask[:, : w // 2] = 1
    regions = stylize_autoencoder(photo, [swirls, ink], decoder=decoder, mask=mask)
    blend = stylize_autoencoder(photo, [swirls, ink], decoder=decoder, style_weights=[0.5, 0.5])
    kept = stylize_autoencoder(photo, [swirls], decoder=decoder, preserve_color=True)
    written.append(io.save_image(row(fit(ink), regions, blend, kept), dest / "autoencoder_controls.png"))
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=20, help="corpus pairs to measure (0: only the pictures)")
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--decoder", default="decoder-mobilenet")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--pictures", type=Path, default=None, help="also write the doc pictures into this folder")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.pictures is not None:
        for p in pictures(args.pictures, args.decoder):
            print(f"wrote {p}", file=sys.stderr)
    if args.pairs < 1:
        return 0
    if not (CORPUS / "styles").is_dir():
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2
    rows = measure(args.pairs, args.size, args.decoder)
    print(f"{args.pairs} corpus pairs, {args.size} px, MobileNetV2-trunk features\n")
    print("| method | content ↓ | style mean/std ↓ | style Gram ↓ | s / image |")
    print("|---|---:|---:|---:|---:|")
    for name, c, ms, g, t in rows:
        print(f"| {name} | {c:.3f} | {ms:.3f} | {g:.1f} | {t:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
