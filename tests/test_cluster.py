"""Ray cluster runs (brushwork.cluster) on a two-node cluster that this module starts on loopback.

The head and one worker node (``ray start --block``, one CPU each, Ray's files in a short folder under /tmp, token
authentication off, HOME pointed there too) run as process groups of their own that the module stops by their
ids, even when a test fails. Photos are 96×72 (the fast method renders them in milliseconds), the video is 96×72,
48 frames with a key frame every 12. Outputs are compared with the single-process run made in this process.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from brushwork import cluster, io
from brushwork import video as bv
from brushwork.cli import main

try:
    import ray
except ImportError:
    ray = None
needs_ray = pytest.mark.skipif(ray is None, reason="ray is not installed (pip install 'brushwork[ray]')")
ROOT = Path(__file__).resolve().parents[1]
STYLE = "builtin:3"
# onnxruntime gives the same bits in every process and at every thread count; OpenVINO (the CPU default when it
# is installed) does not: two processes differ in about one pixel in 20,000 by one level
RUNTIME = ["--runtime", "onnxruntime"]
W, H, N, FPS, GOP = 96, 72, 48, 24, 12
START_LIMIT = 120  # seconds for the two nodes to come up


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _marked(marker: str) -> list[int]:
    """Processes (by id) whose environment holds this module's marker: the cluster's, and only they."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return pids


def _title(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@dataclass
class _Cluster:
    temp: Path
    marker: str
    port: int
    nodes: list[subprocess.Popen]


@pytest.fixture(scope="module")
def _nodes() -> Iterator[_Cluster]:
    """The two nodes, starting (readiness is awaited by ``address``, so that the reference run overlaps it)."""
    temp = Path(tempfile.mkdtemp(prefix="bwray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    key, value = "BRUSHWORK_TEST_CLUSTER", uuid.uuid4().hex
    env = dict(os.environ, HOME=str(temp), RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    env[key] = value
    port = _free_port()
    common = ["--num-cpus", "1", "--num-gpus", "0", "--block", "--disable-usage-stats"]
    ray_cli = [sys.executable, "-m", "ray.scripts.scripts", "start"]
    head = ["--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--include-dashboard", "false"]
    worker = ["--address", f"127.0.0.1:{port}", "--node-ip-address", "127.0.0.1"]
    cluster_ = _Cluster(temp, f"{key}={value}", port, [])
    try:
        for flags in ([*head, "--temp-dir", str(temp / "ray")], worker):
            cluster_.nodes.append(
                subprocess.Popen(
                    [*ray_cli, *flags, *common],
                    env=env,
                    start_new_session=True,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
            )
        yield cluster_
    finally:
        if ray.is_initialized():
            ray.shutdown()
        for node in reversed(cluster_.nodes):
            try:
                os.killpg(node.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for node in reversed(cluster_.nodes):
            try:
                node.wait(2)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait(5)
        for pid in _marked(cluster_.marker):  # workers that left their process group
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture(scope="module")
def address(_nodes: _Cluster, photos: tuple[Path, Path]) -> str:
    """The cluster's address, once both nodes are up (after the reference run, which exports the network)."""
    os.environ.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0")
    where = f"127.0.0.1:{_nodes.port}"
    deadline = time.monotonic() + START_LIMIT
    while True:
        try:
            ray.init(address=where, log_to_driver=False, logging_level="ERROR")
            break
        except (ConnectionError, RuntimeError):
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)
    try:
        while ray.cluster_resources().get("CPU", 0) < 2:
            assert time.monotonic() < deadline, "the worker node did not join"
            time.sleep(0.5)
    finally:
        ray.shutdown()
    os.environ["_BW_TEST_MARKER"] = _nodes.marker
    return where


@pytest.fixture
def connected(address: str) -> Iterator[str]:
    """This process joined to the cluster (brushwork.cluster uses a connection it finds)."""
    ray.init(address=address, log_to_driver=False, logging_level="ERROR")
    try:
        yield address
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory, _nodes: _Cluster) -> tuple[Path, Path]:
    """A folder of 12 photos (two share a stem) and their single-process outputs."""
    folder = tmp_path_factory.mktemp("photos")
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(12):
        rgb = np.stack([(xx * (i + 1)) % 256, (yy * 3 + i * 20) % 256, ((xx + yy) * 2) % 256], -1).astype(np.uint8)
        io.save_image(rgb, folder / f"p{i:02d}{'.jpg' if i == 11 else '.png'}")
    io.save_image(np.full((H, W, 3), 0.5, np.float32), folder / "p00.jpg")  # names p00_png / p00_jpg
    (folder / "broken.png").write_bytes(b"not an image")
    reference = tmp_path_factory.mktemp("reference")
    assert main(["stylize", str(folder), STYLE, "-o", str(reference), "-q", *RUNTIME]) == 0  # also exports the network
    return folder, reference


def _same_outputs(out: Path, reference: Path) -> None:
    names = sorted(p.name for p in reference.iterdir())
    assert sorted(p.name for p in out.iterdir()) == names  # no temporary file left
    assert len(names) == 13
    for name in names:
        assert (out / name).read_bytes() == (reference / name).read_bytes(), name


def test_without_ray_one_line_and_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    (tmp_path / "in").mkdir()
    io.save_image(np.full((H, W, 3), 0.5, np.float32), tmp_path / "in" / "a.png")
    assert main(["stylize", str(tmp_path / "in"), STYLE, "-o", str(tmp_path / "out"), "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["brushwork: error: --ray needs Ray: pip install 'brushwork[ray]'"]
    assert not (tmp_path / "out").exists()


@needs_ray
def test_unreachable_cluster_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "in").mkdir()
    io.save_image(np.full((H, W, 3), 0.5, np.float32), tmp_path / "in" / "a.png")
    port = _free_port()  # nothing listens there
    args = ["stylize", str(tmp_path / "in"), STYLE, "-o", str(tmp_path / "out"), "--ray", f"127.0.0.1:{port}"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"brushwork: error: cannot reach the Ray cluster at 127.0.0.1:{port}: connection refused"]
    assert not (tmp_path / "out").exists()  # the folder this run made is removed again


@pytest.mark.slow
@needs_ray
def test_folder_on_the_cluster_matches_one_process(address: str, photos: tuple[Path, Path], tmp_path: Path) -> None:
    folder, reference = photos
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    run = subprocess.run(
        [sys.executable, "-m", "brushwork", "stylize", str(folder), STYLE, "-o", str(out), *RUNTIME, "--ray", address],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "wrote 13 of 14 images" in run.stdout and "1 skipped" in run.stdout
    assert "skipped" in run.stderr and "broken.png" in run.stderr
    _same_outputs(out, reference)


@pytest.mark.slow
@needs_ray
def test_killed_worker_loses_no_photo(connected: str, photos: tuple[Path, Path], tmp_path: Path) -> None:
    folder, reference = photos
    out = tmp_path / "out"
    out.mkdir()
    sources = sorted(p for p in folder.iterdir() if p.name != "broken.png")
    pairs = [(p, out / f"{p.stem if p.stem != 'p00' else f'p00_{p.suffix[1:]}'}.png") for p in sources]
    marker = os.environ["_BW_TEST_MARKER"]
    killed: list[int] = []

    def kill_one(event: object) -> None:
        if not killed:  # after the first photo: every worker still holds queued batches
            workers = [pid for pid in _marked(marker) if "ray::Stylizer" in _title(pid)]
            assert workers, "no worker process found"
            os.kill(workers[0], signal.SIGKILL)
            killed.append(workers[0])

    settings = cluster.Settings(address=connected, workers=2, batch=1)
    records = cluster.stylize_images(
        pairs, [STYLE], options={"runtime": "onnxruntime"}, settings=settings, progress=kill_one
    )
    assert killed
    assert len(records) == len(pairs) == 13
    _same_outputs(out, reference)


@pytest.mark.slow
@needs_ray
def test_resume_skips_finished_photos(
    connected: str, photos: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder, reference = photos
    out = tmp_path / "out"
    out.mkdir()
    kept = sorted(reference.iterdir())[:5]
    for p in kept:
        shutil.copy(p, out / p.name)
        os.utime(out / p.name, ns=(1_000_000_000, 1_000_000_000))  # a finished output is not written again
    assert main(["stylize", str(folder), STYLE, "-o", str(out), *RUNTIME, "--ray", connected, "--resume", "-q"]) == 0
    assert "wrote 8 of 9 images" in capsys.readouterr().out
    assert all((out / p.name).stat().st_mtime_ns == 1_000_000_000 for p in kept)
    _same_outputs(out, reference)


def _clip(path: Path) -> Path:
    """A texture panning under a moving disc, with a 440 Hz tone; a key frame every GOP frames."""
    import av
    import cv2

    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=FPS)
    vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
    vs.options = {"crf": "10", "g": str(GOP), "keyint_min": str(GOP), "sc_threshold": "0"}
    vs.codec_context.time_base = Fraction(1, 1000)
    aus = out.add_stream("aac", rate=16000)
    aus.layout = "mono"
    t = cv2.GaussianBlur(np.random.default_rng(1).random((H + 60, W + 60, 3)).astype(np.float32), (0, 0), 2.0)
    texture = ((t - t.min()) / (t.max() - t.min()) * 255).astype(np.uint8)
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(N):
        img = texture[5 + i // 2 : 5 + i // 2 + H, 5 + i : 5 + i + W].copy()
        img[(xx - 15 - 2 * i) ** 2 + (yy - H // 2) ** 2 < 64] = (250, 220, 30)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts, frame.time_base = round(1000 * i / FPS), Fraction(1, 1000)
        out.mux(vs.encode(frame))
    out.mux(vs.encode(None))
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000 * N // FPS) / 16000)).astype(np.float32)
    resampler = av.AudioResampler(format=aus.format.name, layout="mono", rate=16000)
    for k in range(0, len(wave), 1024):
        af = av.AudioFrame.from_ndarray(wave[None, k : k + 1024], format="flt", layout="mono")
        af.sample_rate, af.pts = 16000, k
        for g in resampler.resample(af):
            out.mux(aus.encode(g))
    out.mux(aus.encode(None))
    out.close()
    return path


@pytest.mark.slow
@needs_ray
def test_video_in_segments_resumes_keeps_frames_audio_and_smooth_seams(connected: str, tmp_path: Path) -> None:
    pytest.importorskip("av")
    clip = _clip(tmp_path / "clip.mp4")
    times, keys = cluster.frame_times(clip)
    assert len(times) == N and [i for i, k in enumerate(keys) if k] == list(range(0, N, GOP))
    out = tmp_path / "out.mp4"
    settings = cluster.Settings(address=connected, workers=2)

    def interrupt(event: object) -> None:  # Ctrl-C once the first segment is in
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cluster.stylize_videos([(clip, out)], [STYLE], segment_frames=GOP, settings=settings, progress=interrupt)
    assert not out.exists() and len(list(tmp_path.glob(".out.mp4.brushwork-segments/segment*.json"))) == 1
    (record,) = cluster.stylize_videos([(clip, out)], [STYLE], segment_frames=GOP, settings=settings, resume=True)
    assert record["segments"] == N // GOP and record["frames"] == N and record["resumed_frames"] == GOP
    info = io.probe_video(out)
    assert info.frames == N and info.audio == "aac" and abs(info.duration - N / FPS) < 0.1
    assert not list(tmp_path.glob(".*"))  # the segment cache and temporary files are gone
    frames = [[f.rgb for f in io.read_video(path)] for path in (clip, out)]
    per_pair = np.array(bv.temporal_metrics(*frames)["warping_error_per_frame"])
    assert len(per_pair) == N - 1  # no pair was taken for a scene cut
    seams = [k - 1 for k in range(GOP, N, GOP)]  # pair k-1 = frames (k-1, k): k starts a segment
    inside = np.delete(per_pair, seams)
    assert per_pair[seams].max() <= inside.max()
    assert per_pair[seams].mean() <= 1.25 * inside.mean()


@pytest.mark.slow
@needs_ray
def test_eval_on_the_cluster_measures_what_one_process_measures(
    connected: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from brushwork import samples

    content, styles = tmp_path / "content", tmp_path / "styles"
    content.mkdir()
    styles.mkdir()
    io.save_image(io.resize_to_max(io.load_image(samples.SAMPLE_PHOTO).rgb, 96), content / "photo.png")
    for k in (1, 4):
        io.save_image(np.asarray(io.load_image(samples.SAMPLE_STYLE).rgb)[::k, ::k][:96, :96], styles / f"s{k}.png")
    common = ["--content", str(content), "--styles", str(styles), "--methods", "fast", "--max-size", "96"]
    common += ["--metric-size", "96", "--set", "runtime=onnxruntime", "-q"]
    assert main(["eval", *common, "--out", str(tmp_path / "one")]) == 0
    assert main(["eval", *common, "--out", str(tmp_path / "ray"), "--ray", connected, "--workers", "1"]) == 0
    assert "evaluated 2 pairs × 1 methods (0 reused)" in capsys.readouterr().out

    def table(name: str) -> list[dict[str, str]]:
        rows = [line.split(",") for line in (tmp_path / name / "results.csv").read_text().splitlines()]
        return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]

    for ours, theirs in zip(table("ray"), table("one"), strict=True):
        assert [ours[k] for k in ("method", "photo", "style", "output", "width", "height")] == [
            theirs[k] for k in ("method", "photo", "style", "output", "width", "height")
        ]
        for k in ("ssim", "edges", "content", "style_code", "mean_std", "gram", "color_style", "color_photo"):
            # the metric networks run with the worker's thread count: the last digits may differ
            assert float(ours[k]) == pytest.approx(float(theirs[k]), rel=1e-4, abs=1e-4), k
    for out in ("outputs/fast/photo__s1.jpg", "outputs/fast/photo__s4.jpg"):
        assert (tmp_path / "ray" / out).read_bytes() == (tmp_path / "one" / out).read_bytes()


@needs_ray
def test_cluster_checks_styles_and_resources_before_any_worker(
    address: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "in").mkdir()
    io.save_image(np.full((H, W, 3), 0.5, np.float32), tmp_path / "in" / "a.png")
    base = ["stylize", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--ray", address]
    assert main([*base[:2], "builtin:99", *base[2:]]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "brushwork: error: no built-in style 99: use builtin:0 to builtin:25"
    ]
    assert main([*base[:2], STYLE, *base[2:], "--worker-cpus", "4000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--worker-cpus" in err[0] and "the cluster has" in err[0], err
    assert not (tmp_path / "out").exists()
