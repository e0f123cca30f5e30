"""``python train.py task=purifier``: train an NRP purifier (defenses/nrp) on the configured data.

The feature extractor F is the first layers of ``purifier.feature_model`` (a model spec or a
checkpoint, e.g. a classifier trained by train.py) when given, else a fixed random conv net. The
purifier is saved to ``<out>/purifier.pt``, which ``build_defense("nrp", model, weights=PATH)`` loads.
"""
from __future__ import annotations

import json
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from defenses import save_purifier
from defenses.nrp_training import PurifierTrainingModule, classifier_features

from ..job_setup import build_trainer, datamodule_from, loggers_for, resolve_out_and_resume
from ..models import build_model
from .metrics_history import history_callbacks


def _feature_extractor(spec: str, dm_info: Any) -> Any:


    model = build_model(spec, num_classes=dm_info.num_classes, in_chans=dm_info.in_chans)
    names = [n for n, _ in model.named_children()]
    inner = getattr(model, "net", model)
    layers = [n for n, _ in inner.named_children()]
    if not layers:
        raise ValueError(f"purifier.feature_model={spec}: the model has no layers to take features from")
    prefix = "net." if inner is not model and "net" in names else ""
    layer = "layer2" if "layer2" in layers else layers[0]
    return classifier_features(model, prefix + layer)


def train_purifier_job(cfg: DictConfig) -> dict[str, Any]:

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    out, resume = resolve_out_and_resume(cfg)
    dm = datamodule_from(cfg)
    p = cfg.purifier
    features = _feature_extractor(p.feature_model, dm.info) if p.feature_model else None
    module = PurifierTrainingModule(feature_extractor=features, nb=p.nb, nf=p.nf, gc=p.gc,
                                    in_chans=dm.info.in_chans, eps=p.eps, ssp_steps=p.ssp_steps,
                                    pixel_weight=p.pixel_weight, lr=p.lr, seed=cfg.seed)
    ckpt = ModelCheckpoint(dirpath=str(out / "checkpoints"), save_last=True, monitor="val/feature_loss",
                           mode="min", filename="best-epoch{epoch}", auto_insert_metric_name=False)
    trainer = build_trainer(cfg, out, [ckpt, *history_callbacks(out, resume)], logger=loggers_for(out))
    trainer.fit(module, datamodule=dm, ckpt_path=resume)
    path = out / "purifier.pt"
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    summary = {"task": "purifier", "out": str(out), "purifier": str(path), "metrics": metrics,
               "nrp": {"nb": p.nb, "nf": p.nf, "gc": p.gc}, "feature_model": p.feature_model}
    if trainer.is_global_zero:
        save_purifier(module, path)
        (out / "metrics.json").write_text(json.dumps(summary, indent=2))
        loss = metrics.get("val/feature_loss")
        print(f"done: purifier saved to {path}" + (f"; validation feature loss {loss:.5f}" if loss else ""))
    return summary
