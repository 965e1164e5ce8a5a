"""Does fine-tuning MicroAST on a folder of paintings render *held-back* paintings of that folder better?

    python bench/bench_microast_finetune.py [--group wikiart-sample] [--hold 0.33]
        [--steps 100] [--minutes 13] [--crop 128] [--batch-size 4] [--lr LR] [--style-weight W] [--photos 4]
        [--compare 5] [--device cpu|cuda|auto] [--out DIR]

The paintings of one group of the corpus (file names starting with ``--group``, or with any of several
comma-separated prefixes, or a named group of one school: ``impressionists``, ``east-asian``; ``all`` = every
painting) are
split at random (seeded) into a training part and a held-back part (``--hold``); the corpus photos likewise into
training photos and ``--photos`` evaluation photos. ``brushwork train decoder --arch microast`` (the API call
behind it) fine-tunes the shipped MicroAST on the training part for ``--steps`` steps or ``--minutes`` minutes,
whichever comes first (``--reuse``: evaluate the model an earlier run left in ``--out``). Then every evaluation
photo is stylized with every held-back painting by the shipped and by the fine-tuned model through
``brushwork.api.stylize(..., method="microast", decoder=FILE)``, and :class:`brushwork.evaluate.Evaluator` scores
each result. Prints the means of each metric for both models, their ratio, and the share of pairs where the
fine-tuned model is better; ``--compare`` training paintings are scored the same way, to tell fitting from
generalising. ``--lr`` and ``--style-weight`` default to the training's (``ARCH_DEFAULTS["microast"]``).
Needs ``../shared/corpus`` (or ``--corpus``); writes only under ``--out`` (default: a temporary folder), never
into the repository.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from brushwork import api, evaluate, io  # noqa: E402
from brushwork.train.decoder import train_decoder  # noqa: E402

METRICS = ("mean_std", "gram", "style_code", "content", "ssim", "edges")
# named groups of the corpus paintings (file-name prefixes): folders of one school, as a user's own paintings are
GROUPS = {
    "impressionists": "claude-monet,camille-pissarro,pierre-auguste-renoir,edgar-degas,mary-cassatt,"
    "gustave-caillebotte,georges-seurat,vincent-van-gogh,paul-cezanne,paul-gauguin,henri-de-toulouse-lautrec,"
    "john-singer-sargent,henri-rousseau",
    "east-asian": "katsushika-hokusai,utagawa-hiroshige,kitagawa-utamaro,hishikawa-moronobu,ito-jakuchu,sakai-hoitsu,"
    "gu-hongzhong,gu-kaizhi,huang-gongwang,wang-ximeng,yan-liben,zhang-xuan,zhang-zeduan,zhou-fang,ink-painting,"
    "ink-wash,sumi-e",
}


def _split(items: list[Path], hold: float | int, seed: int) -> tuple[list[Path], list[Path]]:
    items = sorted(items)
    random.Random(seed).shuffle(items)
    n = hold if isinstance(hold, int) else max(1, round(len(items) * hold))
    return items[n:], items[:n]


def _link(files: list[Path], folder: Path, reuse: bool = False) -> Path:
    if reuse:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        (folder / f.name).symlink_to(f.resolve())
    return folder


def _score(model: str | None, photos: list, styles: list, ev: evaluate.Evaluator, size: int) -> list[dict]:
    rows = []
    for p in photos:
        for s in styles:
            out = api.stylize(p, [s], method="microast", decoder=model, max_size=size)
            rows.append(ev(_rgb(out), p, s))
    return rows


def _rgb(image: object) -> object:
    import numpy as np

    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0  # type: ignore[attr-defined]


def _report(title: str, base: list[dict], tuned: list[dict]) -> None:
    print(f"\n{title} ({len(base)} photo/painting pairs)")
    print("| metric | better | shipped | fine-tuned | fine-tuned / shipped | pairs better |")
    print("|---|---|---:|---:|---:|---:|")
    for m in METRICS:
        direction = evaluate.METRICS[m][0]
        a = statistics.fmean(r[m] for r in base)
        b = statistics.fmean(r[m] for r in tuned)
        wins = sum((t[m] < s[m]) if direction == "lower" else (t[m] > s[m]) for s, t in zip(base, tuned, strict=True))
        print(f"| {m} | {direction} | {a:.4g} | {b:.4g} | {b / a:.3f} | {100 * wins / len(base):.0f} % |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", default=str(Path(__file__).resolve().parents[2] / "shared" / "corpus"))
    ap.add_argument(
        "--group",
        default="wikiart-sample",
        help=f"file-name prefix(es) of the paintings, comma-separated; all = every one; or one of {', '.join(GROUPS)}",
    )
    ap.add_argument("--hold", type=float, default=0.33, help="share of the group's paintings held back")
    ap.add_argument("--photos", type=int, default=4, help="photos held back for the evaluation")
    ap.add_argument("--compare", type=int, default=5, help="training paintings scored too")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--minutes", type=float, default=13.0, help="stop training after this long")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=None, help="default: the training's")
    ap.add_argument("--style-weight", type=float, default=None, help="default: the training's")
    ap.add_argument("--encoder", default="", help="loss network (default: auto)")
    ap.add_argument("--size", type=int, default=384, help="longer side of the evaluated renderings")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="training and evaluation device: cpu (default), cuda, auto")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="", help="run folder (default: a temporary one)")
    ap.add_argument("--reuse", action="store_true", help="evaluate the model already trained in --out")
    args = ap.parse_args()

    corpus = Path(args.corpus)
    paintings = [p for p in (corpus / "styles").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    if args.group != "all":
        prefixes = tuple(GROUPS.get(args.group, args.group).split(","))
        paintings = [p for p in paintings if p.name.startswith(prefixes)]
    photos = [p for p in (corpus / "content").iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png")]
    train_styles, held_styles = _split(paintings, args.hold, args.seed)
    train_photos, eval_photos = _split(photos, args.photos, args.seed + 1)
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="microast-finetune-"))
    reuse = args.reuse and (root / "run" / "decoder.safetensors").is_file()
    style_dir = _link(train_styles, root / "data" / "styles", reuse)
    photo_dir = _link(train_photos, root / "data" / "photos", reuse)
    print(f"group {args.group!r}: {len(train_styles)} training paintings, {len(held_styles)} held back; "
          f"{len(train_photos)} training photos, {len(eval_photos)} evaluation photos; run folder {root}")  # fmt: skip

    extra = {k: getattr(args, k) for k in ("lr", "style_weight") if getattr(args, k) is not None}
    t0 = time.time()
    model = root / "run" / "decoder.safetensors"
    model = model if reuse else train_decoder(
        arch="microast", content=str(photo_dir), style=str(style_dir), out=str(root / "run"), encoder=args.encoder,
        steps=args.steps, time_limit=args.minutes, batch_size=args.batch_size, crop=args.crop,
        save_every=max(args.steps // 3, 1), val_every=args.steps, log_every=5, seed=args.seed, device=args.device,
        threads=args.threads, **extra,
    )  # fmt: skip
    train_s = time.time() - t0
    import json

    conf = json.loads(model.with_suffix(".json").read_text())
    lr, sw = conf["train"]["lr"], conf["train"]["style_weight"]
    print(f"trained {conf['trained']['steps']} steps in {train_s / 60:.1f} min (loss net {conf['loss_net']}, "
          f"lr {lr:g}, style weight {sw:g}, crop {args.crop}, batch {args.batch_size}, "
          f"final losses {conf['trained']['final_losses']}); model {model}")  # fmt: skip

    photos_rgb = [io.load_image(p).rgb for p in eval_photos]
    held_rgb = [io.load_image(p).rgb for p in held_styles]
    train_rgb = [io.load_image(p).rgb for p in train_styles[: args.compare]]
    from brushwork.device import resolve_device

    ev = evaluate.Evaluator(size=args.size, metrics=METRICS, device=resolve_device(args.device))
    t1 = time.time()
    base_held = _score(None, photos_rgb, held_rgb, ev, args.size)
    tuned_held = _score(str(model), photos_rgb, held_rgb, ev, args.size)
    base_train = _score(None, photos_rgb, train_rgb, ev, args.size)
    tuned_train = _score(str(model), photos_rgb, train_rgb, ev, args.size)
    print(f"evaluated in {(time.time() - t1) / 60:.1f} min")
    _report(f"HELD-BACK paintings of {args.group!r} (not trained on)", base_held, tuned_held)
    _report(f"training paintings of {args.group!r} (trained on; first {len(train_rgb)})", base_train, tuned_train)


if __name__ == "__main__":
    main()
