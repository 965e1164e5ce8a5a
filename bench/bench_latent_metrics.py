"""Measure the shipped style VAEs on ../shared/corpus: novelty of samples against how well they re-embed.

For each set of 100-d style codes (samples at two temperatures, conditional samples, latent mixes, and, for
reference, real held-out paintings, raw-code averages and samples of a diagonal Gaussian fitted to the codes):

- novelty: distance to the nearest training painting's code;
- re-embedding error: render the code on corpus photos (256 px), feed each rendering back to the style predictor
  and measure the distance between the code it gives and the code that was rendered (averaged over photos).

Distances are root-mean-square per dimension in standardised units (the VAE's code mean and std), so 1.0 is the
spread of the codes. A code the transformer and predictor "understand" re-embeds about as well as a real painting.

    python bench/bench_latent_metrics.py [--n 32] [--photos 2]
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_latent_train import CORPUS, fill_by_nearest_centroid, infer_labels  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=32, help="codes per set")
    parser.add_argument("--photos", type=int, default=2, help="corpus photos each code is rendered on")
    parser.add_argument("--size", type=int, default=256, help="longer side of the photos")
    args = parser.parse_args()
    if not (CORPUS / "styles").is_dir():
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2

    from brushwork import evaluate, io
    from brushwork import latent as api
    from brushwork.methods import fast, latent
    from brushwork.train.style_vae import split_indices

    torch.set_grad_enabled(False)
    vae = api.load_style_space("style-vae", device="cpu")
    cvae = api.load_style_space("style-cvae", device="cpu")
    opt = vae.config["options"]
    with open(CORPUS / "SOURCES.tsv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["folder"] == "styles"]
    paths = [CORPUS / "styles" / r["filename"] for r in rows if (CORPUS / "styles" / r["filename"]).is_file()]
    codes = api.style_codes(paths, augment=opt["augment"], seed=opt["seed"], device="cpu")
    whole = codes[:, 0]
    train_idx, val_idx = split_indices(len(paths), opt["val_fraction"], opt["seed"])

    mean, std = vae.net.code_mean.numpy(), vae.net.code_std.numpy()

    def z(c: np.ndarray) -> np.ndarray:
        return (np.asarray(c, dtype=np.float64) - mean) / std

    train = z(whole[train_idx])

    def novelty(c: np.ndarray) -> np.ndarray:
        d = ((z(c)[:, None, :] - train[None]) ** 2).mean(-1)
        return np.sqrt(d.min(1))

    photos = [io.to_tensor(io.resize_to_max(io.load_image(p).rgb, args.size))
              for p in io.list_images(CORPUS / "content")[: args.photos]]  # fmt: skip

    def reembed(c: np.ndarray) -> np.ndarray:
        errs = np.zeros(len(c))
        for photo in photos:
            for i, code in enumerate(c):
                out = fast.render(photo, torch.from_numpy(np.asarray(code, dtype=np.float32)), device="cpu")
                back = fast.style_vector(io.to_numpy(out), device="cpu")
                errs[i] += evaluate.code_distance(back.numpy(), np.asarray(code))  # standardised RMS
        return errs / len(photos)

    rng = np.random.default_rng(0)
    n = args.n
    pairs = rng.choice(train_idx, size=(n, 2))
    mixes = np.stack([latent.mix_codes(vae, torch.from_numpy(whole[p]), [0.5, 0.5]).numpy() for p in pairs])
    averages = whole[pairs].mean(1)
    label_names = cvae.labels
    per_label = -(-n // len(label_names))
    cond = np.concatenate([latent.sample_codes(cvae, per_label, label=lab, seed=k).numpy()
                           for k, lab in enumerate(label_names)])[:n]  # fmt: skip
    gauss = mean + std * rng.normal(size=(n, len(mean)))
    sets = {
        "VAE samples, temperature 0.5": latent.sample_codes(vae, n, temperature=0.5, seed=1).numpy(),
        "VAE samples, temperature 1.0": latent.sample_codes(vae, n, temperature=1.0, seed=1).numpy(),
        "conditional VAE samples (all labels), T 1.0": cond,
        "latent mixes of two training paintings (0.5/0.5)": mixes,
        "raw averages of the same pairs": averages,
        "held-out paintings (real)": whole[val_idx][:n],
        "training paintings (real)": whole[train_idx][:n],
        "diagonal-Gaussian samples (baseline)": gauss,
    }
    print(f"{len(paths)} paintings ({len(train_idx)} training, {len(val_idx)} held out); {args.photos} photos")
    print("| codes | novelty: RMS distance to the nearest training painting | re-embedding error |")
    print("|---|---|---|")
    for name, c in sets.items():
        t0 = time.perf_counter()
        nov = novelty(c)
        if name.startswith("training"):
            nov = np.zeros(len(c))
        err = reembed(c)
        print(
            f"| {name} | {np.median(nov):.3f} | {np.median(err):.3f} |  ({time.perf_counter() - t0:.0f} s)", flush=True
        )
    print("medians over", n, "codes each")
    # do conditional samples belong to their family? the label of each sample's nearest painting (of all 186)
    labels = np.array(fill_by_nearest_centroid(whole, infer_labels(rows)))
    every = z(whole)
    agree, chance = [], 0.0
    for k, lab in enumerate(cvae.labels):
        drawn = z(latent.sample_codes(cvae, 32, label=lab, seed=100 + k).numpy())
        nearest = ((drawn[:, None, :] - every[None]) ** 2).sum(-1).argmin(1)
        agree.append(float((labels[nearest] == lab).mean()))
        chance += float((labels == lab).mean()) ** 2
    print(f"label agreement of conditional samples (32 per label): {np.mean(agree):.2f} (chance {chance:.2f})")
    print("  per label: " + ", ".join(f"{lab} {a:.2f}" for lab, a in zip(cvae.labels, agree, strict=True)))
    for space in (vae, cvae):
        m = space.config["metrics"]
        print(space.name, {k: round(v, 3) for k, v in m.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
