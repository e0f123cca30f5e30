"""DeCowA: the thin-plate spline against SciPy's, the warp's sampling convention, the whole direction
against a direct computation with autograd, the options and the exact cost."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.interpolate import RBFInterpolator
from torch import Tensor

from tpa_lightning.attacks import DeCowA, build_attack
from tpa_lightning.attacks.objectives import attack_objective
from tpa_lightning.attacks.warping import mesh_points, tps_matrix, tps_warp

from .helpers import RowCounter, tiny_batch, tiny_model


def test_tps_matrix_is_the_thin_plate_spline_interpolant() -> None:
    h, w, rows, cols = 6, 7, 3, 4
    src = mesh_points(rows, cols).numpy()
    dst = src + np.random.default_rng(0).uniform(-0.3, 0.3, src.shape)
    yy, xx = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    pixels = np.stack([xx, yy], axis=-1).reshape(-1, 2)
    expected = RBFInterpolator(src, dst, kernel="thin_plate_spline", degree=1)(pixels)
    got = tps_matrix(h, w, rows, cols) @ torch.tensor(dst, dtype=torch.float32)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


def test_zero_offsets_are_the_identity_and_warps_stay_in_the_unit_box() -> None:
    u = tiny_batch(3, size=9)
    torch.testing.assert_close(tps_warp(u, torch.zeros(3, 1, 1, 2), 3, 3), u, atol=2e-6, rtol=0)
    torch.testing.assert_close(tps_warp(u, torch.zeros(3, 2, 3, 2), 4, 5), u, atol=2e-6, rtol=0)
    offsets = torch.rand(3, 1, 1, 2, generator=torch.Generator().manual_seed(0)) * 2 - 1
    out = tps_warp(u, offsets, 3, 3)
    assert out.min() >= 0 and out.max() <= 1 and not torch.allclose(out, u)


def test_moving_the_centre_point_samples_from_there() -> None:
    """On a 5x5 image the centre control point sits on pixel (2, 2): moved by +0.5 in x (a pixel
    is 0.5 wide in [-1, 1] units here) the output's centre is the input's pixel (2, 3)."""
    u = torch.rand(1, 1, 5, 5, generator=torch.Generator().manual_seed(2))
    out = tps_warp(u, torch.tensor([[[[0.5, 0.0]]]]), 3, 3)
    torch.testing.assert_close(out[0, 0, 2, 2], u[0, 0, 2, 3], atol=1e-6, rtol=0)
    fixed = [(r, c) for r in (0, 2, 4) for c in (0, 2, 4) if (r, c) != (2, 2)]   # the other control points
    for r, c in fixed:
        torch.testing.assert_close(out[0, 0, r, c], u[0, 0, r, c], atol=1e-6, rtol=0)


def test_direction_matches_a_direct_computation() -> None:
    """Iteration 0 (delta = 0, seeded, no keys): offsets o_k drawn as U(-1, 1) from the seed, stepped
    per image against the objective's own autograd gradient, then the mean input gradient."""
    model = tiny_model()
    x = tiny_batch(2, size=8)
    y = model(x).argmax(1)
    k, seed, rho = 3, 4, 0.5
    atk = DeCowA(model, copies=k, steps=1, seed=seed, rho=rho)
    seen: list[Tensor] = []
    update = atk.update
    atk.update = lambda d, g, it: (seen.append(g), update(d, g, it))[1]  # type: ignore[method-assign]
    atk(x, y)

    draws = torch.rand((k, 1, 1, 1, 2), generator=torch.Generator().manual_seed(seed)) * 2 - 1
    expected = torch.zeros_like(x)
    for j in range(k):
        for i in range(2):
            o = draws[j].clone().requires_grad_(True)
            (g_o,) = torch.autograd.grad(attack_objective(model(tps_warp(x[i:i + 1], o, 3, 3)), y[i:i + 1], False), o)
            v = x[i:i + 1].clone().requires_grad_(True)
            obj = attack_objective(model(tps_warp(v, (o - rho * g_o).detach(), 3, 3)), y[i:i + 1], False)
            expected[i] += torch.autograd.grad(obj, v)[0][0] / k
    torch.testing.assert_close(seen[0], expected, atol=1e-5, rtol=1e-4)


def test_options_and_defaults() -> None:
    atk = build_attack("decowa", tiny_model())
    assert isinstance(atk, DeCowA)
    assert (atk.copies, atk.mesh_rows, atk.mesh_cols, atk.noise_scale, atk.rho, atk.momentum) == (20, 3, 3, 2.0,
                                                                                                    0.01, 1.0)
    with pytest.raises(ValueError, match="mesh_rows must be an integer >= 3"):
        build_attack("decowa", tiny_model(), mesh_rows=2)
    with pytest.raises(ValueError, match="rho must be >= 0"):
        build_attack("decowa", tiny_model(), rho=-1.0)


def test_passes_per_image_counts_the_gradient_rows() -> None:
    counter = RowCounter(tiny_model())
    atk = build_attack("decowa", counter, copies=3, steps=2, seed=0)
    atk(tiny_batch(4), torch.arange(4))
    assert counter.rows / 4 == atk.passes_per_image() == 2 * 2 * 3
