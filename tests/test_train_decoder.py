"""Decoder training: the loss falls, resume equals an uninterrupted run, a killed run leaves a loadable
checkpoint, torchrun with two gloo processes works, and the CLI drives it. Tiny images, random encoders."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from brushwork.train import checkpoint
from brushwork.train.decoder import DecoderTrainConfig, decoder_losses, sample_batch, train_decoder

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(
    encoder="mobilenet", encoder_weights="random", width=0.5, batch_size=2, crop=32, log_every=1, val_count=2, threads=1
)


@pytest.fixture(scope="module")
def data(train_images: tuple[Path, Path]) -> tuple[Path, Path]:
    return train_images


def _env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    return env


def test_batches_are_a_function_of_seed_step_and_rank(data: tuple[Path, Path]) -> None:
    files = sorted(data[0].iterdir())
    a = sample_batch(files, 2, 32, 1.5, 0, 5, 0, 0)
    assert a.shape == (2, 3, 32, 32) and 0 <= a.min() and a.max() <= 1
    assert torch.equal(a, sample_batch(files, 2, 32, 1.5, 0, 5, 0, 0))
    assert not torch.equal(a, sample_batch(files, 2, 32, 1.5, 0, 6, 0, 0))
    assert not torch.equal(a, sample_batch(files, 2, 32, 1.5, 0, 5, 1, 0))


def test_a_few_steps_lower_the_loss(data: tuple[Path, Path], tmp_path: Path) -> None:
    from brushwork.methods.autoencoder import build_encoder, load_decoder
    from brushwork.nets.decoder import Decoder

    out = train_decoder(
        content=str(data[0]), style=str(data[1]), out=str(tmp_path / "run"), steps=8, lr=2e-3,
        save_every=4, val_every=4, device="cpu", **TINY,
    )  # fmt: skip
    rows = (tmp_path / "run" / "log.csv").read_text().splitlines()[1:]
    assert [int(r.split(",")[0]) for r in rows] == list(range(1, 9))
    for name in ("loss.png", "val/step-0000004.png", "val/step-0000008.png", "decoder.json"):
        assert (tmp_path / "run" / name).is_file(), name
    trained, conf = load_decoder(out)
    assert conf["trained"]["steps"] == 8
    torch.manual_seed(0)  # the run's seed: the decoder it started from
    initial = Decoder(conf["spec"])
    enc = build_encoder("mobilenet", weights="random")
    files = [sorted(d.iterdir()) for d in data]
    c, s = (sample_batch(f, 4, 32, 1.5, 123, 0, 0, k) for k, f in enumerate(files))  # a batch not trained on
    config = DecoderTrainConfig()
    with torch.no_grad():
        before, after = decoder_losses(enc, initial, c, s, config), decoder_losses(enc, trained, c, s, config)
    assert set(after) == {"loss", "rec_pix", "rec_feat", "content", "style"}
    assert after["loss"] < 0.8 * before["loss"]


def test_resume_equals_an_uninterrupted_run(data: tuple[Path, Path], tmp_path: Path) -> None:
    common = dict(content=str(data[0]), style=str(data[1]), save_every=2, val_every=0, lr=1e-3, **TINY)
    full = train_decoder(out=str(tmp_path / "full"), steps=4, **common)
    train_decoder(out=str(tmp_path / "part"), steps=2, **common)
    assert checkpoint.load(tmp_path / "part").step == 2
    with pytest.raises(Exception, match="--resume"):
        train_decoder(out=str(tmp_path / "part"), steps=4, **common)
    (tmp_path / "part" / "val").mkdir(exist_ok=True)  # what a run killed while writing leaves, and a damaged log row
    stale = tmp_path / "part" / "val" / ".step-2.png.4242.0badc0de.tmp.png"
    stale.write_bytes(b"half")
    with open(tmp_path / "part" / "log.csv", "a") as log:
        log.write("garbage,row\n")
    resumed = train_decoder(out=str(tmp_path / "part"), steps=4, resume=True, **common)
    assert not stale.exists()
    from safetensors.torch import load_file

    a, b = load_file(str(full)), load_file(str(resumed))
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)
    assert checkpoint.load(tmp_path / "part").step == 4
    steps = [int(r.split(",")[0]) for r in (tmp_path / "part" / "log.csv").read_text().splitlines()[1:]]
    assert steps == [1, 2, 3, 4]


def test_resume_refuses_a_different_architecture(data: tuple[Path, Path], tmp_path: Path) -> None:
    common = dict(content=str(data[0]), style=str(data[1]), save_every=1, val_every=0, **TINY)
    train_decoder(out=str(tmp_path / "r"), steps=1, **common)
    with pytest.raises(Exception, match="cannot resume"):
        train_decoder(out=str(tmp_path / "r"), steps=2, resume=True, **{**common, "width": 1.0})


def test_checkpoints_are_atomic_and_pruned(tmp_path: Path) -> None:
    w = {"a": torch.arange(3.0)}
    for step in (1, 2, 3):
        checkpoint.save(tmp_path, step, w, {"optimizer": {}}, {"k": step}, keep=2)
    assert sorted(p.name for p in tmp_path.glob("step-*")) == ["step-0000002", "step-0000003"]
    (tmp_path / ".step-0000004.123.tmp").mkdir()  # what a kill during a write leaves: ignored
    assert checkpoint.latest(tmp_path).name == "step-0000003"
    (tmp_path / "last.json").write_text("{broken")
    ck = checkpoint.load(tmp_path)
    assert ck.step == 3 and ck.config == {"k": 3} and torch.equal(ck.weights["a"], w["a"])
    with pytest.raises(Exception, match="no checkpoint"):
        checkpoint.load(tmp_path / "empty")


def test_a_killed_run_leaves_a_loadable_last_checkpoint(data: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "killed"
    code = (
        "from brushwork.train.decoder import train_decoder\n"
        f"train_decoder(content={str(data[0])!r}, style={str(data[1])!r}, out={str(out)!r}, steps=100000, "
        f"save_every=1, val_every=0, keep=2, **{TINY!r})\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], env=_env(), stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            last = out / "checkpoints" / "last.json"
            if last.is_file() and json.loads(last.read_text())["step"] >= 3:
                break
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        else:
            pytest.fail("no checkpoint within 60 s")
        proc.send_signal(signal.SIGKILL)  # mid-run, possibly mid-write
    finally:
        proc.kill()
        proc.wait()
    ck = checkpoint.load(out / "checkpoints")
    assert ck.step >= 3
    from brushwork.methods.autoencoder import load_decoder

    dec, conf = load_decoder(ck.path)  # a checkpoint folder works as --decoder too
    assert conf["encoder"] == "mobilenet"
    resumed = train_decoder(
        content=str(data[0]), style=str(data[1]), out=str(out), steps=ck.step + 1, save_every=1, val_every=0,
        resume=True, **TINY,
    )  # fmt: skip
    assert resumed.is_file() and checkpoint.load(out).step == ck.step + 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_gloo_processes(data: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes", "1", "--nproc_per_node", "2",
        "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
        "-m", "brushwork.cli.train_decoder", "--content", str(data[0]), "--style", str(data[1]), "--out", str(out),
        "--encoder", "mobilenet", "--encoder-weights", "random", "--width", "0.5", "--steps", "2",
        "--batch-size", "1", "--crop", "32", "--save-every", "1", "--val-every", "2", "--val-count", "1",
        "--device", "cpu", "--threads", "1", "--quiet",
    ]  # fmt: skip
    result = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("decoder written to") == 1  # only rank 0 reports
    conf = json.loads((out / "decoder.json").read_text())
    assert conf["trained"]["world_size"] == 2 and conf["trained"]["steps"] == 2
    assert checkpoint.load(out).step == 2
    assert (out / "val" / "step-0000002.png").is_file()


def test_cli_trains_and_refuses_to_overwrite(data: tuple[Path, Path], tmp_path: Path) -> None:
    import argparse

    from brushwork.cli import _Parser
    from brushwork.cli import train_decoder as cli

    parser = _Parser(prog="brushwork")
    train = parser.add_subparsers(dest="command").add_parser("train")
    cli.register(train.add_subparsers(dest="what"))
    argv = ["train", "decoder", "--content", str(data[0]), "--style", str(data[1]), "--out", str(tmp_path / "c")]
    argv += ["--encoder", "mobilenet", "--encoder-weights", "random", "--width", "0.5", "--steps", "1"]
    argv += ["--batch-size", "1", "--crop", "32", "--val-every", "0", "--quiet"]
    args = parser.parse_args(argv)
    assert isinstance(args, argparse.Namespace) and args.lr == DecoderTrainConfig.lr
    assert args.run(args) == 0
    assert (tmp_path / "c" / "decoder.safetensors").is_file()
    assert cli.main(argv[2:]) == 2  # checkpoints exist and no --resume: a one-line error, exit 2
    assert cli.main([*argv[2:], "--resume", "--steps", "2"]) == 0
    assert cli.main(["--content", str(tmp_path / "nope"), "--style", str(data[1])]) == 2


# -- regressions: every bad value is one line and exit code 2, before any work ------------------------------------


def _bad_value_cases(tmp_path: Path) -> list[tuple[list[str], str]]:
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    photo = tmp_path / "photo.jpg"
    photo.write_bytes(b"not really a photo")
    cases = [
        (["--save-every", "0"], "--save-every"),
        (["--log-every", "0"], "--log-every"),
        (["--lr", "nan"], "--lr"),
        (["--lr", "-1"], "--lr"),
        (["--device", "tpu"], "tpu"),
        (["--out", str(photo)], "photo.jpg"),
        (["--encoder-weights", str(empty)], "empty.jpg"),
        (["--encoder-weights", str(tmp_path / "missing.pth")], "missing.pth"),
        (["--val-every", "1", "--val-count", "0"], "--val-count"),
        (["--keep", "0"], "--keep"),
        (["--width", "0"], "--width"),
        (["--width", "-1"], "--width"),
        (["--layer", "nope"], "nope"),
    ]
    if torch.cuda.device_count() <= 3:
        cases.append((["--device", "cuda:3"], "cuda"))
    return cases


def test_cli_bad_values_are_one_line_errors(
    data: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from brushwork.cli import train_decoder as cli

    out = tmp_path / "run"
    base = ["--content", str(data[0]), "--style", str(data[1]), "--encoder", "mobilenet", "--steps", "1"]
    base += ["--batch-size", "1", "--crop", "16", "--val-every", "0", "--threads", "1", "--quiet", "--out", str(out)]
    for extra, message in _bad_value_cases(tmp_path):
        assert cli.main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err.strip()
        assert err.startswith("brushwork: error:") and message in err and len(err.splitlines()) == 1, (extra, err)
        if extra[0] == "--layer":
            assert err.count("nope") == 1, err
        assert not out.exists(), extra  # nothing written
    assert (tmp_path / "photo.jpg").read_bytes() == b"not really a photo"


def test_layer_help_has_no_empty_default() -> None:
    import argparse

    from brushwork.cli import train_decoder as cli

    parser = argparse.ArgumentParser(prog="x")
    cli._add_arguments(parser)
    text = " ".join(parser.format_help().split())
    assert "(default: )" not in text and "block5 for mobilenet)" in text


def test_checkpoints_refuse_keep_zero_and_name_damaged_files(tmp_path: Path) -> None:
    from brushwork.errors import InputError

    w = {"a": torch.arange(3.0)}
    with pytest.raises(InputError, match="keep"):
        checkpoint.save(tmp_path, 1, w, {"optimizer": {}}, {}, keep=0)
    assert not list(tmp_path.glob("step-*"))
    folder = checkpoint.save(tmp_path, 1, w, {"optimizer": {}}, {}, keep=1)
    (folder / "state.json").write_text("{broken")
    with pytest.raises(InputError, match="state.json"):
        checkpoint.load(folder)


def test_api_checks_the_config(data: tuple[Path, Path], tmp_path: Path) -> None:
    from brushwork.errors import DeviceError, InputError

    common = dict(content=str(data[0]), style=str(data[1]), out=str(tmp_path / "r"), steps=1, **TINY)
    for bad in (dict(save_every=0), dict(lr=float("inf")), dict(seed=2**63), dict(max_scale=0.5), dict(val_count=0)):
        with pytest.raises(InputError):
            train_decoder(**{**common, **bad})
    with pytest.raises(DeviceError):
        train_decoder(**{**common, "device": "xla"})
    assert not (tmp_path / "r").exists()


def test_run_files_of_the_wrong_kind_are_found_before_training(data: tuple[Path, Path], tmp_path: Path) -> None:
    from brushwork.errors import OutputError

    common = dict(content=str(data[0]), style=str(data[1]), steps=1, val_every=0, **TINY)
    for name, make in (("decoder.safetensors", Path.mkdir), ("checkpoints", Path.touch), ("loss.png", Path.mkdir)):
        out = tmp_path / name.replace(".", "_")
        out.mkdir()
        make(out / name)
        with pytest.raises(OutputError, match=f"cannot write .*{name}: it is a"):
            train_decoder(out=str(out), **common)
        assert sorted(p.name for p in out.iterdir()) == [name]  # nothing trained, nothing written


def test_decoder_and_checkpoint_files_follow_the_umask(data: tuple[Path, Path], tmp_path: Path) -> None:
    import os

    out = train_decoder(out=str(tmp_path / "r"), content=str(data[0]), style=str(data[1]), steps=1, val_every=0, **TINY)
    mask = os.umask(0)
    os.umask(mask)
    weights = next((tmp_path / "r" / "checkpoints").glob("step-*/model.safetensors"))
    for path in (Path(out), weights):
        assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask, path


def test_resume_falls_back_past_a_damaged_checkpoint(data: tuple[Path, Path], tmp_path: Path) -> None:
    from brushwork.errors import BrushworkWarning

    common = dict(content=str(data[0]), style=str(data[1]), save_every=1, keep=3, val_every=0, **TINY)
    train_decoder(out=str(tmp_path / "r"), steps=2, **common)
    newest = tmp_path / "r" / "checkpoints" / "step-0000002" / "model.safetensors"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated, as a full disk or a killed copy leaves it
    with pytest.warns(BrushworkWarning, match="cannot read checkpoint .*step-0000002.*resuming from step-0000001"):
        train_decoder(out=str(tmp_path / "r"), steps=3, resume=True, **common)
    assert checkpoint.load(tmp_path / "r").step == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"content": 5}, "content must be a folder's path"),
        ({"out": None}, "out must be a folder's path"),
        ({"bogus": 1}, "unexpected keyword argument 'bogus'"),
        ({"arch": "microast", "init": None}, "init must be shipped, random"),
    ],
)
def test_train_decoder_arguments_of_the_wrong_kind(kwargs: dict, message: str, tmp_path: Path) -> None:
    from brushwork.errors import InputError

    with pytest.raises(InputError, match=message):
        train_decoder(**{"content": "c", "style": "s", "out": str(tmp_path / "o"), **kwargs})
