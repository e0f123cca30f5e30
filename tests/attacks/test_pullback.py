"""``Attack.input_grad``'s per-row objective values and ``Attack.pullback_grad`` (gradients through a
map applied before the model) against direct autograd computations, whatever the chunk size."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor

from tpa_lightning.attacks import Attack
from tpa_lightning.attacks.objectives import per_sample_objective

from .helpers import tiny_batch, tiny_model


def prepared(max_batch: int | str = "auto", eot: int = 1, loss: str = "ce") -> Attack:
    atk = Attack(tiny_model(), max_batch=max_batch, eot_samples=eot, loss=loss)
    atk.targeted = False
    return atk


@pytest.mark.parametrize("loss", ["ce", "logit"])
@pytest.mark.parametrize(("max_batch", "eot"), [("auto", 1), (1, 1), (3, 2)])
def test_values_are_the_rows_objective_terms(max_batch: int | str, eot: int, loss: str) -> None:
    x, y = tiny_batch(5), torch.tensor([0, 3, 3, 7, 9])
    atk = prepared(max_batch, eot, loss)
    values = torch.empty(5)
    g = atk.input_grad(x, y, values=values)
    with torch.no_grad():
        expected = per_sample_objective(tiny_model()(x), y, False, loss)
    torch.testing.assert_close(values, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(g, prepared(loss=loss).input_grad(x, y), atol=1e-6, rtol=1e-5)  # unchanged


@pytest.mark.parametrize("max_batch", ["auto", 1, 4])
def test_pullback_equals_autograd_through_map_and_model(max_batch: int | str) -> None:
    model = tiny_model()
    x, y = tiny_batch(3), torch.tensor([1, 2, 3])
    w = torch.tensor([0.5, 1.0, 2.0, -1.0, 0.25, 3.0])
    scales = torch.tensor([1.0, 0.5]).view(2, 1, 1, 1, 1)

    def fn(u: Tensor) -> Tensor:                        # two copies of each image: (6, C, H, W) copy-major
        return (scales * u.unsqueeze(0).flip(3)).reshape(6, *u.shape[1:])

    got = prepared(max_batch).pullback_grad(fn, x, y, weights=w)
    leaf = x.clone().requires_grad_(True)
    terms = per_sample_objective(model(fn(leaf)), y.repeat(2), False)
    (expected,) = torch.autograd.grad((w * terms).sum(), leaf)
    torch.testing.assert_close(got, expected, atol=1e-6, rtol=1e-5)


def test_pullback_of_a_map_that_ignores_its_leaf_is_zero() -> None:
    x, y = tiny_batch(2), torch.tensor([1, 2])
    leaf = torch.ones(2, 5)
    assert torch.equal(prepared().pullback_grad(lambda t: x, leaf, y), torch.zeros(2, 5))
