"""Video keyframe propagation (``keyframes`` N > 1): the network stylizes every N-th frame (and the first, the last
and the frames either side of a scene cut); the frames between are warped from the two stylized keyframes around
them. Small generated clips and the stand-in ``Flickery`` renderer of test_video.py (a fresh random stroke texture on
every call: the flicker propagation has to remove)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")

from brushwork import io  # noqa: E402
from brushwork import video as bv  # noqa: E402
from brushwork.cli import main  # noqa: E402
from brushwork.errors import InputError  # noqa: E402
from tests.test_video import FPS, Flickery, N, frames_of, make_clip  # noqa: E402


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clips") / "clip.mp4")


def _keys(n: int, k: int) -> list[int]:
    """The frames a run stylizes: every k-th, and the last."""
    return sorted({*range(0, n, k), n - 1})


def _decoded(path: Path) -> list[np.ndarray]:
    return [f.rgb for f in io.read_video(path)]


class Recording(Flickery):
    """Flickery that remembers which frames it was given."""

    def __init__(self, frames: list[np.ndarray]) -> None:
        super().__init__()
        self.frames = [f.astype(np.float32) / 255.0 for f in frames]
        self.seen: list[int] = []

    def render(self, rgb: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        self.seen.append(int(np.argmin([np.abs(rgb - f).mean() for f in self.frames])))
        return super().render(rgb, mask)


def _run(frames: list[np.ndarray], keyframes: int, renderer: object, consistency: float = bv.CONSISTENCY) -> list:
    """The pipeline's frame logic without files: the uint8 outputs, in order."""
    flow = bv.FlowEstimator(None, forward=keyframes > 1)
    pipeline = bv.Frames(renderer, consistency, keyframes, stats=bv.FrameStats())
    outs: list[tuple[int, np.ndarray]] = []
    prev = None
    for i, f in enumerate(frames):
        g = bv.gray(f)
        outs += pipeline.push(i, f, g, flow.motion(prev, g) if prev is not None else None, i)
        prev = g
    outs += pipeline.finish()
    assert [i for i, _ in outs] == list(range(len(frames))), "every frame comes out once, in order"
    return [o for _, o in outs]


@pytest.mark.parametrize("keyframes", [3, 4])
def test_frames_timing_and_audio_survive(clip: Path, tmp_path: Path, keyframes: int) -> None:
    out = tmp_path / "out.mp4"
    renderer = Flickery()
    record = bv.stylize_video(clip, out, ["x"], renderer=renderer, keyframes=keyframes)
    decoded = list(io.read_video(out))
    assert record["frames"] == len(decoded) == N
    assert [round(f.time * FPS) for f in decoded] == list(range(N))
    assert io.probe_video(out).audio == "aac"
    assert record["keyframes"] == keyframes
    assert renderer.calls == record["stylized_frames"] == len(_keys(N, keyframes))


def test_network_runs_on_the_keyframes_only(clip: Path) -> None:
    frames = _decoded(clip)
    for k in (1, 2, 4, 5, 20):
        renderer = Recording(frames)
        _run(frames, k, renderer)
        assert renderer.seen == _keys(N, k)


def test_default_keyframes() -> None:
    assert bv.check_keyframes(None, "fast", bv.CONSISTENCY) == bv.KEYFRAMES > 1
    assert bv.check_keyframes(None, "microast", 0.3) == bv.KEYFRAMES
    assert bv.check_keyframes(None, "fast", 0.0) == 1  # consistency 0 = frame by frame
    assert bv.check_keyframes(None, "optimize", bv.CONSISTENCY) == 1


def test_one_keyframe_is_the_frame_by_frame_pipeline(clip: Path) -> None:
    """keyframes=1 is exactly the pipeline without propagation: stylize_frame on every frame."""
    frames = _decoded(clip)
    ours = _run(frames, 1, Flickery())
    flow = bv.FlowEstimator(None)
    state, prev = bv.TemporalState(), None
    for f, o in zip(frames, ours, strict=True):
        g = bv.gray(f)
        out = bv.stylize_frame(f, flow.motion(prev, g) if prev is not None else None, state, Flickery(), 0.7)
        assert np.array_equal(out, o)
        state, prev = bv.TemporalState(g, out), g


def test_propagation_lowers_the_warping_error_and_keeps_detail(clip: Path) -> None:
    frames = _decoded(clip)
    by_frame = bv.temporal_metrics(frames, _run(frames, 1, Flickery(), consistency=0.0))
    propagated = bv.temporal_metrics(frames, _run(frames, 4, Flickery()))
    blended = bv.temporal_metrics(frames, _run(frames, 1, Flickery()))
    assert propagated["warping_error"] < 0.5 * by_frame["warping_error"]
    assert propagated["warping_error"] < blended["warping_error"]
    assert propagated["detail"] > 0.8 * by_frame["detail"]


def test_in_between_frames_are_warped_keyframes(clip: Path) -> None:
    """A propagated frame is made of its keyframes' pixels moved along the motion, not a blur of them."""
    frames = _decoded(clip)
    outs = _run(frames, 4, Flickery())
    for j in (1, 2, 3):  # between keyframes 0 and 4
        ahead, behind = np.abs(outs[j].astype(float) - outs[0]).mean(), np.abs(outs[j].astype(float) - outs[4]).mean()
        assert 0 < min(ahead, behind)
        assert bv.laplacian_detail(outs[j]) > 0.8 * bv.laplacian_detail(outs[0])


def test_scene_cut_starts_afresh(tmp_path: Path) -> None:
    """The frames either side of a cut are stylized; nothing is propagated across it."""
    frames = _decoded(make_clip(tmp_path / "cut.mp4", cut_at=6, audio=False))
    renderer = Recording(frames)
    outs = _run(frames, 4, renderer)
    assert renderer.seen == [0, 4, 5, 6, 8, 11]
    fresh = bv.to_uint8(Flickery().render(frames[6].astype(np.float32) / 255.0))
    assert np.array_equal(outs[6], fresh), "the first frame after the cut is its own stylization"
    # frame 7 comes from frames 6 and 8 (the new shot) only: close to the new shot's stylizations
    after = [bv.to_uint8(Flickery().render(f.astype(np.float32) / 255.0)) for f in frames[6:9]]
    before = bv.to_uint8(Flickery().render(frames[5].astype(np.float32) / 255.0))
    assert np.abs(outs[7].astype(float) - after[1]).mean() < np.abs(outs[7].astype(float) - before).mean()


@pytest.mark.parametrize("truncate", [False, True])
def test_resume_gives_the_uninterrupted_video(clip: Path, tmp_path: Path, truncate: bool) -> None:
    whole = tmp_path / "whole.mp4"
    bv.stylize_video(clip, whole, ["x"], renderer=Flickery(), crf=10, keyframes=4)
    out = tmp_path / "out.mp4"
    with pytest.raises(KeyboardInterrupt):  # the third keyframe (frame 8) fails: frames 0..4 are finished
        bv.stylize_video(clip, out, ["x"], renderer=Flickery(fail_at=3), crf=10, keyframes=4)
    cache = tmp_path / f".out.mp4{bv.CACHE_SUFFIX}"
    assert len(list(cache.glob("*.png"))) == 5
    if truncate:  # an interruption between a keyframe's in-between frames: continue from the keyframe before
        (cache / "0000004.png").unlink()
    renderer = Flickery()
    record = bv.stylize_video(clip, out, ["x"], renderer=renderer, crf=10, keyframes=4, resume=True)
    assert record["resumed_frames"] == (1 if truncate else 5)
    assert renderer.calls == (3 if truncate else 2)  # frames 4, 8, 11 or 8, 11
    assert not cache.exists()
    a, b = frames_of(whole), frames_of(out)
    assert len(a) == len(b) == N
    assert max(np.abs(x - y).mean() for x, y in zip(a, b, strict=True)) < 1.0  # grey levels, codec noise only


@pytest.mark.parametrize("value", [0, -1, 2.5, "4", True])
def test_bad_keyframes_in_the_api(clip: Path, tmp_path: Path, value: object) -> None:
    with pytest.raises(InputError, match="keyframes must be a positive whole number"):
        bv.stylize_video(clip, tmp_path / "out.mp4", ["x"], renderer=Flickery(), keyframes=value)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="method optimize"):
        bv.stylize_video(clip, tmp_path / "out.mp4", ["x"], method="optimize", keyframes=2)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--keyframes", "0"], "--keyframes: expected a positive number"),
        (["--keyframes", "-2"], "--keyframes"),
        (["--keyframes", "1.5"], "--keyframes: expected a whole number"),
        (["--keyframes", "two"], "--keyframes: expected a whole number"),
        (["--keyframes", "3", "--method", "optimize"], "keyframes apply to the feed-forward methods"),
    ],
)
def test_bad_keyframes_on_the_cli(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], message: str
) -> None:
    out = tmp_path / "out.mp4"
    try:
        code = main(["video", str(clip), "builtin:0", "-o", str(out), "--quiet", *flags])
    except SystemExit as exc:  # argparse's own one-line error
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert not out.exists()


def test_cli_keyframes(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(bv, "make_renderer", lambda *a, **k: Flickery())
    import json

    out = tmp_path / "out.mp4"
    assert main(["video", str(clip), "builtin:0", "-o", str(out), "--quiet", "--json", "--keyframes", "3"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["keyframes"] == 3 and record["stylized_frames"] == len(_keys(N, 3)) and record["frames"] == N
    assert main(["video", str(clip), "builtin:0", "-o", str(out), "--quiet", "--json", "--consistency", "0"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["keyframes"] == 1 and record["stylized_frames"] == N  # consistency 0: frame by frame
