"""The loss functions: values against hand computations, and gradients (gradcheck in float64)."""

from __future__ import annotations

import torch
from torch.autograd import gradcheck

from brushwork import losses


def test_gram_matrix_by_hand() -> None:
    f = torch.randn(2, 3, 4, 5)
    x = f.flatten(2)
    assert torch.allclose(losses.gram_matrix(f), x @ x.transpose(1, 2) / 20, atol=1e-6)
    cl = f.contiguous(memory_format=torch.channels_last)  # the layout the backbones return
    assert torch.allclose(losses.gram_matrix(cl), losses.gram_matrix(f), atol=1e-6)


def test_weighted_statistics_are_region_averages() -> None:
    f = torch.randn(1, 4, 6, 6)
    ones = torch.ones(1, 1, 6, 6)
    assert torch.allclose(losses.gram_matrix(f, ones), losses.gram_matrix(f), atol=1e-6)
    left = torch.zeros(1, 1, 6, 6)
    left[..., :3] = 1
    region = f[..., :3]
    assert torch.allclose(losses.gram_matrix(f, left), losses.gram_matrix(region), atol=1e-6)
    for a, b in zip(losses.mean_std(f, left), losses.mean_std(region), strict=True):
        assert torch.allclose(a, b, atol=1e-5)
    for a, b in zip(losses.mean_cov(f, left), losses.mean_cov(region), strict=True):
        assert torch.allclose(a, b, atol=1e-5)


def test_mean_cov_and_std() -> None:
    f = torch.randn(1, 3, 8, 8)
    mean, cov = losses.mean_cov(f)
    x = f.flatten(2)[0]
    assert torch.allclose(mean[0], x.mean(1), atol=1e-6)
    assert torch.allclose(cov[0], torch.cov(x, correction=0), atol=1e-5)
    m, s = losses.mean_std(f, eps=0.0)
    assert torch.allclose(s[0], x.std(1, unbiased=False), atol=1e-5)


def test_sqrtm_and_trace() -> None:
    a = torch.randn(5, 5, dtype=torch.float64)
    spd = a @ a.T + 0.1 * torch.eye(5, dtype=torch.float64)
    root = losses.sqrtm_psd(spd)
    assert torch.allclose(root @ root, spd, atol=1e-8)
    assert torch.allclose(losses.trace_sqrtm_psd(spd), torch.trace(root), atol=1e-8)
    eye = torch.eye(4, dtype=torch.float64, requires_grad=True)  # repeated eigenvalues: gradient stays finite
    losses.trace_sqrtm_psd(eye).backward()
    assert torch.allclose(eye.grad, 0.5 * torch.eye(4, dtype=torch.float64))


def test_wasserstein2_closed_forms() -> None:
    f = torch.randn(1, 3, 6, 6, dtype=torch.float64)
    mean, cov = losses.mean_cov(f)
    assert float(losses.wasserstein2_loss(f, mean, cov)) < 1e-6  # distance to itself
    # diagonal covariances: W2² = |m1 − m2|² + Σ (√a − √b)²
    m1, m2 = torch.tensor([[0.0, 1.0]]), torch.tensor([[2.0, -1.0]])
    c1, c2 = torch.diag(torch.tensor([4.0, 1.0]))[None], torch.diag(torch.tensor([1.0, 9.0]))[None]
    w2 = losses.wasserstein2(m1, c1, m2, losses.sqrtm_psd(c2), torch.tensor([10.0]))
    assert torch.allclose(w2, torch.tensor([8.0 + 1.0 + 4.0]), atol=1e-5)


def test_content_tv_and_scale() -> None:
    a, b = torch.zeros(1, 2, 3, 3), torch.ones(1, 2, 3, 3)
    assert float(losses.content_loss(a, b)) == 1.0
    assert float(losses.tv_loss(torch.full((1, 3, 8, 8), 0.3))) == 0.0
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 1, 4, 4)
    assert float(losses.tv_loss(ramp)) == 1.0  # every horizontal step is 1, no vertical change
    g = torch.full((1, 2, 2), 3.0)
    assert abs(losses.style_scale("gram", (g,)) - 9.0) < 1e-6


def test_gradcheck_gram_and_mean_std() -> None:
    torch.manual_seed(0)
    f = torch.randn(1, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = losses.gram_matrix(torch.randn(1, 3, 5, 5, dtype=torch.float64))
    weight = torch.rand(1, 1, 4, 4, dtype=torch.float64)
    assert gradcheck(lambda x: losses.gram_loss(x, target), (f,))
    assert gradcheck(lambda x: losses.gram_loss(x, target, weight), (f,))
    m, s = losses.mean_std(torch.randn(1, 3, 5, 5, dtype=torch.float64))
    assert gradcheck(lambda x: losses.mean_std_loss(x, m, s), (f,))


def test_gradcheck_wasserstein2() -> None:
    torch.manual_seed(1)
    f = torch.randn(1, 3, 5, 5, dtype=torch.float64, requires_grad=True)
    mean, cov = losses.mean_cov(torch.randn(1, 3, 6, 6, dtype=torch.float64) * 2 + 1)
    assert gradcheck(lambda x: losses.wasserstein2_loss(x, mean, cov), (f,))
    weight = torch.rand(1, 1, 5, 5, dtype=torch.float64) + 0.1
    assert gradcheck(lambda x: losses.wasserstein2_loss(x, mean, cov, weight), (f,))


def test_normalize_gradient() -> None:
    x = torch.randn(2, 3, 4, 4, requires_grad=True)
    y = losses.normalize_gradient(x)
    assert torch.equal(y, x)
    (100 * y.pow(2).sum()).backward()
    assert abs(float(x.grad.abs().sum()) - 1.0) < 1e-4
