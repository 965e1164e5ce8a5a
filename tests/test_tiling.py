"""Tiled rendering equals untiled rendering (every method and option), in bounded memory."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from brushwork import api, io, samples, tiling
from brushwork.cli import main
from brushwork.errors import InputError

STYLE = str(samples.STYLES["swirls"])
STYLE2 = str(samples.STYLES["ink"])


def render(photo: np.ndarray, styles: list, tile: int, **options: object) -> np.ndarray:
    if options.get("method", "fast") == "fast":
        options.setdefault("runtime", "torch")  # segments in PyTorch: no ONNX export per test session
    return api.stylize_picture(photo, styles, tile=tile, **options).rgb


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return (io.resize(io.load_image(samples.SAMPLE_PHOTO).rgb, (101, 67)) * 255 + 0.5).astype(np.uint8)  # odd size


def as_float(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32) / (65535.0 if a.dtype == np.uint16 else 255.0) if a.dtype != np.float32 else a


def assert_same(untiled: np.ndarray, tiled: np.ndarray) -> None:
    """Equal up to float rounding and the 8-bit output's quantisation (half a level)."""
    d = np.abs(as_float(untiled) - as_float(tiled))
    assert untiled.shape == tiled.shape
    assert d.max() <= 0.6 / 255 and d.mean() < 0.3 / 255, (d.max() * 255, d.mean() * 255)


# -- pieces ---------------------------------------------------------------------------------------------------


def test_parse_bytes_and_tile() -> None:
    assert tiling.parse_bytes("1GB") == 2**30
    assert tiling.parse_bytes("512MB") == 512 * 2**20
    assert tiling.parse_bytes("2.5g") == int(2.5 * 2**30)
    assert tiling.parse_bytes(100_000_000) == 100_000_000
    for bad in ("lots", "1XB", "-1GB", "10MB"):
        with pytest.raises(InputError):
            tiling.parse_bytes(bad)
    assert tiling.check_tile(None) is None and tiling.check_tile(0) == 0 and tiling.check_tile(64) == 64
    for bad in (5, -1, 2.5):
        with pytest.raises(InputError):
            tiling.check_tile(bad)


@pytest.mark.parametrize("size", [(40, 31), (260, 170), (97, 64)])
def test_resized_source_equals_io_resize(size: tuple[int, int]) -> None:
    rgb = np.random.default_rng(1).random((64, 97, 3), dtype=np.float32)
    whole = io.resize(rgb, size)
    src = tiling.Resized(tiling.ArraySource(rgb), size)
    tiled = np.concatenate([src.read(y, min(size[1], y + 13), 0, size[0]) for y in range(0, size[1], 13)])
    np.testing.assert_allclose(tiled, whole, atol=2e-6)


def test_padded_source_reflects_like_numpy() -> None:
    a = np.random.default_rng(2).integers(0, 256, (7, 5, 3), dtype=np.uint8)
    padded = tiling.Padded(tiling.ArraySource(a), (12, 8))
    np.testing.assert_allclose(
        padded.read(3, 12, 0, 8), np.pad(a, ((0, 5), (0, 3), (0, 0)), mode="reflect")[3:].astype(np.float32) / 255
    )


def test_jobs_behind_run_in_order_and_raise_their_errors() -> None:
    done: list[int] = []
    with tiling.Behind() as behind:
        for i in range(5):
            behind.submit(done.append, i)
    assert done == [0, 1, 2, 3, 4]

    def fail(message: str) -> None:
        raise OSError(message)

    with pytest.raises(OSError, match="disk full"), tiling.Behind() as behind:
        behind.submit(fail, "disk full")  # raised when the block ends
    with pytest.raises(KeyError), tiling.Behind() as behind:  # the block's own error is not hidden by a job's
        behind.submit(fail, "later")
        raise KeyError("first")


def test_moments_combine_over_tiles() -> None:
    x = np.random.default_rng(3).normal(2.0, 3.0, (4, 50, 70)).astype(np.float32)
    m = tiling.Moments(4)
    for y0, y1, x0, x1 in tiling.tiles(50, 70, 16):
        m.add(x[:, y0:y1, x0:x1])
    np.testing.assert_allclose(m.mean, x.mean(axis=(1, 2), dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(m.var, x.astype(np.float64).var(axis=(1, 2)), rtol=1e-6)


# -- the fast path --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("styles", "options"),
    [
        (["builtin:3", "builtin:17"], {"style_weights": [0.3, 0.7], "preserve_color": True}),
        ([STYLE, STYLE2], {"strength": 0.5, "stroke_scale": 1.5}),
        (["builtin:9"], {"stroke_scale": 0.7, "mask": "half"}),
        ([STYLE, STYLE2], {"mask": "half"}),
        ([STYLE, STYLE2], {"method": "adain", "mask": "half", "color_match": True}),
        ([STYLE, STYLE2], {"method": "wct", "style_weights": [0.3, 0.7], "strength": 0.7}),
        ([STYLE, STYLE2], {"method": "microast", "style_weights": [0.3, 0.7], "strength": 0.6}),
        ([STYLE, STYLE2], {"method": "microast", "mask": "half", "stroke_scale": 0.7}),
        ([STYLE], {"method": "microast", "mask": "half", "stroke_scale": 1.5, "preserve_color": True}),
    ],
)
def test_tiled_equals_untiled(photo: np.ndarray, styles: list[str], options: dict) -> None:
    if options.get("mask") == "half":
        m = np.zeros(photo.shape[:2], np.uint8)
        m[:, :45] = 255
        m[20:40, 60:90] = 128
        options["mask"] = m
    untiled = render(photo, styles, 0, **options)
    tiled = render(photo, styles, 32, **options)
    assert untiled.dtype == np.float32 and tiled.dtype == np.uint8
    assert_same(untiled, tiled)


def test_microast_recomputes_states_that_do_not_fit(photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    from brushwork.methods import microast_tiled

    m = np.zeros(photo.shape[:2], np.uint8)
    m[10:50, 30:] = 255
    options = {"method": "microast", "mask": m}
    untiled = render(photo, [STYLE2, STYLE], 0, **options)
    monkeypatch.setattr(microast_tiled, "STATE_BYTES_PER_PIXEL", 1e9)  # no state fits: every pass from the image
    counts = []
    real = microast_tiled.render_tiled
    monkeypatch.setattr(microast_tiled, "render_tiled", lambda *a: counts.append(real(*a)) or counts[-1])
    assert_same(untiled, render(photo, [STYLE2, STYLE], 24, **options))
    assert counts and counts[0]["stored"] == 0 and counts[0]["passes"] == 3


def test_float16_states_when_float32_ones_do_not_fit(photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    # the quarter-resolution maps of dumoulin-26 for this photo (68×104 padded): 32 channels, float32
    q = 32 * (68 // 4) * (104 // 4) * 4
    counts = []
    real = tiling.run_staged

    def staged(*args: object) -> dict:
        counts.append(real(*args))
        return counts[-1]

    # room for 2.2 float32 maps at 85 %, not four: float16 states (two maps' worth) instead of recomputing
    monkeypatch.setattr(
        tiling, "plan", lambda net, budget, tile, fixed: tiling.Plan(2**24, 0, tile, int(2.2 * q / 0.85))
    )
    monkeypatch.setattr(tiling, "run_staged", staged)
    untiled = render(photo, ["builtin:7"], 0)
    tiled = render(photo, ["builtin:7"], 32)
    assert counts and counts[0]["stored"] >= 12, counts  # every residual state stored, in float16
    d = np.abs(as_float(untiled) - as_float(tiled))
    assert d.mean() < 0.3 / 255 and d.max() <= 2.5 / 255, (d.mean() * 255, d.max() * 255)


def test_spilled_map_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=(3, 11, 7)).astype(np.float16)
    m = tiling.SpilledMap((3, 11, 7), str(tmp_path))
    for y0, y1 in ((4, 9), (0, 4), (9, 11)):  # bands of whole rows, in any order
        m.write(y0, 0, values[:, y0:y1])
    for y0, y1 in ((0, 11), (2, 10), (5, 6), (8, 11)):
        np.testing.assert_array_equal(m.read(y0, y1, 0, 7), values[:, y0:y1])
    with pytest.raises(ValueError):
        m.write(0, 2, values[:, :2, 2:])  # part of the rows
    with pytest.raises(ValueError):
        m.read(0, 3, 1, 5)
    m.close()
    assert not list(tmp_path.iterdir())  # an unlinked file: nothing left behind


def _staged_counts(monkeypatch: pytest.MonkeyPatch, tile_bytes: int, free: int) -> list[dict]:
    """Record run_staged's counters, with a plan of ``tile_bytes`` for tiles and ``free`` bytes in all."""
    counts: list[dict] = []
    real = tiling.run_staged
    monkeypatch.setattr(tiling, "run_staged", lambda *a: counts.append(real(*a)) or counts[-1])
    monkeypatch.setattr(
        tiling, "plan", lambda net, budget, tile, fixed: tiling.Plan(tile_bytes, 0, tile, free, spill=tile is None)
    )
    return counts


@pytest.mark.parametrize("runtime", ["torch", pytest.param("onnxruntime", marks=pytest.mark.slow)])
def test_states_that_do_not_fit_spill_to_a_scratch_file(
    photo: np.ndarray, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, runtime: str
) -> None:
    untiled = render(photo, ["builtin:3"], 0, runtime=runtime)
    monkeypatch.setenv("BRUSHWORK_SCRATCH", str(tmp_path))
    counts = _staged_counts(monkeypatch, 2**19, 2**19)  # no room for any state in memory, small bands
    tiled = render(photo, ["builtin:3"], None, runtime=runtime, memory_budget="64MB", max_size=None)
    c = counts[0]
    # every state kept but those that only the next pass reads (it recomputes them: cheaper than the file)
    assert c["spilled"] >= 3 and c["stored"] >= tiling.DUMOULIN.norms - 2, c
    assert c["passes"] == tiling.DUMOULIN.norms + 1 and c["tiles"] > c["passes"] + 10, c  # several bands
    d = np.abs(as_float(untiled) - as_float(tiled))  # float16 states
    assert d.mean() < 0.3 / 255 and d.max() <= 2.5 / 255, (d.mean() * 255, d.max() * 255)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("next_state", ["in memory", "in a file"])
def test_a_state_only_the_next_pass_reads_is_recomputed_not_spilled(
    photo: np.ndarray, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, next_state: str
) -> None:
    monkeypatch.setenv("BRUSHWORK_SCRATCH", str(tmp_path))
    spilled: list[tuple[int, int, int]] = []
    real = tiling.SpilledMap.__init__

    def record(self: tiling.SpilledMap, shape: tuple[int, int, int], folder: str) -> None:
        spilled.append(shape)
        real(self, shape, folder)

    monkeypatch.setattr(tiling.SpilledMap, "__init__", record)
    # room in memory for the half-resolution state (32 × 34 × 52 floats) or not, never for the first convolution's
    # (32 × 68 × 104)
    maps = 300_000 if next_state == "in memory" else 150_000
    monkeypatch.setattr(tiling, "plan", lambda net, budget, tile, fixed: tiling.Plan(2**19, maps, tile, 2**20))
    untiled = render(photo, ["builtin:3"], 0)
    tiled = render(photo, ["builtin:3"], None, memory_budget="64MB", max_size=None)
    assert (32, 68, 104) not in spilled, spilled  # the second pass computes the first convolution again
    assert ((32, 34, 52) in spilled) == (next_state == "in a file"), spilled
    d = np.abs(as_float(untiled) - as_float(tiled))  # float16 where a state went to the file
    assert d.mean() < 0.3 / 255 and d.max() <= (0.6 if next_state == "in memory" else 2.5) / 255, d.max() * 255


@pytest.mark.slow
def test_onnxruntime_recomputes_states_from_the_moments_alone(
    photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    # passes that keep no state fetch only the sums from onnxruntime (the outputs stay in the runtime)
    from brushwork.methods import fast

    untiled = render(photo, ["builtin:3"], 0, runtime="onnxruntime")
    monkeypatch.setenv("BRUSHWORK_SCRATCH", "none")
    counts = _staged_counts(monkeypatch, 2**21, 2**21)
    sums_only: list[bool] = []
    real = fast._Segments.__call__

    def spy(self: fast._Segments, *args: object, maps: bool = True) -> list[np.ndarray]:
        out = real(self, *args, maps=maps)
        if not maps:
            sums_only.append(len(out) == 2 and out[0].shape == out[1].shape)
        return out

    monkeypatch.setattr(fast._Segments, "__call__", spy)
    tiled = render(photo, ["builtin:3"], None, runtime="onnxruntime", memory_budget="64MB", max_size=None)
    assert counts[0]["spilled"] == 0 and counts[0]["stored"] < tiling.DUMOULIN.norms, counts
    assert sums_only and all(sums_only)
    assert_same(untiled, tiled)


@pytest.mark.parametrize(("height", "width", "k"), [(37, 52, 9), (68, 104, 9), (16, 21, 3), (9, 40, 5)])
def test_convolution_moments_from_the_spectrum_equal_the_direct_ones(height: int, width: int, k: int) -> None:
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(k)
    image = rng.random((height, width, 3), dtype=np.float32) * 0.8 + 0.1
    weight = rng.normal(size=(6, 3, k, k)).astype(np.float32) + 0.05  # outputs with a mean far from zero
    pad = k // 2

    def direct(a: np.ndarray, box: tuple[int, int, int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        y = F.conv2d(torch.from_numpy(np.ascontiguousarray(a))[None], torch.from_numpy(weight))[0].double()
        return y.sum((1, 2)).numpy(), y.square().sum((1, 2)).numpy()

    moments = tiling.conv_moments(tiling.ArraySource(image), weight, direct)
    padded = np.pad(image.transpose(2, 0, 1), ((0, 0), (pad, pad), (pad, pad)), mode="reflect")
    first, second = direct(padded)
    n = height * width
    mean, var = first / n, second / n - (first / n) ** 2
    np.testing.assert_allclose(moments.mean, mean, rtol=1e-5, atol=1e-5 * np.abs(mean).max())
    np.testing.assert_allclose(moments.var, var, rtol=1e-4)
    assert moments.n == n


@pytest.mark.parametrize("runtime", ["torch", pytest.param("onnxruntime", marks=pytest.mark.slow)])
def test_the_first_statistics_come_from_the_spectrum_where_it_fits(
    photo: np.ndarray, monkeypatch: pytest.MonkeyPatch, runtime: str
) -> None:
    untiled = render(photo, ["builtin:3"], 0, runtime=runtime)
    counts: list[dict] = []
    real = tiling.run_staged
    monkeypatch.setattr(tiling, "run_staged", lambda *a: counts.append(real(*a)) or counts[-1])
    # room for the half-resolution state, not for the first convolution's (recomputed by the second pass)
    monkeypatch.setattr(
        tiling, "plan", lambda net, budget, tile, fixed: tiling.Plan(2**19, 300_000, tile, 2**21, whole=True)
    )
    tiled = render(photo, ["builtin:3"], None, runtime=runtime, memory_budget="64MB", max_size=None)
    c = counts[0]
    assert c["spectral"] == 1 and c["passes"] == tiling.DUMOULIN.norms + 1, c
    assert_same(untiled, tiled)


@pytest.mark.parametrize(
    ("style", "runtime"),
    [
        ("builtin:3", "torch"),
        (STYLE, "torch"),
        pytest.param("builtin:3", "onnxruntime", marks=pytest.mark.slow),
        pytest.param(STYLE, "onnxruntime", marks=pytest.mark.slow),
    ],
)
def test_the_residual_blocks_run_whole_where_they_fit(
    photo: np.ndarray, monkeypatch: pytest.MonkeyPatch, style: str, runtime: str
) -> None:
    # the lowest-resolution steps over the whole map in one run, their instance norms inside it; tiles elsewhere
    untiled = render(photo, [style], 0, runtime=runtime)
    counts: list[dict] = []
    real = tiling.run_staged
    monkeypatch.setattr(tiling, "run_staged", lambda *a: counts.append(real(*a)) or counts[-1])
    monkeypatch.setattr(
        tiling, "plan", lambda net, budget, tile, fixed: tiling.Plan(2**17, 2**22, tile, 2**23, whole=tile is None)
    )
    tiled = render(photo, [style], None, runtime=runtime, memory_budget="64MB", max_size=None)
    net = tiling.DUMOULIN if style.startswith("builtin") else tiling.GHIASI
    a, b = net.native
    c = counts[0]
    assert c["native"] == 1 and c["passes"] == net.norms + 1 and c["tiles"] > 2 * (net.norms - (b - a)), c
    assert_same(untiled, tiled)


def test_the_residual_blocks_stay_tiled_where_a_whole_run_does_not_fit(
    photo: np.ndarray, monkeypatch: pytest.MonkeyPatch
) -> None:
    untiled = render(photo, ["builtin:3"], 0)
    counts: list[dict] = []
    real = tiling.run_staged
    monkeypatch.setattr(tiling, "run_staged", lambda *a: counts.append(real(*a)) or counts[-1])
    held = 32 * (68 // 4) * (104 // 4) * 4  # the state before the residual blocks: one quarter-resolution map
    free = int((held * (1 + tiling.NATIVE_WORK)) / 0.9)  # room for the run's temporaries, not for its output
    monkeypatch.setattr(
        tiling, "plan", lambda net, budget, tile, fixed: tiling.Plan(2**17, 2**22, tile, free, whole=True)
    )
    tiled = render(photo, ["builtin:3"], None, memory_budget="64MB", max_size=None)
    assert counts[0]["native"] == 0 and counts[0]["passes"] == tiling.DUMOULIN.norms + 1, counts
    assert_same(untiled, tiled)


@pytest.mark.parametrize("case", ["no scratch", "not a folder", "float16 range", "full disk"])
def test_states_that_cannot_spill_are_recomputed(
    photo: np.ndarray, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, case: str
) -> None:
    untiled = render(photo, ["builtin:3"], 0)
    monkeypatch.setenv("BRUSHWORK_SCRATCH", "none" if case == "no scratch" else str(tmp_path))
    if case == "not a folder":
        monkeypatch.setenv("BRUSHWORK_SCRATCH", str(samples.SAMPLE_PHOTO))  # a file: spilling is skipped
    if case == "float16 range":
        monkeypatch.setattr(tiling, "F16_MAX", 1e-3)  # every value "too large" for float16
    if case == "full disk":

        def full(*args: object) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(tiling.os, "pwritev", full)
    counts = _staged_counts(monkeypatch, 2**21, 2**21)
    tiled = render(photo, ["builtin:3"], None, memory_budget="64MB", max_size=None)
    assert counts[0]["spilled"] == 0 and counts[0]["passes"] == tiling.DUMOULIN.norms + 1, counts
    assert_same(untiled, tiled)  # float32 throughout, recomputed from the last state kept
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("method", "passes"), [("fast", 19), ("microast", 3), ("adain", 2)])
def test_tiled_rendering_reports_each_pass(photo: np.ndarray, method: str, passes: int) -> None:
    events: list[api.Progress] = []
    options = {"runtime": "torch"} if method == "fast" else {}
    style = "builtin:3" if method == "fast" else STYLE  # the 26-style network: 18 normalisations
    api.stylize_picture(photo, [style], method=method, tile=48, progress=events.append, **options)
    tiles = [e for e in events if e.stage == "tiles"]
    assert [e.step for e in tiles] == list(range(1, passes + 1)), [(e.step, e.message) for e in tiles]
    assert all(e.total == passes for e in tiles) and tiles[-1].message == "render"


def test_the_shared_arena_is_kept_while_tiles_keep_shape(photo: np.ndarray, monkeypatch: pytest.MonkeyPatch) -> None:
    # onnxruntime's arena outlives a pass (fast._shared_arena); it is shrunk only where the tiles change shape
    # (another resolution) and at the end, not after each of the 19 passes
    from brushwork.methods import fast

    calls: list[int] = []
    monkeypatch.setattr(fast._Segments, "shrink", lambda self: calls.append(1))
    events: list[api.Progress] = []
    render(photo, ["builtin:3"], 48, progress=events.append)
    passes = sum(e.stage == "tiles" for e in events)
    assert passes == 19 and 3 <= len(calls) <= 9, len(calls)


@pytest.mark.slow
def test_shrinking_the_shared_arena_hands_memory_back() -> None:
    from brushwork.methods import fast

    def resident() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * 4096

    segments = fast._Segments("onnxruntime", "cpu")
    state = np.random.default_rng(0).random((1, 32, 384, 384), dtype=np.float32)
    affines = [np.ones(32, np.float32), np.zeros(32, np.float32)]
    out = segments("dumoulin-26", 4, 5, [state, state], affines, (0, 384, 0, 384))
    assert out[0].shape == state.shape
    del out
    grown = resident()
    segments.release()  # drops the session and shrinks the arena
    assert fast._ARENA == [True] and resident() < grown - 20 * 2**20, (grown, resident())


@pytest.mark.parametrize("method", ["fast", "microast"])
def test_integer_pictures_render_untiled_as_floats(photo: np.ndarray, method: str) -> None:
    picture = io.Picture(rgb=photo, alpha=None, path=None, bit_depth=8)  # as io.load_pixels gives (uint8)
    assert_same(render(photo, [STYLE], 0, method=method), render(picture, [STYLE], 0, method=method))


def test_tile_larger_than_the_image_and_max_size(photo: np.ndarray) -> None:
    untiled = render(photo, ["builtin:1"], 0, max_size=80)
    tiled = render(photo, ["builtin:1"], 4096, max_size=80)
    assert tiled.shape == (53, 80, 3)
    assert_same(untiled, tiled)


def test_tiling_is_automatic_above_the_budget(photo: np.ndarray) -> None:
    big = np.ascontiguousarray(np.tile(photo, (9, 9, 1)))  # 909×603: ~170 MB untiled
    assert render(big, ["builtin:2"], None, memory_budget="180MB", max_size=None).dtype == np.uint8  # tiled
    assert render(photo, ["builtin:2"], None).dtype == np.float32  # well within the default budget: untiled
    with pytest.raises(InputError):
        render(photo, ["builtin:2"], 8)
    with pytest.raises(InputError):
        render(photo, ["builtin:2"], None, memory_budget="lots")


@pytest.mark.slow
def test_onnxruntime_segments_equal_untiled(photo: np.ndarray) -> None:
    # segments exported to ONNX (once per session home) and run in onnxruntime
    untiled = render(photo, ["builtin:4"], 0, runtime="onnxruntime")
    assert_same(untiled, render(photo, ["builtin:4"], 48, runtime="onnxruntime"))


# -- memory and the command line ------------------------------------------------------------------------------

_CHILD = """
import json, sys
from brushwork import api, io
picture = api.stylize_picture(sys.argv[1], ["builtin:6"], max_size=None, tile=None if sys.argv[2] == "auto"
    else int(sys.argv[2]), memory_budget=sys.argv[3], runtime="onnxruntime")
io.save_image(picture, sys.argv[4])
# VmHWM: this program's own peak (ru_maxrss would report the forking parent's size, kept across exec)
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM"))
print(json.dumps({"peak_mb": peak / 1024, "torch": "torch" in sys.modules}))
"""


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_peak_memory_stays_under_the_budget(tmp_path: Path) -> None:
    photo = io.resize(io.load_image(samples.SAMPLE_PHOTO).rgb, (1400, 933))
    path = tmp_path / "big.jpg"
    Image.fromarray((photo * 255 + 0.5).astype(np.uint8)).save(path)
    for tile in (0, 32, None):  # export the networks first (the children must not import torch to export them)
        api.stylize_picture(path, ["builtin:6"], max_size=None, tile=tile, memory_budget="320MB", runtime="onnxruntime")

    def peak(tile: str, budget: str) -> float:
        cmd = [sys.executable, "-c", _CHILD, str(path), tile, budget, str(tmp_path / "out.png")]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        record = json.loads(out.stdout.strip().splitlines()[-1])
        assert not record["torch"]  # the exports are cached: the fast path runs without torch
        return record["peak_mb"]

    untiled = peak("0", "1GB")
    tiled = peak("auto", "320MB")
    assert tiled < 320, tiled
    assert untiled > tiled + 100, (untiled, tiled)
    assert Image.open(tmp_path / "out.png").size == (1400, 933)


def test_cli_tile_and_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "p.png"
    Image.fromarray(
        np.ascontiguousarray(np.tile(np.arange(0, 250, 5, dtype=np.uint8)[None, :, None], (40, 1, 3)))
    ).save(src)
    out = tmp_path / "o.png"
    assert main(["stylize", str(src), "builtin:0", "-o", str(out), "--tile", "32", "--runtime", "torch"]) == 0
    assert Image.open(out).size == (50, 40)
    capsys.readouterr()
    for flags in (["--tile", "5"], ["--memory-budget", "lots"]):
        assert main(["stylize", str(src), "builtin:0", "-o", str(tmp_path / "x.png"), *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "Traceback" not in err
        assert not (tmp_path / "x.png").exists()


def test_load_pixels_keeps_integers(tmp_path: Path) -> None:
    a = np.random.default_rng(4).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    Image.fromarray(a, "RGBA").save(tmp_path / "a.png")
    picture = io.load_pixels(tmp_path / "a.png")
    assert picture.rgb.dtype == np.uint8 and picture.alpha.dtype == np.uint8
    np.testing.assert_array_equal(picture.rgb, a[..., :3])
    io.save_image(picture, tmp_path / "b.png")
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "b.png")), a)
    assert io.image_size(tmp_path / "a.png") == (40, 30)
