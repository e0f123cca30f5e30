"""The CIFAR-10 (JPEG copy) model zoo of the transferability benchmark: what is trained, where its
checkpoint lives, and how far its training got (status, checkpoint epochs, training time: read by both
:mod:`.train_zoo` and the model card :mod:`.zoo_card`, which imports nothing of the driver).

Every model is made by ``python train.py experiment=<experiment> out=<root>/<name>``: ``zoo_<name>``
(``configs/experiment/zoo_*.yaml``), and for the secured targets the adversarial-training study's
``at_<name>`` (``configs/experiment/at_*.yaml``, issue 15); ``--quick`` adds :data:`QUICK_OVERRIDES` so the whole zoo trains
in a few minutes on 2 CPU cores (weak models, for checking the pipeline only).
"""
from __future__ import annotations

import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Where checkpoints go unless told otherwise (``<root>/<name>/checkpoints/last.ckpt``).
DEFAULT_ROOT = Path("outputs/zoo")
#: Where the quick zoo goes when no other root is given (never mixed with the full zoo's models).
QUICK_ROOT = Path("outputs/zoo_quick")
#: The zoo's record of a model's training attempts, in its folder (written by :mod:`.train_zoo`).
RUN_RECORD = "zoo_run.json"


class ZooTrainingError(RuntimeError):
    """One or more zoo models failed to train (the message names them and their logs)."""


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo.

    ``role``: ``surrogate`` (adversarial examples are crafted on it; also a normal target),
    ``normal`` (a clean-trained target), ``secured`` (an adversarially trained target) or
    ``smoothing`` (the Gaussian-noise base classifier, evaluated as a randomized-smoothing target).
    ``spec`` is set for models that are not trained here (a ``build_model`` spec).
    ``select``: which of train.py's checkpoints the zoo uses: ``last`` (the final epoch) or ``best``
    (the epoch with the best validation robust accuracy, train.py's ``best-epoch*.ckpt``: the
    adversarially trained models, so that no test image selects anything). The committed copy of the
    selected checkpoint is restored as ``last.ckpt``.
    """

    name: str
    family: str
    role: str
    experiment: str | None = None
    spec: str | None = None
    select: str = "last"

    def checkpoint(self, root: Path = DEFAULT_ROOT) -> Path | None:
        """The checkpoint train.py writes for this model, or None for a shipped model."""
        return None if self.experiment is None else Path(root) / self.name / "checkpoints" / "last.ckpt"

    def selected_checkpoint(self, root: Path = DEFAULT_ROOT) -> Path | None:
        """The checkpoint whose weights the zoo uses: :meth:`checkpoint`, or with ``select="best"`` the
        best-on-validation checkpoint that train.py's metrics.json names, when that file is in the
        model's folder (a restored copy has only ``last.ckpt``, which then holds the selected weights)."""
        ckpt = self.checkpoint(root)
        if ckpt is None or self.select == "last":
            return ckpt
        metrics = ckpt.parent.parent / "metrics.json"
        best = json.loads(metrics.read_text()).get("best_checkpoint") if metrics.is_file() else None
        candidate = ckpt.parent / Path(best).name if best else None
        return candidate if candidate is not None and candidate.is_file() else ckpt

    def model_spec(self, root: Path = DEFAULT_ROOT) -> str:
        """What ``build_model`` takes to load this model."""
        ckpt = self.selected_checkpoint(root)
        return str(ckpt) if ckpt is not None else str(self.spec)

    def train_command(self, root: Path = DEFAULT_ROOT, quick: bool = False) -> list[str] | None:
        if self.experiment is None:
            return None
        cmd = ["python", "train.py", f"experiment={self.experiment}", f"out={Path(root) / self.name}"]
        return cmd + (list(QUICK_OVERRIDES) if quick else [])


ZOO: tuple[ZooModel, ...] = (
    ZooModel("resnet18_aa", "ResNet", "surrogate", spec="pretrained:autoattack_resnet18"),
    ZooModel("resnet18", "ResNet", "surrogate", experiment="zoo_resnet18"),
    ZooModel("vgg", "VGG", "normal", experiment="zoo_vgg"),
    ZooModel("mobilenet", "MobileNetV2", "normal", experiment="zoo_mobilenet"),
    ZooModel("densenet", "DenseNet", "normal", experiment="zoo_densenet"),
    ZooModel("vit", "ViT", "normal", experiment="zoo_vit"),
    ZooModel("convnext", "ConvNeXt", "normal", experiment="zoo_convnext"),
    ZooModel("fast_at", "ResNet (fast-AT)", "secured", experiment="at_fast_at", select="best"),
    ZooModel("pgd_at", "ResNet (PGD-AT)", "secured", experiment="at_pgd_at", select="best"),
    ZooModel("trades", "ResNet (TRADES)", "secured", experiment="at_trades", select="best"),
    ZooModel("tpa_at", "ResNet (TPA-AT)", "secured", experiment="at_tpa_at", select="best"),
    ZooModel("gaussian", "ResNet (Gaussian noise, sigma 0.25)", "smoothing", experiment="zoo_gaussian"),
)

#: train.py overrides of the quick version: 5000 training and 256 validation images, two epochs
#: (weak models, well above chance for most; the whole quick zoo trains in minutes on 2 idle cores).
QUICK_OVERRIDES: tuple[str, ...] = ("data.limit_train=5000", "data.val_size=256", "trainer.max_epochs=2",
                                    "training.val_attack_batches=1")


def zoo_model(name: str) -> ZooModel:
    for m in ZOO:
        if m.name == name:
            return m
    raise ValueError(f"unknown zoo model '{name}'; known: {', '.join(m.name for m in ZOO)}")


# ------------------------------------------------------------------ how far a model's training got
def read_run_record(folder: Path) -> dict[str, Any] | None:
    """The zoo's record of a model's training attempts (:data:`RUN_RECORD` in its folder), or None."""
    path = folder / RUN_RECORD
    if not path.is_file():
        return None
    record: dict[str, Any] = json.loads(path.read_text())
    return record


def train_seconds(folder: Path) -> float | None:
    """Wall-clock seconds of the training subprocesses of a model (start-up, data, validation
    included; interrupted attempts up to their last checkpoint), or None without a zoo record."""
    record = read_run_record(folder)
    if record is None:
        return None
    return float(sum(a.get("seconds") or 0.0 for a in record.get("attempts", [])))


def model_status(m: ZooModel, root: Path) -> str:
    """``shipped``, ``done`` (train.py finished), ``partial`` (a checkpoint to resume) or ``missing``."""
    ckpt = m.checkpoint(root)
    if ckpt is None:
        return "shipped"
    if ckpt.is_file() and (ckpt.parent.parent / "metrics.json").is_file():
        return "done"
    return "partial" if ckpt.is_file() else "missing"


def checkpoint_epochs(m: ZooModel, root: Path) -> tuple[int | None, int | None]:
    """``(epochs in last.ckpt, epochs train.py ran)``; None where unknown (no file, not a checkpoint).

    They differ when train.py's ``last.ckpt`` was written only when the monitored ``val/adv_acc``
    improved (Lightning 2.6's ModelCheckpoint with ``save_last=True`` saves "last" only together with a
    top-k checkpoint): the final weights are then not in ``last.ckpt``.
    """
    ckpt = m.selected_checkpoint(root)
    if ckpt is None or not ckpt.is_file():
        return None, None
    metrics = ckpt.parent.parent / "metrics.json"
    ran = json.loads(metrics.read_text()).get("epochs") if metrics.is_file() else None
    try:
        import torch

        saved = int(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]) + 1
    except (OSError, RuntimeError, KeyError, TypeError, ValueError, pickle.UnpicklingError):
        # not a Lightning checkpoint (e.g. a plain state dict, or a test's placeholder file)
        saved = None
    return saved, (int(ran) if ran is not None else None)
