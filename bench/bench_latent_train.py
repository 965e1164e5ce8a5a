"""Train the shipped style VAEs (``style-vae`` and the conditional ``style-cvae``) on ../shared/corpus/styles.

Labels for the conditional model come from SOURCES.tsv: the movement in "(year; Movement)" where the source names
one, else a medium or movement read from the title and file name (drawings and prints, textures and patterns,
"impressionist ..."), else the nearest label centroid in code space (a one-step clustering of the rest).

    python bench/bench_latent_train.py                      # writes brushwork/assets/models/style-{vae,cvae}.*
    python bench/bench_latent_train.py --out /tmp/models    # somewhere else

Prints the held-out metrics stored in each model's JSON config, and the sha256 and size to put in the
``style-vae``/``style-cvae`` rows of ``brushwork/store.py``. The loss plots go to docs/img/latent_loss_*.png.
Style codes are cached, so a second run takes about a minute.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("BRUSHWORK_CORPUS", ROOT.parent / "shared" / "corpus"))

# medium and movement words in titles and file names -> label
KEYWORDS: list[tuple[str, str]] = [
    (r"texture|pattern|gimp|krita|stripes|circles|zigzag|mosaic|weave|ornament", "Textures & patterns"),
    (r"sketch|drawing|pencil|\bink\b|ink-|engraving|etching|woodcut|lithograph|chalk|\bpen\b|sepia|sumi-e",
     "Drawings & prints"),
    (r"impressionis", "Impressionism"),
    (r"baroque|renaissance|altarpiece|old master", "Renaissance & Baroque"),
    (r"romantic|seascape|landscape with", "Romanticism & Realism"),
    (r"cubis|abstract|symbolist|kandinsky|mondrian|modern|contrast of forms|udnie|delaunay", "Modern"),
]  # fmt: skip


def infer_labels(rows: list[dict[str, str]]) -> list[str | None]:
    """One label per style row: the movement the source names, else that of the artist's other works, else a
    medium or movement keyword of the title and file name; None where none of these tells."""
    movement: list[str | None] = []
    for row in rows:
        m = re.search(r";\s*([^;()]+)\)\s*(\[[^\]]*\])?\s*$", row["artist_title"])
        movement.append(m.group(1).strip() if m else None)
    by_artist = {r["filename"].split("_")[0]: lab for r, lab in zip(rows, movement, strict=True) if lab}
    labels: list[str | None] = []
    for row, lab in zip(rows, movement, strict=True):
        text = f"{row['filename']} {row['artist_title']}".lower()
        keyword = next((label for pattern, label in KEYWORDS if re.search(pattern, text)), None)
        labels.append(lab or by_artist.get(row["filename"].split("_")[0]) or keyword)
    return labels


def fill_by_nearest_centroid(codes: np.ndarray, labels: list[str | None]) -> list[str]:
    """Give each unlabelled painting the label whose centroid (standardised whole-painting codes) is nearest."""
    x = (codes - codes.mean(0)) / codes.std(0).clip(1e-3)
    names = sorted({lab for lab in labels if lab})
    centroids = np.stack([x[[i for i, lab in enumerate(labels) if lab == n]].mean(0) for n in names])
    out = []
    for i, lab in enumerate(labels):
        out.append(lab or names[int(((centroids - x[i]) ** 2).sum(1).argmin())])
    return out


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "brushwork" / "assets" / "models"))
    parser.add_argument("--plots", default=str(ROOT / "docs" / "img"))
    parser.add_argument("--latent-dim", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    if not (CORPUS / "styles").is_dir():
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2

    from brushwork import latent
    from brushwork.train.style_vae import TrainOptions, train_style_vae

    options = TrainOptions() if args.latent_dim is None else TrainOptions(latent_dim=args.latent_dim)
    with open(CORPUS / "SOURCES.tsv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["folder"] == "styles"]
    rows = [r for r in rows if (CORPUS / "styles" / r["filename"]).is_file()]
    paths = [CORPUS / "styles" / r["filename"] for r in rows]
    inferred = infer_labels(rows)
    whole = latent.style_codes(paths, augment=options.augment, seed=options.seed, device=args.device)[:, 0]
    labels = fill_by_nearest_centroid(whole, inferred)
    counts = {n: labels.count(n) for n in sorted(set(labels))}
    print(f"{len(paths)} styles; labels (after {inferred.count(None)} filled by nearest centroid): {counts}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    plots = Path(args.plots)
    plots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        table = Path(tmp) / "labels.csv"
        with open(table, "w", newline="") as fh:
            csv.writer(fh).writerows([("filename", "label"), *zip([p.name for p in paths], labels, strict=True)])
        for name, lab in (("style-vae", None), ("style-cvae", table)):
            t0 = time.perf_counter()
            result = train_style_vae(
                CORPUS / "styles",
                out / f"{name}.safetensors",
                labels=lab,
                options=options,
                plot=plots / f"latent_loss_{name.split('-')[1]}.png",
                device=args.device,
            )
            file = out / f"{name}.safetensors"
            m = result.metrics
            print(
                f"{name}: {time.perf_counter() - t0:.0f} s, best epoch {result.best_epoch} of {len(result.history)}; "
                + ", ".join(f"{k} {v:.3f}" for k, v in m.items())
            )
            print(f"  {file}: {file.stat().st_size} bytes, sha256 {sha256(file)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
