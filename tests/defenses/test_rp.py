"""R&P: sizes, zero padding, nearest resize, per-image draws, seeds."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import defenses
from defenses import RandomResizePad, rp_sizes


def test_reference_sizes() -> None:
    assert rp_sizes(299) == (310, 330, 331)
    assert rp_sizes(32) == (33, 35, 35)
    assert rp_sizes(224) == (232, 247, 248)


@pytest.mark.parametrize("size", [32, 64, 299])
def test_output_size_padding_and_content(size: int) -> None:
    x = torch.rand(6, 3, size, size) * 0.9 + 0.1          # strictly positive: zeros are padding
    rp = RandomResizePad(seed=0)
    out = rp(x)
    r_min, r_max, pad = rp_sizes(size)
    assert out.shape == (6, 3, pad, pad)
    d = rp.last_draw
    assert d is not None
    for i in range(6):
        r, top, left = int(d["r_h"][i]), int(d["top"][i]), int(d["left"][i])
        assert r_min <= r <= r_max and 0 <= top <= pad - r and 0 <= left <= pad - r
        inner = out[i, :, top:top + r, left:left + r]
        expected = F.interpolate(x[i:i + 1], size=(r, r), mode="nearest")[0]
        if bool(d["flip"][i]):
            expected = expected.flip(-1)
        torch.testing.assert_close(inner, expected, rtol=0, atol=0)
        mask = torch.ones(pad, pad, dtype=torch.bool)
        mask[top:top + r, left:left + r] = False
        assert out[i][:, mask].abs().max() == 0 if mask.any() else True


def test_every_draw_in_range_and_offsets_uniform() -> None:
    rp = RandomResizePad(seed=1)
    x = torch.rand(2000, 1, 64, 64)
    rp(x)
    d = rp.last_draw
    r_min, r_max, pad = rp_sizes(64)
    assert set(d["r_h"].tolist()) == set(range(r_min, r_max + 1))
    assert bool(((d["top"] >= 0) & (d["top"] <= pad - d["r_h"])).all())
    assert bool(((d["left"] >= 0) & (d["left"] <= pad - d["r_w"])).all())
    assert (d["top"] == pad - d["r_h"]).any() and (d["top"] == 0).any()   # both ends reachable
    assert 0.45 < d["flip"].float().mean() < 0.55


def test_seed_repeatable_and_draws_per_sample() -> None:
    x = torch.rand(1, 3, 32, 32).expand(64, -1, -1, -1).contiguous()
    a = RandomResizePad(seed=5)(x)
    b = RandomResizePad(seed=5)(x)
    c = RandomResizePad(seed=6)(x)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(a, c)
    assert len({tuple(img.flatten()[:200].tolist()) for img in a}) > 1   # per-image draws


def test_non_square_input() -> None:
    rp = RandomResizePad(seed=0)
    out = rp(torch.rand(3, 3, 32, 48))
    _r_min, _r_max, p_h, p_w = rp.sizes(32, 48)
    assert out.shape == (3, 3, p_h, p_w)
    assert bool((rp.last_draw["r_w"] <= p_w).all())


def test_defended_rp_averages_draws(autoattack_resnet18) -> None:
    x = torch.rand(2, 3, 32, 32)
    d = defenses.build_defense("rp", autoattack_resnet18, seed=0)
    assert d.draws == 30 and d.random and d.gradient == "exact"
    out = d(x)
    assert out.shape == (2, 10)
    torch.testing.assert_close(out.exp().sum(1), torch.ones(2))   # log of averaged softmax


def test_rp_gradient_is_exact() -> None:
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    out = RandomResizePad(seed=0)(x)
    (g,) = torch.autograd.grad(out.sum(), x)
    assert g.abs().sum() > 0 and torch.all(g >= 0)
