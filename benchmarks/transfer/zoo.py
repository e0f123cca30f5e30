"""The CIFAR-10 (JPEG copy) model zoo of the transferability benchmark: what is trained, and where
its checkpoint lives.

Every model is made by ``python train.py experiment=zoo_<name> out=<root>/<name>`` (configs in
``configs/experiment/zoo_*.yaml``); ``--quick`` adds :data:`QUICK_OVERRIDES` so the whole zoo trains
in a few minutes on 2 CPU cores (weak models, for checking the pipeline only).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: Where checkpoints go unless told otherwise (``<root>/<name>/checkpoints/last.ckpt``).
DEFAULT_ROOT = Path("outputs/zoo")
#: Where the quick zoo goes when no other root is given (never mixed with the full zoo's models).
QUICK_ROOT = Path("outputs/zoo_quick")


@dataclass(frozen=True)
class ZooModel:
    """One model of the zoo.

    ``role``: ``surrogate`` (adversarial examples are crafted on it; also a normal target),
    ``normal`` (a clean-trained target), ``secured`` (an adversarially trained target) or
    ``smoothing`` (the Gaussian-noise base classifier, evaluated as a randomized-smoothing target).
    ``spec`` is set for models that are not trained here (a ``build_model`` spec).
    """

    name: str
    family: str
    role: str
    experiment: str | None = None
    spec: str | None = None

    def checkpoint(self, root: Path = DEFAULT_ROOT) -> Path | None:
        """The checkpoint train.py writes for this model, or None for a shipped model."""
        return None if self.experiment is None else Path(root) / self.name / "checkpoints" / "last.ckpt"

    def model_spec(self, root: Path = DEFAULT_ROOT) -> str:
        """What ``build_model`` takes to load this model."""
        ckpt = self.checkpoint(root)
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
    ZooModel("pgd_at", "ResNet (PGD-AT)", "secured", experiment="zoo_pgd_at"),
    ZooModel("tpa_at", "ResNet (TPA-AT)", "secured", experiment="zoo_tpa_at"),
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
