"""The Lightning job set-up that train.py's jobs (classifier, purifier) and evaluate.py share: the data
module of a config, the output folder and resume checkpoint, the loggers, and one trainer builder
(the DDP strategy and the precision table of :data:`~tpa_lightning.config.LIGHTNING_PRECISION`)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import DictConfig

from .config import LIGHTNING_PRECISION
from .data import RobustDataModule


def lightning_precision(p: str) -> str:
    """Lightning's precision string for a config's (``bf16`` -> ``bf16-mixed``; full names pass)."""
    return LIGHTNING_PRECISION.get(str(p), str(p))


def datamodule_from(cfg: DictConfig) -> RobustDataModule:
    d = cfg.data
    return RobustDataModule(name=d.name, root=d.root, batch_size=d.batch_size, num_workers=d.num_workers,
                            augment=d.augment, limit_train=d.limit_train, limit_test=d.limit_test,
                            val_size=d.val_size, jpeg_dir=d.jpeg_dir, image_size=d.image_size,
                            download=d.download, eval_batch_size=d.eval_batch_size, cutout=d.cutout,
                            labels_csv=d.labels_csv, labels_offset=d.labels_offset)


def newest_run(experiment: str, root: Path = Path("outputs")) -> Path | None:
    """The newest ``outputs/<experiment>/<timestamp>`` folder holding ``checkpoints/last.ckpt``."""
    runs = sorted((p.parent.parent for p in (root / experiment).glob("*/checkpoints/last.ckpt")),
                  key=lambda p: p.name)
    return runs[-1] if runs else None


def resolve_out_and_resume(cfg: DictConfig) -> tuple[Path, str | None]:
    ckpt = cfg.ckpt_path
    if ckpt == "last":
        run = Path(cfg.out) if cfg.out else newest_run(cfg.experiment)
        if run is None or not (run / "checkpoints" / "last.ckpt").is_file():
            where = run or Path("outputs") / cfg.experiment
            raise FileNotFoundError(f"ckpt_path=last: no checkpoints/last.ckpt under {where} to resume from")
        return run, str(run / "checkpoints" / "last.ckpt")
    out = Path(cfg.out) if cfg.out else Path("outputs") / cfg.experiment / time.strftime("%Y%m%d-%H%M%S")
    if ckpt is not None and not Path(ckpt).is_file():
        raise FileNotFoundError(f"ckpt_path: file not found: {ckpt}")
    return out, ckpt


def loggers_for(out: Path) -> list[Logger]:
    loggers: list[Logger] = [CSVLogger(str(out), name="", version="")]
    try:
        import tensorboard  # noqa: F401
        from lightning.pytorch.loggers import TensorBoardLogger  # optional: only with tensorboard

        loggers.append(TensorBoardLogger(str(out), name="", version="tensorboard"))
    except ImportError:
        pass
    return loggers


def trainer_kwargs(cfg: DictConfig) -> dict[str, Any]:
    """``lightning.Trainer`` keywords of the ``trainer`` section (strategy still a name)."""
    t = cfg.trainer
    kwargs: dict[str, Any] = {k: t[k] for k in ("limit_train_batches", "limit_val_batches",
                                                 "gradient_clip_val") if t[k] is not None}
    return dict(max_epochs=t.max_epochs, accelerator=t.accelerator, devices=t.devices, strategy=t.strategy,
                num_nodes=t.num_nodes, precision=lightning_precision(t.precision),
                log_every_n_steps=t.log_every_n_steps, enable_progress_bar=t.enable_progress_bar,
                deterministic=t.deterministic, fast_dev_run=t.fast_dev_run, **kwargs)


def build_trainer(cfg: DictConfig, out: Path, callbacks: list[Any], **overrides: Any) -> L.Trainer:
    """The job's ``lightning.Trainer``: :func:`trainer_kwargs` of ``cfg`` with ``overrides`` on top
    (e.g. ``logger=False`` for evaluation), ``trainer.strategy=ddp`` as DDP with gloo on CPUs and
    NCCL on GPUs, inference mode off (attacks need input gradients)."""
    kwargs = {**trainer_kwargs(cfg), **overrides}
    if kwargs["strategy"] == "ddp":
        kwargs["strategy"] = DDPStrategy(process_group_backend=None)  # gloo on CPU, NCCL on GPUs
    return L.Trainer(default_root_dir=str(out), inference_mode=False, callbacks=callbacks, **kwargs)
