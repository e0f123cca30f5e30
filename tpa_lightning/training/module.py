"""``AdversarialTrainingModule``: a LightningModule that trains any classifier on adversarial
examples generated on the fly (TPA or classic attacks), with torchmetrics logged per epoch."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

import lightning as L
import torch
import torch.nn.functional as F
import torchmetrics
from torch import Tensor, nn

from ..models import build_model
from ..models.checkpoint import MODEL_META_KEY
from .objectives import ATTACK_ENGINE_OBJECTIVES, OBJECTIVES, mart_loss, trades_example, trades_loss

_ATTACK_KEYS_NOT_OPTIONS = ("name", "options", "seed")


def attack_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options of an attack config (None means: the attack's own default)."""
    opts = {k: v for k, v in cfg.items() if k not in _ATTACK_KEYS_NOT_OPTIONS and v is not None}
    opts.update(dict(cfg.get("options") or {}))
    return opts


def lightning_to_attack_precision(precision: str | int | None) -> str:
    p = str(precision or "32")
    return "bf16" if p.startswith("bf16") else "16" if p.startswith("16") else "32"


class AdversarialTrainingModule(L.LightningModule):
    """Train ``model`` with one of the objectives ``clean``, ``pgd_at`` (Madry 2018), ``trades``
    (Zhang 2019), ``mart`` (Wang 2020), ``fast_at`` (FGSM with random start and step 1.25 eps,
    Wong 2020), ``tpa_at`` (TPA examples made on the fly) or ``gaussian_noise`` (a base model for
    randomized smoothing).

    The model is built from ``model_spec`` (see ``build_model``) so that checkpoints rebuild it.
    Attacks run on ``self.model`` itself (never a DDP wrapper) in eval mode with parameter grads off.

    Args:
        attack: config of the training attack (``name`` plus options such as ``eps``, ``steps``,
            ``copies``); for pgd_at and fast_at its eps/steps/step_size are used with PGD.
        val_attack: attack for validation robust accuracy (``val/adv_acc``).
        adv_ratio: share of each batch replaced by adversarial examples (1.0: all).
        warmup_epochs: clean epochs before the attack starts.
        eps_ramp_epochs: epochs over which eps grows linearly (after warm-up) to ``attack.eps``.
        precision: Lightning's precision; the attack runs under the matching autocast.
        clean_train_metrics: also log ``train/clean_acc``/``train/clean_loss`` of the images that
            were attacked (one extra eval-mode forward per attacked image, no backward; default off,
            so an epoch costs only the attack and the train step).

    Step size of the training attack: ``attack.step_size`` when given (scaled with the eps ramp),
    else 2.5 eps / steps for pgd_at, trades and mart (Madry et al.), 1.25 eps for fast_at (Wong et
    al.), and TPA's own eps / 10 for tpa_at.

    Logged (torchmetrics, synchronised across processes, per epoch): ``{train,val,test}/{clean,adv}_acc``
    and ``..._loss``, ``train/eps``. For ``gaussian_noise`` the "adv" metrics are on noisy inputs.
    """

    def __init__(self, model_spec: str = "small_cnn", num_classes: int = 10, in_chans: int = 1,
                 mean: Sequence[float] | None = None, std: Sequence[float] | None = None,
                 model_kwargs: Mapping[str, Any] | None = None, objective: str = "tpa_at",
                 attack: Mapping[str, Any] | None = None, val_attack: Mapping[str, Any] | None = None,
                 adv_ratio: float = 1.0, warmup_epochs: int = 0, eps_ramp_epochs: int = 0,
                 trades_beta: float = 6.0, mart_beta: float = 6.0, noise_sigma: float = 0.25,
                 optimizer: str = "adamw", lr: float = 2e-3, weight_decay: float = 5e-4,
                 sgd_momentum: float = 0.9, schedule: str = "cosine", val_attack_batches: int | None = None,
                 seed: int = 0, precision: str = "32", model_dir: str = "models",
                 clean_train_metrics: bool = False) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"training.objective must be one of {', '.join(OBJECTIVES)}, got {objective}")
        if not 0.0 <= adv_ratio <= 1.0:
            raise ValueError(f"adv_ratio must be in [0, 1], got {adv_ratio}")
        self.save_hyperparameters()
        self.model = build_model(model_spec, num_classes=num_classes, in_chans=in_chans, mean=mean, std=std,
                                 model_dir=model_dir, **dict(model_kwargs or {}))
        self.model_meta = {"spec": model_spec, "num_classes": num_classes, "in_chans": in_chans,
                           "mean": list(mean) if mean is not None else None,
                           "std": list(std) if std is not None else None, "kwargs": dict(model_kwargs or {})}
        self.attack_cfg = dict(attack or {"name": "tpa", "eps": 0.1, "steps": 3, "copies": 2})
        self.val_attack_cfg = dict(val_attack or {"name": "pgd", "eps": 0.1, "steps": 10})
        self._attack: Any = None
        self._val_attack: Any = None
        self.metrics = nn.ModuleDict({
            f"{stage}_{kind}_acc": torchmetrics.classification.MulticlassAccuracy(num_classes, average="micro")
            for stage in ("train", "val", "test") for kind in ("clean", "adv")
        })
        self.losses = nn.ModuleDict({
            f"{stage}_{kind}_loss": torchmetrics.MeanMetric()
            for stage in ("train", "val", "test") for kind in ("clean", "adv")
        })

    # ---------------------------------------------------------------- attacks
    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def current_eps(self) -> float:
        """eps of the training attack this epoch: 0 during warm-up, then a linear ramp."""
        eps = float(self.attack_cfg.get("eps", 0.0))
        epoch = self.current_epoch - self.hp.warmup_epochs
        if epoch < 0:
            return 0.0
        ramp = self.hp.eps_ramp_epochs
        return eps if ramp <= 0 else eps * min(1.0, (epoch + 1) / ramp)

    def _step_seed(self, stage: int) -> int:
        """A seed per (run seed, stage, rank, step): repeatable runs, fresh noise every step."""
        return int(self.hp.seed) * 1_000_003 + stage * 7_919 + self.global_rank * 104_729 + self.global_step

    def _build(self, cfg: Mapping[str, Any], **overrides: Any) -> Any:
        from ..attacks import build_attack

        opts = attack_options(cfg)
        opts.update(overrides)
        opts.setdefault("precision", lightning_to_attack_precision(self.hp.precision))
        return build_attack(str(cfg.get("name", "pgd")), self.model, **opts)

    def training_attack(self) -> Any:
        if self._attack is None:
            name = ATTACK_ENGINE_OBJECTIVES.get(self.hp.objective, "pgd")
            cfg = dict(self.attack_cfg)
            if self.hp.objective == "tpa_at":
                cfg["name"] = "tpa"
            elif self.hp.objective in ("pgd_at", "trades", "mart", "fast_at"):
                cfg = {k: cfg.get(k) for k in ("eps", "steps", "step_size", "norm", "max_batch")}
                cfg["name"] = name
            if self.hp.objective == "fast_at":
                cfg["steps"] = 1
            cfg["step_size"] = self._step_size(float(cfg.get("eps") or 0.0))
            self._attack = self._build(cfg)
        return self._attack

    def _step_size(self, eps: float) -> float:
        """Step of the training attack at budget ``eps``: ``attack.step_size`` scaled by
        ``eps / attack.eps`` (so the eps ramp keeps the step-to-budget ratio), 1.25 eps for fast_at,
        and ``2.5 eps / steps`` (Madry et al.) for pgd_at, trades and mart when no step is given."""
        obj = self.hp.objective
        if obj == "fast_at":
            return 1.25 * eps
        full = float(self.attack_cfg.get("eps") or 0.0)
        given = self.attack_cfg.get("step_size")
        if given is not None:
            return float(given) * (eps / full if full > 0 else 1.0)
        steps = int(self.attack_cfg.get("steps") or 10)
        if obj in ("pgd_at", "trades", "mart"):
            return 2.5 * eps / steps
        return eps / 10 if obj == "tpa_at" else eps / steps   # TPA's own default: eps / 10

    def _adversarial(self, x: Tensor, y: Tensor, eps: float) -> Tensor:
        """Adversarial examples for the training objective, made on ``self.model`` (never a DDP
        wrapper) in eval mode with no parameter grads; parameter ``.grad`` is never touched."""
        from ..attacks import model_eval_no_param_grad

        step = self._step_size(eps)
        if self.hp.objective == "trades":
            steps = int(self.attack_cfg.get("steps") or 10)
            gen = torch.Generator(device=x.device).manual_seed(self._step_seed(1))
            with model_eval_no_param_grad(self.model) as net:
                return trades_example(net, x, eps, steps, step, gen)
        atk = self.training_attack()
        atk.eps = eps
        atk.step_size = step
        atk.seed = self._step_seed(0)
        return atk(x, y)

    @torch.no_grad()
    def _clean_train_metrics(self, x: Tensor, y: Tensor) -> None:
        """Clean accuracy/loss of the training images the step saw only adversarially (one forward in
        eval mode, so batch-norm statistics are not touched)."""
        from ..attacks import model_eval_no_param_grad

        with model_eval_no_param_grad(self.model) as net:
            logits = net(x)
        self._update("train", "clean", logits, y, F.cross_entropy(logits, y))

    # ---------------------------------------------------------------- steps
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        obj = self.hp.objective
        eps = self.current_eps()
        if obj == "clean" or (obj != "gaussian_noise" and eps <= 0.0):
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
            self._update("train", "clean", logits, y, loss)
            return loss
        if obj == "gaussian_noise":
            noise = torch.randn_like(x) * self.hp.noise_sigma
            logits = self.model(x + noise)
            loss = F.cross_entropy(logits, y)
            self._update("train", "adv", logits, y, loss)
            return loss
        n_adv = int(round(self.hp.adv_ratio * x.shape[0]))
        x_adv = self._adversarial(x[:n_adv], y[:n_adv], eps) if n_adv > 0 else x[:0]
        if obj in ("trades", "mart"):
            logits_clean = self.model(x)
            logits_adv = self.model(x_adv)
            y_adv = y[:n_adv]
            fn = trades_loss if obj == "trades" else mart_loss
            beta = self.hp.trades_beta if obj == "trades" else self.hp.mart_beta
            loss = fn(logits_adv, logits_clean[:n_adv], y_adv, beta) if n_adv > 0 else logits_clean.new_zeros(())
            if n_adv < x.shape[0]:
                rest = F.cross_entropy(logits_clean[n_adv:], y[n_adv:], reduction="sum") / x.shape[0]
                loss = loss * (n_adv / x.shape[0]) + rest
            self._update("train", "clean", logits_clean.detach(), y, F.cross_entropy(logits_clean.detach(), y))
        else:
            logits = self.model(torch.cat([x_adv, x[n_adv:]]))
            loss = F.cross_entropy(logits, y)
            logits_adv = logits[:n_adv]
            if n_adv < x.shape[0]:
                self._update("train", "clean", logits[n_adv:].detach(), y[n_adv:],
                             F.cross_entropy(logits[n_adv:].detach(), y[n_adv:]))
            if self.hp.clean_train_metrics and n_adv > 0:
                self._clean_train_metrics(x[:n_adv], y[:n_adv])
        if n_adv > 0:
            self._update("train", "adv", logits_adv.detach(), y[:n_adv],
                         F.cross_entropy(logits_adv.detach(), y[:n_adv]))
        self.log("train/eps", eps, on_step=False, on_epoch=True, sync_dist=False)
        return loss

    def _eval_step(self, stage: str, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        x, y = batch
        with torch.no_grad():
            logits = self.model(x)
        self._update(stage, "clean", logits, y, F.cross_entropy(logits, y))
        limit = self.hp.val_attack_batches
        if limit is not None and batch_idx >= limit:
            return
        if self._val_attack is None:
            self._val_attack = self._build(self.val_attack_cfg)
        self._val_attack.seed = int(self.hp.seed) + batch_idx
        # Lightning evaluates under inference mode: leave it, and attack normal tensors.
        with torch.inference_mode(False), torch.enable_grad():
            x_adv = self._val_attack(x.clone(), y.clone())
            with torch.no_grad():
                logits_adv = self.model(x_adv)
            self._update(stage, "adv", logits_adv, y.clone(), F.cross_entropy(logits_adv, y.clone()))

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("val", batch, batch_idx)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._eval_step("test", batch, batch_idx)

    @property
    def hp(self) -> Any:
        """The saved hyperparameters (``self.hparams``), typed loosely for attribute access."""
        return self.hparams

    def _update(self, stage: str, kind: str, logits: Tensor, y: Tensor, loss: Tensor) -> None:
        acc = cast(torchmetrics.Metric, self.metrics[f"{stage}_{kind}_acc"])
        mean = cast(torchmetrics.Metric, self.losses[f"{stage}_{kind}_loss"])
        acc.update(logits.detach(), y)
        mean.update(loss.detach(), weight=y.shape[0])
        self.log(f"{stage}/{kind}_acc", acc, on_step=False, on_epoch=True, prog_bar=(kind == "adv"))
        self.log(f"{stage}/{kind}_loss", mean, on_step=False, on_epoch=True)

    # ---------------------------------------------------------------- optimisation
    def configure_optimizers(self) -> Any:
        h = self.hp
        params = [p for p in self.model.parameters() if p.requires_grad]
        if h.optimizer == "sgd":
            opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=h.lr, momentum=h.sgd_momentum,
                                                         weight_decay=h.weight_decay, nesterov=True)
        elif h.optimizer == "adamw":
            opt = torch.optim.AdamW(params, lr=h.lr, weight_decay=h.weight_decay)
        else:
            raise ValueError(f"training.optimizer must be sgd or adamw, got {h.optimizer}")
        if h.schedule == "none":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        if h.schedule == "cosine":
            sched: Any = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total))
        elif h.schedule == "onecycle":
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=h.lr, total_steps=max(1, total))
        else:
            raise ValueError(f"training.schedule must be none, cosine or onecycle, got {h.schedule}")
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[MODEL_META_KEY] = dict(self.model_meta)
