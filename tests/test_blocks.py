"""The faster forms of the convolutions (sub-pixel upsampling, space-to-depth) equal their definitions."""

from __future__ import annotations

import pytest
import torch

from brushwork.nets.blocks import ReflectConv


@pytest.mark.parametrize("size", [(2, 2), (5, 9), (16, 12)])
def test_subpixel_upsampling_conv_equals_the_definition(size: tuple[int, int]) -> None:
    torch.manual_seed(0)
    layer = ReflectConv(6, 4, 3, upsample=2)
    x = torch.randn(2, 6, *size)
    out = layer(x)
    assert out.shape == (2, 4, 2 * size[0], 2 * size[1])
    torch.testing.assert_close(out, layer.reference(x), atol=1e-5, rtol=1e-5)


def test_subpixel_form_has_gradients_like_the_definition() -> None:
    torch.manual_seed(1)
    layer = ReflectConv(3, 2, 3, upsample=2)
    x = torch.randn(1, 3, 6, 7, requires_grad=True)
    (g1,) = torch.autograd.grad(layer(x).square().sum(), x)
    (g2,) = torch.autograd.grad(layer.reference(x).square().sum(), x)
    torch.testing.assert_close(g1, g2, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("size", [(9, 9), (10, 13), (31, 20)])
def test_space_to_depth_form_of_a_large_kernel_equals_the_definition(size: tuple[int, int]) -> None:
    torch.manual_seed(2)
    layer = ReflectConv(4, 3, 9)  # the fast networks' last layer: few outputs, a 9×9 kernel
    x = torch.randn(2, 4, *size)
    out = layer(x)
    assert out.shape == (2, 3, *size)
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4), mode="reflect")
    torch.testing.assert_close(out, layer.conv(padded), atol=1e-4, rtol=1e-4)


def test_only_3x3_stride_1_upsampling_is_supported() -> None:
    with pytest.raises(ValueError):
        ReflectConv(3, 3, 9, upsample=2)
