"""Model-mode context (grads, requires_grad, train/eval restored) and input validation."""
from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from tpa_lightning.attacks import ATTACKS, build_attack, model_eval_no_param_grad

from .helpers import TinyNet, tiny_batch, tiny_model


class Exploding(TinyNet):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def forward(self, x: Tensor) -> Tensor:
        self.calls += 1
        if self.calls > 1:  # let the class-count probe through, fail inside the attack
            raise RuntimeError("boom")
        return super().forward(x)


@pytest.mark.parametrize("name", ["pgd", "tpa"])
def test_param_grads_untouched_and_modes_restored(name: str) -> None:
    model = tiny_model().train()
    params = list(model.parameters())
    params[0].grad = torch.ones_like(params[0])
    params[-1].requires_grad_(False)
    before = params[0].grad.clone()
    x = tiny_batch(2)
    build_attack(name, model, steps=2, copies=1, seed=0)(x, torch.tensor([0, 1])) if name == "tpa" else \
        build_attack(name, model, steps=2, seed=0)(x, torch.tensor([0, 1]))
    assert torch.equal(params[0].grad, before)
    assert all(p.grad is None for p in params[1:])
    assert [p.requires_grad for p in params] == [True] * (len(params) - 1) + [False]
    assert model.training and all(m.training for m in model.modules())


def test_attack_runs_in_eval_mode() -> None:
    model = tiny_model().train()
    seen: list[bool] = []
    model.register_forward_hook(lambda m, i, o: seen.append(m.training))
    build_attack("pgd", model, steps=1)(tiny_batch(2), torch.tensor([0, 1]))
    assert seen and not any(seen)
    assert model.training


def test_modes_restored_after_exception() -> None:
    model = Exploding().train()
    model.body[0].weight.requires_grad_(False)
    flags = [p.requires_grad for p in model.parameters()]
    with pytest.raises(RuntimeError, match="boom"):
        build_attack("pgd", model, steps=1)(tiny_batch(2), torch.tensor([0, 1]))
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(m.training for m in model.modules())
    assert all(p.grad is None for p in model.parameters())


def test_context_unwraps_data_parallel_and_restores_mixed_modes() -> None:
    model = tiny_model().train()
    model.body[1].eval()  # a frozen BatchNorm inside a training model
    wrapped = nn.DataParallel(model)
    with model_eval_no_param_grad(wrapped) as net:
        assert net is model
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
    assert model.training and not model.body[1].training
    assert all(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize(
    ("x", "y", "match"),
    [
        (torch.rand(2, 3, 8, 8) * 2, torch.tensor([0, 1]), r"values in \[0, 1\]"),
        (torch.rand(3, 8, 8), torch.tensor([0, 1]), "4-D NCHW"),
        (torch.full((2, 3, 8, 8), float("nan")), torch.tensor([0, 1]), "NaN"),
        (torch.rand(2, 3, 8, 8), torch.tensor([0, 10]), r"class indices in \[0, 9\]"),
        (torch.rand(2, 3, 8, 8), torch.tensor([-1, 0]), ">= 0"),
        (torch.rand(2, 3, 8, 8), torch.tensor([0, 1, 2]), "1-D tensor of 2 class indices"),
    ],
)
def test_bad_inputs(x: Tensor, y: Tensor, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        build_attack("pgd", tiny_model(), steps=1)(x, y)


def test_bad_target() -> None:
    with pytest.raises(ValueError, match="target must hold class indices"):
        build_attack("pgd", tiny_model(), steps=1)(tiny_batch(2), torch.tensor([0, 1]), target=torch.tensor([0, 12]))


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_bad_options(name: str) -> None:
    m = tiny_model()
    with pytest.raises(ValueError, match="eps must be >= 0"):
        build_attack(name, m, eps=-0.1)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        build_attack(name, m, steps=0)
    with pytest.raises(ValueError, match="norm must be one of"):
        build_attack(name, m, norm="l1")
    with pytest.raises(ValueError, match="precision must be one of"):
        build_attack(name, m, precision="8")
    with pytest.raises(ValueError, match="loss must be one of"):
        build_attack(name, m, loss="hinge")
    with pytest.raises(ValueError, match="max_batch must be an integer >= 1"):
        build_attack(name, m, max_batch=0)


@pytest.mark.parametrize("name", ["tpa", "vt", "ssa", "pgn", "bsr", "di", "mef", "sia", "decowa"])
def test_copies_below_one(name: str) -> None:
    with pytest.raises(ValueError, match="copies must be an integer >= 1"):
        build_attack(name, tiny_model(), copies=0)


@pytest.mark.parametrize("precision", ["bf16", "16"])
@pytest.mark.parametrize("name", ["pgd", "tpa"])
def test_low_precision_gives_valid_adversarial(name: str, precision: str) -> None:
    model = tiny_model()
    x = tiny_batch(4)
    y = model(x).argmax(1)
    atk = build_attack(name, model, eps=32 / 255, steps=3, copies=2, seed=0, precision=precision) \
        if name == "tpa" else build_attack(name, model, eps=32 / 255, steps=3, seed=0, precision=precision)
    deltas: list[torch.dtype] = []
    orig = atk.update
    atk.update = lambda d, g, it: (deltas.append(d.dtype), deltas.append(g.dtype), orig(d, g, it))[-1]  # type: ignore[method-assign]
    x_adv = atk(x, y)
    assert x_adv.dtype == torch.float32 and set(deltas) == {torch.float32}
    assert x_adv.min() >= 0 and x_adv.max() <= 1 and (x_adv - x).abs().max() <= 32 / 255 + 1e-6
    assert (x_adv != x).any()


def test_logit_loss_runs() -> None:
    model = tiny_model()
    x = tiny_batch(4)
    y = model(x).argmax(1)
    x_adv = build_attack("mi", model, eps=32 / 255, steps=5, loss="logit")(x, y, target=(y + 1) % 10)
    assert (model(x_adv).gather(1, ((y + 1) % 10)[:, None]) > model(x).gather(1, ((y + 1) % 10)[:, None])).all()
