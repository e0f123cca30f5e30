"""The train.py job: config -> data + model -> AdversarialTrainingModule -> Trainer -> checkpoints."""
from __future__ import annotations

import json
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from ..callbacks.collapse_stop import RobustCollapseStop
from ..config import ConfigError, to_container
from ..data import RobustDataModule
from ..job_setup import build_trainer, datamodule_from, loggers_for, resolve_out_and_resume
from .config_keys import check_keys_are_read, objective_attack_config
from .metrics_history import history_callbacks
from .module import AdversarialTrainingModule
from .purifier import train_purifier_job


def module_from(cfg: DictConfig, dm: RobustDataModule) -> AdversarialTrainingModule:
    info = dm.info
    t = cfg.training
    c = to_container(cfg)
    return AdversarialTrainingModule(
        model_spec=cfg.model.name, num_classes=info.num_classes, in_chans=info.in_chans,
        mean=list(info.mean) if cfg.model.normalize else None,
        std=list(info.std) if cfg.model.normalize else None,
        model_kwargs=c["model"]["kwargs"], objective=t.objective, attack=objective_attack_config(cfg),
        val_attack=c["training"]["val_attack"], adv_ratio=t.adv_ratio, warmup_epochs=t.warmup_epochs,
        eps_ramp_epochs=t.eps_ramp_epochs, trades_beta=t.trades_beta, mart_beta=t.mart_beta,
        noise_sigma=t.noise_sigma, optimizer=t.optimizer, lr=t.lr, weight_decay=t.weight_decay,
        sgd_momentum=t.sgd_momentum, schedule=t.schedule, val_attack_batches=t.val_attack_batches,
        clean_train_metrics=t.clean_train_metrics, label_smoothing=t.label_smoothing,
        lr_warmup_epochs=t.lr_warmup_epochs, channels_last=cfg.model.channels_last,
        seed=cfg.seed, precision=str(cfg.trainer.precision), model_dir=cfg.model.model_dir,
    )


def recipe_callbacks(cfg: DictConfig) -> list[Callback]:
    """Callbacks the training recipe asks for: ``training.ema_decay`` -> Lightning's
    ``EMAWeightAveraging`` (validation and every checkpoint's ``state_dict`` hold the averaged weights;
    the raw ones are kept for resuming); ``training.collapse_drop`` -> :class:`RobustCollapseStop`
    (the safeguard of fast adversarial training against catastrophic overfitting)."""
    t = cfg.training
    callbacks: list[Callback] = []
    if t.ema_decay is not None:
        callbacks.append(EMAWeightAveraging(decay=float(t.ema_decay)))
    if t.collapse_drop is not None:
        callbacks.append(RobustCollapseStop(max_drop=float(t.collapse_drop)))
    return callbacks


def train(cfg: DictConfig, callbacks: list[Any] | None = None) -> dict[str, Any]:
    """Run the training job of ``cfg`` (see configs/train.yaml); returns the final metrics.

    ``callbacks``: extra Lightning callbacks (e.g. ``RobustAccuracyCallback``) added to the job's own.
    """
    check_keys_are_read(cfg)
    if cfg.task == "purifier":
        return train_purifier_job(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    out, resume = resolve_out_and_resume(cfg)
    dm = datamodule_from(cfg)
    module = module_from(cfg, dm)
    ckpt_dir = out / "checkpoints"
    best = ModelCheckpoint(dirpath=str(ckpt_dir), filename="best-epoch{epoch}", monitor="val/adv_acc",
                           mode="max", auto_insert_metric_name=False)
    # Lightning's save_last only writes when the monitored checkpoint improves; this one writes
    # last.ckpt after every epoch, so resuming loses at most the epoch in progress.
    last = ModelCheckpoint(dirpath=str(ckpt_dir), filename="last", monitor=None, save_top_k=1,
                           enable_version_counter=False)
    trainer = build_trainer(cfg, out, [best, last, *recipe_callbacks(cfg), *history_callbacks(out, resume),
                                       *(callbacks or [])], logger=loggers_for(out))
    if trainer.is_global_zero:
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config.yaml")
    trainer.fit(module, datamodule=dm, ckpt_path=resume)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith(("val/", "train/"))}
    summary = {
        "experiment": cfg.experiment, "out": str(out), "epochs": int(trainer.current_epoch),
        "clean_acc": metrics.get("val/clean_acc"), "robust_acc": metrics.get("val/adv_acc"),
        "robust_attack": to_container(cfg)["training"]["val_attack"], "metrics": metrics,
        "passes_per_image": module.passes_per_image(),
        "last_checkpoint": str(ckpt_dir / "last.ckpt"), "best_checkpoint": best.best_model_path,
        "data": {"name": cfg.data.name, "source": dm.source, "train": _size(dm.train_set),
                 "val": _size(dm.val_set)},
    }
    if trainer.is_global_zero:
        (out / "metrics.json").write_text(json.dumps(summary, indent=2))
        ra = summary["robust_acc"]
        ca = summary["clean_acc"]
        va = cfg.training.val_attack
        va_batches = cfg.training.val_attack_batches
        n_val = summary["data"]["val"]
        n_attacked = n_val if va_batches is None else min(n_val, va_batches * dm.eval_batch_size)
        print(f"done: clean accuracy {ca:.4f} on {n_val} validation images, robust accuracy {ra:.4f} "
              f"({va.name}, eps={va.eps}, {va.steps} steps) on {n_attacked} of them; "
              f"checkpoint {summary['last_checkpoint']}" if ca is not None and ra is not None
              else f"done: checkpoints in {ckpt_dir}")
    if not (ckpt_dir / "last.ckpt").is_file() and not cfg.trainer.fast_dev_run:
        raise ConfigError(f"training finished but wrote no checkpoint in {ckpt_dir}")
    return summary


def _size(dataset: Any) -> int:
    """Number of samples of a dataset, 0 for none."""
    return 0 if dataset is None else len(dataset)
