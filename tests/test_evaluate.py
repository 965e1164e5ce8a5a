"""The metrics of brushwork.evaluate: zero or maximal for identical images, moving the right way for known changes."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from brushwork import draw, evaluate
from brushwork.errors import InputError, ModelUnavailable
from brushwork.samples import SAMPLE_PHOTO, STYLES

SIZE = 192


@pytest.fixture(scope="module")
def photo() -> np.ndarray:
    return evaluate.fit(SAMPLE_PHOTO, SIZE)


@pytest.fixture(scope="module")
def style() -> np.ndarray:
    return evaluate.fit(STYLES["swirls"], SIZE)


@pytest.fixture(scope="module")
def stylized(photo: np.ndarray) -> np.ndarray:
    from brushwork.api import stylize

    image = stylize(photo, [STYLES["swirls"]], method="fast", max_size=SIZE, device="cpu")
    return np.asarray(image, dtype=np.float32) / 255


def test_identical_images_score_perfectly(photo: np.ndarray, style: np.ndarray) -> None:
    assert evaluate.ssim(photo, photo) == pytest.approx(1.0, abs=1e-6)
    assert evaluate.edge_agreement(photo, photo) == pytest.approx(1.0)
    assert evaluate.color_distance(photo, photo) == pytest.approx(0.0, abs=1e-6)
    assert evaluate.content_distance(photo, photo) == pytest.approx(0.0, abs=1e-6)
    assert evaluate.style_code_distance(style, style) == pytest.approx(0.0, abs=1e-5)
    d = evaluate.feature_style_distances(style, style)
    assert d["mean_std"] == pytest.approx(0.0, abs=1e-6) and d["gram"] == pytest.approx(0.0, abs=1e-6)


def test_blur_lowers_content_preservation(photo: np.ndarray) -> None:
    mild, strong = cv2.GaussianBlur(photo, (0, 0), 1.5), cv2.GaussianBlur(photo, (0, 0), 4)
    ssims = [evaluate.ssim(x, photo) for x in (photo, mild, strong)]
    edges = [evaluate.edge_agreement(x, photo) for x in (photo, mild, strong)]
    content = [evaluate.content_distance(x, photo) for x in (photo, mild, strong)]
    assert ssims[0] > ssims[1] > ssims[2]
    assert edges[0] > edges[1] > edges[2]
    assert content[0] < content[1] < content[2]


def test_colour_shift_raises_colour_distance(photo: np.ndarray) -> None:
    small = np.clip(photo * np.array([1.1, 1.0, 0.9], np.float32), 0, 1)
    large = np.clip(photo * np.array([1.3, 1.0, 0.6], np.float32), 0, 1)
    d_small, d_large = evaluate.color_distance(small, photo), evaluate.color_distance(large, photo)
    assert 0.02 < d_small < d_large <= 1.0
    # layout does not matter, only the colours: a mirrored photo has (almost) the same histogram
    assert evaluate.color_distance(photo[:, ::-1].copy(), photo) < 0.01
    # a grey version has lost all chroma: far from the photo
    grey = np.repeat(evaluate.luminance(photo)[..., None], 3, axis=2).astype(np.float32)
    assert evaluate.color_distance(grey, photo) > d_large


def test_histogram_is_a_distribution(photo: np.ndarray) -> None:
    h = evaluate.rgb_uv_histogram(photo)
    assert h.shape == (3, evaluate.HIST_BINS, evaluate.HIST_BINS)
    assert h.min() >= 0 and h.sum() == pytest.approx(1.0)
    black = np.zeros((32, 32, 3), np.float32)  # no intensity anywhere: a uniform histogram, not a division by 0
    assert np.isfinite(evaluate.rgb_uv_histogram(black)).all()


def test_stylized_is_closer_to_its_style_than_the_photo(photo, style, stylized) -> None:
    ev = evaluate.Evaluator(size=SIZE)
    of_result, of_photo = ev(stylized, photo, style), ev(photo, photo, style)
    for name in ("style_code", "mean_std", "gram", "color_style"):
        assert of_result[name] < of_photo[name], name
    for name in ("ssim", "edges"):
        assert of_result[name] < of_photo[name] == pytest.approx(1.0), name
    assert of_result["content"] > of_photo["content"] == pytest.approx(0.0, abs=1e-6)
    # the evaluator's cached work gives what the single functions give
    assert of_result["ssim"] == pytest.approx(evaluate.ssim(stylized, photo, size=SIZE), abs=1e-6)
    assert of_result["style_code"] == pytest.approx(evaluate.style_code_distance(stylized, style), rel=1e-4)
    assert of_result["mean_std"] == pytest.approx(
        evaluate.feature_style_distances(stylized, style, size=SIZE)["mean_std"], rel=1e-3
    )
    assert set(of_result) == set(evaluate.METRICS)


def test_results_of_another_size_are_compared_at_the_photos(photo: np.ndarray) -> None:
    bigger = cv2.resize(photo, (photo.shape[1] * 2, photo.shape[0] * 2), interpolation=cv2.INTER_CUBIC)
    assert evaluate.ssim(bigger, photo) > 0.9


def test_evaluator_rejects_unknown_metrics() -> None:
    with pytest.raises(InputError, match="unknown metric"):
        evaluate.Evaluator(metrics=("ssim", "sharpness"))


def test_lpips_is_optional() -> None:
    status = evaluate.optional_metrics()
    assert set(status) == {"lpips", "artfid"}
    if status["lpips"].startswith("unavailable"):
        with pytest.raises(ModelUnavailable):
            evaluate.lpips_distance(np.zeros((16, 16, 3), np.float32), np.zeros((16, 16, 3), np.float32))


def test_measure_reports_time_and_memory() -> None:
    def allocate() -> int:
        import mmap

        # 64 MB of fresh pages, touched (not the allocator's free memory, which may already be resident), held for
        # many sampling intervals (the sampler sees peaks longer than its interval)
        with mmap.mmap(-1, 64 << 20) as block:
            block.write(b"\1" * (64 << 20))
            time.sleep(0.1)
            return block[12345]

    value, cost = evaluate.measure(allocate)
    assert value > 0 and cost.seconds > 0
    assert cost.peak_mb >= cost.peak_mb - cost.delta_mb > 0
    assert cost.delta_mb > 40


def test_pareto_front_and_recommendation() -> None:
    # (content, -style): both maximised
    points = [(0.9, -5.0), (0.5, -1.0), (0.7, -2.0), (0.6, -3.0), (0.2, -0.5), (0.9, -6.0)]
    front = evaluate.pareto_front(points)
    assert front == [4, 1, 2, 0]  # sorted by content; (0.6, -3) and (0.9, -6) are dominated
    picks = {t: evaluate.recommend(points, t) for t in ("content", "balanced", "style")}
    assert set(picks.values()) <= set(front)
    assert picks["content"] == 0  # the most content kept
    # favouring style never picks less style, favouring content never less content
    assert points[picks["style"]][1] >= points[picks["balanced"]][1] >= points[picks["content"]][1]
    assert points[picks["content"]][0] >= points[picks["balanced"]][0] >= points[picks["style"]][0]
    with pytest.raises(InputError):
        evaluate.recommend(points, "prettiest")


def test_describe_skips_missing_values() -> None:
    d = evaluate.describe([1.0, 3.0, float("nan"), None])  # type: ignore[list-item]
    assert d["n"] == 2 and d["mean"] == pytest.approx(2.0) and d["median"] == pytest.approx(2.0)
    assert evaluate.describe([])["n"] == 0


def test_compare_sheet_and_plots(photo: np.ndarray, style: np.ndarray) -> None:
    rows = [(style, "style", [(photo, "fast\n1.0 s"), (photo, "adain")])] * 2
    sheet = draw.compare_sheet(photo, rows, tile=64)
    assert sheet.dtype == np.float32 and sheet.shape[2] == 3
    assert sheet.shape[1] > 4 * 64 and sheet.shape[0] > 2 * 64  # 4 columns, 2 rows
    with pytest.raises(ValueError):
        draw.compare_sheet(photo, [(style, "s", [(photo, "a")]), (style, "s", [])])
    rows_ = [{"method": m, "ssim": 0.1 * k, "mean_std": 1.0 / (k + 1)} for k in range(6) for m in ("fast", "wct")]
    plot = draw.scatter_plot(rows_, "ssim", "mean_std")
    assert plot.ndim == 3 and plot.shape[2] == 3 and 0 <= plot.min() and plot.max() <= 1
    thumbs = [photo[:32, :32]] * 3
    pareto = draw.pareto_plot([(0.1, 3.0), (0.5, 2.0), (0.9, 4.0)], [0, 1], thumbnails=thumbs, chosen=1)
    assert pareto.shape[0] > 100 and pareto.std() > 0.01
