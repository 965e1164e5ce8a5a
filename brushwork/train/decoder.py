"""Training a decoder that inverts a frozen encoder, for AdaIN and WCT style transfer (Huang & Belongie 2017).

Each step draws a batch of random crops of photos and of paintings, encodes both, and decodes two things: the
photo's own features (reconstruction) and the photo's features moved to the painting's statistics by AdaIN
``t``. The loss is

- ``rec_weight · ||x − D(E(x))||²`` (pixels) + ``rec_feat_weight · ||E(x) − E(D(E(x)))||²`` (features), which
  make the decoder an inverse of the encoder (what WCT needs), and
- ``content_weight · ||E(D(t)) − t||²`` + ``style_weight · Σ_l ||μ(φ_l(D(t))) − μ(φ_l(s))||² +
  ||σ(φ_l(D(t))) − σ(φ_l(s))||²`` over the encoder's style layers (the AdaIN losses).

Adam with the learning-rate decay ``lr / (1 + lr_decay · step)``; mixed precision on CUDA; a tqdm bar with ETA;
atomic checkpoints every ``save_every`` steps (:mod:`brushwork.train.checkpoint`) and ``resume``; ``log.csv``; a
grid of validation stylizations every ``val_every`` steps in ``val/``, with ``loss.png`` redrawn then and at the
end; DDP under torchrun (:mod:`brushwork.train.distributed`). The batch of step ``s`` on rank ``r`` depends only
on ``(seed, s, r)``, so a resumed run continues exactly as an uninterrupted one would.

Output folder: ``decoder.safetensors`` (+ ``.json``: the file ``--decoder`` takes), ``checkpoints/``,
``log.csv``, ``loss.png``, ``val/step-XXXXXXX.png``.

``arch="microast"`` trains the whole MicroAST model instead (encoders, modulator and decoder, from the shipped
weights by default) with the same loop, files and options; its losses are in :mod:`brushwork.train.microast`,
and its ``decoder.safetensors`` is what ``stylize --method microast --decoder`` takes.
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from brushwork.api import ProgressFn
from brushwork.errors import DeviceError, InputError, OutputError
from brushwork.nets.decoder import Decoder, Encoder
from brushwork.train import checkpoint
from brushwork.train import distributed as distrib
from brushwork.transforms import adaptive_instance_normalization, calc_mean_std

LOSS_NAMES = ("loss", "rec_pix", "rec_feat", "content", "style")  # the autoencoder's (log.csv's columns)
ARCHS = ("autoencoder", "microast")
# the defaults that differ between the archs: a decoder trained from scratch, a pretrained MicroAST fine-tuned
# (at 1e-4 Adam's first steps throw MicroAST's small weights far off, docs/microast.md)
ARCH_DEFAULTS: dict[str, dict[str, float]] = {
    "autoencoder": {"lr": 1e-4, "style_weight": 10.0},
    "microast": {"lr": 5e-5, "style_weight": 50.0},
}


@dataclass
class DecoderTrainConfig:
    """Everything that defines a decoder training run (the CLI's defaults come from here)."""

    content: str = ""  # folder of photos
    style: str = ""  # folder of paintings
    out: str = "runs/decoder"  # output folder
    arch: str = "autoencoder"  # autoencoder (a decoder for adain/wct) or microast (the whole MicroAST model)
    # the frozen encoder (autoencoder: mobilenet, which ships with brushwork and works offline, vgg19 or vgg16) or
    # the loss network (microast: auto = vgg19 if its weights are here, else mobilenet); "" = that default
    encoder: str = ""
    layer: str = ""  # cut layer ("" = the encoder's default: relu4_1 / block5)
    encoder_weights: str = "imagenet"  # imagenet, random or a weights file
    width: float = 1.0  # decoder hidden-channel multiplier
    steps: int = 160_000
    batch_size: int = 8
    crop: int = 256  # random square crops of this size …
    max_scale: float = 2.0  # … after resizing the shorter side to a random size in [crop, max_scale·crop]
    lr: float | None = None  # Adam's learning rate; None: the arch's default (ARCH_DEFAULTS)
    lr_decay: float = 5e-5
    content_weight: float = 1.0
    style_weight: float | None = None  # None: the arch's default (ARCH_DEFAULTS)
    rec_weight: float = 1.0
    rec_feat_weight: float = 1.0
    contrast_weight: float = 1.0  # microast: the style-signal contrastive term
    init: str = "shipped"  # microast: starting weights, shipped, random or a MicroAST .safetensors file
    save_every: int = 1000
    val_every: int = 1000
    log_every: int = 10
    keep: int = 3  # checkpoints kept
    val_count: int = 4  # photos and paintings in the validation grid
    seed: int = 0
    device: str = "auto"
    amp: bool = True  # mixed precision (CUDA only)
    threads: int = 0  # torch CPU threads per process (0: torch's default)
    time_limit: float = 0.0  # minutes; stop (with a checkpoint) after this long, 0 = no limit
    strict: bool = False  # refuse the run when any image is unusable (default: skip it with a warning)


def resolve_defaults(config: DecoderTrainConfig) -> DecoderTrainConfig:
    """``config`` with its unset (None) fields given their arch's default (:data:`ARCH_DEFAULTS`)."""
    table = ARCH_DEFAULTS.get(config.arch, ARCH_DEFAULTS["autoencoder"])
    return replace(config, **{k: v for k, v in table.items() if getattr(config, k) is None})


def default_encoder(arch: str, weights: str = "imagenet") -> str:
    """The encoder a run uses when none is named: ``mobilenet`` for a decoder (it ships with brushwork, so training
    works offline); for microast VGG-19 when its weights are present, else ``mobilenet``."""
    if arch == "microast":
        from brushwork.train.microast import choose_loss_net

        return choose_loss_net("auto", weights)
    return "mobilenet"


# -- data ----------------------------------------------------------------------------------------------------


def _load_rgb(path: Path) -> Tensor:
    """An image file as ``3×H×W`` float in 0..1."""
    from brushwork.io import load_image

    return torch.from_numpy(load_image(path).rgb).permute(2, 0, 1).contiguous()


def random_crop(img: Tensor, crop: int, max_scale: float, gen: torch.Generator) -> Tensor:
    """``3×H×W`` → ``3×crop×crop``: resize the shorter side to a random size in ``[crop, max_scale·crop]``,
    crop a random square, flip horizontally half of the time (all draws from ``gen``)."""
    h, w = img.shape[-2:]
    lo, hi = crop, max(crop, int(crop * max_scale))
    short = int(torch.randint(lo, hi + 1, (1,), generator=gen))
    s = short / min(h, w)
    size = (max(crop, round(h * s)), max(crop, round(w * s)))
    img = F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0]
    top = int(torch.randint(0, size[0] - crop + 1, (1,), generator=gen))
    left = int(torch.randint(0, size[1] - crop + 1, (1,), generator=gen))
    img = img[:, top : top + crop, left : left + crop]
    if bool(torch.rand((), generator=gen) < 0.5):
        img = img.flip(-1)
    return img.clamp(0.0, 1.0)


def sample_batch(
    files: Sequence[Path],
    n: int,
    crop: int,
    max_scale: float,
    seed: int,
    step: int,
    rank: int,
    stream: int,
    distinct: bool = False,
) -> Tensor:
    """Batch ``n×3×crop×crop`` of random crops of random ``files``, a pure function of (seed, step, rank, stream).
    ``distinct``: no file twice in a batch while there are at least ``n`` files (contrastive losses need it)."""
    gen = torch.Generator().manual_seed(((seed * 1_000_003 + step) * 8191 + rank) * 4 + stream)
    if distinct and len(files) >= n:
        idx = torch.randperm(len(files), generator=gen)[:n].tolist()
    else:
        idx = torch.randint(0, len(files), (n,), generator=gen).tolist()
    return torch.stack([random_crop(_load_rgb(files[i]), crop, max_scale, gen) for i in idx])


def _center(img: Tensor, size: int) -> Tensor:
    """``3×H×W`` → ``3×size×size``: shorter side resized to ``size``, centre crop."""
    h, w = img.shape[-2:]
    s = size / min(h, w)
    hh, ww = max(size, round(h * s)), max(size, round(w * s))
    img = F.interpolate(img[None], size=(hh, ww), mode="bilinear", antialias=True, align_corners=False)[0]
    top, left = (hh - size) // 2, (ww - size) // 2
    return img[:, top : top + size, left : left + size].clamp(0.0, 1.0)


# -- losses --------------------------------------------------------------------------------------------------


def decoder_losses(
    encoder: Encoder, decoder: nn.Module, content: Tensor, style: Tensor, config: DecoderTrainConfig
) -> dict[str, Tensor]:
    """The weighted loss terms for a batch: ``content`` and ``style`` ``N×3×H×W`` in 0..1.

    Returns scalars ``loss`` (the weighted total), ``rec_pix``, ``rec_feat``, ``content``, ``style`` (unweighted).
    """
    layer = encoder.layer
    layers = list(dict.fromkeys([*encoder.style_layers, layer]))
    n = content.shape[0]
    with torch.no_grad():
        cf = encoder(content)
        sf = encoder.features(style, layers)
        t = adaptive_instance_normalization(cf.float(), sf[layer].float())
    out = decoder(torch.cat([cf, t.to(cf.dtype)]))
    rec = out[:n]
    of = encoder.features(out, layers)
    rec_pix = F.mse_loss(rec.float(), content.float())
    rec_feat = F.mse_loss(of[layer][:n].float(), cf.float())
    content_loss = F.mse_loss(of[layer][n:].float(), t)
    style_loss = content.new_zeros((), dtype=torch.float32)
    for name in encoder.style_layers:
        gm, gs = calc_mean_std(of[name][n:].float())
        sm, ss = calc_mean_std(sf[name].float())
        style_loss = style_loss + F.mse_loss(gm, sm) + F.mse_loss(gs, ss)
    config = resolve_defaults(config)
    total = (
        config.rec_weight * rec_pix
        + config.rec_feat_weight * rec_feat
        + config.content_weight * content_loss
        + config.style_weight * style_loss
    )
    return {"loss": total, "rec_pix": rec_pix, "rec_feat": rec_feat, "content": content_loss, "style": style_loss}


# -- logging and pictures ------------------------------------------------------------------------------------


def _read_log(path: Path) -> list[dict[str, str]]:
    """The rows of a training log; rows that are not a training step (a damaged or hand-edited file) are left out."""
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        return [r for r in csv.DictReader(f) if re.fullmatch(r"[0-9]+", str(r.get("step") or ""))]


def _rewrite_log(path: Path, keep_until: int, names: Sequence[str] = LOSS_NAMES) -> None:
    """Drop the rows after step ``keep_until`` (a resumed run writes them again)."""
    rows = [r for r in _read_log(path) if int(r["step"]) <= keep_until]
    _write_rows(path, rows, "w", names)


def _write_rows(path: Path, rows: list[dict[str, Any]], mode: str, names: Sequence[str] = LOSS_NAMES) -> None:
    header = ["step", "time_s", "lr", *names]
    new = mode == "w" or not path.is_file()
    with open(path, mode, newline="") as f:
        writer = csv.DictWriter(f, fieldnames=header, extrasaction="ignore")
        if new:
            writer.writeheader()
        writer.writerows(rows)


def plot_losses(log: Path, dest: Path) -> None:
    """Draw ``log.csv``'s losses (log scale) against the step into ``dest`` (PNG, written atomically)."""
    import matplotlib

    matplotlib.use("Agg")
    import numpy as np
    from matplotlib.figure import Figure
    from PIL import Image

    from brushwork.io import save_image

    rows = _read_log(log)
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    fig = Figure(figsize=(7, 4), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for name in [k for k in rows[0] if k not in ("step", "time_s", "lr")]:
        values = [max(float(r[name]), 1e-12) for r in rows]
        ax.plot(steps, values, label=name, linewidth=1.5 if name == "loss" else 1.0)
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss (weighted total) and terms (unweighted)")
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.1, right=0.97, top=0.96, bottom=0.13)
    buf = _io.BytesIO()
    fig.savefig(buf, format="png")
    buf.seek(0)
    save_image(np.asarray(Image.open(buf).convert("RGB")), dest)


def validation_grid(encoder: Encoder, decoder: nn.Module, photos: Tensor, paintings: Tensor) -> Tensor:
    """A picture ``3×H×W``: a header row of the paintings, then per photo the photo, its reconstruction and its
    AdaIN stylization with each painting. ``photos`` ``P×3×s×s``, ``paintings`` ``Q×3×s×s``."""
    with torch.no_grad():
        cf = encoder(photos)
        sf = encoder(paintings)
        rec = decoder(cf).clamp(0, 1)
        rows = [torch.cat([torch.ones_like(photos[0])] * 2 + list(paintings), dim=2)]
        for i in range(photos.shape[0]):
            stylized = decoder(adaptive_instance_normalization(cf[i : i + 1].expand_as(sf), sf)).clamp(0, 1)
            rows.append(torch.cat([photos[i], rec[i], *stylized], dim=2))
    return torch.cat(rows, dim=1)


def _val_images(files: Sequence[Path], count: int, size: int) -> Tensor:
    """``count`` files spread evenly over ``files``, centre-cropped: ``count×3×size×size``."""
    n = min(count, len(files))
    return torch.stack([_center(_load_rgb(files[i * len(files) // n]), size) for i in range(n)])


# -- the loop ------------------------------------------------------------------------------------------------


_RESUME_KEYS = ("arch", "encoder", "layer", "encoder_weights", "width")


def _check_resumable(saved: dict[str, Any], config: DecoderTrainConfig, spec: list[list[int]] | None) -> None:
    if saved.get("arch", "autoencoder") != config.arch:
        raise InputError(f"cannot resume: the checkpoint's arch is {saved.get('arch', 'autoencoder')!r}, "
                         f"this run's {config.arch!r}")  # fmt: skip
    for key in _RESUME_KEYS[1:]:
        if key in saved and str(saved[key]) != str(getattr(config, key)):
            mine = getattr(config, key)
            raise InputError(f"cannot resume: the checkpoint's {key} is {saved[key]!r}, this run's {mine!r}")
    if spec is not None and "spec" in saved and [list(r) for r in saved["spec"]] != [list(r) for r in spec]:
        raise InputError("cannot resume: the checkpoint's decoder architecture differs from this run's")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# (field, lowest, highest) of the whole-number options; the highest values are far beyond any real run and keep
# C libraries (torch's thread pool, image sizes) from overflowing
_WHOLE_RANGES = (("steps", 1, 10**9), ("batch_size", 1, 4096), ("crop", 16, 4096), ("save_every", 1, 10**9),
                 ("log_every", 1, 10**9), ("keep", 1, 1000), ("val_count", 1, 64), ("val_every", 0, 10**9),
                 ("threads", 0, 1024))  # fmt: skip
# (field, highest) of the non-negative real options
_REAL_RANGES = (("lr_decay", 1.0), ("content_weight", 1e6), ("style_weight", 1e6), ("rec_weight", 1e6),
                ("rec_feat_weight", 1e6), ("contrast_weight", 1e6), ("time_limit", 1e7))  # fmt: skip


def check_config(config: DecoderTrainConfig) -> None:
    """Raise InputError (one line) for a value that would fail later; called before any work."""
    problems = []
    if config.arch not in ARCHS:
        problems.append(f"unknown --arch {config.arch!r}; choose one of {', '.join(ARCHS)}")
    for name, low, high in _WHOLE_RANGES:
        value = getattr(config, name)
        if not _whole(value) or not low <= value <= high:
            problems.append(f"--{name.replace('_', '-')} must be a whole number from {low} to {high:,}, got {value!r}")
    if not _whole(config.seed) or not 0 <= config.seed < 2**63:
        problems.append(f"--seed must be a whole number from 0 to 2**63-1, got {config.seed!r}")
    if not _number(config.lr) or not 0 < config.lr <= 10:
        problems.append(f"--lr must be a number above 0 and at most 10, got {config.lr!r}")
    if not _number(config.width) or not 0 < config.width <= 16:
        problems.append(f"--width must be a number above 0 and at most 16, got {config.width!r}")
    if not _number(config.max_scale) or not 1 <= config.max_scale <= 8:
        problems.append(f"--max-scale must be a number from 1 to 8, got {config.max_scale!r}")
    for name, high in _REAL_RANGES:
        value = getattr(config, name)
        if not _number(value) or not 0 <= value <= high:
            problems.append(f"--{name.replace('_', '-')} must be a number from 0 to {high:g}, got {value!r}")
    if problems:
        raise InputError(problems[0])


_DEVICE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def check_device(device: str) -> None:
    """Raise DeviceError unless ``device`` is auto, cpu, cuda, cuda:N or mps and exists on this machine."""
    name = str(device).strip().lower()
    if not _DEVICE.fullmatch(name):
        raise DeviceError(f"unknown device {device!r}; use auto, cpu, cuda, cuda:N or mps")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise DeviceError(f"device {name} is not available on this machine (no CUDA GPU or no CUDA build of torch)")
        if ":" in name and int(name.split(":")[1]) >= torch.cuda.device_count():
            raise DeviceError(f"device {name} does not exist; this machine has {torch.cuda.device_count()} CUDA GPU(s)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise DeviceError("device mps is not available on this machine")


# what a training run writes in its --out folder, and whether each is a file or a folder
RUN_FILES = {
    "decoder.safetensors": "file",
    "decoder.json": "file",
    "log.csv": "file",
    "loss.png": "file",
    "checkpoints": "folder",
    "val": "folder",
}


def train_decoder(
    config: DecoderTrainConfig | None = None,
    *,
    resume: bool = False,
    progress: ProgressFn | None = None,
    **overrides: Any,
) -> Path:
    """Train a decoder for ``config.encoder`` on ``config.content`` and ``config.style``; return the path of the
    exported ``decoder.safetensors`` (in ``config.out``).

    ``resume`` continues from the latest checkpoint in ``out/checkpoints`` (a fresh start when there is none).
    ``overrides`` set config fields by name. ``progress`` receives one ``train`` :class:`brushwork.api.Progress`
    event per step on the main process (the step's losses and learning rate; ``preview`` is the validation grid
    ``H×W×3`` when one was made).
    Under torchrun each process trains on its own batches and gradients are averaged (DDP).
    """
    from brushwork.io import check_output_folder, list_images, same_file, usable_images
    from brushwork.methods.autoencoder import ENCODERS, _backbone_names

    if config is not None and not isinstance(config, DecoderTrainConfig):
        raise InputError(f"config must be a DecoderTrainConfig, got {type(config).__name__}")
    try:
        config = DecoderTrainConfig(**{**asdict(config or DecoderTrainConfig()), **overrides})
    except TypeError as exc:  # an unknown option name
        raise InputError(f"train_decoder: {exc}") from None
    for name in ("content", "style", "out"):
        value = getattr(config, name)
        if (value is not None or name == "out") and not isinstance(value, str | os.PathLike):
            raise InputError(f"{name} must be a folder's path, got {value!r:.40}")
    if not isinstance(config.init, str | os.PathLike):
        raise InputError(f"init must be shipped, random or a MicroAST .safetensors file, got {config.init!r:.40}")
    config = resolve_defaults(config)
    check_config(config)
    if config.arch == "microast":
        from brushwork.train.microast import choose_loss_net

        if config.layer:
            raise InputError("--layer applies to --arch autoencoder (microast's loss layers are fixed per --encoder)")
        config.encoder = config.encoder or default_encoder(config.arch, config.encoder_weights)
        config.encoder = choose_loss_net(config.encoder, config.encoder_weights)
        if config.init not in ("shipped", "random"):
            from brushwork.decoders import load_microast_state

            load_microast_state(config.init)  # a wrong file is refused before any work
    else:
        if config.init != DecoderTrainConfig.init:
            raise InputError("--init applies to --arch microast (an autoencoder's decoder starts from random weights)")
        config.encoder = config.encoder or default_encoder(config.arch, config.encoder_weights)
        if config.encoder not in ENCODERS:
            raise InputError(f"unknown encoder {config.encoder!r}; choose one of {', '.join(ENCODERS)}")
        config.layer = config.layer or ENCODERS[config.encoder][0]
        stages = _backbone_names(config.encoder)
        if config.layer not in stages:
            choices = ", ".join(stages)
            raise InputError(f"encoder {config.encoder} has no layer {config.layer!r}; choose one of {choices}")
    check_device(config.device)
    config.device = str(config.device).strip().lower()  # as torch spells it ("CPU" is cpu)
    if not config.content or not config.style:
        raise InputError("give a folder of photos (--content) and a folder of paintings (--style)")
    out = Path(config.out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {config.out} is a file; give a folder for the run's outputs")
    check_output_folder(out)
    for flag, folder in (("--content", config.content), ("--style", config.style)):
        if same_file(out, Path(folder)):
            raise OutputError(f"--out {config.out} is the {flag} folder; give a folder of its own for the run")
    for name, kind in RUN_FILES.items():  # what the run writes in --out: found now, not after the training
        path = out / name
        if path.exists() and path.is_dir() != (kind == "folder"):
            what = "a folder" if path.is_dir() else "a file"
            raise OutputError(f"cannot write {path}: it is {what}, and the run writes a {kind} there")
    weights = config.encoder_weights
    if weights not in ("imagenet", "random", "pretrained") and not Path(weights).is_file():
        raise InputError(f"encoder weights file not found: {weights}")
    data: dict[str, Any] = {}
    files: list[list[Path]] = []
    for flag, folder in (("content", config.content), ("style", config.style)):
        found, skipped = usable_images(list_images(folder), strict=config.strict, min_side=16, where=str(folder))
        files.append(found)
        data[flag] = {"folder": str(folder), "images": len(found), "skipped": [str(p) for p, _ in skipped]}
    threads = torch.get_num_threads()
    if config.threads > 0:
        torch.set_num_threads(config.threads)
    d = distrib.setup(config.device)
    try:
        with _RunLock(out, d.is_main):
            return _train(config, d, files[0], files[1], resume, progress, data)
    finally:
        distrib.cleanup(d)
        torch.set_num_threads(threads)


class _RunLock:
    """An exclusive lock on ``out/.lock`` held by the main process for the whole run, so that two trainings into
    one folder refuse instead of interleaving their logs and checkpoints. The folder is made here."""

    def __init__(self, out: Path, active: bool) -> None:
        self.out, self.active, self.fd, self.made = out, active, -1, False

    def __enter__(self) -> _RunLock:
        if not self.active:
            return self
        try:
            self.made = not self.out.exists()
            self.out.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.out / ".lock", os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise OutputError(f"cannot write to {self.out}: {(exc.strerror or str(exc)).lower()}") from None
        try:
            import fcntl

            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - Windows: no lock
            pass
        except OSError:
            os.close(self.fd)
            self.fd = -1
            busy = f"another training is writing to {self.out}; wait for it or choose another --out"
            raise OutputError(busy) from None
        return self

    def __exit__(self, kind: object, *_: object) -> None:
        if self.fd < 0:
            return
        if kind is not None and self.made:  # a run that failed before writing anything leaves no folder behind
            (self.out / ".lock").unlink(missing_ok=True)
            try:
                self.out.rmdir()
            except OSError:  # not empty: the run wrote something
                pass
        os.close(self.fd)  # closing releases the lock


def _train(
    config: DecoderTrainConfig,
    d: distrib.Dist,
    content_files: list[Path],
    style_files: list[Path],
    resume: bool,
    progress: ProgressFn | None,
    data: dict[str, Any] | None = None,
) -> Path:
    """The training loop of :func:`train_decoder`, run by every process."""
    from brushwork.api import Reporter
    from brushwork.io import save_image
    from brushwork.methods.autoencoder import save_decoder

    device = d.device
    out = Path(config.out)
    ckroot = out / "checkpoints"
    log_path = out / "log.csv"
    arch = _MicroastArch(config, device) if config.arch == "microast" else _AutoencoderArch(config, device)
    dconf = arch.file_config
    dconf["train"] = {k: v for k, v in asdict(config).items() if k not in ("device", "threads", "strict")}
    if data:
        dconf["data"] = data
    decoder = arch.weights  # the trained module: what checkpoints and the exported file hold
    names = arch.loss_names
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    use_amp = bool(config.amp and device.type == "cuda")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    start = 0
    found = checkpoint.latest(ckroot) if ckroot.is_dir() else None
    if found is not None and not resume:
        raise InputError(f"{out} already holds checkpoints: pass --resume to continue, or choose another --out")
    if d.is_main and ckroot.is_dir():
        checkpoint.remove_stale(ckroot)  # temporary folders of a killed run (this process holds the run's lock)
    if d.is_main:  # and the half-written images and logs a killed run left (io.atomic_path's temporary names)
        for folder in (out, out / "val"):
            for stale in folder.glob(".*.tmp*") if folder.is_dir() else ():
                if stale.is_file() and re.fullmatch(r"\..+\.[0-9]+\.[0-9a-f]{8}\.tmp(\.\w+)?", stale.name):
                    stale.unlink(missing_ok=True)
    if found is not None:
        ck = checkpoint.load_newest(ckroot, map_location=device)
        _check_resumable(ck.config, config, dconf.get("spec"))
        started = ck.config.get("train", {}).get("init") if isinstance(ck.config.get("train"), dict) else None
        if started is not None:  # the weights the run started from, not this resumed call's --init (unused)
            dconf["train"]["init"] = started
        decoder.load_state_dict(ck.weights)
        optimizer.load_state_dict(ck.optimizer["optimizer"])
        if "scaler" in ck.optimizer and use_amp:
            scaler.load_state_dict(ck.optimizer["scaler"])
        start = ck.step
        elapsed0 = float(ck.metrics.get("elapsed_s", 0.0))
    else:
        elapsed0 = 0.0
    if d.is_main:
        out.mkdir(parents=True, exist_ok=True)
        (out / "val").mkdir(exist_ok=True)
        _rewrite_log(log_path, start, names) if start else _write_rows(log_path, [], "w", names)
    distrib.barrier(d)

    model = distrib.wrap(arch.step_module, d)
    val_photos = val_paintings = None
    if d.is_main and config.val_every > 0:
        val_photos = _val_images(content_files, config.val_count, config.crop).to(device)
        val_paintings = _val_images(style_files, config.val_count, config.crop).to(device)

    def save(step: int, metrics: dict[str, float]) -> None:
        if d.is_main:
            state = {"optimizer": optimizer.state_dict()}
            if use_amp:
                state["scaler"] = scaler.state_dict()
            checkpoint.save(
                ckroot,
                step,
                decoder.state_dict(),
                state,
                {**dconf, **{k: getattr(config, k) for k in _RESUME_KEYS}},
                {**metrics, "elapsed_s": elapsed0 + time.time() - t0},
                keep=config.keep,
            )
        distrib.barrier(d)

    t0 = time.time()
    reporter = Reporter(progress if d.is_main else None, "train", config.steps)
    pending: list[dict[str, float]] = []
    last: dict[str, float] = {}
    step = start
    while step < config.steps:
        lr = config.lr / (1.0 + config.lr_decay * step)
        for group in optimizer.param_groups:
            group["lr"] = lr
        draw = (config.batch_size, config.crop, config.max_scale, config.seed, step, d.rank)
        c, s = sample_batch(content_files, *draw, 0), sample_batch(style_files, *draw, 1, arch.distinct_styles)
        c, s = c.to(device, non_blocking=True), s.to(device, non_blocking=True)
        model.train()
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=use_amp):
            losses = arch.losses(model, c, s)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses["loss"]).backward()
        scaler.step(optimizer)
        scaler.update()
        step += 1
        values = {k: float(distrib.mean(v.detach().float(), d)) for k, v in losses.items()}
        if not math.isfinite(values["loss"]):
            raise InputError(f"the loss became {values['loss']} at step {step}; lower --lr")
        pending.append(values)
        preview = None
        if step % max(config.log_every, 1) == 0 or step == config.steps:
            last = {k: sum(p[k] for p in pending) / len(pending) for k in names}
            pending = []
            if d.is_main:
                row = {"step": step, "time_s": f"{elapsed0 + time.time() - t0:.1f}", "lr": f"{lr:.6g}"}
                _write_rows(log_path, [{**row, **{k: f"{v:.6g}" for k, v in last.items()}}], "a", names)
        if d.is_main and val_photos is not None and (step % config.val_every == 0 or step == config.steps):
            model.eval()
            preview = arch.grid(val_photos, val_paintings)
            save_image(preview[None], out / "val" / f"step-{step:07d}.png")
            plot_losses(log_path, out / "loss.png")
        shown = None if preview is None else preview.permute(1, 2, 0).float().cpu().numpy()
        reporter.step(step, losses={"loss": values["loss"], "lr": lr}, preview=shown)
        stop = config.time_limit > 0 and time.time() - t0 > config.time_limit * 60
        if d.enabled:
            flag = torch.tensor([1.0 if stop else 0.0], device=device)
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX)
            stop = bool(flag.item() > 0)
        if step % config.save_every == 0 or step == config.steps or stop:
            save(step, last or values)
        if stop:
            break
    final = out / "decoder.safetensors"
    if d.is_main:
        dconf["trained"] = {
            "steps": step,
            "elapsed_s": round(elapsed0 + time.time() - t0, 1),
            "world_size": d.world_size,
            "final_losses": {k: round(v, 6) for k, v in last.items()},
        }
        save_decoder(final, decoder, dconf)
        plot_losses(log_path, out / "loss.png")
    distrib.barrier(d)
    return final


class _AutoencoderArch:
    """``arch="autoencoder"``: a :class:`~brushwork.nets.decoder.Decoder` inverting a frozen encoder."""

    loss_names = LOSS_NAMES
    distinct_styles = False

    def __init__(self, config: DecoderTrainConfig, device: torch.device) -> None:
        from brushwork.methods.autoencoder import build_encoder, decoder_config

        self.config = config
        self.encoder = build_encoder(config.encoder, config.layer, config.encoder_weights, device)
        self.file_config = decoder_config(self.encoder, config.encoder, config.encoder_weights, config.width)
        torch.manual_seed(config.seed)
        self.weights = self.step_module = Decoder(self.file_config["spec"]).to(device)

    def losses(self, model: nn.Module, content: Tensor, style: Tensor) -> dict[str, Tensor]:
        return decoder_losses(self.encoder, model, content, style, self.config)

    def grid(self, photos: Tensor, paintings: Tensor) -> Tensor:
        return validation_grid(self.encoder, self.weights, photos, paintings)


class _MicroastArch:
    """``arch="microast"``: the whole MicroAST model with its frozen loss network (:mod:`brushwork.train.microast`)."""

    distinct_styles = True  # the contrastive term compares the batch's paintings with each other

    def __init__(self, config: DecoderTrainConfig, device: torch.device) -> None:
        from brushwork.train import microast

        self.step_module, loss_net = microast.build_trainer(config, device)
        self.weights = self.step_module.net
        self.loss_names = microast.LOSS_NAMES
        self.file_config = microast.file_config(loss_net, config.init)
        self._grid = microast.validation_grid

    def losses(self, model: nn.Module, content: Tensor, style: Tensor) -> dict[str, Tensor]:
        return model(content, style)

    def grid(self, photos: Tensor, paintings: Tensor) -> Tensor:
        return self._grid(self.weights, photos, paintings)


def config_fields() -> list[tuple[str, Any, Any]]:
    """(name, type, default) of every :class:`DecoderTrainConfig` field, for building a CLI from the defaults."""
    return [(f.name, f.type, f.default) for f in fields(DecoderTrainConfig)]
