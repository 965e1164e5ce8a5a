"""The style VAE (brushwork.nets.vae) and its training (brushwork.train.style_vae): synthetic codes, tiny images."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from brushwork.errors import InputError, OutputError
from brushwork.nets.vae import StyleVAE, elbo, gaussian_nll, kl_normal, kl_standard_normal
from brushwork.train import style_vae as tsv

D = 100


def synthetic_codes(paintings: int = 48, crops: int = 4, labels: int = 0, seed: int = 0) -> np.ndarray:
    """``P×A×D`` codes on a curved 3-d manifold (plus noise), crops scattered around each painting's code."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(paintings, 3))
    if labels:
        z[:, 0] += 3.0 * (np.arange(paintings) % labels)
    w1, w2 = rng.normal(size=(3, D)), rng.normal(size=(3, D)) * 0.5
    base = z @ w1 + np.tanh(z) @ w2 + 0.5
    jitter = 0.15 * rng.normal(size=(paintings, crops, D))
    jitter[:, 0] = 0
    return (base[:, None, :] + jitter).astype(np.float32)


@pytest.fixture(scope="module")
def fitted() -> tsv.FitResult:
    options = tsv.TrainOptions(latent_dim=4, hidden=32, epochs=80, warmup=10, patience=80, batch_size=64, seed=1)
    return tsv.fit(synthetic_codes(), options=options, device="cpu")


def test_shapes_and_from_state() -> None:
    net = StyleVAE(D, latent_dim=5, hidden=16, num_labels=3)
    x = torch.randn(7, D)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    mu, logvar = net.encode(x, y)
    assert mu.shape == logvar.shape == (7, 5)
    assert net.decode(mu, y).shape == (7, D)
    one_hot = torch.nn.functional.one_hot(y, 3).float()
    assert torch.allclose(net.encode(x, one_hot)[0], mu)
    copy = StyleVAE.from_state(net.state_dict())
    assert (copy.latent_dim, copy.hidden, copy.num_labels) == (5, 16, 3)
    assert torch.equal(copy.decode(mu, y), net.decode(mu, y))
    with pytest.raises(ValueError):
        net.encode(x)  # conditional without labels


def test_standardisation_round_trip() -> None:
    net = StyleVAE(D)
    net.code_mean.uniform_(-1, 1)
    net.code_std.uniform_(0.5, 2)
    codes = torch.randn(4, D)
    assert torch.allclose(net.unstandardise(net.standardise(codes)), codes, atol=1e-5)


def test_elbo_terms() -> None:
    zeros = torch.zeros(2, 3)
    assert torch.allclose(kl_standard_normal(zeros, zeros), torch.zeros(2))
    assert torch.allclose(kl_standard_normal(torch.ones(1, 2), torch.zeros(1, 2)), torch.tensor([1.0]))
    mu, logvar = torch.randn(3, 4), torch.randn(3, 4)
    assert torch.allclose(kl_normal(mu, logvar, torch.zeros(4), torch.zeros(4)), kl_standard_normal(mu, logvar))
    assert torch.allclose(kl_normal(mu, logvar, mu, logvar), torch.zeros(3), atol=1e-6)
    nll = gaussian_nll(torch.zeros(1, 4), torch.zeros(1, 4), torch.zeros(4))
    assert math.isclose(float(nll), 4 * 0.5 * math.log(2 * math.pi), rel_tol=1e-6)
    net = StyleVAE(D, 4, 16)
    value, nll, kl = elbo(net, torch.randn(3, D), beta=0.5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(value, -(nll + 0.5 * kl))


def test_elbo_falls_during_training(fitted: tsv.FitResult) -> None:
    h = fitted.history
    assert h[-1]["train_loss"] < 0.6 * h[0]["train_loss"]
    assert min(r["val_loss"] for r in h) < h[0]["val_loss"]
    best = h[fitted.best_epoch - 1]["val_loss"]
    assert best == min(r["val_loss"] for r in h[9:])  # the kept weights are the best after the warm-up


def test_encode_decode_of_training_codes_is_close(fitted: tsv.FitResult) -> None:
    m = fitted.metrics
    assert m["train_recon_mse"] < 0.15  # standardised units: 1.0 would be predicting the mean
    assert m["val_elbo"] > m["val_loglik_gaussian"]  # beats a diagonal Gaussian on held-out paintings
    net = fitted.net
    codes = torch.from_numpy(synthetic_codes()[fitted.train_idx, 0])
    x = net.standardise(codes)
    recon = net.unstandardise(net.decode(net.encode(x)[0]))
    assert float(((recon - codes) ** 2).mean() / codes.var(0).mean()) < 0.15


def test_conditional_fit_uses_labels() -> None:
    codes = synthetic_codes(paintings=36, labels=3)
    labels = np.arange(36) % 3
    options = tsv.TrainOptions(latent_dim=3, hidden=32, epochs=60, warmup=5, batch_size=32, lr=5e-3)
    result = tsv.fit(codes, labels, 3, options, device="cpu")
    assert result.net.num_labels == 3
    assert set(labels[result.val_idx]) == {0, 1, 2}  # stratified split
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    prior = result.net.prior_mu
    assert float(torch.cdist(prior, prior).max()) > 0.5  # each label's prior moved to its own region


def test_split_by_painting() -> None:
    train, val = tsv.split_indices(40, 0.2, seed=3)
    assert len(val) == 8 and len(set(train) | set(val)) == 40 and not set(train) & set(val)
    assert np.array_equal(tsv.split_indices(40, 0.2, seed=3)[1], val)
    train, val = tsv.split_indices(5, 0.1, seed=0, labels=[0, 0, 0, 1, 2])
    assert len(val) >= 1 and {3, 4} <= set(train)  # a label with one painting stays in training


def test_options_are_checked() -> None:
    with pytest.raises(InputError, match="val-fraction"):
        tsv.TrainOptions(val_fraction=0.7).check()
    with pytest.raises(InputError, match="at least 4"):
        tsv.fit(synthetic_codes(paintings=3))


def _style_folder(root: Path, sub: dict[str, int]) -> Path:
    """Tiny style images in sub-folders (or directly in ``root`` for the key '')."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for name, count in sub.items():
        folder = root / name if name else root
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            a = (rng.random((48, 64, 3)) * 255 * rng.random(3)).astype(np.uint8)
            Image.fromarray(a).save(folder / f"{name or 'style'}{i}.png")
    return root


def test_collect_styles_from_folders_and_csv(tmp_path: Path) -> None:
    root = _style_folder(tmp_path / "styles", {"ink": 2, "oil": 3})
    paths, labels = tsv.collect_styles(root, "folders")
    assert len(paths) == 5 and labels == ["ink", "ink", "oil", "oil", "oil"]
    paths, labels = tsv.collect_styles(root)
    assert len(paths) == 5 and labels is None
    table = tmp_path / "labels.csv"
    table.write_text("filename,label\nink0.png,a\noil/oil1.png,b\n")
    paths, labels = tsv.collect_styles(root, table)
    assert [p.name for p in paths] == ["ink0.png", "oil1.png"] and labels == ["a", "b"]
    table.write_text("filename,label\nnope.png,a\nink0.png,b\n")
    with pytest.raises(InputError, match="not in"):
        tsv.collect_styles(root, table)
    with pytest.raises(InputError, match="no such file"):
        tsv.collect_styles(root, tmp_path / "missing.csv")
    table.write_text("filename,label\nink0.png,a\noil/oil1.png,b\nink0.png,b\n")
    with pytest.raises(InputError, match=r"ink0.png is listed twice \(labels 'a' and 'b'\)"):
        tsv.collect_styles(root, table)
    table.write_text("filename,label\nink0.png,a\noil/oil1.png,b\nink1.png, \n")
    with pytest.raises(InputError, match="the label of ink1.png is empty"):
        tsv.collect_styles(root, table)
    flat = _style_folder(tmp_path / "flat", {"": 3})
    with pytest.raises(InputError, match="sub-folders"):
        tsv.collect_styles(flat, "folders")


def test_train_style_vae_writes_weights_config_and_plot(tmp_path: Path) -> None:
    from brushwork.latent import load_style_space

    root = _style_folder(tmp_path / "styles", {"ink": 3, "oil": 3})
    out = tmp_path / "my.safetensors"
    options = tsv.TrainOptions(latent_dim=2, hidden=8, epochs=6, warmup=2, augment=1, val_fraction=0.3)
    result = tsv.train_style_vae(root, out, labels="folders", options=options, device="cpu")
    config = json.loads(out.with_suffix(".json").read_text())
    assert config["labels"] == ["ink", "oil"] and config["latent_dim"] == 2
    assert config["metrics"]["val_paintings"] == len(result.val_idx)
    assert (tmp_path / "my_loss.png").stat().st_size > 1000
    space = load_style_space(out, conditional=True, device="cpu")
    assert space.labels == ["ink", "oil"] and space.conditional
    with pytest.raises(OutputError, match="safetensors"):
        tsv.train_style_vae(root, tmp_path / "my.pt", options=options)


def test_cli_train_style_vae(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from brushwork.cli import main

    root = _style_folder(tmp_path / "styles", {"": 5})
    out = tmp_path / "cli.safetensors"
    argv = ["train", "style-vae", "--styles", str(root), "-o", str(out), "--epochs", "4", "--warmup", "1"]
    assert main([*argv, "--augment", "1", "--latent-dim", "2", "--device", "cpu", "--quiet"]) == 0
    assert out.is_file() and out.with_suffix(".json").is_file() and "best epoch" in capsys.readouterr().out
    assert main(["train", "style-vae", "--styles", str(tmp_path / "none"), "-o", str(out)]) == 2
    assert main(["train", "style-vae", "--styles", str(root), "-o", str(tmp_path / "no" / "x.safetensors")]) == 2
    assert main([*argv, "--labels", "folders"]) == 2  # no sub-folders
    assert "error" in capsys.readouterr().err


@pytest.mark.corpus
@pytest.mark.slow
def test_training_on_corpus_codes(corpus: Path) -> None:
    """On real paintings (30 of them, 3 crops each): the loss falls, training codes come back close, and
    held-out paintings beat a Gaussian."""
    from brushwork import io
    from brushwork.latent import style_codes

    paths = io.list_images(corpus / "styles")[::6][:30]
    codes = style_codes(paths, augment=3, device="cpu")
    assert codes.shape == (len(paths), 4, D)
    options = tsv.TrainOptions(latent_dim=6, hidden=32, epochs=250, warmup=20, patience=250, lr=3e-3, batch_size=32)
    result = tsv.fit(codes, options=options, device="cpu")
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.metrics["train_recon_mse"] < 0.5
    assert result.metrics["val_elbo"] > result.metrics["val_loglik_gaussian"]


# -- regressions ---------------------------------------------------------------------------------------------------


def test_plot_never_overwrites_a_style_image(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from brushwork.cli import main

    root = _style_folder(tmp_path / "styles", {"": 4})
    victim = root / "style0.png"
    before = victim.read_bytes()
    out = tmp_path / "v.safetensors"
    options = tsv.TrainOptions(latent_dim=2, hidden=8, epochs=2, warmup=1, augment=0)
    with pytest.raises(OutputError, match="input file"):
        tsv.train_style_vae(root, out, options=options, plot=victim, device="cpu")
    argv = ["train", "style-vae", "--styles", str(root), "-o", str(out), "--plot", str(victim), "--epochs", "2"]
    assert main([*argv, "--augment", "0", "--device", "cpu", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "input file" in err
    assert victim.read_bytes() == before and not out.exists()
    history = [dict(epoch=1, train_loss=1.0, val_loss=1.0, val_nll=1.0, val_kl=0.0)]
    with pytest.raises(OutputError, match="input file"):
        tsv.plot_history(history, victim, protect=[victim])
    assert victim.read_bytes() == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("lr", 1e300, "lr"),
        ("lr", 0.0, "lr"),
        ("lr", float("nan"), "lr"),
        ("weight_decay", -1.0, "weight-decay"),
        ("weight_decay", float("inf"), "weight-decay"),
        ("seed", -1, "seed"),
        ("seed", 2**63, "seed"),
    ],
)
def test_options_out_of_range(field: str, value: float, message: str) -> None:
    with pytest.raises(InputError, match=message):
        tsv.TrainOptions(**{field: value}).check()


def test_cli_train_bad_options_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from brushwork.cli import main

    root = _style_folder(tmp_path / "styles", {"": 4})
    out = tmp_path / "v.safetensors"
    argv = ["train", "style-vae", "--styles", str(root), "-o", str(out)]
    for flags in (["--lr", "1e300"], ["--weight-decay", "-1"]):
        with pytest.raises(SystemExit) as exit_:  # refused by the flag's type
            main([*argv, *flags])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "error:" in err and flags[0] in err, err
    for seed in ("-1", "99999999999999999999999"):
        with pytest.raises(SystemExit) as exit_:
            main([*argv, "--seed", seed])
        assert exit_.value.code == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "--seed" in err, err
    assert not out.exists() and not (tmp_path / "v_loss.png").exists()
    if Path("/proc/self").is_dir():  # even root cannot create files in /proc
        for flags in (["-o", "/proc/v.safetensors"], ["-o", str(out), "--plot", "/proc/v.png"]):
            assert main(["train", "style-vae", "--styles", str(root), *flags]) == 2
            assert "not writable" in capsys.readouterr().err
        assert not out.exists()


def test_bare_train_prints_help_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from brushwork.cli import main

    assert main(["train"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "style-vae" in captured.err
