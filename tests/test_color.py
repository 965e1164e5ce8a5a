"""YCbCr, luminance-only transfer and colour matching."""

from __future__ import annotations

import torch

from brushwork import color


def test_ycbcr_roundtrip_and_known_values() -> None:
    rgb = torch.rand(2, 3, 5, 7)
    assert torch.allclose(color.ycbcr_to_rgb(color.rgb_to_ycbcr(rgb)), rgb, atol=1e-5)
    white = color.rgb_to_ycbcr(torch.ones(1, 3, 1, 1)).flatten()
    assert torch.allclose(white, torch.tensor([1.0, 0.5, 0.5]), atol=1e-5)
    red = color.rgb_to_ycbcr(torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)).flatten()
    assert torch.allclose(red, torch.tensor([0.299, 0.5 - 0.168736, 1.0]), atol=1e-5)
    assert torch.allclose(color.luminance(rgb), color.rgb_to_ycbcr(rgb)[:, :1], atol=1e-6)


def test_combine_luminance_keeps_chroma() -> None:
    content = 0.4 + 0.2 * torch.rand(1, 3, 8, 8)  # mid-range, low saturation: no clipping
    stylized = 0.4 + 0.2 * torch.rand(1, 3, 8, 8)
    out = color.combine_luminance(stylized, content)
    yo, yc, ys = color.rgb_to_ycbcr(out), color.rgb_to_ycbcr(content), color.rgb_to_ycbcr(stylized)
    assert torch.allclose(yo[:, 1:], yc[:, 1:], atol=1e-5)
    assert torch.allclose(yo[:, :1], ys[:, :1], atol=1e-5)


def test_luminance_image_and_match() -> None:
    img = torch.rand(1, 3, 6, 6)
    grey = color.luminance_image(img)
    assert grey.shape == img.shape and torch.equal(grey[:, 0], grey[:, 2])
    style = 0.8 + 0.1 * torch.rand(1, 3, 16, 16)
    content = 0.2 + 0.4 * torch.rand(1, 3, 10, 10)
    y = color.match_luminance(style, content)[:, :1]
    yc = color.luminance(content)
    assert abs(float(y.mean() - yc.mean())) < 1e-3 and abs(float(y.std() - yc.std())) < 1e-3


def test_match_color_matches_mean_and_covariance() -> None:
    g = torch.Generator().manual_seed(0)
    source = 0.4 + 0.1 * torch.randn(1, 3, 32, 32, generator=g)
    mix = torch.tensor([[1.0, 0.3, 0.0], [0.0, 0.5, 0.2], [0.1, 0.0, 0.7]])
    reference = 0.5 + 0.08 * torch.einsum("ij,njhw->nihw", mix, torch.randn(1, 3, 24, 24, generator=g))
    out = color.match_color(source, reference)
    pm, po = reference[0].flatten(1), out[0].flatten(1)
    assert torch.allclose(po.mean(1), pm.mean(1), atol=2e-3)
    assert torch.allclose(torch.cov(po, correction=0), torch.cov(pm, correction=0), atol=2e-4)


def test_match_mean_std_and_histogram() -> None:
    source = torch.rand(1, 3, 10, 10)
    reference = torch.rand(1, 3, 20, 20) ** 2
    out = color.match_mean_std(source, reference)
    assert torch.allclose(out.mean((2, 3)), reference.mean((2, 3)), atol=0.03)
    hist = color.match_histogram(source, reference)
    assert torch.equal(torch.argsort(hist[0, 0].flatten()), torch.argsort(source[0, 0].flatten()))  # order kept
    ref_sorted = torch.sort(reference[0, 1].flatten()).values
    assert abs(float(hist[0, 1].min() - ref_sorted[0])) < 1e-6
    assert abs(float(hist[0, 1].max() - ref_sorted[-1])) < 1e-6
    assert abs(float(hist[0, 1].median() - reference[0, 1].median())) < 0.02
