"""AdversarialTrainingModule: every objective runs, and the attack leaks nothing into parameter grads."""
from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from tpa_lightning.attacks import build_attack
from tpa_lightning.data.fashion_mnist import load_fashion_mnist
from tpa_lightning.training import OBJECTIVES, AdversarialTrainingModule

ATTACK = {"name": "tpa", "eps": 0.1, "steps": 2, "copies": 2}
VAL_ATTACK = {"name": "pgd", "eps": 0.1, "steps": 2}


@pytest.fixture(scope="module")
def fmnist() -> TensorDataset:
    x, y = load_fashion_mnist("data", train=False)
    return TensorDataset(x[:64].float() / 255.0, y[:64].long())


#: The attack keys each objective reads (others are refused: see test_attack_keys_an_objective_does_not_read).
ATTACK_BY_OBJECTIVE = {"tpa_at": ATTACK, "pgd_at": {"eps": 0.1, "steps": 2}, "mart": {"eps": 0.1, "steps": 2},
                       "trades": {"eps": 0.1, "steps": 2}, "fast_at": {"eps": 0.1}, "clean": {},
                       "gaussian_noise": {}}


def _module(objective: str, **kw) -> AdversarialTrainingModule:
    kw.setdefault("attack", ATTACK_BY_OBJECTIVE.get(objective, {}))
    return AdversarialTrainingModule("small_cnn", num_classes=10, in_chans=1, mean=[0.286], std=[0.353],
                                     model_kwargs={"width": 8}, objective=objective,
                                     val_attack=VAL_ATTACK, **kw)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_fast_dev_run_of_every_objective(objective: str, fmnist: TensorDataset) -> None:
    module = _module(objective, adv_ratio=0.5 if objective in ("trades", "pgd_at") else 1.0,
                     optimizer="sgd" if objective == "mart" else "adamw",
                     schedule="onecycle" if objective == "fast_at" else "cosine", clean_train_metrics=True)
    trainer = L.Trainer(fast_dev_run=True, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    loader = DataLoader(fmnist, batch_size=16)
    trainer.fit(module, loader, loader)
    m = trainer.callback_metrics
    keys = ["val/clean_acc", "val/adv_acc", "val/clean_loss", "val/adv_loss"]
    keys += ["train/clean_acc"] if objective != "gaussian_noise" else []    # noisy inputs: "adv" only
    for key in keys:
        assert key in m, key
    if objective != "clean":
        assert "train/adv_acc" in m and torch.isfinite(m["train/adv_loss"])
    assert all(p.requires_grad for p in module.parameters())


def test_tpa_at_step_grads_equal_plain_ce_on_the_adversarial_batch(fmnist: TensorDataset) -> None:
    module = _module("tpa_at", clean_train_metrics=False)
    x, y = fmnist.tensors[0][:16], fmnist.tensors[1][:16]
    module.model.train()
    for p in module.parameters():
        p.grad = None
    loss = module.training_step((x, y), 0)
    loss.backward()
    grads = [p.grad.clone() for p in module.model.parameters()]
    # the same adversarial batch, made again with the step's seed, then a plain CE step
    atk = build_attack("tpa", module.model, eps=0.1, steps=2, copies=2, step_size=0.01,
                       seed=module._step_seed(0))
    x_adv = atk(x, y, keys=torch.arange(16))        # one random stream per row of the batch
    module.model.zero_grad(set_to_none=True)
    module.model.train()
    F.cross_entropy(module.model(x_adv), y).backward()
    for g, p in zip(grads, module.model.parameters()):
        torch.testing.assert_close(g, p.grad, rtol=1e-5, atol=1e-6)
    assert module.model.training


def test_attack_never_touches_existing_grads_or_modes(fmnist: TensorDataset) -> None:
    module = _module("pgd_at")
    x, y = fmnist.tensors[0][:8], fmnist.tensors[1][:8]
    for p in module.parameters():
        p.grad = torch.full_like(p, 7.0)
    module.model.train()
    x_adv = module._adversarial(x, y, 0.1)
    assert (x_adv - x).abs().max() <= 0.1 + 1e-6 and not torch.equal(x_adv, x)
    assert module.model.training and all(p.requires_grad for p in module.parameters())
    assert all(torch.all(p.grad == 7.0) for p in module.parameters())


def test_warmup_ramp_and_step_size() -> None:
    m = _module("pgd_at", warmup_epochs=1, eps_ramp_epochs=2)
    eps = []
    for epoch in range(4):
        m.current_epoch_override = epoch
        type(m).current_epoch = property(lambda self: self.current_epoch_override)  # type: ignore
        eps.append(m.current_eps())
    del type(m).current_epoch
    assert eps == pytest.approx([0.0, 0.05, 0.1, 0.1])
    assert m._step_size(0.1) == pytest.approx(2.5 * 0.1 / 2)
    assert _module("fast_at")._step_size(0.1) == pytest.approx(0.125)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="objective"):
        _module("nope")
    with pytest.raises(ValueError, match="adv_ratio"):
        _module("pgd_at", adv_ratio=1.5)


@pytest.mark.parametrize("objective", ["pgd_at", "tpa_at", "fast_at"])
def test_training_draws_are_independent_per_image(objective: str, fmnist: TensorDataset) -> None:
    """Eight copies of one image in a batch: the training attack's random start / copies differ per
    row (so do the examples); the validation attack (shared draws) gives eight equal rows, and the
    same rows alone as in the batch (independent of the batch size)."""
    module = _module(objective)
    x = fmnist.tensors[0][:1].repeat(8, 1, 1, 1)
    y = fmnist.tensors[1][:1].repeat(8)
    x_adv = module._adversarial(x, y, 0.1)
    rows = x_adv.flatten(1)
    assert all(not torch.equal(rows[0], rows[i]) for i in range(1, 8))
    again = module._adversarial(x, y, 0.1)                       # same step: repeatable
    torch.testing.assert_close(again, x_adv)
    val = module._build("pgd", {"eps": 0.1, "steps": 2})
    shared = val(x, y, seed=5).flatten(1)
    assert all(torch.equal(shared[0], shared[i]) for i in range(1, 8))
    torch.testing.assert_close(val(x[:3], y[:3], seed=5).flatten(1), shared[:3])


def test_attack_keys_an_objective_does_not_read() -> None:
    with pytest.raises(ValueError, match="attack.steps"):
        _module("fast_at", attack={"eps": 0.1, "steps": 5})
    with pytest.raises(ValueError, match="attack.copies"):
        _module("trades", attack={"eps": 0.1, "copies": 2})
    with pytest.raises(ValueError, match="attack.name"):
        _module("tpa_at", attack={"name": "pgd", "eps": 0.1})
    with pytest.raises(ValueError, match="attack.eps"):
        _module("clean", attack={"eps": 0.1})
    mi = _module("pgd_at", attack={"name": "mi", "eps": 0.1, "steps": 2, "momentum": 0.5})
    atk = mi.training_attack()
    assert type(atk).__name__ == "MI" and atk.momentum == 0.5 and atk.eps == 0.1
    assert atk.step_size == pytest.approx(2.5 * 0.1 / 2)
    ramped = mi.training_attack(0.05)                            # the eps ramp: a new attack, not a mutation
    assert ramped is not atk and ramped.eps == 0.05 and atk.eps == 0.1
    assert ramped.step_size == pytest.approx(2.5 * 0.05 / 2) and ramped.momentum == 0.5


@pytest.mark.parametrize("objective, attack, adv_ratio", [
    ("tpa_at", ATTACK, 1.0), ("tpa_at", {**ATTACK, "steps": 1, "copies": 1}, 1.0), ("pgd_at", {"eps": 0.1, "steps": 3}, 1.0),
    ("pgd_at", {"eps": 0.1, "steps": 3}, 0.5), ("fast_at", {"eps": 0.1}, 1.0), ("trades", {"eps": 0.1, "steps": 3}, 1.0),
    ("mart", {"eps": 0.1, "steps": 2}, 1.0), ("clean", {}, 1.0)])
def test_passes_per_image_counts_the_backward_passes_of_a_step(objective: str, attack: dict, adv_ratio: float,
                                                                fmnist: TensorDataset) -> None:
    """``passes_per_image`` (the unit of matched compute) equals the logit rows that a backward
    reaches in one training step (attack and update), divided by the batch size."""
    module = _module(objective, attack=attack, adv_ratio=adv_ratio)
    rows = []

    def count_backward(_mod: torch.nn.Module, _inputs: tuple, logits: torch.Tensor) -> None:
        if logits.requires_grad:
            logits.register_hook(lambda g: rows.append(g.shape[0]))

    module.model.register_forward_hook(count_backward)
    x, y = fmnist.tensors[0][:16], fmnist.tensors[1][:16]
    module.training_step((x, y), 0).backward()
    assert sum(rows) / 16 == pytest.approx(module.passes_per_image())
