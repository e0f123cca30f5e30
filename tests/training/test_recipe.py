"""The fast-training recipe's levers: cutout, label smoothing, channels-last, cosine warm-up, EMA."""
from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from tpa_lightning.config import ConfigError, load_config
from tpa_lightning.data.arrays import ArrayImageDataset, cutout
from tpa_lightning.data.fashion_mnist import load_fashion_mnist
from tpa_lightning.training import AdversarialTrainingModule
from tpa_lightning.training.train_job import recipe_callbacks, train


@pytest.fixture(scope="module")
def fmnist() -> TensorDataset:
    x, y = load_fashion_mnist("data", train=False)
    return TensorDataset(x[:64].float() / 255.0, y[:64].long())


def _module(**kw) -> AdversarialTrainingModule:
    kw.setdefault("objective", "clean")
    return AdversarialTrainingModule("small_cnn", num_classes=10, in_chans=1, mean=[0.286], std=[0.353],
                                     model_kwargs={"width": 8}, val_attack={"name": "pgd", "eps": 0.1, "steps": 1},
                                     **kw)


# ---------------------------------------------------------------- cutout
def test_cutout_zeroes_the_square_by_hand() -> None:
    img = torch.ones(3, 8, 8)
    out = cutout(img, 4, 3, 5)          # top-left (1, 3), bottom-right exclusive (5, 7)
    expected = torch.ones(3, 8, 8)
    expected[:, 1:5, 3:7] = 0
    assert torch.equal(out, expected)
    assert torch.equal(img, torch.ones(3, 8, 8))                    # input untouched
    corner = cutout(img, 4, 0, 7)       # clipped at the border: rows 0..1, columns 5..7
    assert int((corner == 0).sum()) == 3 * 2 * 3
    assert torch.equal(corner[:, :2, 5:], torch.zeros(3, 2, 3))


def test_dataset_cutout_only_when_augmenting() -> None:
    images = torch.full((64, 1, 28, 28), 255, dtype=torch.uint8)
    labels = torch.zeros(64, dtype=torch.int64)
    torch.manual_seed(0)
    aug = ArrayImageDataset(images, labels, augment=True, pad=0, flip=False, cutout=10)
    zeros = [int((aug[i][0] == 0).sum()) for i in range(64)]
    assert all(0 < z <= 100 for z in zeros)                          # at most the full square
    assert any(z == 100 for z in zeros) and any(z < 100 for z in zeros)  # inside and clipped both happen
    plain = ArrayImageDataset(images, labels, augment=False, cutout=10)
    assert all(int((plain[i][0] == 0).sum()) == 0 for i in range(8))
    assert aug.subset([0, 1]).cutout == 10
    with pytest.raises(ValueError, match="cutout"):
        ArrayImageDataset(images, labels, cutout=-1)


# ---------------------------------------------------------------- label smoothing
def test_label_smoothing_matches_the_formula(fmnist: TensorDataset) -> None:
    torch.manual_seed(0)
    module = _module(label_smoothing=0.2)
    x, y = fmnist.tensors[0][:16], fmnist.tensors[1][:16]
    module.model.train()
    loss = module.training_step((x, y), 0)
    module.model.train()
    torch.manual_seed(0)
    logp = F.log_softmax(module.model(x), 1)
    # (1 - a) * CE + a * mean over classes of -log p  (Szegedy et al. 2016), by hand
    by_hand = ((1 - 0.2) * -logp.gather(1, y[:, None]).squeeze(1) + 0.2 * -logp.mean(1)).mean()
    assert torch.allclose(loss, by_hand, atol=1e-5)
    unsmoothed = F.nll_loss(logp, y)
    assert not torch.allclose(loss, unsmoothed, atol=1e-3)


def test_label_smoothing_refused_where_the_loss_is_its_own() -> None:
    for objective in ("trades", "mart"):
        with pytest.raises(ValueError, match="label_smoothing"):
            _module(objective=objective, label_smoothing=0.1)
    with pytest.raises(ValueError, match="label_smoothing"):
        _module(label_smoothing=1.0)


# ---------------------------------------------------------------- channels last
def test_channels_last_keeps_the_function(fmnist: TensorDataset) -> None:
    torch.manual_seed(0)
    plain = _module()
    torch.manual_seed(0)
    fast = _module(channels_last=True)
    convs = [m for m in fast.model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)
    x = fmnist.tensors[0][:8]
    plain.eval()
    fast.eval()
    with torch.no_grad():
        assert torch.allclose(plain(x), fast(fast._memory_format(x)), atol=1e-5)
    assert fast._memory_format(x).is_contiguous(memory_format=torch.channels_last)


# ---------------------------------------------------------------- warm-up
def _lrs(module: AdversarialTrainingModule, data: TensorDataset, epochs: int) -> list[float]:
    seen: list[float] = []

    class Record(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            seen.append(trainer.optimizers[0].param_groups[0]["lr"])

    trainer = L.Trainer(max_epochs=epochs, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, callbacks=[Record()],
                        limit_val_batches=0)
    trainer.fit(module, DataLoader(data, batch_size=16))
    return seen


def test_cosine_warmup_schedule_by_hand(fmnist: TensorDataset) -> None:
    lr = 0.1
    seen = _lrs(_module(optimizer="sgd", lr=lr, schedule="cosine", lr_warmup_epochs=1.0), fmnist, epochs=2)
    total, warm = 8, 4                                  # 64 images / 16 per batch x 2 epochs; 1 of 2 epochs
    expected = [lr * (0.01 + 0.99 * i / warm) for i in range(warm)]
    expected += [lr * 0.5 * (1 + math.cos(math.pi * i / (total - warm))) for i in range(total - warm)]
    assert seen == pytest.approx(expected, rel=1e-6)
    plain = _lrs(_module(optimizer="sgd", lr=lr, schedule="cosine"), fmnist, epochs=2)
    assert plain[0] == pytest.approx(lr) and plain[1] < lr


def test_warmup_needs_cosine() -> None:
    with pytest.raises(ValueError, match="lr_warmup_epochs"):
        _module(schedule="onecycle", lr_warmup_epochs=1.0)


# ---------------------------------------------------------------- EMA and the job's keys
def test_ema_checkpoint_holds_the_average(tmp_path: Path) -> None:
    overrides = [f"out={tmp_path}", "model.kwargs={width: 4}", "data.limit_train=64", "data.val_size=32",
                 "trainer.max_epochs=1", "training.objective=clean", "training.ema_decay=0.5",
                 "trainer.enable_progress_bar=false", "data.batch_size=16"]
    cfg = load_config("train", overrides)
    (cb,) = recipe_callbacks(cfg)
    assert type(cb).__name__ == "EMAWeightAveraging"
    train(cfg)
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    avg, raw = ckpt["state_dict"], ckpt["current_model_state"]
    weights = [k for k in raw if k.endswith("weight") and raw[k].is_floating_point()]
    assert weights and any(not torch.equal(avg[k], raw[k]) for k in weights)
    assert recipe_callbacks(load_config("train", [])) == []


@pytest.mark.parametrize("override, key", [("training.ema_decay=1.5", "training.ema_decay"),
                                           ("data.cutout=-2", "data.cutout")])
def test_config_rejects_bad_recipe_values(override: str, key: str) -> None:
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        load_config("train", [override])
