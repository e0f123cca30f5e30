"""L2T: the operation pool (its size and each family against a hand computation), the update of the
transformation distribution (against autograd, and towards the higher-loss operation), the direction
on a toy pool, and the cost (its expectation, and the exact count of a call)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tpa_lightning.attacks import L2T, build_attack
from tpa_lightning.attacks.transform_pool import (
    PoolOp,
    admix,
    block_shuffle,
    crop,
    dropout,
    mask,
    resize_and_pad,
    rotate,
    scale,
    spectrum,
    transform_pool,
    translate,
)

from .helpers import LinearNet, RowCounter, tiny_batch, tiny_model


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def stack(n: int = 2, size: int = 8) -> Tensor:
    """(R=1, G=n, C, H, W) images with no zero pixel."""
    return torch.rand(1, n, 3, size, size, generator=gen(5)) * 0.9 + 0.1


def test_pool_is_the_reference_list() -> None:
    pool = transform_pool(8 / 255)
    assert len(pool) == 98 and sum(op.copies for op in pool) == 571
    families = [op.name.split("(")[0] for op in pool]
    assert [families.count(f) for f in ("identity", "rotate", "scale", "resize_pad", "block_shuffle", "admix",
                                        "dropout", "mask", "spectrum", "crop", "translate")] == \
        [1, 10, 10, 10, 10, 10, 10, 10, 9, 9, 9]
    u = torch.rand(2, 2, 3, 8, 8, generator=gen(1), requires_grad=True)   # R=2 rows of G=2 images
    for op in pool:
        out = op(u, gen())
        assert out.shape == (2 * op.copies, 2, 3, 8, 8), op.name
        (g,) = torch.autograd.grad(out.sum(), u)
        assert torch.isfinite(g).all() and g.abs().sum() > 0, op.name


def test_scale_rotate_translate_and_crop() -> None:
    u = stack(size=5)
    torch.testing.assert_close(scale(u, gen(), copies=3), torch.cat([u, u / 2, u / 4]))
    quarter = rotate(u, gen(), angle=90.0)[0]                   # the first copy: 90 degrees
    assert torch.equal(quarter, torch.rot90(u[0], 1, (2, 3)))   # counter-clockwise, exact on pixels
    moved = translate(u, gen(), offset=0.9)                     # 0.18, 0.36, 0.54, 0.72, 0.9 pixels
    shifted = F.pad(u[..., :-1, :-1], (1, 0, 1, 0))             # one pixel right and down
    for i, expected in enumerate([u, u, shifted, shifted, shifted]):
        assert torch.equal(moved[i:i + 1], expected), i
    v = stack(size=10)
    crops = crop(v, gen(), ratio=0.5)                            # ratios 0.6, 0.7, 0.8, 0.9, 1.0
    torch.testing.assert_close(crops[4:5], v)
    first = F.interpolate(v[0, :, :, 2:8, 2:8], size=(10, 10), mode="bilinear", align_corners=False)
    torch.testing.assert_close(crops[0], first, atol=1e-5, rtol=0)


def test_dropout_mask_and_shuffle_rearrange_or_erase_pixels() -> None:
    u = stack(size=8)
    out = dropout(u, gen(), rates=(0.1, 0.5))
    assert bool(((out == 0) | (out == u)).all())
    zero = (out == 0).float().flatten(1).mean(1)
    assert 0.02 < zero[0] < 0.2 and 0.4 < zero[1] < 0.6
    for blocks in (2, 4):
        masked = mask(u, gen(blocks), blocks=blocks)
        side = 8 // blocks
        for copy in masked:
            holes = (copy == 0).all(0).all(0)                     # (8, 8): zero in every image and channel
            rows, cols = holes.nonzero(as_tuple=True)
            assert len(rows) == side * side and rows.min() % side == 0 and cols.min() % side == 0
            assert rows.max() - rows.min() == side - 1 and cols.max() - cols.min() == side - 1
    shuffled = block_shuffle(u, gen(), blocks=3)
    assert shuffled.shape[0] == 10
    for copy in shuffled:
        assert torch.equal(copy.flatten(2).sort(2).values, u[0].flatten(2).sort(2).values)
    assert not torch.equal(shuffled[0], u[0])


def test_admix_spectrum_and_resize() -> None:
    u = stack(size=8).requires_grad_(True)
    out = admix(u, gen(), mixes=2, strength=0.2)                  # one row: its own partner
    torch.testing.assert_close(out, torch.cat([1.2 * u, 1.2 * u, 0.6 * u, 0.6 * u, 0.3 * u, 0.3 * u]))
    (g,) = torch.autograd.grad(out.sum(), u)
    torch.testing.assert_close(g, torch.full_like(u, 2 * (1 + 0.5 + 0.25)))   # the partner is detached
    rows = torch.rand(3, 1, 3, 8, 8, generator=gen(2))
    mixed = admix(rows, gen(), mixes=1, strength=0.2, scales=1)
    partners = (mixed - rows) / 0.2                                # a permutation of the image's rows
    matches = [[j for j in range(3) if torch.allclose(partners[i], rows[j], atol=1e-5)] for i in range(3)]
    assert all(len(m) == 1 for m in matches) and sorted(m[0] for m in matches) == [0, 1, 2]
    torch.testing.assert_close(spectrum(u, gen(), rho=0.0, sigma=0.0, copies=2), torch.cat([u, u]),
                               atol=1e-5, rtol=0)
    assert torch.equal(resize_and_pad(u, gen(), rate=1.1), u)     # int(1.1 * 8) == 8: nothing to do
    big = resize_and_pad(stack(size=10), gen(), rate=1.55)
    assert big.shape == (1, 2, 3, 10, 10) and not torch.allclose(big, stack(size=10))


def test_theta_gradient_matches_autograd() -> None:
    atk = L2T(tiny_model(), paths=3, ops_per_path=2)
    theta = torch.randn(2, 98, generator=gen(0))
    ids = torch.randint(98, (2, 3, 2), generator=gen(1))
    ids[0, 1] = torch.tensor([4, 4])                               # an operation twice in a path
    losses = torch.rand(2, 3, generator=gen(2)) + 0.5
    t = theta.clone().requires_grad_(True)
    p = t.softmax(1).gather(1, ids.flatten(1)).view(2, 3, 2).prod(2)
    (expected,) = torch.autograd.grad((p * losses).mean(1).sum(), t)
    assert expected.abs().max() > 1e-5                            # the values are small: compare relatively
    torch.testing.assert_close(atk.theta_grad(theta, ids, losses), expected, rtol=1e-4, atol=1e-9)


def test_update_moves_towards_the_higher_loss_operation() -> None:
    atk = L2T(tiny_model(), paths=2, ops_per_path=2)
    theta = torch.zeros(1, 98)
    ids = torch.tensor([[[5, 5], [9, 9]]])
    step = atk.theta_grad(theta, ids, torch.tensor([[2.0, 0.5]]))   # path (5, 5) had the higher loss
    after = (theta + step).softmax(1)[0]
    assert after[5] > 1 / 98 and after[5] > after[9] and after[9] > after[0]


class Brightness(nn.Module):
    """Class 0's logit grows with the mean pixel: against label 1 the loss grows with brightness."""

    def forward(self, u: Tensor) -> Tensor:
        z0 = 10 * u.flatten(1).mean(1)
        return torch.stack([z0, torch.zeros_like(z0)], dim=1)


def test_attack_updates_theta_from_its_paths_losses(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths fixed to (keep) and (brighten): after one iteration theta is exactly the update from the
    losses of the two transformed images, computed here directly, and favours brightening."""
    model = Brightness()
    x, y = tiny_batch(3, size=4) * 0.5, torch.ones(3, dtype=torch.long)
    atk = L2T(model, paths=2, ops_per_path=1, learning_rate=0.5, steps=1, seed=0)
    atk.pool = (PoolOp("keep", 1, lambda u, g: u), PoolOp("brighten", 1, lambda u, g: 2 * u))
    monkeypatch.setattr(atk, "sample_paths", lambda u: ([[[0], [1]]] * 3, [[0, 0]] * 3))
    atk(x, y)
    with torch.no_grad():
        losses = torch.stack([F.cross_entropy(model(x), y, reduction="none"),
                              F.cross_entropy(model(2 * x), y, reduction="none")], dim=1)
    ids = torch.tensor([[[0], [1]]] * 3)
    assert atk.theta is not None
    torch.testing.assert_close(atk.theta, 0.5 * atk.theta_grad(torch.zeros(3, 2), ids, losses))
    assert bool((atk.theta[:, 1] > atk.theta[:, 0]).all())


def test_direction_is_the_mean_over_paths_of_the_mean_over_their_copies() -> None:
    """Toy pool: ``keep`` (1 copy) and ``mix`` (copies u and 3u). With the linear model's constant
    gradient d, a path's mean gradient is d times the mean factor of its copies (keep: 1, mix: 2):
    (mix, mix) 4, (keep, mix) and (mix, keep) 2, (keep, keep) 1. The paths are those the seed draws
    from the uniform distribution at the first iteration."""
    net = LinearNet((3, 4, 4))
    x, y = torch.full((2, 3, 4, 4), 0.5), torch.tensor([3, 8])
    paths, seed = 6, 9
    counter = RowCounter(net)
    atk = L2T(counter, paths=paths, ops_per_path=2, steps=1, seed=seed, loss="logit")
    atk.pool = (PoolOp("keep", 1, lambda u, g: u), PoolOp("mix", 2, lambda u, g: torch.cat([u, 3 * u])))
    seen: list[Tensor] = []
    update = atk.update
    atk.update = lambda d, g, it: (seen.append(g), update(d, g, it))[1]  # type: ignore[method-assign]
    atk(x, y)

    draws = torch.rand((1, paths, 3), generator=gen(seed))[0]
    ids = (draws[:, :2] >= 0.5).long()                            # inverse CDF of (1/2, 1/2)
    factor = torch.tensor([1.0, 2.0])[ids].prod(1)                 # per path
    torch.testing.assert_close(seen[0], factor.mean() * net.logit_grad(y))
    copies = torch.tensor([1, 2])[ids].prod(1)
    assert counter.rows == 2 * int(copies.sum()) and atk.realized_passes_per_image() == copies.sum().item()
    assert atk.passes_per_image() == paths * 1.5 ** 2                 # the expectation: 1.5 copies per op


def test_passes_per_image_is_the_expectation_and_the_last_call_is_counted_exactly() -> None:
    counter = RowCounter(tiny_model())
    atk = build_attack("l2t", counter, steps=2, seed=1, eot_samples=2)
    expected = 2 * 3 * (571 / 98) ** 2 * 2
    assert isinstance(atk, L2T) and atk.realized_passes_per_image() is None
    assert atk.passes_per_image() == pytest.approx(expected)
    atk(tiny_batch(3), torch.arange(3))
    assert counter.rows / 3 == atk.realized_passes_per_image()
    assert atk.passes_per_image() == pytest.approx(expected)                  # unchanged by the call


@pytest.mark.parametrize("name", ["l2t", "decowa"])
def test_pulled_back_attacks_compose_with_transforms(name: str) -> None:
    counter = RowCounter(tiny_model())
    opts = {"copies": 2} if name == "decowa" else {"paths": 1}
    atk = build_attack(name, counter, transforms=["si"], steps=1, seed=0, **opts)
    x = tiny_batch(2)
    out = atk(x, torch.arange(2))
    assert (out - x).abs().max() <= 8 / 255 + 1e-6
    passes = atk.realized_passes_per_image() if isinstance(atk, L2T) else atk.passes_per_image()
    assert counter.rows / 2 == passes                                     # SI: 5 scale copies of every row
