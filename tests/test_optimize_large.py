"""``method="optimize"`` at large sizes: coarse-to-fine, the finest scale in tiles with global style statistics
(brushwork/methods/optimize_large.py). Small images, small tiles, random-weight MobileNetV2, a few iterations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from brushwork import api, tiling
from brushwork.cli import main
from brushwork.errors import InputError
from brushwork.methods import optimize as opt
from brushwork.methods import optimize_large as ol
from brushwork.nets.backbone import build_backbone

ROOT = Path(__file__).resolve().parents[1]
NET = dict(backbone="mobilenet", weights="random")


def picture(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A smooth colourful H×W×3 float32 test photo (gradients and a disc, a little noise)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(0, 1, h), np.linspace(0, 1, w), indexing="ij")
    disc = (((yy - 0.5) ** 2 + (xx - 0.4) ** 2) < 0.08).astype(np.float32)
    img = np.stack([0.2 + 0.6 * xx, 0.3 + 0.4 * yy, 0.7 - 0.4 * disc], axis=2) + 0.02 * rng.standard_normal((h, w, 3))
    return np.clip(img, 0, 1).astype(np.float32)


def stripes(h: int = 64, w: int = 64) -> np.ndarray:
    yy, xx = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    s = 0.5 + 0.5 * np.sin((xx + yy) * 0.9)
    return np.clip(np.stack([0.9 * s, 0.3 + 0.2 * s, 0.1 + 0.0 * s], axis=2), 0, 1).astype(np.float32)


@pytest.fixture(scope="module")
def tiled_run() -> tuple[np.ndarray, list[api.Progress]]:
    events: list[api.Progress] = []
    halo, ol.HALO = ol.HALO, 32  # a smaller context than the default 64 px keeps the test fast
    try:
        out = api.stylize_picture(picture(64, 128), stripes(), method="optimize", max_size=None, tile=32,
                                  iterations=2, tile_iterations=6, init="content", progress=events.append,
                                  **NET)  # fmt: skip
    finally:
        ol.HALO = halo
    return out.rgb, events


def test_tiled_optimize_runs_at_the_requested_size_with_tile_events(tiled_run) -> None:
    rgb, events = tiled_run
    assert rgb.shape == (64, 128, 3) and rgb.dtype == np.uint16  # tiled results: 16-bit pixels for a float photo
    tile_events = [e for e in events if e.message.startswith("tile")]
    n_tiles = 2 * 4 + 3 * 5  # 64×128 in 32 px centres; the second pass's grid is shifted by 16 px
    assert len(tile_events) == n_tiles  # 6 iterations per tile = 2 passes (5 + 1)
    steps = [e.step for e in events]
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert all(e.total == 2 + n_tiles for e in events)
    assert "(32 px)" in tile_events[0].message and "pass 2/2" in tile_events[-1].message
    assert all({"content", "style", "tv", "total"} <= set(e.losses) for e in tile_events)


def test_global_style_loss_falls_over_the_tiles(tiled_run) -> None:
    _, events = tiled_run
    tile_events = [e for e in events if e.message.startswith("tile")]
    first, last = tile_events[0].losses, tile_events[-1].losses
    assert last["style"] < 0.8 * first["style"]
    assert np.isfinite(last["total"])


def test_no_seams_along_tile_borders(tiled_run) -> None:
    rgb, _ = tiled_run
    border, inside, ratio = ol.seam_energy(rgb, 32)  # the first pass's borders (the second's are 16 px off)
    assert inside > 0 and ratio < 1.3, (border, inside)


def test_seam_energy_sees_a_seam() -> None:
    img = picture(64, 64)
    seamy = img.copy()
    seamy[:, 32:] = np.clip(seamy[:, 32:] + 0.2, 0, 1)
    assert ol.seam_energy(seamy, 32)[2] > 3 * ol.seam_energy(img, 32)[2]


@pytest.mark.parametrize("kind", ["gram", "mean_std", "w2"])
def test_statistics_from_sums_equal_the_whole_image_statistics(kind: str) -> None:
    f = torch.rand(1, 8, 9, 11, dtype=torch.float64)
    whole = opt._stats(kind, f)
    from_sums = ol._stats_from_sums(kind, ol._sums(kind, f[..., :4, :]).detach() + ol._sums(kind, f[..., 4:, :]))
    for a, b in zip(whole, from_sums, strict=True):
        torch.testing.assert_close(a.reshape(b.shape), b, rtol=1e-6, atol=1e-6)


def test_tiled_statistics_equal_the_whole_image_at_odd_sizes() -> None:
    """Tiles see the whole image's stride-2 phases (SAME padding) even when the size is no multiple of the stride."""
    net = build_backbone("mobilenet", "random", seed=0)
    layers = list(net.style_layers)
    strides = ol._strides(net, layers, torch.device("cpu"))
    rgb = np.random.default_rng(0).random((75, 101, 3), dtype=np.float32)  # high frequencies, as optimised images
    with torch.no_grad():
        whole = net(ol._tensor(rgb, torch.device("cpu")), layers)
    tiled = ol.statistics_pass(net, "gram", tiling.ArraySource(rgb), ol._tiles((75, 101), 32, 128), layers, strides,
                               torch.device("cpu"))  # fmt: skip
    for n in layers:
        a = opt._stats("gram", net.style_transform(whole[n]))[0][0].double()
        b = tiled[n].second / tiled[n].count
        assert float((a - b).norm() / a.norm()) < 1e-4, n


def test_one_tile_objective_equals_the_untiled_objective() -> None:
    """With one tile covering the image, the tile objective (global sums, global normalisations) is the untiled
    objective: same terms, same gradient."""
    net = build_backbone("mobilenet", "random", seed=0)
    content = ol._tensor(picture(64, 96), torch.device("cpu"))
    style = ol._tensor(stripes(), torch.device("cpu"))
    x0 = ol._tensor(picture(64, 96, seed=3), torch.device("cpu"))
    c_layers, s_layers = list(net.content_layers), dict(net.style_layers)
    weights = {"content": 1.0, "style": 1e4, "tv": 100.0}
    whole = opt._Objective(net, "gram", content, [style], [1.0], c_layers, s_layers, weights, None, False)
    layers = [*c_layers, *s_layers]
    strides = ol._strides(net, layers, torch.device("cpu"))
    tiles = ol._tiles((64, 96), 128, 64)
    src, canvas = tiling.ArraySource(picture(64, 96)), tiling.ArraySource(picture(64, 96, seed=3))
    c_sums = ol.statistics_pass(net, "mean_std", src, tiles, c_layers, strides, torch.device("cpu"), transform=False)
    norm = {n: c_sums[n].count * c_sums[n].first.shape[0] * ol._content_scale(c_sums[n], c_sums[n].first.shape[0])
            for n in c_layers}  # fmt: skip
    targets = {n: whole.style[n][0] for n in s_layers}
    g_sums = ol.statistics_pass(net, "gram", canvas, tiles, list(s_layers), strides, torch.device("cpu"))
    start = ol.whole_terms(net, canvas, src, tiles, c_layers, norm, strides, torch.device("cpu"))
    with torch.no_grad():
        c_feats = {n: f for n, f in net(content, c_layers).items()}
    tile = ol.TileObjective(net, "gram", tiles[0], x0, c_feats, norm, s_layers, targets, g_sums, weights,
                            (3.0 * 63 * 96, 3.0 * 64 * 95), start, False)  # fmt: skip
    xa = x0.clone().requires_grad_(True)
    ta, va = whole(xa)
    ta.backward()
    xb = x0.clone().requires_grad_(True)
    tb, vb = tile(xb)
    tb.backward()
    for k in ("content", "style", "tv"):
        assert vb[k] == pytest.approx(va[k], rel=1e-3), k
    torch.testing.assert_close(xb.grad, xa.grad, rtol=1e-3, atol=1e-3 * float(xa.grad.abs().max()))
    # streamed over 32 px tiles, the whole image's terms stay those of the untiled objective
    small = ol._tiles((64, 96), 32, 64)
    streamed = ol.whole_terms(net, canvas, src, small, c_layers, norm, strides, torch.device("cpu"))
    assert streamed["tv"] * weights["tv"] == pytest.approx(va["tv"], rel=1e-4)
    assert streamed["content"] * weights["content"] == pytest.approx(va["content"], rel=1e-2)
    sums = ol.statistics_pass(net, "gram", canvas, small, list(s_layers), strides, torch.device("cpu"))
    style = sum(lw * float(ol._style_value("gram", ol._stats_from_sums("gram", sums[n]), targets[n]))
                for n, lw in s_layers.items())  # fmt: skip
    assert style * weights["style"] == pytest.approx(va["style"], rel=1e-2)


def test_the_api_decides_to_tile_by_the_budget() -> None:
    small = api.renderer(stripes(), method="optimize", **NET)
    assert not small._tiled(api.io.Picture(rgb=picture(384, 512)))  # 512 px: the default stays untiled
    big = api.renderer(stripes(), method="optimize", max_size=None, **NET)
    assert big._tiled(api.io.Picture(rgb=np.zeros((1536, 2048, 3), np.float32)))
    assert not api.renderer(stripes(), method="optimize", max_size=None, tile=0, **NET)._tiled(
        api.io.Picture(rgb=np.zeros((1536, 2048, 3), np.float32))
    )
    roomy = api.renderer(stripes(), method="optimize", max_size=None, memory_budget="16GB", **NET)
    assert not roomy._tiled(api.io.Picture(rgb=np.zeros((1536, 2048, 3), np.float32)))
    # the plan follows the budget: bigger tiles and a bigger coarse scale with more memory, never above half size
    gb = tiling.parse_bytes("1GB")
    assert ol.tile_side(2 * gb, 0, 64, 16, None) > ol.tile_side(gb, 0, 64, 16, None) >= 32
    assert ol.tile_side(gb, 0, 64, 16, 100) == 112
    assert ol.coarse_longer((2160, 3840), 4 * gb, 0) > ol.coarse_longer((2160, 3840), gb, 0)
    assert ol.coarse_longer((600, 800), 64 * gb, 0) == 400


def test_errors_are_one_line() -> None:
    with pytest.raises(InputError, match="no mask with several styles"):
        api.stylize_picture(picture(64, 64), [stripes(), stripes()[::-1]], method="optimize", tile=32,
                            mask=[picture(64, 64)[..., 0], 1 - picture(64, 64)[..., 0]], max_size=None,
                            iterations=1, **NET)  # fmt: skip
    with pytest.raises(InputError, match="tile iterations"):
        api.stylize_picture(picture(64, 64), stripes(), method="optimize", tile=32, tile_iterations=-1, **NET)
    with pytest.raises(InputError, match="tile must be"):
        api.stylize_picture(picture(64, 64), stripes(), method="optimize", tile=8, **NET)
    with pytest.raises(InputError, match="memory budget"):
        api.stylize_picture(picture(64, 64), stripes(), method="optimize", memory_budget="lots", **NET)


def test_cli_tile_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from brushwork import io

    io.save_image(picture(64, 96), tmp_path / "c.png")
    io.save_image(stripes(), tmp_path / "s.png")
    out = tmp_path / "o.png"
    args = ["optimize", str(tmp_path / "c.png"), str(tmp_path / "s.png"), "-o", str(out), "--backbone", "mobilenet",
            "--weights", "random", "--init", "content", "--iterations", "1", "-q"]  # fmt: skip
    assert main([*args, "--tile", "8"]) == 2 and not out.exists()
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert main([*args, "--tile", "32", "--tile-iterations", "1"]) == 0
    assert io.load_image(out).rgb.shape == (64, 96, 3)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmHWM from /proc")
def test_peak_memory_stays_under_the_budget(tmp_path: Path) -> None:
    """In a fresh process, a 1200×800 optimisation with a 640 MB budget tiles automatically and peaks under it.
    The peak is the child's own VmHWM: ru_maxrss would report the forking test process's size, kept across exec."""
    code = (
        "import json, numpy as np; from brushwork import api; from tests.test_optimize_large import "
        "picture, stripes; ev = []; out = api.stylize_picture(picture(800, 1200), stripes(), method='optimize', "
        "max_size=None, memory_budget='640MB', iterations=1, tile_iterations=1, init='content', backbone="
        "'mobilenet', weights='random', progress=ev.append); print(json.dumps({'peak': 1024 * next(int(l.split()[1]) "
        "for l in open('/proc/self/status') if l.startswith('VmHWM')), 'shape': out.rgb.shape, "
        "'tiles': sum(e.message.startswith('tile') for e in ev)}))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert tuple(result["shape"]) == (800, 1200, 3) and result["tiles"] > 1
    assert result["peak"] < tiling.parse_bytes("640MB"), result


def test_microast_start_image_untiled_and_tiled() -> None:
    for tile in (0, 32):
        out = api.stylize_picture(picture(64, 96), stripes(), method="optimize", max_size=None, tile=tile,
                                  init="microast", iterations=1, tile_iterations=1, **NET)  # fmt: skip
        assert out.rgb.shape == (64, 96, 3)
