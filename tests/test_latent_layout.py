"""The latent space's layout and its bad-input fixes: the registry as data, io's animations and arrays, the one
set of validators, progress events, and faults (a full disk, a labels file as an output, tiny images, huge
options)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork import io, store
from brushwork import latent as api
from brushwork.cli import main
from brushwork.errors import InputError, OutputError
from brushwork.samples import SAMPLE_PHOTO, STYLES
from brushwork.validate import check_count, check_number, check_seed, normalise_weights

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("decoder-mobilenet", "style-vae", "style-cvae")


def _python(code: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    home = os.environ.get("BRUSHWORK_HOME", str(tmp_path / "home"))  # the session's cache (conftest)
    env = {"PYTHONPATH": str(ROOT), "BRUSHWORK_HOME": home, "PATH": "/usr/bin:/bin"}
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # a subprocess under a file-size limit must not write .pyc files
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, env=env)


def _one_line_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err and "Traceback" not in err, err
    return err


# -- the registry is data ------------------------------------------------------------------------------------------


def test_models_command_imports_no_torch(tmp_path: Path) -> None:
    done = _python(
        """
        import sys
        from brushwork.cli import main
        assert main(["models", "--json"]) == 0
        print("torch" in sys.modules, "brushwork.methods.latent" in sys.modules)
        """,
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False False"
    names = {row["name"] for row in json.loads(done.stdout[: done.stdout.rindex("]") + 1])}
    assert set(SHIPPED) <= names


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_rows_match_their_files(name: str) -> None:
    e = store.REGISTRY[name]
    path = store.source_path(e)
    data = path.read_bytes()
    assert (hashlib.sha256(data).hexdigest(), len(data)) == (e.sha256, e.size)
    config = store.shipped_config(name)
    if "file_sha256" in config:  # the decoder's config records its checksum too (autoencoder.write_shipped)
        assert config["file_sha256"] == e.sha256
    if store.REGISTRY[name].with_config:  # the architecture is built from the row and its config alone
        assert sum(p.numel() for p in store.load_net(name).parameters()) > 1000


# -- validators ----------------------------------------------------------------------------------------------------


def test_validators() -> None:
    assert check_seed(2**63 - 1) == 2**63 - 1 and check_seed(np.int64(3)) == 3
    for bad in (-1, 2**63, 1.0, True, "1"):
        with pytest.raises(InputError, match="seed"):
            check_seed(bad)
    assert check_number(0.5, "x", low=0, high=1) == 0.5
    for bad in (float("nan"), float("inf"), 10**400, "1", None, 0.0, 1.5):
        with pytest.raises(InputError, match="^x must"):
            check_number(bad, "x", low=0, high=1, low_open=True)
    with pytest.raises(InputError, match="from 1 to 3"):
        check_count(4, "n", high=3)
    with pytest.raises(InputError, match="whole number"):
        check_count(2.0, "n")
    assert np.allclose(normalise_weights([3, 1], 2), [0.75, 0.25])


# -- io: animations, arrays, tables ----------------------------------------------------------------------------------


def test_mp4_is_h264_and_browser_playable(tmp_path: Path) -> None:
    import av

    frames = [Image.new("RGB", (33, 21), (i * 60, 20, 200 - i * 40)) for i in range(4)]
    path = io.save_animation(frames, tmp_path / "a.mp4", fps=12)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert (stream.width, stream.height) == (32, 20)  # yuv420p wants even sizes
        decoded = list(container.decode(stream))
    assert len(decoded) == 4
    assert float(decoded[-1].to_ndarray(format="rgb24")[..., 0].mean()) > 150  # the last frame is the reddest
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]


_FULL_DISK = """
    import resource, signal, sys
    from brushwork import latent
    latent.render_codes({photo!r}, latent.style_code({photo!r})[None], max_size=32, device="cpu")  # fill the caches
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, like a full disk
    resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, resource.RLIM_INFINITY))
    from brushwork.cli import main
    print([main(argv) for argv in {argvs!r}])
"""


@pytest.mark.slow
def test_interpolate_on_a_full_disk_exits_2_and_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    photo = io.save_image(io.resize_to_max(io.load_image(SAMPLE_PHOTO).rgb, 96), tmp_path / "photo.png")
    argv = ["interpolate", str(photo), str(STYLES["swirls"]), str(STYLES["ink"]), "--frames", "3", "--device", "cpu"]
    argvs = [[*argv, "-o", str(out / f"walk.{ext}")] for ext in ("mp4", "gif")]
    styles = _styles(tmp_path / "styles", 4)  # and a style VAE's weights (about 6 KB) on the same full disk
    argvs.append(["train", "style-vae", "--styles", str(styles), "-o", str(out / "vae.safetensors"), "--epochs", "2"])
    argvs[-1] += ["--augment", "0", "--latent-dim", "2", "--hidden", "8", "--quiet", "--device", "cpu"]
    done = _python(_FULL_DISK.format(limit=3000, argvs=argvs, photo=str(photo)), tmp_path)
    assert done.stdout.strip().splitlines()[-1] == "[2, 2, 2]", done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("brushwork: error: cannot write")]
    assert len(errors) == 3 and "Traceback" not in done.stderr, done.stderr
    assert list(out.iterdir()) == []  # no truncated animation or weights, no temporary file


def test_npy_and_csv_are_written_atomically(tmp_path: Path) -> None:
    path = io.save_npy(np.arange(3.0), tmp_path / "a.npy")
    assert np.array_equal(io.load_npy(path), np.arange(3.0))
    with pytest.raises(OutputError, match="input file"):
        io.save_npy(np.zeros(2), path, protect=[path])
    table = io.write_csv(tmp_path / "t.csv", [["a", "b"], [1, 2]])
    assert table.read_text().splitlines() == ["a,b", "1,2"]
    with pytest.raises(OutputError, match=".csv"):
        io.write_csv(tmp_path / "t.txt", [["a"]])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.npy", "t.csv"]


# -- style codes from files ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (None, "not a .npy array"),  # an empty file
        (np.zeros(0, np.float32), "expected one style code"),
        (np.full(100, 1e30, np.float32), "within ±1000"),
        (np.full(100, np.inf, np.float32), "not finite"),
        (np.array(["a"] * 100), "numeric"),
    ],
)
def test_bad_style_code_files_are_refused(
    array: np.ndarray | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "code.npy"
    if array is None:
        path.write_bytes(b"")
    else:
        np.save(path, array)
    with pytest.raises(InputError, match=message):
        api.load_code(path)
    out = tmp_path / "mix.png"
    assert main(["mix", str(SAMPLE_PHOTO), "--styles", str(path), "-o", str(out), "--device", "cpu"]) == 2
    _one_line_error(capsys)
    assert not out.exists()
    with pytest.raises(InputError, match="within"):
        api.render_codes(SAMPLE_PHOTO, np.full((1, 100), -1e30), max_size=32, device="cpu")


# -- training: progress events and bad input ------------------------------------------------------------------------


def _styles(root: Path, n: int, size: tuple[int, int] = (40, 40)) -> Path:
    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(root / f"s{i}.png")
    return root


def test_codes_and_training_report_progress_events(tmp_path: Path) -> None:
    from brushwork.train import style_vae as tsv

    root = _styles(tmp_path / "styles", 3)
    events = []
    api.style_codes(sorted(root.iterdir()), device="cpu", progress=events.append)
    codes = np.random.default_rng(0).normal(size=(6, 2, 100)).astype(np.float32)
    options = tsv.TrainOptions(latent_dim=2, hidden=8, epochs=4, warmup=1, patience=10)
    tsv.fit(codes, options=options, device="cpu", progress=events.append)
    assert [e.stage for e in events] == ["codes"] * 3 + ["train"] * 4
    for stage in ("codes", "train"):
        steps = [e for e in events if e.stage == stage]
        assert [e.step for e in steps] == list(range(1, len(steps) + 1)) and steps[-1].step == steps[-1].total
        assert all(b.elapsed >= a.elapsed for a, b in zip(steps, steps[1:], strict=False))
    assert {"train_loss", "val_loss"} <= set(events[-1].losses)


def test_train_never_writes_its_config_over_the_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "styles"
    _styles(root / "a", 2)
    _styles(root / "b", 2)
    labels = tmp_path / "vae.json"
    labels.write_text("filename,label\na/s0.png,x\na/s1.png,x\nb/s0.png,y\nb/s1.png,y\n")
    before = labels.read_bytes()
    argv = ["train", "style-vae", "--styles", str(root), "--labels", str(labels), "--epochs", "2", "--augment", "0"]
    assert main([*argv, "-o", str(tmp_path / "vae.safetensors"), "--device", "cpu", "--quiet"]) == 2
    assert "--labels file" in _one_line_error(capsys)
    assert labels.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["styles", "vae.json"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--latent-dim", "99999999999999999999"], "latent-dim"),
        (["--latent-dim", "100000"], "latent-dim"),
        (["--hidden", "10000000000"], "hidden"),
        (["--epochs", "10000000000000"], "epochs"),
    ],
)
def test_train_huge_options_are_one_line_errors(
    flags: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _styles(tmp_path / "styles", 4)
    out = tmp_path / "v.safetensors"
    with pytest.raises(SystemExit) as exit_:  # refused by the flag's type, before any work
        main(["train", "style-vae", "--styles", str(root), "-o", str(out), *flags, "--device", "cpu"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_train_with_a_tiny_image_skips_it_or_with_strict_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _styles(tmp_path / "styles", 4)
    Image.new("RGB", (5, 40), "red").save(root / "narrow.png")
    out = tmp_path / "v.safetensors"
    argv = ["train", "style-vae", "--styles", str(root), "-o", str(out), "--epochs", "2", "--augment", "2"]
    assert main([*argv, "--device", "cpu", "--quiet", "--strict"]) == 2
    err = _one_line_error(capsys)
    assert "narrow.png" in err and "too small" in err and "strict" in err
    assert not out.exists() and not (tmp_path / "v_loss.png").exists()
    assert main([*argv, "--device", "cpu", "--quiet"]) == 0
    warned = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warned) == 1 and "narrow.png" in warned[0] and "skipped" in warned[0]
    assert out.exists()


def test_max_size_bounds_the_photo_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A photo larger than the many-pictures default (512) keeps its size in mix (default 2048), in the API and
    the CLI; max_size shrinks it where given."""
    content = np.random.default_rng(0).random((40, 600, 3), dtype=np.float32)
    code = api.save_code(np.zeros(100, np.float32), tmp_path / "c.npy")
    assert api.mix(content, [code], device="cpu").size == (600, 40)
    assert api.render_codes(content, np.zeros((1, 100)), max_size=300, device="cpu")[0].size == (300, 20)
    photo = io.save_image(content, tmp_path / "wide.png")
    assert main(["mix", str(photo), "--styles", str(code), "-o", str(tmp_path / "out.png"), "--device", "cpu"]) == 0
    assert io.load_image(tmp_path / "out.png").size == (600, 40)
