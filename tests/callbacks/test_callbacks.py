"""The callbacks on a minimal LightningModule written here (not the toolkit's), on real
Fashion-MNIST images: the logged values equal an independent recomputation."""
from __future__ import annotations

import csv
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import CSVLogger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from tpa_lightning.attacks import build_attack
from tpa_lightning.callbacks import RobustAccuracyCallback, TransferCallback
from tpa_lightning.data.fashion_mnist import load_fashion_mnist

N_TRAIN, N_VAL, BATCH = 512, 96, 32


class TinyNet(L.LightningModule):
    """A user's own module: forward returns logits, nothing toolkit-specific."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(1, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(),
                                 nn.Linear(8 * 14 * 14, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        return F.cross_entropy(self(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> None:
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=3e-3)


@pytest.fixture(scope="module")
def fmnist() -> tuple[TensorDataset, TensorDataset]:
    x, y = load_fashion_mnist("data", train=True)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(y), generator=g)[: N_TRAIN + N_VAL]
    x, y = x[idx].float() / 255.0, y[idx].long()
    return TensorDataset(x[:N_TRAIN], y[:N_TRAIN]), TensorDataset(x[N_TRAIN:], y[N_TRAIN:])


def _trainer(tmp_path: Path, callbacks: list[L.Callback], epochs: int = 1) -> L.Trainer:
    return L.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, logger=CSVLogger(str(tmp_path), name="",
                     version=""), callbacks=callbacks, enable_progress_bar=False, enable_model_summary=False,
                     num_sanity_val_steps=0, default_root_dir=str(tmp_path))


def _logged(tmp_path: Path, key: str) -> list[float]:
    with open(tmp_path / "metrics.csv") as f:
        return [float(r[key]) for r in csv.DictReader(f) if r.get(key)]


def test_robust_accuracy_callback_logs_the_recomputed_value(tmp_path: Path, fmnist) -> None:
    train, val = fmnist
    torch.manual_seed(0)
    module = TinyNet()
    cb = RobustAccuracyCallback("pgd", eps=0.1, steps=5, limit_batches=2, seed=3)
    trainer = _trainer(tmp_path, [cb])
    trainer.fit(module, DataLoader(train, batch_size=BATCH, shuffle=True), DataLoader(val, batch_size=BATCH))
    logged = float(trainer.callback_metrics["robust_acc/pgd"])
    # independent recomputation: same attack and per-batch seed, first 2 batches only
    module.eval()
    correct = total = 0
    for i, (x, y) in enumerate(DataLoader(val, batch_size=BATCH)):
        if i >= 2:
            break
        x_adv = build_attack("pgd", module, eps=0.1, steps=5, seed=cb.batch_seed(i))(x, y)
        assert (x_adv - x).abs().max() <= 0.1 + 1e-6
        with torch.no_grad():
            correct += int((module(x_adv).argmax(1) == y).sum())
        total += len(y)
    assert total == 2 * BATCH
    assert logged == pytest.approx(correct / total, abs=1e-6)
    with torch.no_grad():
        clean = float((module(val.tensors[0][: 2 * BATCH]).argmax(1) == val.tensors[1][: 2 * BATCH]).float().mean())
    assert clean > 0.5, "the tiny net should have learnt something in an epoch of real data"
    assert logged < clean, "PGD at eps 0.1 must lower the accuracy of a clean-trained net"
    assert _logged(tmp_path, "robust_acc/pgd") == [pytest.approx(logged, abs=1e-6)]
    assert cb.history == {0: {"robust_acc/pgd": pytest.approx(logged, abs=1e-6)}}
    assert all(p.grad is None or torch.isfinite(p.grad).all() for p in module.parameters())


@pytest.mark.slow
def test_callbacks_under_trainer_validate_and_every_n_epochs(tmp_path: Path, fmnist) -> None:
    train, val = fmnist
    torch.manual_seed(0)
    module = TinyNet()
    cb = RobustAccuracyCallback("fgsm", eps=0.05, every_n_epochs=2, limit_batches=1)
    trainer = _trainer(tmp_path, [cb], epochs=3)
    trainer.fit(module, DataLoader(train, batch_size=BATCH), DataLoader(val, batch_size=BATCH))
    assert sorted(cb.history) == [1]                 # epochs 0, 1, 2: only the second is evaluated
    out = trainer.validate(module, DataLoader(val, batch_size=BATCH), verbose=False)
    assert "robust_acc/fgsm" in out[0]               # validate() always evaluates


@pytest.mark.slow
def test_transfer_callback_logs_rates_on_targets(tmp_path: Path, fmnist) -> None:
    train, val = fmnist
    torch.manual_seed(0)
    module = TinyNet()
    other = TinyNet().net                            # a plain nn.Module target (trained below)
    opt = torch.optim.Adam(other.parameters(), lr=3e-3)
    for x, y in DataLoader(train, batch_size=BATCH, shuffle=True):
        opt.zero_grad()
        F.cross_entropy(other(x), y).backward()
        opt.step()
    cb = TransferCallback("tpa", targets={"other": other, "fresh": "small_cnn"}, eps=0.1, steps=3,
                          copies=2, limit_batches=2, seed=1, target_kwargs={"num_classes": 10, "in_chans": 1})
    trainer = _trainer(tmp_path, [cb])
    trainer.fit(module, DataLoader(train, batch_size=BATCH, shuffle=True), DataLoader(val, batch_size=BATCH))
    m = trainer.callback_metrics
    for key in ("transfer/other", "transfer/other/on_correct", "transfer/other/clean_acc", "transfer/fresh",
                "transfer/source"):
        assert key in m, key
    # independent recomputation
    module.eval()
    other.eval()
    fooled = right = fooled_right = total = src_fooled = 0
    for i, (x, y) in enumerate(DataLoader(val, batch_size=BATCH)):
        if i >= 2:
            break
        x_adv = build_attack("tpa", module, eps=0.1, steps=3, copies=2, seed=cb.batch_seed(i))(x, y)
        with torch.no_grad():
            ok = other(x).argmax(1) == y
            bad = other(x_adv).argmax(1) != y
            src_fooled += int((module(x_adv).argmax(1) != y).sum())
        fooled += int(bad.sum())
        right += int(ok.sum())
        fooled_right += int((bad & ok).sum())
        total += len(y)
    assert float(m["transfer/other"]) == pytest.approx(fooled / total, abs=1e-6)
    assert float(m["transfer/other/on_correct"]) == pytest.approx(fooled_right / right, abs=1e-6)
    assert float(m["transfer/other/clean_acc"]) == pytest.approx(right / total, abs=1e-6)
    assert float(m["transfer/source"]) == pytest.approx(src_fooled / total, abs=1e-6)
    assert _logged(tmp_path, "transfer/other") == [pytest.approx(fooled / total, abs=1e-6)]
    assert float(m["transfer/source"]) > 0.0 and float(m["transfer/other"]) > 0.0


def test_transfer_with_fixed_surrogate(tmp_path: Path, fmnist) -> None:
    _, val = fmnist
    torch.manual_seed(0)
    module = TinyNet()
    surrogate = TinyNet().net.eval()
    cb = TransferCallback("pgd", targets=[module.net], surrogate=surrogate, eps=0.1, steps=2, limit_batches=1)
    trainer = _trainer(tmp_path, [cb])
    trainer.validate(module, DataLoader(val, batch_size=BATCH), verbose=False)
    assert "transfer/Sequential" in trainer.callback_metrics
    assert [p.requires_grad for p in surrogate.parameters()] == [True] * 4, "attack must restore flags"
    assert all(p.requires_grad and p.grad is None for p in module.parameters())


def test_state_is_saved_in_checkpoints_and_restored(tmp_path: Path, fmnist) -> None:
    train, val = fmnist
    torch.manual_seed(0)
    module = TinyNet()
    a = RobustAccuracyCallback("pgd", eps=0.1, steps=2, limit_batches=1)
    b = RobustAccuracyCallback("pgd", eps=0.05, steps=2, limit_batches=1)
    assert a.state_key != b.state_key
    trainer = _trainer(tmp_path, [a, b])
    trainer.fit(module, DataLoader(TensorDataset(*train[:64]), batch_size=BATCH), DataLoader(val, batch_size=BATCH))
    path = tmp_path / "x.ckpt"
    trainer.save_checkpoint(path)
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["callbacks"][a.state_key]["history"] == a.history
    assert ckpt["callbacks"][b.state_key]["eps"] == 0.05
    fresh = RobustAccuracyCallback("pgd", eps=0.1, steps=2, limit_batches=1)
    fresh.load_state_dict(ckpt["callbacks"][fresh.state_key])
    assert fresh.history == a.history


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="unknown attack"):
        RobustAccuracyCallback("nope")
    with pytest.raises(ValueError, match="every_n_epochs"):
        RobustAccuracyCallback(every_n_epochs=0)
    with pytest.raises(ValueError, match="at least one target"):
        TransferCallback(targets=[])
    with pytest.raises(TypeError, match="nn.Module or a build_model spec"):
        TransferCallback(targets=[3])  # type: ignore[list-item]


def test_attack_options_named_and_in_attack_options() -> None:
    cb = RobustAccuracyCallback("mi", eps=0.1, steps=3, attack_options={"momentum": 0.5})
    assert cb.options == {"steps": 3, "momentum": 0.5}
    assert (cb.steps, cb.copies, cb.attack_options) == (3, None, {"momentum": 0.5})
    atk = cb._attack_for(TinyNet())
    assert (atk.steps, atk.momentum, atk.eps) == (3, 0.5, 0.1)
    # a named option left at None may come through attack_options; given twice it is an error
    assert RobustAccuracyCallback("pgd", attack_options={"steps": 4}).options == {"steps": 4}
    with pytest.raises(ValueError, match="'steps' is given both"):
        RobustAccuracyCallback("pgd", steps=3, attack_options={"steps": 4})
    with pytest.raises(ValueError, match="'copies' is given both"):
        TransferCallback("tpa", targets=["small_cnn"], copies=2, attack_options={"copies": 4})
    for reserved in ("eps", "seed", "model"):
        with pytest.raises(ValueError, match=f"may not set '{reserved}'"):
            RobustAccuracyCallback("pgd", attack_options={reserved: 1})


def test_unknown_or_bad_attack_option_fails_at_construction() -> None:
    with pytest.raises(ValueError, match="momentun"):
        RobustAccuracyCallback("mi", attack_options={"momentun": 1.0})
    with pytest.raises(ValueError, match="copies"):                   # PGD takes no copies
        TransferCallback("pgd", targets=["small_cnn"], copies=2)
    with pytest.raises(ValueError, match="steps must be an integer"):  # the attack's own check
        RobustAccuracyCallback("pgd", steps=0)
    with pytest.raises(ValueError, match="mode must be one of"):
        RobustAccuracyCallback("tpa", attack_options={"mode": "nope"})
    with pytest.raises(ValueError, match=r"unknown attack 'nope'; known: .*pgd.*tpa"):
        TransferCallback("nope", targets=["small_cnn"])


def test_state_keys_differ_by_options_only() -> None:
    keys = {RobustAccuracyCallback("mi", eps=0.1).state_key,
            RobustAccuracyCallback("mi", eps=0.1, steps=2).state_key,
            RobustAccuracyCallback("mi", eps=0.1, attack_options={"momentum": 0.5}).state_key,
            RobustAccuracyCallback("mi", eps=0.1, steps=2, attack_options={"momentum": 0.5}).state_key}
    assert len(keys) == 4
    assert (RobustAccuracyCallback("pgd", steps=2).state_key
            == RobustAccuracyCallback("pgd", attack_options={"steps": 2}).state_key)
    t = [TransferCallback("tpa", targets=["small_cnn"], attack_options=o).state_key
         for o in (None, {"mode": "paper"})]
    assert t[0] != t[1]


def test_old_positional_parameters_still_work() -> None:
    cb = RobustAccuracyCallback("fgsm", 0.05, 2, 3, 7, "adv", True)
    assert (cb.attack, cb.eps, cb.every_n_epochs, cb.limit_batches, cb.seed, cb.name, cb.prog_bar) == (
        "fgsm", 0.05, 2, 3, 7, "adv", True)
    t = TransferCallback("pgd", ["small_cnn"], None, 0.05, 2, 3, 7, {"in_chans": 1})
    assert (t.eps, t.every_n_epochs, t.limit_batches, t.seed, t.target_kwargs) == (0.05, 2, 3, 7, {"in_chans": 1})


@pytest.mark.parametrize("attack,options", [("pgd", {"steps": 3}), ("tpa", {"steps": 2, "copies": 2})])
def test_per_call_seed_equals_an_attack_built_with_that_seed(attack: str, options: dict) -> None:
    torch.manual_seed(0)
    model = TinyNet().eval()
    x, y = torch.rand(6, 1, 28, 28), torch.randint(0, 10, (6,))
    cb = RobustAccuracyCallback(attack, eps=0.1, seed=5, **options)
    atk = cb._attack_for(model)
    assert cb._attack_for(model) is atk                              # built once per model
    for i in (0, 3):
        seed = cb.batch_seed(i)
        got = atk(x, y, seed=seed)
        old = build_attack(attack, model, eps=0.1, seed=seed, **options)(x, y)   # the former atk.seed = ...
        assert torch.equal(got, old)
    assert atk.seed is None, "the callback must not modify the attack it built"
    assert not torch.equal(atk(x, y, seed=cb.batch_seed(0)), atk(x, y, seed=cb.batch_seed(1)))
    assert cb._attack_for(TinyNet()) is not atk                      # a new model gets a new attack
