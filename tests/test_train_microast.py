"""Training MicroAST with ``train decoder --arch microast``: the loss falls on a fixed batch, a run writes its
files and resumes exactly, the file it writes stylizes through the API and the CLI, and bad input is one line and
exit code 2. Tiny images, a random loss network, the shipped MicroAST weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from brushwork.train import checkpoint
from brushwork.train.decoder import sample_batch, train_decoder

TINY = dict(
    arch="microast", encoder="mobilenet", encoder_weights="random", batch_size=2, crop=32, log_every=1, val_count=2,
    threads=1, device="cpu",
)  # fmt: skip


@pytest.fixture(scope="module")
def data(train_images: tuple[Path, Path]) -> tuple[Path, Path]:
    return train_images


@pytest.fixture(scope="module")
def trained(data: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-step run, checkpointed at every step (the resume test continues one like it)."""
    out = tmp_path_factory.mktemp("microast_run") / "full"
    return train_decoder(
        content=str(data[0]), style=str(data[1]), out=str(out), steps=3, lr=1e-3, save_every=1, val_every=3, **TINY
    )


def test_contrastive_term_pulls_own_style_and_pushes_others() -> None:
    from brushwork.train.microast import contrastive

    torch.manual_seed(0)
    styles = torch.randn(4, 512)
    assert float(contrastive(styles, styles)) == 0.0
    near = styles + 0.1 * torch.randn(4, 512)
    assert 0 < float(contrastive(near, styles)) < 0.05
    assert float(contrastive(styles.roll(1, 0), styles)) > 0.5  # each output carries another painting's signal
    assert float(contrastive(styles[:1], styles[:1] + 1)) == 0.0  # a batch of one has no negatives


def test_a_few_steps_lower_the_loss_on_a_fixed_batch(data: tuple[Path, Path]) -> None:
    from brushwork.train.decoder import DecoderTrainConfig
    from brushwork.train.microast import build_trainer

    config = DecoderTrainConfig(**{k: v for k, v in TINY.items() if k not in ("threads", "log_every", "val_count")})
    trainer, loss_net = build_trainer(config, torch.device("cpu"))
    assert loss_net == "mobilenet"
    files = [sorted(d.iterdir()) for d in data]
    c = sample_batch(files[0], 2, 32, 1.5, 7, 0, 0, 0)
    s = sample_batch(files[1], 2, 32, 1.5, 7, 0, 0, 1, distinct=True)
    assert not torch.equal(s[0], s[1])
    optimizer = torch.optim.Adam(trainer.net.parameters(), lr=1e-4)
    losses = []
    for _ in range(5):
        terms = trainer(c, s)
        assert set(terms) == {"loss", "content", "style", "contrast"}
        optimizer.zero_grad()
        terms["loss"].backward()
        optimizer.step()
        losses.append(float(terms["loss"].detach()))
    assert all(np.isfinite(losses)) and losses[-1] < 0.9 * losses[0], losses
    assert all(p.grad is None for p in trainer.lossnet.parameters())  # the loss network stays frozen


def test_vgg19_losses_and_the_auto_loss_network(tmp_path: Path) -> None:
    from brushwork.train.decoder import DecoderTrainConfig
    from brushwork.train.microast import build_trainer, choose_loss_net

    assert choose_loss_net("auto", "imagenet") == "mobilenet"  # no VGG-19 weights in the test's model store
    assert choose_loss_net("auto", str(tmp_path / "vgg19.pth")) == "vgg19"  # a weights file: VGG
    config = DecoderTrainConfig(arch="microast", encoder="vgg19", encoder_weights="random", init="random")
    trainer, loss_net = build_trainer(config, torch.device("cpu"))
    assert loss_net == "vgg19" and trainer.style_layers == ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
    torch.manual_seed(0)
    terms = trainer(torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32))
    terms["loss"].backward()
    assert all(np.isfinite(float(v.detach())) for v in terms.values())
    assert all(p.grad is not None for p in trainer.net.parameters())  # every part of MicroAST gets gradients


def test_a_run_writes_its_files_and_a_microast_model(trained: Path) -> None:
    run = trained.parent
    for name in ("loss.png", "val/step-0000003.png", "decoder.json", "log.csv"):
        assert (run / name).is_file(), name
    header, *rows = (run / "log.csv").read_text().splitlines()
    assert header == "step,time_s,lr,loss,content,style,contrast"
    assert [int(r.split(",")[0]) for r in rows] == [1, 2, 3]
    conf = json.loads((run / "decoder.json").read_text())
    assert conf["format"] == "brushwork-microast" and conf["base"] == "shipped" and conf["loss_net"] == "mobilenet"
    assert conf["trained"]["steps"] == 3 and conf["licence"] == "MIT"
    from safetensors.torch import load_file

    from brushwork import store

    tuned, shipped = load_file(str(trained)), store.load_state("microast")
    assert tuned.keys() == shipped.keys()
    changed = [k for k in shipped if not torch.allclose(tuned[k], shipped[k])]
    prefixes = {k.split(".")[0] + "." + k.split(".")[1] for k in changed}
    assert prefixes == {"style.encoder", "style.modulator", "render.encoder", "render.decoder"}  # all trained


def test_resume_continues_identically(data: tuple[Path, Path], trained: Path, tmp_path: Path) -> None:
    common = dict(content=str(data[0]), style=str(data[1]), lr=1e-3, save_every=1, val_every=0, **TINY)
    train_decoder(out=str(tmp_path / "part"), steps=2, **common)
    assert checkpoint.load(tmp_path / "part").step == 2
    with pytest.raises(Exception, match="--resume"):
        train_decoder(out=str(tmp_path / "part"), steps=3, **common)
    with pytest.raises(Exception, match="cannot resume: the checkpoint's arch"):
        train_decoder(out=str(tmp_path / "part"), steps=3, resume=True, **{**common, "arch": "autoencoder"})
    resumed = train_decoder(out=str(tmp_path / "part"), steps=3, resume=True, **{**common, "init": "random"})
    import json

    from safetensors.torch import load_file

    saved = json.loads((tmp_path / "part" / "decoder.json").read_text())
    assert saved["train"]["init"] == "shipped"  # where the run started, not the resumed call's unused --init

    a, b = load_file(str(trained)), load_file(str(resumed))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-5)
    assert checkpoint.load(tmp_path / "part").step == 3
    steps = [int(r.split(",")[0]) for r in (tmp_path / "part" / "log.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3]


def test_the_trained_file_stylizes_through_the_api_and_the_cli(
    data: tuple[Path, Path], trained: Path, tmp_path: Path
) -> None:
    from brushwork import api
    from brushwork.cli import main

    photo, style = str(data[0] / "0.png"), str(data[1] / "1.png")
    shipped = np.asarray(api.stylize(photo, style, method="microast", runtime="torch"), dtype=np.float32)
    tuned = np.asarray(api.stylize(photo, style, method="microast", decoder=str(trained), runtime="torch"))
    assert tuned.shape == shipped.shape == (40, 48, 3)
    assert np.abs(tuned - shipped).mean() > 0.5  # other weights, another picture (0..255)
    run_folder = np.asarray(api.stylize(photo, style, method="microast", decoder=str(trained.parent), runtime="torch"))
    assert np.array_equal(run_folder, tuned)  # the run's folder names its model too
    out = tmp_path / "out.png"
    assert main(["stylize", photo, style, "--method", "microast", "--decoder", str(trained), "-o", str(out)]) == 0
    onnx = np.asarray(Image.open(out), dtype=np.float32)  # the CPU default: onnxruntime from an ONNX export
    assert onnx.shape == tuned.shape and np.abs(onnx - tuned).mean() < 1.0


def _one_line_error(capsys: pytest.CaptureFixture[str], *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    assert err.startswith("brushwork: error:") and len(err.splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)


def test_bad_input_is_one_line_and_exit_code_2(
    data: tuple[Path, Path], trained: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from brushwork.cli import main
    from brushwork.cli import train_decoder as cli

    adain = Path(__file__).resolve().parents[1] / "brushwork" / "assets" / "models" / "decoder-mobilenet.safetensors"
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model")
    out = tmp_path / "run"
    base = ["--content", str(data[0]), "--style", str(data[1]), "--arch", "microast", "--encoder-weights", "random"]
    base += ["--steps", "1", "--batch-size", "1", "--crop", "16", "--val-every", "0", "--quiet", "--out", str(out)]
    for extra, needle in (
        (["--arch", "nope"], "--arch"),
        (["--layer", "block5"], "--layer"),
        (["--encoder", "vgg16"], "vgg16"),
        (["--init", str(tmp_path / "missing.safetensors")], "missing.safetensors"),
        (["--init", str(adain)], "adain/wct decoder"),
        (["--init", str(junk)], "junk.safetensors"),
        (["--contrast-weight", "-1"], "--contrast-weight"),
    ):
        assert cli.main([*base, *extra]) == 2, extra
        _one_line_error(capsys, needle)
        assert not out.exists(), extra  # nothing written
    photo, style = str(data[0] / "0.png"), str(data[1] / "1.png")
    result = tmp_path / "out.png"
    stylize = ["stylize", photo, style, "--method", "microast", "-o", str(result), "--decoder"]
    for decoder, needle in ((adain, "adain/wct decoder"), (junk, "not a safetensors file"), (photo, "0.png")):
        assert main([*stylize, str(decoder)]) == 2
        _one_line_error(capsys, needle)
    assert main([*stylize, str(trained), str(trained)]) == 2
    _one_line_error(capsys, "give one decoder, got 2")
    assert main(["stylize", photo, style, "--method", "adain", "--decoder", str(trained), "-o", str(result)]) == 2
    _one_line_error(capsys, "--method microast")
    assert not result.exists()


@pytest.mark.slow
def test_torchrun_two_gloo_processes(data: tuple[Path, Path], tmp_path: Path) -> None:
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(port),
        "-m", "brushwork.cli.train_decoder", "--arch", "microast", "--content", str(data[0]), "--style", str(data[1]),
        "--out", str(out), "--encoder", "mobilenet", "--encoder-weights", "random", "--steps", "2",
        "--batch-size", "2", "--crop", "32", "--save-every", "1", "--val-every", "2", "--val-count", "1",
        "--device", "cpu", "--threads", "1", "--quiet",
    ]  # fmt: skip
    root = str(Path(__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=root)
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("decoder written to") == 1  # only rank 0 reports
    conf = json.loads((out / "decoder.json").read_text())
    assert conf["format"] == "brushwork-microast"
    assert conf["trained"]["world_size"] == 2 and conf["trained"]["steps"] == 2
    assert checkpoint.load(out).step == 2 and (out / "val" / "step-0000002.png").is_file()
