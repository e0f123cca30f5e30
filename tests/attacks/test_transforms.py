"""Composable transforms (DI, TI, SI, Admix) on TPA, MI and PGD: valid output, determinism, batch
consistency, cost, replace(), and each transform against an independent computation."""
from __future__ import annotations

import copy
import math
import pickle
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tpa_lightning.attacks import (
    ATTACKS,
    DI,
    TI,
    Attack,
    DiverseInputs,
    TransformedAttack,
    TranslationInvariance,
    attack_option_names,
    attack_passes_per_image,
    build_attack,
    parse_transforms,
    with_transforms,
)

from .helpers import tiny_batch, tiny_model

#: small settings (1-2 steps, 2 TPA copies) on the tiny model
SMALL: dict[str, dict[str, Any]] = {"tpa": {"steps": 2, "copies": 2}, "mi": {"steps": 2}, "pgd": {"steps": 2}}
COMBOS: list[list[str]] = [["di"], ["ti"], ["si"], ["admix"], ["di", "ti"], ["si", "ti"], ["di", "si", "ti"]]
FACTOR = {"di": 1, "ti": 1, "si": 5, "admix": 15}
EPS = 16 / 255
SIZE = 16   # DI needs int(1.1 * size) > size


def make(name: str, model: nn.Module, transforms: list[Any], **extra: Any) -> Attack:
    return build_attack(name, model, transforms=transforms, **{"eps": EPS, **SMALL[name], **extra})


def _transforms(atk: Attack) -> tuple[Any, ...]:
    assert isinstance(atk, TransformedAttack)
    return atk.transforms


def _setup(n: int = 3) -> tuple[nn.Module, Tensor, Tensor]:
    model = tiny_model()
    x = tiny_batch(n, size=SIZE)
    return model, x, model(x).argmax(1)


def _ids(combo: list[str]) -> str:
    return "+".join(combo)


# ------------------------------------------------------------------ properties of every combination
@pytest.mark.parametrize("combo", COMBOS, ids=_ids)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_output_inside_budget_and_box(name: str, combo: list[str]) -> None:
    model, x, y = _setup()
    x_adv = make(name, model, combo, seed=0)(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x).abs().max() <= EPS + 1e-6
    assert not torch.equal(x_adv, x)


@pytest.mark.parametrize("combo", COMBOS, ids=_ids)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_same_seed_same_result(name: str, combo: list[str]) -> None:
    model, x, y = _setup()
    atk = make(name, model, combo, seed=123)
    a, b = atk(x, y), atk(x, y)
    c = make(name, model, combo, seed=5)(x, y, seed=123)
    assert torch.equal(a, b) and torch.equal(a, c)


@pytest.mark.parametrize("combo", [c for c in COMBOS if "admix" not in c], ids=_ids)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_batch_equals_each_image_alone(name: str, combo: list[str]) -> None:
    # Admix is left out: it mixes in OTHER images of the batch by definition (a lone image is mixed
    # with itself), so its result depends on the batch; test_admix_* checks it otherwise.
    model, x, y = _setup()
    atk = make(name, model, combo, seed=7)
    batch = atk(x, y)
    alone = torch.cat([atk(x[i:i + 1], y[i:i + 1]) for i in range(x.shape[0])])
    torch.testing.assert_close(batch, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("combo", COMBOS, ids=_ids)
@pytest.mark.parametrize("name", sorted(SMALL))
def test_passes_per_image_is_the_product(name: str, combo: list[str]) -> None:
    model = tiny_model()
    plain = attack_passes_per_image(build_attack(name, model, **SMALL[name]))
    atk = make(name, model, combo)
    assert attack_passes_per_image(atk) == plain * math.prod(FACTOR[t] for t in combo)


@pytest.mark.parametrize("combo", COMBOS, ids=_ids)
def test_replace_keeps_transforms(combo: list[str]) -> None:
    model, x, y = _setup(2)
    atk = make("tpa", model, combo, seed=3)
    small = atk.replace(eps=4 / 255)
    assert type(small) is type(atk) and isinstance(small, TransformedAttack)
    assert _transforms(small) == _transforms(atk) == parse_transforms(combo)
    assert small.passes_per_image() == atk.passes_per_image()
    assert (small(x, y) - x).abs().max() <= 4 / 255 + 1e-6
    assert torch.equal(atk(x, y), make("tpa", model, combo, seed=3)(x, y))   # atk itself untouched
    assert atk.eps == EPS


def test_seed_matters_for_random_transforms() -> None:
    model, x, y = _setup()
    for combo in (["di"], ["admix"]):
        a = make("mi", model, combo, seed=1)(x, y)
        b = make("mi", model, combo, seed=2)(x, y)
        assert not torch.equal(a, b), combo


def test_admix_deterministic_and_depends_on_the_batch() -> None:
    model, x, y = _setup(4)
    atk = make("mi", model, ["admix"], seed=11)
    assert torch.equal(atk(x, y), atk(x, y))
    alone = torch.cat([atk(x[i:i + 1], y[i:i + 1]) for i in range(4)])
    assert not torch.equal(atk(x, y), alone)   # documented: not batch consistent


@pytest.mark.parametrize("combo", [["di", "si"], ["admix", "di", "ti"]], ids=_ids)
def test_chunking_and_eot_do_not_change_result(combo: list[str]) -> None:
    model, x, y = _setup(2)
    big = make("tpa", model, combo, seed=3, max_batch=4096)(x, y)
    small = make("tpa", model, combo, seed=3, max_batch=7)(x, y)
    torch.testing.assert_close(big, small, atol=1e-5, rtol=0)
    # deterministic model: the EOT mean of identical passes is the single pass (rows cross EOT blocks)
    eot = make("tpa", model, combo, seed=3, max_batch=7, eot_samples=2)(x, y)
    torch.testing.assert_close(big, eot, atol=1e-5, rtol=0)


def test_order_of_the_list_does_not_matter() -> None:
    model, x, y = _setup()
    a = make("pgd", model, ["ti", "si", "di"], seed=4)(x, y)
    b = make("pgd", model, ["di", "si", "ti"], seed=4)(x, y)
    assert torch.equal(a, b)


def test_targeted() -> None:
    model, x, y = _setup(8)
    t = (y + 1) % 10
    x_adv = make("mi", model, ["di", "si", "ti"], seed=0, steps=5)(x, y, target=t)
    p_before = model(x).softmax(1).gather(1, t[:, None]).mean()
    p_after = model(x_adv).softmax(1).gather(1, t[:, None]).mean()
    assert p_after > p_before


# ------------------------------------------------------------------ each transform, independently
def _objective_grad(model: nn.Module, u: Tensor, y: Tensor, fn: Any) -> Tensor:
    """d/du of the summed cross-entropy of model(fn(u)), plain autograd."""
    u = u.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(F.cross_entropy(model(fn(u)), y, reduction="sum"), u)
    return g


def test_si_gradient_is_the_mean_over_scales() -> None:
    model, x, y = _setup()
    atk = make("pgd", model, ["si"])
    expected = torch.stack([_objective_grad(model, x, y, lambda u, i=i: u / 2 ** i) for i in range(5)]).mean(0)
    torch.testing.assert_close(atk.input_grad(x, y), expected, atol=1e-6, rtol=1e-5)


def test_admix_gradient_of_a_lone_image() -> None:
    # one image: every partner is the image itself (detached), so copy (i, j) is (u + 0.2 u_detached) / 2^i
    model, x, y = _setup(1)
    atk = make("pgd", model, ["admix"], seed=0)
    atk.generator = torch.Generator().manual_seed(0)
    x0 = x.detach()
    expected = torch.stack([_objective_grad(model, x, y, lambda u, i=i: (u + 0.2 * x0) / 2 ** i)
                            for i in range(5)]).mean(0)
    torch.testing.assert_close(atk.input_grad(x, y), expected, atol=1e-6, rtol=1e-5)


def _hand_gaussian(size: int, nsig: float) -> list[list[float]]:
    t = [-nsig + 2 * nsig * i / (size - 1) for i in range(size)]
    k = [[math.exp(-0.5 * a * a) * math.exp(-0.5 * b * b) for b in t] for a in t]
    s = sum(map(sum, k))
    return [[v / s for v in row] for row in k]


def _hand_depthwise_conv(g: Tensor, k: list[list[float]]) -> Tensor:
    """Same-size, zero-padded, per-channel correlation with the (symmetric) kernel ``k``: a weighted
    sum of shifted copies of ``g``."""
    n, c, h, w = g.shape
    r = len(k) // 2
    padded = torch.zeros(n, c, h + 2 * r, w + 2 * r, dtype=g.dtype)
    padded[:, :, r:r + h, r:r + w] = g
    out = torch.zeros_like(g)
    for a in range(2 * r + 1):
        for b in range(2 * r + 1):
            out += k[a][b] * padded[:, :, a:a + h, b:b + w]
    return out


@pytest.mark.parametrize(("size", "kernel"), [(12, None), (12, 5), (70, None)])
def test_ti_smoothing_equals_hand_written_conv(size: int, kernel: int | None) -> None:
    g = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    ksize = kernel or (7 if size <= 64 else 15)
    expected = _hand_depthwise_conv(g, _hand_gaussian(ksize, 3.0))
    torch.testing.assert_close(TranslationInvariance(kernel).apply(g), expected, atol=1e-6, rtol=1e-5)


def test_ti_smooths_the_direction() -> None:
    model, x, y = _setup()
    atk = make("pgd", model, ["ti"])
    plain = build_attack("pgd", model, eps=EPS, **SMALL["pgd"])
    delta = torch.zeros_like(x)
    expected = _hand_depthwise_conv(plain.direction(x, delta, y, 0), _hand_gaussian(7, 3.0))
    torch.testing.assert_close(atk.direction(x, delta, y, 0), expected, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_di_with_probability_zero_is_the_plain_attack(name: str) -> None:
    model, x, y = _setup()
    plain = build_attack(name, model, eps=EPS, seed=9, **SMALL[name])(x, y)
    off = make(name, model, [DiverseInputs(p=0.0)], seed=9)(x, y)
    assert torch.equal(plain, off)
    assert not torch.equal(plain, make(name, model, [DiverseInputs(p=1.0)], seed=9)(x, y))


def test_modifiers_on_mi_equal_the_di_and_ti_attacks() -> None:
    # MI + di draws one resize-pad per gradient as the DI class (copies=1) does; MI + ti is TI
    model, x, y = _setup()
    torch.testing.assert_close(make("mi", model, ["di"], seed=2, steps=3)(x, y),
                               DI(model, eps=EPS, steps=3, seed=2)(x, y), atol=0, rtol=0)
    torch.testing.assert_close(make("mi", model, ["ti"], seed=2, steps=3)(x, y),
                               TI(model, eps=EPS, steps=3, seed=2)(x, y), atol=0, rtol=0)


def test_di_on_small_images_is_the_identity() -> None:
    model = tiny_model()
    x = tiny_batch(2, size=8)   # int(1.1 * 8) == 8: nothing to resize
    y = model(x).argmax(1)
    plain = build_attack("mi", model, eps=EPS, seed=1, **SMALL["mi"])(x, y)
    assert torch.equal(plain, make("mi", model, [DiverseInputs(p=1.0)], seed=1)(x, y))


# ------------------------------------------------------------------ names, registry, copies
def test_names_errors() -> None:
    model = tiny_model()
    with pytest.raises(ValueError, match="unknown transform 'xx'; known: admix, si, di, ti"):
        build_attack("pgd", model, transforms=["di", "xx"])
    with pytest.raises(ValueError, match="given twice"):
        build_attack("pgd", model, transforms=["di", "DI"])
    with pytest.raises(ValueError, match="admix already contains"):
        build_attack("pgd", model, transforms=["admix", "si"])
    with pytest.raises(ValueError, match="unknown transform"):
        build_attack("pgd", model, transforms=[3])   # type: ignore[list-item]
    with pytest.raises(ValueError, match="transforms must be a list"):
        build_attack("pgd", model, transforms=3)   # type: ignore[arg-type]
    with pytest.raises(ValueError, match="bad option"):
        build_attack("pgd", model, transforms=["di"], not_an_option=1)
    with pytest.raises(ValueError, match="p must be"):
        DiverseInputs(p=2.0)
    with pytest.raises(ValueError, match="odd"):
        TranslationInvariance(kernel_size=4)


def test_registry_plain_without_transforms_and_option_names() -> None:
    model = tiny_model()
    empty: tuple[Any, ...] = (None, [], ())
    for transforms in empty:
        atk = build_attack("tpa", model, transforms=transforms)
        assert type(atk) is ATTACKS["tpa"]
    atk = build_attack("TPA", model, transforms="si")
    assert isinstance(atk, ATTACKS["tpa"]) and isinstance(atk, TransformedAttack)
    assert atk.name == "tpa" and [t.name for t in _transforms(atk)] == ["si"]
    assert "transforms=['si']" in repr(atk)
    for name in ATTACKS:
        assert "transforms" in attack_option_names(name)
        build_attack(name, nn.Flatten(), transforms=["di", "ti"])   # every attack takes them


def test_with_transforms_rebuilds_an_attack() -> None:
    model, x, y = _setup(2)
    plain = build_attack("pgd", model, eps=EPS, steps=2, seed=1)
    atk = with_transforms(plain, ["si"])
    assert isinstance(atk, TransformedAttack) and atk.eps == EPS and atk.passes_per_image() == 10
    assert torch.equal(atk(x, y), make("pgd", model, ["si"], seed=1)(x, y))
    assert type(with_transforms(atk, [])) is ATTACKS["pgd"]
    assert [t.name for t in _transforms(with_transforms(atk, ["ti"]))] == ["ti"]


def test_copy_and_pickle() -> None:
    model, x, y = _setup(2)
    atk = make("tpa", model, ["di", "ti"], seed=1)
    for other in (copy.deepcopy(atk), pickle.loads(pickle.dumps(atk))):
        assert type(other) is type(atk) and _transforms(other) == _transforms(atk)
        assert torch.equal(other(x, y), atk(x, y))
