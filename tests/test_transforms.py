"""The feature transforms match their definitions: AdaIN statistics, WCT covariance, blending, styles, masks."""

from __future__ import annotations

import pytest
import torch

from brushwork.transforms import (
    adaptive_instance_normalization,
    blend,
    calc_mean_std,
    match_color,
    transfer,
    wct_cascade,
    whiten_color,
)


def _features(n: int, c: int, h: int, w: int, seed: int) -> torch.Tensor:
    """Correlated features with non-zero means: a random mixing of white noise."""
    g = torch.Generator().manual_seed(seed)
    mix = torch.randn(c, c, generator=g)
    white = torch.randn(n, c, h * w, generator=g)
    shift = torch.randn(1, c, 1, generator=g) * 3
    return ((mix @ white) + shift).reshape(n, c, h, w)


def _cov(f: torch.Tensor) -> torch.Tensor:
    x = f.reshape(f.shape[0], -1).double()
    x = x - x.mean(dim=1, keepdim=True)
    return x @ x.T / (x.shape[1] - 1)


def test_calc_mean_std_is_the_channel_statistics() -> None:
    x = _features(2, 3, 5, 7, 0)
    mean, std = calc_mean_std(x, eps=0.0)
    assert mean.shape == std.shape == (2, 3, 1, 1)
    torch.testing.assert_close(mean[..., 0, 0], x.mean(dim=(2, 3)))
    torch.testing.assert_close(std[..., 0, 0], x.std(dim=(2, 3), unbiased=False))


def test_calc_mean_std_with_a_mask_measures_the_region_only() -> None:
    x = _features(1, 3, 6, 8, 1)
    mask = torch.zeros(1, 1, 6, 8)
    mask[..., :, :3] = 1
    mean, std = calc_mean_std(x, eps=0.0, mask=mask)
    region = x[..., :, :3]
    torch.testing.assert_close(mean[..., 0, 0], region.mean(dim=(2, 3)))
    torch.testing.assert_close(std[..., 0, 0], region.std(dim=(2, 3), unbiased=False))


def test_adain_output_has_the_style_channel_statistics() -> None:
    content, style = _features(2, 4, 9, 11, 2), _features(2, 4, 6, 5, 3) * 2 + 1
    out = adaptive_instance_normalization(content, style)
    assert out.shape == content.shape
    om, os_ = calc_mean_std(out, eps=0.0)
    sm, ss = calc_mean_std(style, eps=0.0)
    torch.testing.assert_close(om, sm, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(os_, ss, atol=1e-3, rtol=1e-3)


def test_adain_keeps_the_normalized_content() -> None:
    content, style = _features(1, 3, 8, 8, 4), _features(1, 3, 8, 8, 5)
    out = adaptive_instance_normalization(content, style)
    norm = lambda f: (f - f.mean(dim=(2, 3), keepdim=True)) / f.std(dim=(2, 3), keepdim=True)  # noqa: E731
    torch.testing.assert_close(norm(out), norm(content), atol=1e-3, rtol=1e-3)


def test_wct_output_has_the_style_mean_and_covariance() -> None:
    content, style = _features(2, 6, 16, 20, 6), _features(2, 6, 12, 14, 7)
    out = whiten_color(content, style, eps=1e-8)
    assert out.shape == content.shape and out.dtype == content.dtype
    for i in range(2):
        torch.testing.assert_close(_cov(out[i]), _cov(style[i]), atol=1e-3, rtol=1e-3)
        torch.testing.assert_close(out[i].mean(dim=(1, 2)), style[i].mean(dim=(1, 2)), atol=1e-4, rtol=1e-4)


def test_wct_output_is_white_before_colouring() -> None:
    content = _features(1, 5, 12, 12, 8)
    white = torch.randn(1, 5, 4000, generator=torch.Generator().manual_seed(0)).reshape(1, 5, 40, 100)
    out = whiten_color(content, white, eps=1e-8)
    torch.testing.assert_close(_cov(out[0]), _cov(white[0]), atol=1e-3, rtol=1e-3)


def test_wct_with_masks_matches_the_style_region() -> None:
    content, style = _features(1, 3, 10, 10, 9), _features(1, 3, 10, 10, 10)
    smask = torch.zeros(1, 1, 10, 10)
    smask[..., 5:, :] = 1
    out = whiten_color(content, style, eps=1e-8, style_mask=smask)
    torch.testing.assert_close(_cov(out[0]), _cov(style[0, :, 5:, :]), atol=1e-3, rtol=1e-3)


def test_blend_interpolates_between_content_and_stylized() -> None:
    a, b = torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 3, 3)
    assert torch.equal(blend(a, b, 0.0), a)
    assert torch.equal(blend(a, b, 1.0), b)
    torch.testing.assert_close(blend(a, b, 0.25), torch.full_like(a, 0.25))


@pytest.mark.parametrize("method", ["adain", "wct"])
def test_transfer_alpha_and_one_style(method: str) -> None:
    content, style = _features(1, 4, 8, 8, 11), _features(1, 4, 8, 8, 12)
    fn = adaptive_instance_normalization if method == "adain" else whiten_color
    torch.testing.assert_close(transfer(content, [style], method=method), fn(content, style))
    torch.testing.assert_close(transfer(content, [style], method=method, alpha=0.0), content)
    half = transfer(content, [style], method=method, alpha=0.5)
    torch.testing.assert_close(half, 0.5 * content + 0.5 * fn(content, style))


def test_transfer_style_weights_interpolate_stylized_features() -> None:
    content = _features(1, 3, 8, 8, 13)
    s1, s2 = _features(1, 3, 8, 8, 14), _features(1, 3, 8, 8, 15) * 3
    a1, a2 = adaptive_instance_normalization(content, s1), adaptive_instance_normalization(content, s2)
    torch.testing.assert_close(transfer(content, [s1, s2], style_weights=[1, 0]), a1)
    torch.testing.assert_close(transfer(content, [s1, s2], style_weights=[3, 1]), 0.75 * a1 + 0.25 * a2)
    torch.testing.assert_close(transfer(content, [s1, s2]), 0.5 * a1 + 0.5 * a2)


def test_transfer_masks_give_each_region_its_style() -> None:
    content = _features(1, 3, 8, 8, 16)
    s1, s2 = _features(1, 3, 8, 8, 17), _features(1, 3, 8, 8, 18) * 2 + 5
    masks = torch.zeros(2, 8, 8)
    masks[0, :, :4] = 1
    masks[1, :, 4:] = 1
    out = transfer(content, [s1, s2], masks=masks)
    left = adaptive_instance_normalization(content, s1, content_mask=masks[0])
    right = adaptive_instance_normalization(content, s2, content_mask=masks[1])
    torch.testing.assert_close(out[..., :4], left[..., :4])
    torch.testing.assert_close(out[..., 4:], right[..., 4:])
    # the left region alone now has style 1's statistics
    om, os_ = calc_mean_std(out[..., :4], eps=0.0)
    sm, ss = calc_mean_std(s1, eps=0.0)
    torch.testing.assert_close(om, sm, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(os_, ss, atol=1e-3, rtol=1e-3)


def test_transfer_uncovered_pixels_keep_the_content() -> None:
    content, style = _features(1, 3, 8, 8, 19), _features(1, 3, 8, 8, 20)
    mask = torch.zeros(1, 16, 16)  # any size: resized to the features
    mask[:, :8] = 1
    out = transfer(content, [style], method="wct", masks=mask)
    torch.testing.assert_close(out[..., 4:, :], content[..., 4:, :])
    assert not torch.allclose(out[..., :4, :], content[..., :4, :])


def test_transfer_rejects_bad_arguments() -> None:
    c = _features(1, 2, 4, 4, 21)
    with pytest.raises(ValueError, match="unknown transform"):
        transfer(c, [c], method="gram")
    with pytest.raises(ValueError, match="style weights"):
        transfer(c, [c, c], style_weights=[1.0])
    with pytest.raises(ValueError, match="not both"):
        transfer(c, [c], style_weights=[1.0], masks=torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match="one mask per style"):
        transfer(c, [c, c], masks=torch.ones(3, 4, 4))
    with pytest.raises(ValueError, match="at least one"):
        transfer(c, [])


def test_wct_cascade_runs_coarse_to_fine_through_each_level() -> None:
    image, style = _features(1, 3, 8, 8, 22), _features(1, 3, 8, 8, 23)
    calls: list[str] = []

    def level(tag: str) -> tuple:
        def enc(x: torch.Tensor) -> torch.Tensor:
            calls.append(tag)
            return x

        return enc, lambda f: f

    out = wct_cascade(image, [style], [level("deep"), level("shallow")], alpha=1.0)
    assert calls == ["deep", "deep", "shallow", "shallow"]  # content then style, per level
    torch.testing.assert_close(out, whiten_color(whiten_color(image, style), style), atol=1e-4, rtol=1e-4)


def test_match_color_gives_the_source_the_target_colours() -> None:
    g = torch.Generator().manual_seed(24)
    source = 0.5 + 0.08 * torch.randn(1, 3, 20, 20, generator=g)
    target = 0.4 + 0.05 * (
        torch.tensor([[1.0, 0.5, 0.0], [0.2, 1.0, 0.3], [0.0, 0.1, 1.0]]) @ torch.randn(3, 400, generator=g)
    )
    target = target.reshape(1, 3, 20, 20)
    out = match_color(source, target, eps=1e-8)
    assert out.shape == source.shape and out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(_cov(out[0]), _cov(target[0]), atol=1e-4, rtol=1e-3)
