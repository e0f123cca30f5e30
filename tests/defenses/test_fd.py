"""Feature distillation against a plain per-block scipy implementation of the reference."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.fft import dctn, idctn

from defenses import FeatureDistillation, dct_matrix


def fd_reference(img: np.ndarray, q_low: float = 25.0, q_high: float = 30.0) -> np.ndarray:
    """One image (C, H, W) in [0, 1]: per channel, per 8x8 block, loops."""
    c, h, w = img.shape
    hp, wp = -(-h // 8) * 8, -(-w // 8) * 8
    v = np.zeros((c, hp, wp))
    v[:, :h, :w] = img.astype(np.float64) * 255.0
    q = np.full((8, 8), q_high)
    q[:4, :4] = q_low
    out = np.empty_like(v)
    for ch in range(c):
        for i in range(0, hp, 8):
            for j in range(0, wp, 8):
                coef = dctn(v[ch, i:i + 8, j:j + 8], norm="ortho")
                coef = np.round(coef / q) * q
                out[ch, i:i + 8, j:j + 8] = idctn(coef, norm="ortho")
    return np.clip(out[:, :h, :w] / 255.0, 0.0, 1.0)


def test_dct_matrix_is_scipy_ortho_dct() -> None:
    v = np.random.default_rng(0).normal(size=8)
    np.testing.assert_allclose(dct_matrix(8).numpy() @ v, dctn(v, norm="ortho"), atol=1e-12)


@pytest.mark.parametrize("shape", [(3, 32, 32), (3, 20, 27), (1, 16, 8)])
def test_fd_matches_reference_random(shape: tuple[int, int, int]) -> None:
    x = torch.rand(4, *shape)
    out = FeatureDistillation()(x)
    assert out.shape == x.shape and out.dtype == x.dtype
    for i in range(x.shape[0]):
        ref = fd_reference(x[i].numpy())
        assert np.abs(out[i].numpy() - ref).max() <= 1 / 255


def test_fd_matches_reference_real_images(cifar_samples) -> None:
    x, _ = cifar_samples
    out = FeatureDistillation()(x)
    ref = np.stack([fd_reference(img.numpy()) for img in x])
    assert np.abs(out.numpy() - ref).max() <= 1 / 255
    assert (out - x).abs().max() > 1 / 255   # it does change the images


def test_fd_fixed_point() -> None:
    """An image whose block DCT coefficients are already multiples of Q is unchanged."""
    rng = np.random.default_rng(1)
    q = np.full((8, 8), 30.0)
    q[:4, :4] = 25.0
    img = np.empty((3, 16, 24))
    for ch in range(3):
        for i in range(0, 16, 8):
            for j in range(0, 24, 8):
                k = np.zeros((8, 8))
                k[0, 0] = rng.integers(30, 50)                      # DC: mean 94..156
                pos = rng.integers(0, 8, size=(6, 2))
                k[pos[:, 0], pos[:, 1]] += rng.choice([-1, 1], size=6)
                img[ch, i:i + 8, j:j + 8] = idctn(k * q, norm="ortho")
    assert img.min() >= 0 and img.max() <= 255
    x = torch.from_numpy(img / 255.0).float()[None]
    out = FeatureDistillation()(x)
    torch.testing.assert_close(out, x, atol=1e-6, rtol=0)


def test_fd_batch_equals_single_images() -> None:
    x = torch.rand(5, 3, 24, 24)
    fd = FeatureDistillation()
    torch.testing.assert_close(fd(x), torch.cat([fd(x[i:i + 1]) for i in range(5)]))


def test_fd_approx_close_to_exact() -> None:
    x = torch.rand(2, 3, 16, 16)
    fd = FeatureDistillation()
    fd.grad_mode = "approx"
    approx = fd(x)
    fd.grad_mode = "default"
    exact = fd(x)
    # |smooth_round(c) - round(c)| <= 0.125 per coefficient, times Q <= 30, spread by the inverse DCT
    assert (approx - exact).abs().max() < 0.125 * 30 * 8 / 255
