"""The study's two figures: robust accuracy against training wall time, and the learning curves."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from benchmarks.transfer.plots import save_axes

from .collect import ModelFacts


def robust_vs_time(models: list[ModelFacts], path: Path) -> bool:
    """PGD-20 and AutoAttack (APGD-CE + APGD-T) accuracy against training minutes, one point each;
    False (nothing written) when no model has both a time and an evaluation."""
    pts = [(m, m.training.wall_seconds / 60, m.evaluation.numbers) for m in models
           if m.training.wall_seconds and "pgd20" in m.evaluation.numbers]
    if not pts:
        return False
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for key, marker, title in (("pgd20", "o", "PGD-20"), ("apgd", "s", "APGD-CE + APGD-T")):
        xs = [x for _, x, n in pts if key in n]
        ys = [100 * n[key]["accuracy"] for _, _, n in pts if key in n]
        ax.scatter(xs, ys, marker=marker, label=title)
    for m, x, n in pts:
        ax.annotate(m.name, (x, 100 * n["pgd20"]["accuracy"]), textcoords="offset points", xytext=(5, 4),
                    fontsize=8)
    save_axes(fig, ax, path, "training wall time (minutes, one CPU thread)", "robust accuracy at 8/255 (%)",
              "Robust accuracy against training time (1,000 CIFAR-10 test images)")
    return True


def curve_points(m: ModelFacts, key: str) -> list[tuple[float, float]]:
    """(training passes per image spent so far, validation accuracy in %) after each epoch: epoch
    ``e`` (1-based, as :func:`.collect.read_curve` numbers them) ends after ``e * passes_per_epoch``
    passes, the matched-compute axis on which objectives of different cost per epoch line up; the
    epoch itself where the cost is unknown."""
    per_epoch = m.training.passes_per_epoch or 1.0
    return [(r["epoch"] * per_epoch, 100 * r[key]) for r in m.training.curve if key in r]


def learning_curves(models: list[ModelFacts], path: Path) -> bool:
    """Validation clean and PGD-10 accuracy (train.py's validation split) against the training passes
    per image spent so far, two panels."""
    curves = [m for m in models if m.training.curve]
    if not curves:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=False)
    for ax, key, title in zip(axes, ("val_clean", "val_robust"), ("clean", "PGD-10 (first 512 images)")):
        for m in curves:
            pts = curve_points(m, key)
            if pts:
                ax.plot(*zip(*pts), marker=".", label=m.name)
        ax.set_xlabel("training passes per image so far (fwd + bwd)")
        ax.set_ylabel(f"validation {title} acc. (%)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Learning curves (validation split of the training set, 1,000 images)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
