"""SIA: every block transformation against a hand computation, the block grid, the gradient through
the transform, the options, and the exact cost."""
from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.fft import dctn, idctn
from torch import Tensor

from tpa_lightning.attacks import SIA, build_attack
from tpa_lightning.attacks.structure_invariance import SIA_OPS, TRANSFERATTACK_SIA_OPS

from .helpers import LinearNet, RowCounter, tiny_batch, tiny_model

ALL = slice(0, 2)


def drawn(atk: SIA, x: Tensor, seed: int = 0) -> Any:
    """One copy's transform of ``x``, drawn as a seeded call without keys draws it."""
    atk.generator = torch.Generator().manual_seed(seed)
    atk.image_generators, atk.seeded = None, True
    return atk.make_transform(x)


def images(n: int = 2, size: int = 8) -> Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(3))


@pytest.mark.parametrize(("op", "reference"), [
    ("vflip", lambda u: u.flip(2)),
    ("hflip", lambda u: u.flip(3)),
    ("rotate180", lambda u: torch.rot90(u, 2, (2, 3))),
])
def test_whole_image_flips(op: str, reference: Any) -> None:
    u = images()
    out = drawn(SIA(tiny_model(), blocks=1, ops=(op,)), u)(u, ALL)
    assert torch.equal(out, reference(u))


@pytest.mark.parametrize(("op", "dim"), [("vshift", 2), ("hshift", 3)])
def test_whole_image_shifts_are_cyclic(op: str, dim: int) -> None:
    u = images()
    shifts = set()
    for seed in range(12):
        out = drawn(SIA(tiny_model(), blocks=1, ops=(op,)), u, seed)(u, ALL)
        matches = [s for s in range(8) if torch.equal(out, u.roll(s, dim))]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 3                    # the shift is drawn, from 0 .. 7


def test_scale_noise_and_dropout() -> None:
    u = images()
    out = drawn(SIA(tiny_model(), blocks=1, ops=("scale",)), u)(u, ALL)
    ratio = out / u
    assert 0 <= ratio.min() < 1 and torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio))

    out = drawn(SIA(tiny_model(), blocks=1, ops=("noise",), noise_radius=0.1), u)(u, ALL)
    assert out.min() >= 0 and out.max() <= 1 and (out - u).abs().max() <= 0.1 + 1e-6
    inner = (u > 0.1) & (u < 0.9)             # where no clipping can happen: the noise itself
    assert (out - u)[inner].abs().max() > 0.05

    x = torch.rand(40, 3, 8, 8, generator=torch.Generator().manual_seed(1)) + 0.01
    atk = SIA(tiny_model(), blocks=1, ops=("dropout",))
    atk.generator, atk.image_generators, atk.seeded = torch.Generator().manual_seed(0), None, False
    out = atk.make_transform(x)(x, slice(0, 40))
    kept = torch.isclose(out, x / 0.9).flatten(2).all(2)
    dropped = (out == 0).flatten(2).all(2)
    assert bool((kept ^ dropped).all())       # each channel of each image: kept (x / 0.9) or zeroed
    assert 0 < dropped.float().mean() < 0.3   # with probability 0.1 (120 channels)


def test_resize_and_dct_against_independent_computations() -> None:
    u = images()
    out = drawn(SIA(tiny_model(), blocks=1, ops=("resize",)), u)(u, ALL)
    small = F.interpolate(u, size=(7, 7), mode="bilinear", align_corners=False)      # int(0.8 * 8) + 1
    torch.testing.assert_close(out, F.interpolate(small, size=(8, 8), mode="bilinear").clamp(0, 1))

    out = drawn(SIA(tiny_model(), blocks=1, ops=("dct",)), u)(u, ALL)
    spec = dctn(u.double().numpy(), axes=(2, 3), norm="ortho")
    spec[:, :, 5:, :] = 0                     # the highest int(0.4 * 8) = 3 frequencies of each axis
    spec[:, :, :, 5:] = 0
    np.testing.assert_allclose(out.numpy(), idctn(spec, axes=(2, 3), norm="ortho"), atol=1e-5)


def test_blocks_with_fixed_cuts_against_a_hand_written_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the cuts fixed at rows/columns 2 and 5, every one of the 9 blocks of the output is one of
    the three flips of the same block of the input, and all three are drawn."""
    u = images(size=8)
    atk = SIA(tiny_model(), blocks=3, ops=("vflip", "hflip", "rotate180"))
    monkeypatch.setattr(atk, "cuts", lambda side, device: [0, 2, 5, 8])
    a = u.numpy()
    used = set()
    for seed in range(10):
        out = drawn(atk, u, seed)(u, ALL).numpy()
        for r0, r1 in ((0, 2), (2, 5), (5, 8)):
            for c0, c1 in ((0, 2), (2, 5), (5, 8)):
                block, got = a[:, :, r0:r1, c0:c1], out[:, :, r0:r1, c0:c1]
                variants = {"vflip": block[:, :, ::-1, :], "hflip": block[:, :, :, ::-1],
                            "rotate180": block[:, :, ::-1, ::-1]}
                which = [k for k, v in variants.items() if np.array_equal(got, v)]
                assert which, f"block {r0}:{r1}, {c0}:{c1} is none of the flips"
                used.update(which)
    assert used == {"vflip", "hflip", "rotate180"}


def test_random_cuts_make_a_grid_of_blocks() -> None:
    ones = torch.ones(1, 3, 12, 12)
    for seed in range(5):
        out = drawn(SIA(tiny_model(), blocks=3, ops=("scale",)), ones, seed)(ones, slice(0, 1))[0, 0]
        row_cuts = [i for i in range(1, 12) if not torch.equal(out[i], out[i - 1])]
        col_cuts = [j for j in range(1, 12) if not torch.equal(out[:, j], out[:, j - 1])]
        assert len(row_cuts) == 2 and len(col_cuts) == 2     # 3 x 3 blocks, each its own factor


def test_gradient_is_taken_through_the_transform() -> None:
    """Through a vertical flip of the whole image, the linear model's gradient ``-W[y]`` comes back
    flipped."""
    net = LinearNet((3, 8, 8))
    x, y = torch.full((2, 3, 8, 8), 0.5), torch.tensor([2, 5])
    atk = SIA(net, blocks=1, ops=("vflip",), copies=2, steps=1, seed=0, loss="logit")
    seen: list[Tensor] = []
    update = atk.update
    atk.update = lambda d, g, it: (seen.append(g), update(d, g, it))[1]  # type: ignore[method-assign]
    atk(x, y)
    torch.testing.assert_close(seen[0], net.logit_grad(y).flip(2))


def test_options() -> None:
    m = tiny_model()
    assert SIA(m).ops == SIA_OPS and len(SIA_OPS) == 10 and SIA(m).copies == 20 and SIA(m).blocks == 3
    assert SIA(m).noise_radius == pytest.approx(16 / 255) and SIA(m).momentum == 1.0
    assert SIA(m, ops=TRANSFERATTACK_SIA_OPS).ops == TRANSFERATTACK_SIA_OPS and len(TRANSFERATTACK_SIA_OPS) == 7
    assert SIA(m, ops="vflip, hflip").ops == ("vflip", "hflip")
    for bad in (("nope",), (), ("vflip", "vflip")):
        with pytest.raises(ValueError, match="ops must be distinct names"):
            SIA(m, ops=bad)
    with pytest.raises(ValueError, match="blocks must be an integer >= 1"):
        SIA(m, blocks=0)
    with pytest.raises(ValueError, match="needs images of at least 9x9 pixels"):
        SIA(m, blocks=9, steps=1)(tiny_batch(1), torch.tensor([0]))


def test_passes_per_image_counts_the_gradient_rows() -> None:
    counter = RowCounter(tiny_model())
    atk = build_attack("sia", counter, copies=3, steps=2, seed=0)
    atk(tiny_batch(4), torch.arange(4))
    assert counter.rows / 4 == atk.passes_per_image() == 2 * 3
