"""The attacks' three random schemes (tpa_lightning/attacks/base.py): per-image streams (``keys``),
shared seeded draws, unseeded draws; the per-call seed; ``replace``."""
from __future__ import annotations

import pytest
import torch

from tpa_lightning.attacks import ATTACKS, build_attack
from tpa_lightning.attacks.base import stream_seed

from .helpers import tiny_batch, tiny_model

#: attacks that draw per-image randomness through ``rand_like_sample`` (random start, copies, noise,
#: SIA's noise blocks, DeCowA's offsets, L2T's operations)
RANDOM = ("pgd", "vt", "pgn", "ssa", "rap", "mef", "sia", "decowa", "l2t", "tpa")


def _attack(name: str, **kw):
    opts = {"eps": 8 / 255, "steps": 2, **kw}
    if name in ("vt", "pgn", "ssa", "mef", "sia", "decowa", "tpa"):
        opts["copies"] = 2
    if name == "sia":
        opts["ops"] = ("noise",)        # its only transformation drawn per image
    if name == "tpa":
        opts["init"] = "uniform"
    if name == "rap":
        opts["late_start"] = 0
    return build_attack(name, tiny_model(), **opts)


@pytest.mark.parametrize("name", RANDOM)
def test_keys_give_each_image_its_own_stream_whatever_the_batch(name: str) -> None:
    x = tiny_batch(1).repeat(4, 1, 1, 1)                      # four copies of one image
    y = torch.zeros(4, dtype=torch.long)
    atk = _attack(name, seed=3)
    keys = torch.tensor([10, 11, 12, 13])
    out = atk(x, y, keys=keys)
    rows = out.flatten(1)
    assert all(not torch.equal(rows[0], rows[i]) for i in range(1, 4))     # independent draws
    part = atk(x[2:], y[2:], keys=keys[2:])                   # the same images in another batch
    torch.testing.assert_close(part, out[2:])
    again = atk(torch.cat([x[3:], x[:1]]), torch.cat([y[3:], y[:1]]), keys=torch.tensor([13, 10]))
    torch.testing.assert_close(again, out[[3, 0]])             # order and company do not matter
    shared = atk(x, y).flatten(1)                              # seeded, no keys: one draw shared
    assert all(torch.equal(shared[0], shared[i]) for i in range(1, 4))


def test_stream_seed_is_a_hash_of_both() -> None:
    seeds = {stream_seed(s, k) for s in range(3) for k in range(50)}
    assert len(seeds) == 150 and all(0 <= v < 2**63 for v in seeds)
    assert stream_seed(1, 2) == stream_seed(1, 2) != stream_seed(2, 1)


def test_per_call_seed_equals_a_seeded_attack_and_leaves_it_unchanged() -> None:
    x, y = tiny_batch(3), torch.tensor([1, 2, 3])
    unseeded = _attack("pgd")
    seeded = _attack("pgd", seed=9)
    torch.testing.assert_close(unseeded(x, y, seed=9), seeded(x, y))
    assert unseeded.seed is None
    torch.testing.assert_close(seeded(x, y, seed=4), _attack("pgd", seed=4)(x, y))


def test_keys_are_checked() -> None:
    x, y = tiny_batch(2), torch.tensor([1, 2])
    with pytest.raises(ValueError, match="need a seed"):
        _attack("pgd")(x, y, keys=torch.arange(2))
    with pytest.raises(ValueError, match="keys must be integers"):
        _attack("pgd", seed=0)(x, y, keys=torch.arange(3))
    with pytest.raises(ValueError, match="keys must be integers"):
        _attack("pgd", seed=0)(x, y, keys=torch.zeros(2))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_replace_reruns_the_constructor(name: str) -> None:
    atk = _attack(name, seed=1)
    new = atk.replace(eps=4 / 255)
    assert type(new) is type(atk) and new is not atk
    assert new.eps == pytest.approx(4 / 255) and atk.eps == pytest.approx(8 / 255)
    assert new.steps == atk.steps and new.seed == atk.seed and new.max_batch == atk.max_batch
    with pytest.raises(ValueError):
        atk.replace(steps=0)
