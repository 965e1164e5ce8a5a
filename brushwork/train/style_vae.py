"""Training a style VAE, or a conditional one, on the style codes of a folder of paintings.

The walk: images → augmented style codes (cached per file, :func:`brushwork.latent.style_codes`) → a split
*by painting* into training and validation sets (all crops of one painting fall on the same side, so validation
measures new paintings, not new crops) → standardisation on the training codes → the beta-weighted ELBO with a
linear KL warm-up, AdamW, early stopping on the validation loss → the best weights as safetensors with a JSON
config beside them, and a loss plot.

Labels for the conditional VAE come from sub-folder names (``labels="folders"``) or a CSV of ``filename,label``.
"""

from __future__ import annotations

import copy
import csv
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from brushwork import __version__, io, store
from brushwork.api import ProgressFn, Reporter
from brushwork.errors import InputError, OutputError
from brushwork.validate import check_count, check_number, check_seed

if TYPE_CHECKING:  # numpy, torch and the networks are imported where used, so that the CLI starts fast
    import numpy as np
    import torch

    from brushwork.nets.vae import StyleVAE


@dataclass
class TrainOptions:
    """Hyper-parameters of :func:`fit`; the CLI's defaults are read from here."""

    latent_dim: int = 16
    hidden: int = 64
    beta: float = 1.0  # weight of the KL term
    epochs: int = 400
    batch_size: int = 128
    lr: float = 1e-3
    weight_decay: float = 1e-4
    val_fraction: float = 0.15  # of the paintings, held out
    patience: int = 40  # epochs without a better validation loss before stopping
    warmup: int = 20  # epochs of linear KL warm-up (beta from 0)
    augment: int = 24  # random crops per painting, besides the whole painting
    seed: int = 0

    def check(self) -> None:
        """InputError (one line, naming the CLI flag) for a value out of range."""
        check_count(self.latent_dim, "latent-dim", low=1, high=MAX_LATENT_DIM)
        check_count(self.hidden, "hidden", low=4, high=MAX_HIDDEN)
        check_number(self.beta, "beta", low=0.0)
        check_count(self.epochs, "epochs", low=1, high=MAX_EPOCHS)
        check_count(self.batch_size, "batch-size", low=1)
        check_number(self.lr, "lr", low=0.0, high=10.0, low_open=True)
        check_number(self.weight_decay, "weight-decay", low=0.0)
        check_number(self.val_fraction, "val-fraction", low=0.0, high=0.5, low_open=True, high_open=True)
        check_count(self.patience, "patience", low=1)
        check_count(self.warmup, "warmup", low=0)
        check_count(self.augment, "augment", low=0, high=64)
        check_seed(self.seed)


MAX_LATENT_DIM = 512  # style codes have 100 numbers: a larger latent only costs memory
MAX_HIDDEN = 8192
MAX_EPOCHS = 1_000_000


@dataclass
class FitResult:
    """A trained VAE and how it got there.

    history: one record per epoch (train_loss, train_nll, train_kl, val_loss, val_nll, val_kl, beta);
    train_idx / val_idx: painting indices of the split; metrics: held-out measures (see :func:`evaluate`).
    """

    net: StyleVAE
    history: list[dict[str, float]]
    best_epoch: int
    train_idx: np.ndarray
    val_idx: np.ndarray
    stopped_early: bool
    metrics: dict[str, float] = field(default_factory=dict)


# -- data ------------------------------------------------------------------------------------------------------------


def collect_styles(
    folder: str | os.PathLike[str], labels: str | os.PathLike[str] | None = None, *, strict: bool = False
) -> tuple[list[Path], list[str] | None]:
    """The images to train on and their labels.

    labels: None (no labels: images in ``folder`` and its immediate sub-folders), ``"folders"`` (each immediate
    sub-folder is a label) or a CSV/TSV file of ``filename,label`` rows (file names relative to ``folder``, or
    bare names; an optional header row ``filename,label``). Images not named in the CSV are left out.
    """
    from brushwork import latent

    paths, folder_labels = latent.find_styles(folder, strict=strict)
    if labels is None:
        return paths, None
    if os.fspath(labels) == "folders":
        if folder_labels is None:
            raise InputError(f"--labels folders needs sub-folders of images in {os.fspath(folder)}, one per label")
        loose = [p.name for p, lab in zip(paths, folder_labels, strict=True) if lab == "(top)"]
        if loose:
            raise InputError(
                f"{len(loose)} images lie directly in {os.fspath(folder)} (e.g. {loose[0]}): move them into a "
                "labelled sub-folder"
            )
        return paths, folder_labels
    return _labels_from_csv(Path(folder), paths, Path(labels))


def _labels_from_csv(root: Path, paths: list[Path], table: Path) -> tuple[list[Path], list[str]]:
    name = os.fspath(table)
    if not table.is_file():
        raise InputError(f"cannot read {name}: no such file (give a CSV of filename,label or 'folders')")
    try:
        text = table.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read {name}: {exc}") from None
    first = text.splitlines()[0] if text.strip() else ""
    delimiter = "\t" if "\t" in first else ","
    rows = [r for r in csv.reader(text.splitlines(), delimiter=delimiter) if r and any(c.strip() for c in r)]
    if rows and rows[0][-1].strip().lower() == "label":
        rows = rows[1:]
    if not rows or any(len(r) < 2 for r in rows):
        raise InputError(f"cannot read {name}: expected rows of filename,label")
    by_name = {p.relative_to(root).as_posix(): p for p in paths} | {p.name: p for p in paths}
    chosen: list[Path] = []
    names: list[str] = []
    missing = []
    seen: dict[Path, str] = {}
    for number, row in enumerate(rows, 1):
        key, label = row[0].strip(), row[1].strip()
        if key not in by_name:
            missing.append(key)
            continue
        if not label:
            raise InputError(f"{name}: the label of {key} is empty (row {number})")
        if by_name[key] in seen:
            raise InputError(f"{name}: {key} is listed twice (labels {seen[by_name[key]]!r} and {label!r})")
        seen[by_name[key]] = label
        chosen.append(by_name[key])
        names.append(label)
    if missing:
        raise InputError(f"{len(missing)} files named in {name} are not in {root} (e.g. {missing[0]})")
    if len(set(names)) < 2:
        raise InputError(f"{name} gives fewer than two labels; a conditional VAE needs at least two")
    return chosen, names


def split_indices(
    n: int, val_fraction: float, seed: int, labels: Sequence[int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Split ``n`` paintings into (train, validation) index arrays; stratified by label when labels are given
    (a label with one painting stays in training)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(np.asarray(labels) == k) for k in set(labels)]
    val: list[int] = []
    for g in sorted(groups, key=lambda g: int(g[0])):
        k = min(len(g) - 1, int(round(val_fraction * len(g))))
        val += list(rng.permutation(g)[:k])
    if not val:  # tiny sets: hold out one painting anyway
        val = [int(rng.integers(n))]
    val_idx = np.sort(np.asarray(val, dtype=int))
    return np.setdiff1d(np.arange(n), val_idx), val_idx


# -- training --------------------------------------------------------------------------------------------------------


def _standardisation(codes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    import numpy as np
    import torch

    flat = codes.reshape(-1, codes.shape[-1]).astype(np.float64)
    return torch.from_numpy(flat.mean(0)).float(), torch.from_numpy(np.maximum(flat.std(0), 1e-3)).float()


def _flat(codes: np.ndarray, labels: np.ndarray | None, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Codes of paintings ``idx`` with all their crops, ``(len(idx)·A)×D``, and their labels."""
    import numpy as np
    import torch

    x = torch.from_numpy(codes[idx].reshape(-1, codes.shape[-1])).float()
    y = None if labels is None else torch.from_numpy(np.repeat(labels[idx], codes.shape[1])).long()
    return x, y


def _loss(net: StyleVAE, x: torch.Tensor, y: torch.Tensor | None, beta: float, seed: int) -> tuple[float, ...]:
    import torch

    from brushwork.nets.vae import elbo

    gen = torch.Generator(device=x.device).manual_seed(seed)
    with torch.no_grad():
        value, nll, kl = elbo(net, net.standardise(x), y, beta, gen)
    return float(-value.mean()), float(nll.mean()), float(kl.mean())


def fit(
    codes: np.ndarray,
    labels: np.ndarray | None = None,
    num_labels: int = 0,
    options: TrainOptions | None = None,
    *,
    device: str = "auto",
    progress: ProgressFn | None = None,
) -> FitResult:
    """Train a style VAE on codes ``P×A×D`` (P paintings, A codes each; row 0 the whole painting).

    labels: ``P`` integer labels in ``0..num_labels-1`` for a conditional VAE, or None. Returns the weights of the
    epoch with the lowest validation loss (negative ELBO at the full beta on the held-out paintings). Reports one
    ``train`` :class:`~brushwork.api.Progress` event per epoch (losses ``train_loss`` and ``val_loss``; the
    whole record is in the history); ``total`` is the most epochs (early stopping ends the stage sooner).
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny MLP: one thread is fastest (many threads thrash on a shared CPU)
    try:
        with torch.random.fork_rng(devices=[]):  # seed the weights without touching the caller's generator
            return _fit(codes, labels, num_labels, options, device, progress)
    finally:
        torch.set_num_threads(threads)


def _fit(
    codes: np.ndarray,
    labels: np.ndarray | None,
    num_labels: int,
    options: TrainOptions | None,
    device: str,
    progress: ProgressFn | None,
) -> FitResult:
    import numpy as np
    import torch

    from brushwork.device import resolve_device
    from brushwork.nets.vae import StyleVAE, elbo

    opt = _train_options(options)
    codes = np.asarray(codes, dtype=np.float32)
    if codes.ndim != 3 or codes.shape[0] < 4:
        raise InputError(f"need the codes of at least 4 paintings to train (P×A×D), got shape {codes.shape}")
    dev = resolve_device(device)
    rep = Reporter(progress, "train", opt.epochs)
    torch.manual_seed(opt.seed)
    train_idx, val_idx = split_indices(len(codes), opt.val_fraction, opt.seed, None if labels is None else labels)
    net = StyleVAE(codes.shape[-1], opt.latent_dim, opt.hidden, num_labels)
    mean, std = _standardisation(codes[train_idx])
    net.code_mean.copy_(mean)
    net.code_std.copy_(std)
    net.to(dev)
    x_train, y_train = _flat(codes, labels, train_idx)
    x_val, y_val = _flat(codes, labels, val_idx)
    x_train, x_val = x_train.to(dev), x_val.to(dev)
    y_train = None if y_train is None else y_train.to(dev)
    y_val = None if y_val is None else y_val.to(dev)
    optimiser = torch.optim.AdamW(net.parameters(), lr=opt.lr, weight_decay=opt.weight_decay)
    gen = torch.Generator(device=dev).manual_seed(opt.seed)
    history: list[dict[str, float]] = []
    best, best_epoch, best_state, stopped = math.inf, 0, copy.deepcopy(net.state_dict()), False
    for epoch in range(1, opt.epochs + 1):
        beta = opt.beta * min(1.0, epoch / opt.warmup) if opt.warmup else opt.beta
        net.train()
        order = torch.randperm(len(x_train), generator=gen, device=dev)
        sums = np.zeros(3)
        for start in range(0, len(order), opt.batch_size):
            batch = order[start : start + opt.batch_size]
            yb = None if y_train is None else y_train[batch]
            value, nll, kl = elbo(net, net.standardise(x_train[batch]), yb, beta, gen)
            loss = -value.mean()
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            sums += np.array([loss.item(), nll.mean().item(), kl.mean().item()]) * len(batch)
        net.eval()
        train_loss, train_nll, train_kl = sums / len(x_train)
        val_loss, val_nll, val_kl = _loss(net, x_val, y_val, opt.beta, opt.seed + 1)
        record = dict(epoch=epoch, beta=beta, train_loss=train_loss, train_nll=train_nll, train_kl=train_kl,
                      val_loss=val_loss, val_nll=val_nll, val_kl=val_kl)  # fmt: skip
        history.append(record)
        rep.step(epoch, losses={"train_loss": train_loss, "val_loss": val_loss})
        if epoch >= opt.warmup and val_loss < best:
            best, best_epoch, best_state = val_loss, epoch, copy.deepcopy(net.state_dict())
        elif epoch >= opt.warmup and epoch - max(best_epoch, opt.warmup) >= opt.patience:
            stopped = True
            break
    if best_epoch == 0:  # the run ended inside the warm-up: keep the last weights
        best_epoch, best_state = len(history), copy.deepcopy(net.state_dict())
    net.load_state_dict(best_state)
    net.eval().requires_grad_(False)
    result = FitResult(net, history, best_epoch, train_idx, val_idx, stopped)
    result.metrics = evaluate(net, codes, labels, train_idx, val_idx, seed=opt.seed)
    return result


def evaluate(
    net: StyleVAE,
    codes: np.ndarray,
    labels: np.ndarray | None,
    train_idx: np.ndarray,
    val_idx: np.ndarray,
    *,
    samples: int = 16,
    seed: int = 0,
) -> dict[str, float]:
    """Held-out measures of a trained VAE on codes ``P×A×D``, for the paintings' whole-image codes (row 0).

    ``*_recon_mse``: mean squared error of ``decode(mu(x))`` in standardised units (1.0 = predicting the mean);
    ``val_recon_mse_pca``: the same for a linear baseline (PCA with as many components as latent dimensions,
    fitted on the training codes); ``val_elbo``: the ELBO at beta 1 in nats per code, averaged over ``samples``
    draws; ``val_loglik_gaussian``: the log-likelihood of a diagonal Gaussian fitted on the training codes, the
    baseline the ELBO should beat.
    """
    import numpy as np
    import torch

    from brushwork.nets.vae import elbo, gaussian_nll

    with torch.no_grad():
        dev = net.code_mean.device
        lab = None if labels is None else torch.from_numpy(np.asarray(labels)).long().to(dev)

        def whole(idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
            return net.standardise(torch.from_numpy(codes[idx, 0]).float().to(dev)), None if lab is None else lab[idx]

        out: dict[str, float] = {}
        for part, idx in (("train", train_idx), ("val", val_idx)):
            x, y = whole(idx)
            mu, _ = net.encode(x, y)
            out[f"{part}_recon_mse"] = float(((net.decode(mu, y) - x) ** 2).mean())
            gen = torch.Generator(device=dev).manual_seed(seed)
            out[f"{part}_elbo"] = float(torch.stack([elbo(net, x, y, 1.0, gen)[0] for _ in range(samples)]).mean())
        x_train = net.standardise(torch.from_numpy(codes[train_idx].reshape(-1, codes.shape[-1])).float().to(dev))
        x_val, _ = whole(val_idx)
        centre = x_train.mean(0)
        _, _, v = torch.linalg.svd(x_train - centre, full_matrices=False)
        basis = v[: net.latent_dim]
        recon = (x_val - centre) @ basis.T @ basis + centre
        out["val_recon_mse_pca"] = float(((recon - x_val) ** 2).mean())
        sd = x_train.std(0)
        out["val_loglik_gaussian"] = float(-gaussian_nll(x_val, centre.expand_as(x_val), sd.log()).mean())
        out["train_paintings"], out["val_paintings"] = float(len(train_idx)), float(len(val_idx))
        return out


# -- saving ----------------------------------------------------------------------------------------------------------


def check_output(out: str | os.PathLike[str], protect: Sequence[str | os.PathLike[str]] = ()) -> Path:
    """Validate the weights path (``.safetensors``, in a writable folder) and its config's (the same stem,
    ``.json``) before any work: neither may be one of the ``protect``-ed input files (a labels table)."""
    if Path(out).suffix != ".safetensors":
        raise OutputError(f"cannot write {os.fspath(out)}: weights must be saved as a .safetensors file")
    io.check_output_path(Path(out).with_suffix(".json"), protect)
    return io.check_output_path(out, protect)


def save_model(
    net: StyleVAE,
    out: str | os.PathLike[str],
    config: dict[str, Any],
    *,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Write the weights as safetensors and ``config`` as JSON beside them (same stem, ``.json``), atomically."""

    dest = check_output(out, protect)
    arrays = {k: v.detach().cpu().numpy() for k, v in net.state_dict().items()}
    try:
        store._save_safetensors(arrays, dest, config)
    except OSError as exc:
        raise OutputError(f"cannot write {os.fspath(out)}: {exc.strerror or exc}") from None
    return dest


def plot_history(
    history: list[dict[str, float]],
    path: str | os.PathLike[str],
    best_epoch: int = 0,
    *,
    protect: Sequence[str | os.PathLike[str]] = (),
) -> Path:
    """Save the loss plot (:func:`brushwork.draw.style_vae_losses`) as an image file, atomically; OutputError if
    ``path`` is one of the ``protect``-ed input files."""
    from brushwork import draw

    io.check_writable(path, protect)
    return io.save_image(draw.style_vae_losses(history, best_epoch), path, protect=protect)


def train_style_vae(
    styles: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    labels: str | os.PathLike[str] | None = None,
    options: TrainOptions | None = None,
    plot: str | os.PathLike[str] | None = None,
    device: str = "auto",
    progress: ProgressFn | None = None,
    strict: bool = False,
) -> FitResult:
    """Train a style VAE on a folder of style images and save it: ``out`` (.safetensors), its ``.json`` config,
    and a loss plot (``plot``, default ``<out stem>_loss.png``).

    labels: None for a plain VAE; ``"folders"`` or a CSV of ``filename,label`` for a conditional VAE.
    progress: receives ``codes`` events while style codes are extracted (one per image), then ``train`` events
    (one per epoch, see :func:`fit`).
    """
    import numpy as np

    from brushwork import latent
    from brushwork.methods.latent import CODE_SIZE, CODES_VERSION

    opt = _train_options(options)
    # no output may replace an input: the labels table, nor (for the plot) a style image
    table = [labels] if labels is not None and os.fspath(labels) != "folders" else []
    dest = check_output(out, table)
    paths, names = collect_styles(styles, labels, strict=strict)
    if len(paths) < 4:
        raise InputError(f"need at least 4 style images to train, found {len(paths)} in {os.fspath(styles)}")
    protect: list[str | os.PathLike[str]] = [*paths, *table]
    plot_path = io.check_writable(plot if plot is not None else dest.with_name(dest.stem + "_loss.png"), protect)
    io.check_folder_writable(plot_path.parent, os.fspath(plot_path))
    label_names = sorted(set(names)) if names else []
    label_idx = None if names is None else np.array([label_names.index(n) for n in names])
    codes = latent.style_codes(paths, augment=opt.augment, seed=opt.seed, device=device, progress=progress)
    result = fit(codes, label_idx, len(label_names), opt, device=device, progress=progress)
    config = {
        "format": "brushwork-style-vae",
        "version": 1,
        "brushwork": __version__,
        "code_dim": result.net.code_dim,
        "latent_dim": result.net.latent_dim,
        "hidden": result.net.hidden,
        "labels": label_names,
        "label_counts": {n: int(sum(1 for x in names if x == n)) for n in label_names} if names else {},
        "codes": {
            "predictor": "ghiasi-predictor",
            "size": CODE_SIZE,
            "augment": opt.augment,
            "seed": opt.seed,
            "version": CODES_VERSION,
        },  # fmt: skip
        "options": asdict(opt),
        "paintings": len(paths),
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "metrics": result.metrics,
    }
    from brushwork import draw

    plot = draw.style_vae_losses(result.history, result.best_epoch)  # drawn first: only writing is left to fail
    save_model(result.net, dest, config, protect=protect)
    io.save_image(plot, plot_path, protect=protect)
    return result


def _train_options(options: TrainOptions | dict[str, Any] | None) -> TrainOptions:
    """Training options from a TrainOptions, a dict of its fields or None (the defaults), checked."""
    if isinstance(options, dict):  # the options as keyword values
        try:
            options = TrainOptions(**options)
        except TypeError as exc:
            raise InputError(f"training options: {exc}") from None
    if options is not None and not isinstance(options, TrainOptions):
        raise InputError(f"options must be a TrainOptions or a dict of its fields, got {type(options).__name__}")
    opt = options or TrainOptions()
    opt.check()
    return opt
