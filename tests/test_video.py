"""Video: file I/O (timing, size, rotation, audio survive), temporal consistency, resume, scene cuts, errors.

The clips are made here: a smooth random texture panning under a moving disc, 64×48, 12 frames at 12 fps, with
a 440 Hz sine track. Most tests stylize with a stand-in renderer that redraws a fresh random "stroke" texture on
every frame (the flicker that consistency has to remove) so they run in milliseconds; one test goes through the
real fast path and the CLI.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from brushwork import io  # noqa: E402
from brushwork import video as bv  # noqa: E402
from brushwork.cli import main  # noqa: E402
from brushwork.errors import BrushworkError, InputError  # noqa: E402

W, H, N, FPS = 64, 48, 12, 12


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    t = cv2.GaussianBlur(np.random.default_rng(seed).random((h, w, 3)).astype(np.float32), (0, 0), 2.0)
    return ((t - t.min()) / (t.max() - t.min()) * 255).astype(np.uint8)


def make_clip(
    path: Path,
    *,
    n: int = N,
    audio: bool = True,
    rotation: int = 0,
    cut_at: int | None = None,
    times: list[float] | None = None,
) -> Path:
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=FPS)
    vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
    vs.options = {"crf": "10"}
    vs.codec_context.time_base = Fraction(1, 1000)
    if rotation:
        vs.set_display_rotation(rotation)
    if audio:
        aus = out.add_stream("aac", rate=16000)
        aus.layout = "mono"
    a, b = _texture(H + 40, W + 40, 1), _texture(H + 40, W + 40, 2)
    yy, xx = np.mgrid[0:H, 0:W]
    for i in range(n):
        src = b if cut_at is not None and i >= cut_at else a
        img = src[10 + i // 2 : 10 + i // 2 + H, 10 + i : 10 + i + W].copy()
        img[(xx - 15 - 2 * i) ** 2 + (yy - H // 2) ** 2 < 36] = (250, 220, 30)
        frame = av.VideoFrame.from_ndarray(img, format="rgb24")
        frame.pts = round(1000 * (times[i] if times else i / FPS))
        frame.time_base = Fraction(1, 1000)
        out.mux(vs.encode(frame))
    out.mux(vs.encode(None))
    if audio:
        sr = 16000
        wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(int(sr * n / FPS)) / sr)).astype(np.float32)
        resampler = av.AudioResampler(format=aus.format.name, layout="mono", rate=sr)
        for k in range(0, len(wave), 1024):
            af = av.AudioFrame.from_ndarray(wave[None, k : k + 1024], format="flt", layout="mono")
            af.sample_rate, af.pts = sr, k
            for g in resampler.resample(af):
                out.mux(aus.encode(g))
        out.mux(aus.encode(None))
    out.close()
    return path


class Flickery:
    """A stand-in stylizer: the photo's luminance plus a 'stroke' texture drawn afresh on every frame (seeded by the
    frame's content, so a rerun draws the same strokes). ``fail_at`` raises KeyboardInterrupt at that call."""

    def __init__(self, fail_at: int | None = None) -> None:
        self.calls = 0
        self.fail_at = fail_at

    def render(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise KeyboardInterrupt
        seed = int(np.round(rgb * 255).astype(np.int64).sum()) % 2**32
        noise = cv2.GaussianBlur(np.random.default_rng(seed).random(rgb.shape).astype(np.float32), (0, 0), 1.0)
        return np.clip(0.7 * rgb + 0.6 * (noise - 0.5), 0.0, 1.0).astype(np.float32)


def frames_of(path: Path) -> list[np.ndarray]:
    return [f.rgb.astype(np.float32) for f in io.read_video(path)]


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


@pytest.mark.parametrize("ext", [".mp4", ".webm", ".gif"])
def test_frames_size_fps_and_audio_survive(clip: Path, tmp_path: Path, ext: str) -> None:
    out = tmp_path / f"out{ext}"
    record = bv.stylize_video(clip, out, ["x"], renderer=Flickery())
    info = io.probe_video(out)
    assert record["frames"] == N
    assert (info.width, info.height) == (W, H)
    assert info.fps == pytest.approx(FPS, rel=0.1)
    decoded = list(io.read_video(out))
    assert len(decoded) == N
    assert [round(f.time * FPS) for f in decoded] == list(range(N))
    assert info.audio == {".mp4": "aac", ".webm": "opus", ".gif": None}[ext]  # copied into MP4, Opus in WebM
    assert not list(tmp_path.glob(".*")), "no temporary file or frame cache left behind"


def test_audio_is_copied_not_reencoded(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    bv.stylize_video(clip, out, ["x"], renderer=Flickery())

    def packets(p: Path) -> list[bytes]:
        with av.open(str(p)) as c:
            return [bytes(k) for k in c.demux(c.streams.audio[0]) if k.size]

    assert packets(out) == packets(clip)


def test_rotation_and_variable_frame_rate_survive(tmp_path: Path) -> None:
    times = [0.0, 0.05, 0.2, 0.25, 0.4, 0.6, 0.65, 0.7, 0.9, 1.0, 1.2, 1.25]
    src = make_clip(tmp_path / "rot.mp4", rotation=90, times=times, audio=False)
    out = tmp_path / "out.mp4"
    bv.stylize_video(src, out, ["x"], renderer=Flickery())
    info = io.probe_video(out)
    assert info.rotation == 90
    assert (info.width, info.height) == (H, W)  # displayed upright, like the source
    assert [f.time for f in io.read_video(out)] == pytest.approx(times, abs=2e-3)


def test_consistency_lowers_warping_error(clip: Path, tmp_path: Path) -> None:
    errors = {}
    for c in (0.0, bv.CONSISTENCY):
        out = tmp_path / f"c{c}.mp4"
        bv.stylize_video(clip, out, ["x"], renderer=Flickery(), consistency=c, crf=10)
        errors[c] = bv.temporal_metrics([f.rgb for f in io.read_video(clip)], [f.rgb for f in io.read_video(out)])
    assert errors[bv.CONSISTENCY]["warping_error"] < 0.6 * errors[0.0]["warping_error"]
    # the blend keeps most of the fine detail (it restores the detail's local energy)
    assert errors[bv.CONSISTENCY]["detail"] > 0.8 * errors[0.0]["detail"]


def test_resume_gives_the_uninterrupted_video(clip: Path, tmp_path: Path) -> None:
    whole = tmp_path / "whole.mp4"
    bv.stylize_video(clip, whole, ["x"], renderer=Flickery(), crf=10, keyframes=1)

    out = tmp_path / "out.mp4"
    out.write_bytes(b"an older file")
    with pytest.raises(KeyboardInterrupt):
        bv.stylize_video(clip, out, ["x"], renderer=Flickery(fail_at=7), crf=10, keyframes=1)
    assert out.read_bytes() == b"an older file", "an interrupted run leaves OUT as it was"
    cache = tmp_path / f".out.mp4{bv.CACHE_SUFFIX}"
    done = len(list(cache.glob("*.png")))
    assert 1 <= done <= 6

    renderer = Flickery()
    record = bv.stylize_video(clip, out, ["x"], renderer=renderer, crf=10, resume=True, keyframes=1)
    assert record["resumed_frames"] == done
    assert renderer.calls == N - done  # the finished frames were not stylized again
    assert not cache.exists(), "the cache is removed on success"
    a, b = frames_of(whole), frames_of(out)
    assert len(a) == len(b) == N
    assert max(np.abs(x - y).mean() for x, y in zip(a, b, strict=True)) < 1.0  # grey levels, codec noise only


def test_resume_refuses_another_runs_cache(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):
        bv.stylize_video(clip, out, ["x"], renderer=Flickery(fail_at=3))
    with pytest.raises(InputError, match="other settings"):
        bv.stylize_video(clip, out, ["x"], renderer=Flickery(), consistency=0.2, resume=True)
    with pytest.raises(InputError, match="other settings"):  # the keyframe spacing decides the frames too
        bv.stylize_video(clip, out, ["x"], renderer=Flickery(), keyframes=2, resume=True)


def test_scene_cut_resets_history(tmp_path: Path) -> None:
    src = make_clip(tmp_path / "cut.mp4", cut_at=6, audio=False)
    out = tmp_path / "out.mp4"
    record = bv.stylize_video(src, out, ["x"], renderer=Flickery(), consistency=0.9, crf=10, keyframes=1)
    assert record["scene_cuts"] == 1
    plain = tmp_path / "plain.mp4"
    bv.stylize_video(src, plain, ["x"], renderer=Flickery(), consistency=0.0, crf=10)
    consistent, independent = frames_of(tmp_path / "out.mp4"), frames_of(plain)
    # right after the cut the frame is the new shot's own stylization, with nothing carried over ...
    assert np.abs(consistent[6] - independent[6]).mean() < 1.5
    # ... while before it the history shaped the frames
    assert np.abs(consistent[5] - independent[5]).mean() > 4.0


def test_start_end_and_max_size(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    record = bv.stylize_video(clip, out, ["x"], renderer=Flickery(), start=0.25, end=0.75, max_size=32)
    decoded = list(io.read_video(out))
    assert record["frames"] == len(decoded) == 6  # frames at 3/12 .. 8/12 s
    assert decoded[0].time == pytest.approx(0.0, abs=1e-3)
    assert decoded[0].rgb.shape == (24, 32, 3)
    assert io.probe_video(out).audio == "aac"


@pytest.mark.parametrize("kind", ["truncated", "audio-only", "zero-frame", "not-a-video"])
def test_bad_inputs_give_one_line_and_exit_2(
    clip: Path, tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "bad.mp4"
    if kind == "truncated":
        good = tmp_path / "good.mp4"
        bv.stylize_video(clip, good, ["x"], renderer=Flickery())  # our MP4s put the index first (fast start)
        data = good.read_bytes()
        src.write_bytes(data[: len(data) * 2 // 3])
    elif kind == "audio-only":
        with av.open(str(clip)) as c_in, av.open(str(src), "w") as c_out:
            s = c_out.add_stream_from_template(c_in.streams.audio[0])
            for packet in c_in.demux(c_in.streams.audio[0]):
                if packet.size:
                    packet.stream = s
                    c_out.mux(packet)
    elif kind == "zero-frame":
        with av.open(str(src), "w") as c_out:
            s = c_out.add_stream("libx264", rate=FPS)
            s.width, s.height, s.pix_fmt = W, H, "yuv420p"
            c_out.start_encoding()
    else:
        src.write_bytes(b"\x00\x01not a video" * 50)
    out = tmp_path / "out.mp4"
    assert main(["video", str(src), "builtin:0", "-o", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("brushwork: error: cannot read") and "\n" not in err, err
    assert "Traceback" not in err
    assert not out.exists()


def test_output_checks(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["video", str(clip), "builtin:0", "-o", str(tmp_path / "out.avi")]) == 2
    assert "not a video format" in capsys.readouterr().err
    assert main(["video", str(clip), "builtin:0", "-o", str(clip)]) == 2
    assert "input file" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_fast_path_folder_and_eval(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(clip.read_bytes())
    make_clip(folder / "b.mp4", n=6, audio=False)
    out = tmp_path / "out"
    assert main(["video", str(folder), "builtin:3", "-o", str(out), "--quiet", "--max-size", "48"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["a.mp4", "b.mp4"]
    info = io.probe_video(out / "a.mp4")
    assert (info.width, info.height, info.audio) == (48, 36, "aac")
    capsys.readouterr()
    assert main(["eval-video", str(clip), str(out / "a.mp4"), "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == N
    assert result["warping_error"] > 0 and len(result["warping_error_per_frame"]) == N - 1
    assert len(result["style_distance_per_frame"]) == N
    assert all(d >= 0 for d in result["style_distance_per_frame"])


# ------------------------------------------------------------------------------ method optimize (Ruder et al.)


@pytest.mark.slow
def test_optimize_temporal_loss_lowers_warping_error(tmp_path: Path) -> None:
    """Each frame starts from the warped previous result and adds the temporal loss: steadier than optimizing every
    frame on its own (random-weight VGG-19, no downloads; a 6-frame clip)."""
    from tests.test_optimize import texture

    src = make_clip(tmp_path / "clip.mp4", n=6, audio=False)
    style = tmp_path / "style.png"
    io.save_image(io.to_numpy(texture((0.9, 0.2, 0.1), 64, 64)), style)
    original = [f.rgb for f in io.read_video(src)]
    kw = dict(method="optimize", backbone="vgg19", weights="random", init="content", iterations=10, crf=10)
    metrics = {}
    for c in (0.0, bv.CONSISTENCY):
        out = tmp_path / f"c{c}.mp4"
        record = bv.stylize_video(src, out, [str(style)], consistency=c, frame_iterations=5, **kw)
        assert record["frames"] == 6
        info = io.probe_video(out)
        assert (info.width, info.height, info.frames) == (W, H, 6)
        metrics[c] = bv.temporal_metrics(original, [f.rgb for f in io.read_video(out)])
    assert metrics[bv.CONSISTENCY]["warping_error"] < 0.75 * metrics[0.0]["warping_error"]
    assert metrics[bv.CONSISTENCY]["detail"] > 0.8 * metrics[0.0]["detail"]


def test_frame_optimizer_temporal_term_pulls_towards_previous() -> None:
    """FrameOptimizer.frame: with a previous result and trust 1 the frame ends closer to it than without one, and
    the temporal term is reported; trust 0 leaves the start image to the frame's own init."""
    import torch

    from brushwork.methods.optimize import FrameOptimizer
    from tests.test_optimize import photo, texture

    opt = FrameOptimizer(
        [texture((0.1, 0.3, 0.9))], backbone="vgg19", weights="random", init="content", iterations=4,
        frame_iterations=4, temporal_weight=1000.0,
    )  # fmt: skip
    frame = photo(24, 32)
    previous = texture((0.9, 0.6, 0.1), 24, 32)
    alone = opt.frame(frame)
    pulled = opt.frame(frame, previous, torch.ones(24, 32))
    assert pulled.iterations == 4 and "temporal" in pulled.history[0]
    assert (pulled.image - previous).abs().mean() < 0.5 * (alone.image - previous).abs().mean()
    with pytest.raises(InputError, match="previous frame"):
        opt.frame(frame, previous[..., :16], torch.ones(24, 32))


def test_optimize_only_options(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["video", str(clip), "builtin:0", "-o", str(tmp_path / "o.mp4"), "--quiet", "--frame-iterations", "3"]
    assert main(args) == 2
    assert "apply to --method optimize only" in capsys.readouterr().err
    with pytest.raises(InputError, match="feed"):
        bv.stylize_video(clip, tmp_path / "o.mp4", ["x.png"], method="optimize", feed=0.3)


# ------------------------------------------------------------------------------------------ killed runs

_SLOW_CLI = """
import sys, time
import numpy as np
import brushwork.video as bv

class Slow:
    def render(self, rgb, mask=None):
        time.sleep(0.3)
        return np.clip(0.5 * rgb + 0.25, 0.0, 1.0).astype(np.float32)

bv.make_renderer = lambda *a, **k: Slow()
from brushwork.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_killed_run_leaves_no_temporary_file_and_resumes(tmp_path: Path, sig: str) -> None:
    """A CLI run killed mid-way removes its hidden temporary output, leaves OUT alone, keeps the finished frames for
    --resume, and exits 128 + the signal's number; the resumed run completes the video."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = make_clip(tmp_path / "long.mp4", n=28, audio=True)
    out = tmp_path / "out.mp4"
    script = tmp_path / "slow_cli.py"
    script.write_text(_SLOW_CLI)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path])}
    cmd = [sys.executable, str(script), "video", str(src), "builtin:0", "-o", str(out), "--quiet"]
    cache = tmp_path / f".out.mp4{bv.CACHE_SUFFIX}"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(cache.glob("*.png"))) < 3:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run made no frames"
        time.sleep(0.05)
    assert list(tmp_path.glob(".out.mp4.*.tmp*")), "the unfinished output is a hidden file beside OUT"
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + getattr(signal, sig), err
    assert f"stopped by {sig}" in err and "--resume" in err and "Traceback" not in err
    assert not out.exists()
    assert not list(tmp_path.glob(".out.mp4.*.tmp*")), "no temporary file left behind"
    done = len(list(cache.glob("*.png")))
    assert 3 <= done < 28

    resumed = subprocess.run([*cmd, "--resume", "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    import json

    record = json.loads(resumed.stdout)
    # the run continues after the last keyframe it finished (the frames after it depend on the next keyframe)
    assert record["resumed_frames"] == (done - 1) // bv.KEYFRAMES * bv.KEYFRAMES + 1 and record["frames"] == 28
    assert len(list(io.read_video(out))) == 28 and io.probe_video(out).audio == "aac"
    assert not cache.exists() and not list(tmp_path.glob(".out.mp4.*"))


def test_cli_folder_formats_crf_and_range(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Folder in, folder out in each format; --crf trades size for quality; --start/--end cut every video."""
    monkeypatch.setattr(bv, "make_renderer", lambda *a, **k: Flickery())
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_bytes(clip.read_bytes())
    make_clip(folder / "b.mp4", n=8, audio=False)
    for fmt in ("webm", "gif"):
        out = tmp_path / fmt
        assert main(["video", str(folder), "builtin:3", "-o", str(out), "--quiet", "--format", fmt]) == 0
        assert sorted(p.name for p in out.iterdir()) == [f"a.{fmt}", f"b.{fmt}"]
        assert io.probe_video(out / f"a.{fmt}").audio == ("opus" if fmt == "webm" else None)
    sizes = {}
    for crf in (10, 40):
        out = tmp_path / f"crf{crf}"
        argv = ["video", str(folder), "builtin:3", "-o", str(out), "--quiet", "--crf", str(crf)]
        assert main([*argv, "--start", "0.25", "--end", "0.5"]) == 0
        assert [len(list(io.read_video(out / n))) for n in ("a.mp4", "b.mp4")] == [3, 3]
        sizes[crf] = (out / "a.mp4").stat().st_size
    assert sizes[40] < sizes[10]
    capsys.readouterr()
    assert main(["video", str(clip), "builtin:3", "-o", str(tmp_path / "x.mp4"), "--crf", "52"]) == 2
    assert "--crf" in capsys.readouterr().err


# ------------------------------------------------------------------ bad input: one line, nothing left behind


def _thin_clip(path: Path, w: int, h: int, n: int = 6) -> Path:
    """A w×h clip (no audio): a texture panning one pixel a frame."""
    out = av.open(str(path), "w")
    vs = out.add_stream("libx264", rate=FPS)
    vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
    tex = _texture(h + 20, w + 20, 3)
    for i in range(n):
        img = np.ascontiguousarray(tex[5 + i // 2 : 5 + i // 2 + h, 5 + i : 5 + i + w])
        out.mux(vs.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
    out.mux(vs.encode(None))
    out.close()
    return path


def _tree(folder: Path) -> set[str]:
    """Every file and folder under ``folder`` (hidden ones too)."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def _one_error(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("brushwork: error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("size", ["1", "8", "11", "15"])
def test_eval_video_max_size_is_at_least_16(clip: Path, size: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        main(["eval-video", str(clip), str(clip), "--max-size", size])
    assert stop.value.code == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and "--max-size" in err[0] and "16" in err[0], err
    with pytest.raises(InputError, match="at least 16"):
        bv.evaluate_video(clip, clip, max_size=8)


@pytest.mark.parametrize("preset", ["fast", "medium"])
@pytest.mark.parametrize("shape", [(16, 640), (640, 16), (16, 16), (20, 300), (17, 2049), (48, 64)])
def test_flow_of_thin_frames(shape: tuple[int, int], preset: str) -> None:
    """OpenCV's DIS fails (an error, or a crash) on a side too thin for its pyramid: the flow is computed at a size
    it takes, and comes back at the frames' size."""
    h, w = shape
    a = _texture(h + 4, w + 4, 5)[..., 0]
    prev, cur = np.ascontiguousarray(a[2 : 2 + h, 2 : 2 + w]), np.ascontiguousarray(a[2 : 2 + h, 3 : 3 + w])
    for size in (bv.FLOW_SIZE, None, 8):
        motion = bv.FlowEstimator(size, preset, forward=True).motion(prev, cur)
        assert motion.map_x.shape == motion.reliable.shape == motion.forward_x.shape == (h, w)
        assert min(bv.FlowEstimator(size).flow_size(w, h)) >= bv.FLOW_MIN
    flow = bv.FlowEstimator(None, preset)  # one estimator, frames of another size (a new DIS pyramid)
    flow.motion(prev, cur)
    assert flow.motion(np.ascontiguousarray(prev.T), np.ascontiguousarray(cur.T)).map_x.shape == (w, h)


def test_long_thin_video_works(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bv, "make_renderer", lambda *a, **k: Flickery())
    src = _thin_clip(tmp_path / "vwide.mp4", 640, 16)
    out = tmp_path / "x.mp4"
    assert main(["video", str(src), "builtin:3", "-o", str(out), "-q"]) == 0
    info = io.probe_video(out)
    assert (info.width, info.height) == (640, 16) and len(list(io.read_video(out))) == 6
    assert _tree(tmp_path) == {"vwide.mp4", "x.mp4"}, "no frame cache left behind"
    capsys.readouterr()
    assert main(["eval-video", str(src), str(out), "--json"]) == 0
    import json

    result = json.loads(capsys.readouterr().out)
    assert result["frames"] == 6 and (result["width"], result["height"]) == (640, 16)  # the shorter side kept


def test_long_thin_video_too_thin_for_max_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _thin_clip(tmp_path / "vwide.mp4", 640, 16)
    before = _tree(tmp_path)
    assert main(["video", str(src), "builtin:3", "-o", str(tmp_path / "x.mp4"), "-q", "--max-size", "64"]) == 2
    line = _one_error(capsys)
    assert "vwide.mp4 (640×16) is too thin for --max-size 64" in line and "--max-size 640" in line, line
    assert _tree(tmp_path) == before, "no output and no frame cache"


def _mixed_folder(tmp_path: Path, clip: Path) -> Path:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "v.mp4").write_bytes(clip.read_bytes())
    (folder / "text.mp4").write_text("not a video\n")
    return folder


def test_folder_skips_unusable_videos_up_front(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bv, "make_renderer", lambda *a, **k: Flickery())
    folder = _mixed_folder(tmp_path, clip)
    out = tmp_path / "out"
    assert main(["video", str(folder), "builtin:3", "-o", str(out), "-q"]) == 0
    captured = capsys.readouterr()
    warnings = captured.err.splitlines()
    assert len(warnings) == 1 and warnings[0].startswith("brushwork: warning: ") and "text.mp4" in warnings[0]
    assert f"wrote 1 of 2 videos to {out} (1 skipped)" in captured.out
    assert _tree(out) == {"v.mp4"} and len(list(io.read_video(out / "v.mp4"))) == N


def test_folder_strict_refuses_an_unusable_video(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _mixed_folder(tmp_path, clip)
    before = _tree(tmp_path)
    assert main(["video", str(folder), "builtin:3", "-o", str(tmp_path / "out"), "-q", "--strict"]) == 2
    line = _one_error(capsys)
    assert "text.mp4" in line and "--strict" in line, line
    assert _tree(tmp_path) == before, "nothing written, no folder made"


def test_folder_without_a_usable_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.mp4").write_text("not a video\n")
    (folder / "b.mov").write_bytes(b"\x00" * 100)
    before = _tree(tmp_path)
    assert main(["video", str(folder), "builtin:3", "-o", str(tmp_path / "out"), "-q"]) == 2
    assert "no usable video" in _one_error(capsys)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize("name", ["one.mp4", "one.webm", "one.png"])
def test_folder_input_refuses_a_file_name_output(
    clip: Path, tmp_path: Path, name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = _mixed_folder(tmp_path, clip)
    before = _tree(tmp_path)
    assert main(["video", str(folder), "builtin:3", "-o", str(tmp_path / name), "-q"]) == 2
    assert "-o must be a folder too" in _one_error(capsys)
    assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--start", "5"], "past the end"),
        (["--start", "0.99"], "no frames"),  # after the last frame (11/12 s): the run's empty cache is removed
        (["--end", "0"], "--end 0"),
        (["--max-size", "8"], "max size must be"),
        (["--iterations", "3"], "does not take the option"),
    ],
)
def test_errors_known_before_the_first_frame_leave_nothing(
    clip: Path, tmp_path: Path, flags: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "v.mp4"
    src.write_bytes(clip.read_bytes())
    before = _tree(tmp_path)
    assert main(["video", str(src), "builtin:3", "-o", str(tmp_path / "out.mp4"), "-q", *flags]) == 2
    assert message in _one_error(capsys)
    assert _tree(tmp_path) == before, "no output and no hidden frame cache"


def test_optimize_options_that_do_not_apply_leave_nothing(clip: Path, tmp_path: Path) -> None:
    style = tmp_path / "style.png"
    io.save_image(np.random.default_rng(0).random((32, 32, 3)).astype(np.float32), style)
    before = _tree(tmp_path)
    with pytest.raises(InputError, match="min_size"):
        bv.stylize_video(
            clip, tmp_path / "o.mp4", [str(style)], method="optimize", min_size=16, backbone="vgg19", weights="random"
        )
    assert _tree(tmp_path) == before


class _Refuses(Flickery):
    def render(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        raise InputError("this frame cannot be stylized")


def test_a_run_that_fails_before_any_frame_removes_its_cache_only(clip: Path, tmp_path: Path) -> None:
    """A fresh run that fails before finishing a frame removes the frame cache it made; a resumed run never removes
    the frames an earlier run left for --resume."""
    out = tmp_path / "out.mp4"
    cache = tmp_path / f".out.mp4{bv.CACHE_SUFFIX}"
    with pytest.raises(InputError, match="no frames"):  # the last frame starts at 11/12 s: none from 0.95 s on
        bv.stylize_video(clip, out, ["x"], renderer=Flickery(), start=0.95)
    assert not cache.exists() and not out.exists()
    with pytest.raises(KeyboardInterrupt):
        bv.stylize_video(clip, out, ["x"], renderer=Flickery(fail_at=6), keyframes=1)
    kept = _tree(cache)
    assert len(kept) >= 3
    with pytest.raises(InputError, match="cannot be stylized"):
        bv.stylize_video(clip, out, ["x"], renderer=_Refuses(), keyframes=1, resume=True)
    assert _tree(cache) == kept, "an earlier run's frames stay for --resume"
    with pytest.raises(InputError, match="cannot be stylized"):
        bv.stylize_video(clip, out, ["x"], renderer=_Refuses(), keyframes=1)  # starts over: its own cache
    assert _tree(tmp_path) == set()


def test_eval_video_refuses_other_frame_counts_and_shapes(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    longer = _thin_clip(tmp_path / "v20.mp4", W, H, n=20)
    square = _thin_clip(tmp_path / "vsq.mp4", 48, 48, n=N)
    assert main(["eval-video", str(clip), str(longer)]) == 2
    line = _one_error(capsys)
    assert f"has {N} frames" in line and "v20.mp4 20" in line, line
    assert main(["eval-video", str(clip), str(square)]) == 2
    line = _one_error(capsys)
    assert f"{W}×{H}" in line and "48×48" in line, line
    # WebM headers hold no frame count: the frames are counted as they are compared
    short = tmp_path / "short.webm"
    bv.stylize_video(_thin_clip(tmp_path / "v6.mp4", W, H, n=6), short, ["x"], renderer=Flickery())
    assert io.probe_video(short).frames == 0
    with pytest.raises(InputError, match=f"has {N} frames and .*short.webm 6"):
        bv.evaluate_video(clip, short)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"src": None}, "src must be a video file's path"),
        ({"dst": 5}, "dst must be the output file's path"),
        ({"dst": "OUT/"}, "a name ending in / is a folder"),
        ({"styles": None}, "styles must be a list of styles"),
        ({"consistency": "0.5"}, "consistency must be a number"),
        ({"crf": 1.5}, "crf must be a whole number"),
        ({"start": float("nan")}, "start must be a finite number"),
        ({"max_size": float("nan")}, "max size must be a whole number"),
        ({"flow_size": float("nan")}, "flow size must be a whole number"),
        ({"keyframes": 10**20}, "keyframes must be a positive whole number"),
        ({"progress": 5}, "progress must be a function"),
        ({"renderer": 5}, "renderer must be a ready renderer"),
        ({"protect": 5}, "protect must be a path or a list of paths"),
    ],
)
def test_stylize_video_refuses_arguments_of_the_wrong_kind(
    clip: Path, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    out = tmp_path / "out.mp4"
    kwargs: dict[str, Any] = {"src": clip, "dst": out, "styles": ["builtin:3"], "max_size": 48, **change}
    if kwargs["dst"] == "OUT/":
        kwargs["dst"] = f"{out}/"
    with pytest.raises(BrushworkError, match=message):
        bv.stylize_video(kwargs.pop("src"), kwargs.pop("dst"), kwargs.pop("styles"), **kwargs)
    assert list(tmp_path.iterdir()) == []  # no output, no frame cache
