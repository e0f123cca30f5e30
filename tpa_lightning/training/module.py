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

from ..attacks import CONFIG_KEYS_NOT_OPTIONS, Attack, build_attack, model_eval_no_param_grad
from ..attacks.base import attack_precision
from ..checks import check_choice
from ..models import build_model
from ..models.checkpoint import MODEL_META_KEY
from .objectives import (
    OBJECTIVES,
    default_training_attack,
    mart_loss,
    trades_example,
    trades_loss,
    training_attack_name,
    unread_attack_keys,
)

#: ``training.optimizer`` values: SGD with nesterov momentum, or AdamW (see configure_optimizers)
OPTIMIZERS = ("sgd", "adamw")
#: ``training.schedule`` values: constant, cosine (with optional linear warm-up), one-cycle
SCHEDULES = ("none", "cosine", "onecycle")


def attack_options(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword options of an attack config (None means: the attack's own default)."""
    opts = {k: v for k, v in cfg.items() if k not in CONFIG_KEYS_NOT_OPTIONS and v is not None}
    opts.update(dict(cfg.get("options") or {}))
    return opts


class AdversarialTrainingModule(L.LightningModule):
    """Train ``model`` with one of the objectives ``clean``, ``pgd_at`` (Madry 2018), ``trades``
    (Zhang 2019), ``mart`` (Wang 2020), ``fast_at`` (FGSM with random start and step 1.25 eps,
    Wong 2020), ``tpa_at`` (TPA examples made on the fly) or ``gaussian_noise`` (a base model for
    randomized smoothing).

    The model is built from ``model_spec`` (see ``build_model``) so that checkpoints rebuild it.
    Attacks run on ``self.model`` itself (never a DDP wrapper) in eval mode with parameter grads off.

    Args:
        attack: config of the training attack (``name`` plus options such as ``eps``, ``steps``,
            ``copies``, ``transforms``, ``seed``; default :func:`~.objectives.default_training_attack`).
            ``name`` None means the objective's own attack (pgd for pgd_at, mart and fast_at, tpa
            for tpa_at); pgd_at and mart craft with any registry attack named (MI-AT, DI-AT ...),
            the other objectives fix theirs. Keys the objective does not read
            (:data:`~.objectives.OBJECTIVE_ATTACKS`) are a ValueError. ``seed`` None: derived from
            ``seed``.
        val_attack: attack for validation robust accuracy (``val/adv_acc``).
        adv_ratio: share of each batch replaced by adversarial examples (1.0: all).
        warmup_epochs: clean epochs before the attack starts.
        eps_ramp_epochs: epochs over which eps grows linearly (after warm-up) to ``attack.eps``.
        precision: Lightning's precision; the attack runs under the matching autocast.
        clean_train_metrics: also log ``train/clean_acc``/``train/clean_loss`` of the images that
            were attacked (one extra eval-mode forward per attacked image, no backward; default off,
            so an epoch costs only the attack and the train step).
        label_smoothing: smoothing of the training cross-entropy (Szegedy et al. 2016; 0.1 is the
            usual value, default 0: off). Only for objectives whose loss is a cross-entropy (not
            trades or mart: a ValueError). Logged losses and the attacks' own losses stay unsmoothed.
        lr_warmup_epochs: with ``schedule="cosine"``, epochs (fractions allowed) over which the
            learning rate rises linearly from ``lr / 100`` to ``lr`` before the cosine decay
            (default 0: none). ``onecycle`` has its own warm-up (30 % of the steps), so any other
            schedule with a warm-up is a ValueError.
        channels_last: keep the model's weights and the batches in channels-last memory format
            (faster convolutions on CPUs with AVX-512 and on GPUs; measured in
            benchmarks/training_levers.py). Default off.

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
                 clean_train_metrics: bool = False, label_smoothing: float = 0.0,
                 lr_warmup_epochs: float = 0.0, channels_last: bool = False) -> None:
        super().__init__()
        if objective not in OBJECTIVES:
            raise ValueError(f"training.objective must be one of {', '.join(OBJECTIVES)}, got {objective}")
        check_choice("training.optimizer", optimizer, OPTIMIZERS)
        check_choice("training.schedule", schedule, SCHEDULES)
        if not 0.0 <= adv_ratio <= 1.0:
            raise ValueError(f"adv_ratio must be in [0, 1], got {adv_ratio}")
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"training.label_smoothing must be in [0, 1), got {label_smoothing}")
        if label_smoothing > 0 and objective in ("trades", "mart"):
            raise ValueError(f"training.label_smoothing: not used by objective {objective} (its loss is its own); "
                             "leave it at 0")
        if lr_warmup_epochs < 0 or (lr_warmup_epochs > 0 and schedule != "cosine"):
            raise ValueError(f"training.lr_warmup_epochs must be >= 0 and needs schedule=cosine, got "
                             f"{lr_warmup_epochs} with schedule={schedule}")
        self.save_hyperparameters()
        self.model = build_model(model_spec, num_classes=num_classes, in_chans=in_chans, mean=mean, std=std,
                                 model_dir=model_dir, **dict(model_kwargs or {}))
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        self.model_meta = {"spec": model_spec, "num_classes": num_classes, "in_chans": in_chans,
                           "mean": list(mean) if mean is not None else None,
                           "std": list(std) if std is not None else None, "kwargs": dict(model_kwargs or {})}
        self.attack_cfg = dict(attack if attack is not None else default_training_attack(objective))
        self.attack_name = training_attack_name(objective, self.attack_cfg.get("name"))
        unread = unread_attack_keys(objective, self.attack_cfg)
        if unread:
            raise ValueError(f"attack.{unread[0]}: not read by training.objective={objective}; leave it unset")
        self.val_attack_cfg = dict(val_attack or {"name": "pgd", "eps": 0.1, "steps": 10})
        self._attacks: dict[float, Attack] = {}
        self._val_attack: Attack | None = None
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
        """A seed per (attack seed or run seed, stage, rank, step): repeatable runs, fresh noise every step."""
        seed = self.attack_cfg.get("seed")
        base = int(self.hp.seed if seed is None else seed)
        return base * 1_000_003 + stage * 7_919 + self.global_rank * 104_729 + self.global_step

    def _build(self, name: str, cfg: Mapping[str, Any], **overrides: Any) -> Attack:
        opts = attack_options(cfg)
        opts.update(overrides)
        opts.setdefault("precision", attack_precision(self.hp.precision))
        return build_attack(name, self.model, **opts)

    def training_attack(self, eps: float | None = None) -> Attack:
        """The attack that crafts the training batch at budget ``eps`` (default: ``attack.eps``),
        built once per budget (the eps ramp makes a new one with ``replace``, never mutates one)."""
        full = float(self.attack_cfg.get("eps") or 0.0)
        eps = full if eps is None else float(eps)
        if self.attack_name is None:
            raise ValueError(f"training.objective={self.hp.objective} crafts with no registry attack")
        if eps not in self._attacks:
            if not self._attacks:
                cfg = dict(self.attack_cfg, eps=eps)
                if self.hp.objective == "fast_at":
                    cfg["steps"] = 1
                self._attacks[eps] = self._build(self.attack_name, cfg, step_size=self._step_size(eps))
            else:
                first = next(iter(self._attacks.values()))
                self._attacks[eps] = first.replace(eps=eps, step_size=self._step_size(eps))
        return self._attacks[eps]

    def passes_per_image(self) -> float:
        """Forward+backward passes of the model per training image in one adversarial training step
        at full budget: the attack's (TRADES: its KL ascent steps) plus the update's (1 for the
        cross-entropy objectives, 2 for trades and mart, which also back-propagate the clean batch),
        with ``adv_ratio`` weighting the attack. Forward passes without a backward (TRADES' clean
        reference, metrics) are not counted. The unit of matched compute between objectives.
        ``clean`` and ``gaussian_noise``: 1."""
        obj = self.hp.objective
        if obj in ("clean", "gaussian_noise"):
            return 1.0
        if obj == "trades":
            attack = float(int(self.attack_cfg.get("steps") or 10))
        else:
            attack = self.training_attack().passes_per_image()
        update = 2.0 if obj in ("trades", "mart") else 1.0
        return self.hp.adv_ratio * attack + update

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
        wrapper) in eval mode with no parameter grads; parameter ``.grad`` is never touched.

        Every image draws its own noise (random start, TPA's copies): the attack gets one random
        stream per row of the batch (``keys``), seeded by the step's seed, so no two images of a
        batch share a random pattern and a run stays repeatable."""
        if self.hp.objective == "trades":
            steps = int(self.attack_cfg.get("steps") or 10)
            gen = torch.Generator(device=x.device).manual_seed(self._step_seed(1))
            with model_eval_no_param_grad(self.model) as net:
                return trades_example(net, x, eps, steps, self._step_size(eps), gen)
        keys = torch.arange(x.shape[0])
        return self.training_attack(eps)(x, y, seed=self._step_seed(0), keys=keys)

    @torch.no_grad()
    def _clean_train_metrics(self, x: Tensor, y: Tensor) -> None:
        """Clean accuracy/loss of the training images the step saw only adversarially (one forward in
        eval mode, so batch-norm statistics are not touched)."""
        with model_eval_no_param_grad(self.model) as net:
            logits = net(x)
        self._update("train", "clean", logits, y, F.cross_entropy(logits, y))

    # ---------------------------------------------------------------- steps
    def _memory_format(self, x: Tensor) -> Tensor:
        """``x`` in the memory format of the model's weights (channels-last when asked for)."""
        return x.contiguous(memory_format=torch.channels_last) if self.hp.channels_last and x.dim() == 4 else x

    def _train_ce(self, logits: Tensor, y: Tensor) -> Tensor:
        """The training cross-entropy (with ``label_smoothing``)."""
        return F.cross_entropy(logits, y, label_smoothing=float(self.hp.label_smoothing))

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        x, y = batch
        x = self._memory_format(x)
        obj = self.hp.objective
        eps = self.current_eps()
        if obj == "clean" or (obj != "gaussian_noise" and eps <= 0.0):
            logits = self.model(x)
            loss = self._train_ce(logits, y)
            self._update("train", "clean", logits, y, F.cross_entropy(logits.detach(), y))
            return loss
        if obj == "gaussian_noise":
            noise = torch.randn_like(x) * self.hp.noise_sigma
            logits = self.model(x + noise)
            loss = self._train_ce(logits, y)
            self._update("train", "adv", logits, y, F.cross_entropy(logits.detach(), y))
            return loss
        n_adv = round(self.hp.adv_ratio * x.shape[0])
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
            logits = self.model(self._memory_format(torch.cat([x_adv, x[n_adv:]])))
            loss = self._train_ce(logits, y)
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
        x = self._memory_format(x)
        with torch.no_grad():
            logits = self.model(x)
        self._update(stage, "clean", logits, y, F.cross_entropy(logits, y))
        limit = self.hp.val_attack_batches
        if limit is not None and batch_idx >= limit:
            return
        if self._val_attack is None:
            self._val_attack = self._build(str(self.val_attack_cfg.get("name") or "pgd"), self.val_attack_cfg)
        # Lightning evaluates under inference mode: leave it, and attack normal tensors. The seed per
        # batch, with draws shared over the batch, keeps the value independent of the batch size.
        with torch.inference_mode(False), torch.enable_grad():
            x_adv = self._val_attack(x.clone(), y.clone(), seed=self._val_seed() + batch_idx)
            with torch.no_grad():
                logits_adv = self.model(x_adv)
            self._update(stage, "adv", logits_adv, y.clone(), F.cross_entropy(logits_adv, y.clone()))

    def _val_seed(self) -> int:
        """Seed of the validation attack's first batch: ``val_attack.seed``, else the run's seed."""
        seed = self.val_attack_cfg.get("seed")
        return int(self.hp.seed if seed is None else seed)

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
        else:   # adamw (checked in __init__)
            opt = torch.optim.AdamW(params, lr=h.lr, weight_decay=h.weight_decay)
        if h.schedule == "none":
            return opt
        total = int(self.trainer.estimated_stepping_batches)
        if h.schedule == "cosine":
            sched: Any = self._cosine_with_warmup(opt, total)
        else:   # onecycle (checked in __init__)
            sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=h.lr, total_steps=max(1, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def _cosine_with_warmup(self, opt: torch.optim.Optimizer, total: int) -> Any:
        """Cosine decay over ``total`` steps, after a linear warm-up of ``lr_warmup_epochs`` epochs."""
        epochs = max(1, int(self.trainer.max_epochs or 1))
        warm = min(total - 1, round(float(self.hp.lr_warmup_epochs) * total / epochs))
        if warm <= 0:
            return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total))
        rise = torch.optim.lr_scheduler.LinearLR(opt, start_factor=0.01, end_factor=1.0, total_iters=warm)
        decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, total - warm))
        return torch.optim.lr_scheduler.SequentialLR(opt, [rise, decay], milestones=[warm])

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[MODEL_META_KEY] = dict(self.model_meta)
