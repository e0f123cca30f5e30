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


def learning_curves(models: list[ModelFacts], path: Path) -> bool:
    """Validation clean and PGD-10 accuracy per epoch (train.py's validation split), two panels."""
    curves = [m for m in models if m.training.curve]
    if not curves:
        return False
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=False)
    for ax, key, title in zip(axes, ("val_clean", "val_robust"), ("clean", "PGD-10 (first 512 images)")):
        for m in curves:
            pts = [(r["epoch"], 100 * r[key]) for r in m.training.curve if key in r]
            if pts:
                ax.plot(*zip(*pts), marker=".", label=m.name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(f"validation {title} accuracy (%)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.suptitle("Learning curves (validation split of the training set, 1,000 images)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
