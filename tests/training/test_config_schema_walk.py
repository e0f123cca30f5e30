"""No key of train.py's config is accepted and then ignored: every leaf of the schema, changed on its
own, either changes what the job builds or is rejected with a one-line error naming it.

"What the job builds" is measured from the objects train.py makes (data, batches, model, training
attack, validation attack, optimiser and schedule, Trainer keywords, recipe callbacks, output folder,
one training step), not from the config itself. A second test checks the objective-specific keys by
their effect on a training step, objective by objective.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import typing
from pathlib import Path
from typing import Any

import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from tpa_lightning import job_setup
from tpa_lightning.config import ConfigError, TrainConfig, default_config, load_config
from tpa_lightning.data.fashion_mnist import load_fashion_mnist as _LOAD_FASHION_MNIST
from tpa_lightning.training import train_job as train_run
from tpa_lightning.training.config_keys import TRAINING_KEYS_READ_BY, check_keys_are_read
from tpa_lightning.training.objectives import OBJECTIVES

#: Small enough to build in a fraction of a second (Fashion-MNIST from the Debian package).
BASE = ["data.limit_train=64", "data.val_size=32", "data.batch_size=16", "out=/tmp/schema-walk"]

#: Keys whose effect needs something the walk does not build, with the test that covers them.
COVERED_ELSEWHERE = {
    "data.root": "where data is looked for first: tests/foundation/test_data.py",
    "data.download": "permission to download when the data is missing: tests/foundation/test_data.py",
    "model.model_dir": "where robustbench weights are read: tests/attacks/test_pretrained.py",
}
#: Alternative values where "another value of the same type" is not a valid choice.
ALTERNATIVES: dict[str, Any] = {
    "task": "purifier", "experiment": "other_experiment", "ckpt_path": "/nonexistent/last.ckpt",
    "out": "/tmp/schema-walk-other", "data.name": "cifar10", "data.image_size": 24,
    "data.jpeg_dir": "/nonexistent", "model.name": "cifar_resnet18", "model.arch": "cifar_resnet18",
    "model.kwargs": {"width": 4}, "attack.name": "pgd", "attack.norm": "l2", "attack.mode": "paper",
    "attack.init": "zeros", "attack.loss": "logit", "attack.options": {"eot_samples": 2},
    "attack.max_batch": 7, "attack.mix": 0.5, "attack.lam": 1.0, "training.objective": "pgd_at",
    "training.optimizer": "sgd", "training.schedule": "onecycle", "training.val_attack.name": "fgsm",
    "training.val_attack.norm": "l2", "training.val_attack.mode": "paper",
    "training.val_attack.init": "zeros", "training.val_attack.loss": "logit",
    "training.val_attack.options": {"eot_samples": 2}, "training.val_attack.max_batch": 7,
    "training.lr_warmup_epochs": 1.0, "attack.transforms": ["di"], "training.val_attack.transforms": ["di"], "trainer.accelerator": "cpu", "trainer.devices": 2,
    "trainer.strategy": "ddp", "trainer.precision": "bf16", "purifier.feature_model": "small_cnn",
    "training.val_attack.copies": 3, "training.val_attack.mix": 0.5, "training.val_attack.lam": 1.0,
}


def _leaves(schema: type, prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted key, type)`` of every leaf of a config dataclass."""
    out: list[tuple[str, Any]] = []
    hints = typing.get_type_hints(schema)
    for f in dataclasses.fields(schema):
        key = f"{prefix}{f.name}"
        t = hints[f.name]
        inner = [a for a in typing.get_args(t) if a is not type(None)]
        base = inner[0] if len(inner) == 1 else t
        if dataclasses.is_dataclass(base):
            out += _leaves(base, key + ".")      # type: ignore[arg-type]
        else:
            out.append((key, base))
    return out


def _alternative(key: str, kind: Any, value: Any) -> Any:
    if key in ALTERNATIVES:
        return ALTERNATIVES[key]
    if kind is bool:
        return not value
    if kind is int:
        return 3 if value in (None, 0, 1, 2) else int(value) + 1
    if kind is float:
        return 0.3 if not value else float(value) / 2
    if kind is str:
        return "other"
    return 3


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha1()
    for t in tensors:
        h.update(t.detach().float().contiguous().numpy().tobytes())
    return h.hexdigest()


class _FakeTrainer:
    """What configure_optimizers reads of a Trainer."""

    def __init__(self, max_epochs: int) -> None:
        self.max_epochs = max_epochs
        self.estimated_stepping_batches = 4 * max_epochs


def job_fingerprint(cfg: DictConfig, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What train.py builds from ``cfg``; raises what the job raises for a rejected config."""
    check_keys_are_read(cfg)
    monkeypatch.setattr(job_setup.time, "strftime", lambda fmt: "TIMESTAMP")
    out, resume = job_setup.resolve_out_and_resume(cfg)
    fp: dict[str, Any] = {"task": str(cfg.task), "out": str(out), "resume": resume,
                          "trainer": repr(job_setup.trainer_kwargs(cfg)),
                          "callbacks": repr([(type(c).__name__, vars(c).get("_kwargs"), c.state_key) for c in
                                             train_run.recipe_callbacks(cfg)]),
                          "ema": cfg.training.ema_decay}
    if cfg.task == "purifier":
        fp["purifier"] = repr(dict(cfg.purifier))    # read by train_purifier_job (tests/training/test_purifier_job.py)
        return fp
    dm = job_setup.datamodule_from(cfg)
    dm.setup("fit")
    torch.manual_seed(0)
    xb, yb = next(iter(dm.train_dataloader()))
    xv, _ = next(iter(dm.val_dataloader()))
    fp["data"] = (len(dm.train_set), len(dm.val_set), dm.num_workers, _digest(xb, yb), _digest(xv), xv.shape[0])
    torch.manual_seed(0)
    module = train_run.module_from(cfg, dm)
    fp["model"] = (repr(module.model), _digest(*module.model.state_dict().values()),
                   any(p.is_contiguous(memory_format=torch.channels_last) and p.dim() == 4
                       and p.shape[1] > 1 for p in module.model.parameters()))
    atk = module.training_attack() if module.attack_name else None
    fp["attack"] = None if atk is None else (type(atk).__name__, repr(atk._init_options))
    val = module._build(str(module.val_attack_cfg.get("name") or "pgd"), module.val_attack_cfg)
    fp["val_attack"] = (type(val).__name__, repr({k: v for k, v in val._init_options.items() if k != "model"}),
                        module._val_seed(), module.hp.val_attack_batches, module.hp.clean_train_metrics)
    module.trainer = _FakeTrainer(int(cfg.trainer.max_epochs))   # type: ignore[assignment]
    opt = module.configure_optimizers()
    optimizer = opt["optimizer"] if isinstance(opt, dict) else opt
    lrs = []
    if isinstance(opt, dict):
        sched = opt["lr_scheduler"]["scheduler"]
        for _ in range(3):
            lrs.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            sched.step()
    fp["optimizer"] = (type(optimizer).__name__, repr(optimizer.defaults), lrs)
    module._trainer = None                                # the step below runs outside a Trainer
    fp["eps"] = [module.attack_cfg.get("eps"), module.hp.warmup_epochs, module.hp.eps_ramp_epochs]
    torch.manual_seed(0)
    module.model.train()
    loss = module.training_step((xb[:8], yb[:8]), 0)
    fp["step"] = round(float(loss.detach()), 5)
    return fp


def _load(extra: list[str]) -> DictConfig:
    return load_config("train", [*BASE, *extra])


@pytest.fixture(autouse=True)
def _read_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The walk builds the job a hundred times: read Fashion-MNIST and the default config once."""
    from tpa_lightning.data import datamodule
    from tpa_lightning.training import config_keys

    monkeypatch.setattr(datamodule.fashion_mnist, "load_fashion_mnist", _cached_fashion_mnist)
    monkeypatch.setattr(config_keys, "default_config", _cached_default)


@functools.cache
def _cached_fashion_mnist(root: str, train: bool, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    return _LOAD_FASHION_MNIST(root, train, download)


@functools.cache
def _cached_default(kind: str) -> DictConfig:
    return default_config(kind)


def test_every_key_changes_the_job_or_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    base_cfg = _load([])
    reference = job_fingerprint(base_cfg, monkeypatch)
    unread: list[str] = []
    for key, kind in _leaves(TrainConfig):
        if key in COVERED_ELSEWHERE:
            continue
        value = OmegaConf.select(base_cfg, key)
        alt = _alternative(key, kind, value)
        override = f"{key}={alt}"
        if isinstance(alt, dict):
            override = f"{key}={{{', '.join(f'{k}: {v}' for k, v in alt.items())}}}"
        try:
            cfg = _load([override])
            fp = job_fingerprint(cfg, monkeypatch)
        except (ConfigError, ValueError, FileNotFoundError) as err:
            message = str(err)
            assert "\n" not in message.strip(), f"{key}: the error is not one line: {message!r}"
            continue
        if fp == reference:
            unread.append(f"{key}={alt}")
    assert not unread, f"accepted and ignored: {unread}"


def test_the_walk_sees_every_section() -> None:
    keys = {k for k, _ in _leaves(TrainConfig)}
    for section in ("data.", "model.", "attack.", "training.", "training.val_attack.", "trainer.", "purifier."):
        assert any(k.startswith(section) for k in keys), section
    assert len(keys) > 80


OBJECTIVE_KEYS = {"trades_beta": 0.5, "mart_beta": 0.5, "noise_sigma": 1.0, "adv_ratio": 0.5}


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_objective_keys_change_the_step_of_the_objectives_that_read_them(
        objective: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The table of which objective reads which training key, checked by effect: changing the key
    changes the training step's loss for every objective said to read it, and is rejected for the
    others."""
    assert set(OBJECTIVE_KEYS) | {"warmup_epochs", "eps_ramp_epochs", "clean_train_metrics"} == set(TRAINING_KEYS_READ_BY)
    chosen = [f"training.objective={objective}"]
    plain = job_fingerprint(_load(chosen), monkeypatch)
    for key, value in OBJECTIVE_KEYS.items():
        if objective not in TRAINING_KEYS_READ_BY[key]:
            with pytest.raises(ConfigError, match=f"training.{key}"):
                job_fingerprint(_load([*chosen, f"training.{key}={value}"]), monkeypatch)
            continue
        changed = job_fingerprint(_load([*chosen, f"training.{key}={value}"]), monkeypatch)
        assert changed["step"] != plain["step"], (objective, key)


def test_one_line_exit_2_for_an_unknown_training_attack(tmp_path: Path) -> None:
    from tpa_lightning.cli import train_main

    with pytest.raises(SystemExit) as info:
        train_main(["attack.name=foo", f"out={tmp_path}"])
    assert info.value.code == 2
