"""PNG figures: success heat maps of the tables, the ablation curves, flatness against transfer."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .runner import RunState
from .settings import ATTACK_TITLES
from .tables import TableSpec, attack_order, column_title, rows_of

DATASET = "CIFAR-10 (JPEG copy)"


def heatmap(state: RunState, spec: TableSpec, path: Path) -> bool:
    rows = rows_of(state, spec)
    attacks = [a for a in attack_order(state, spec) if a in rows]
    if not attacks:
        return False
    cols = list(spec.columns)
    data = [[(rows[a].evals[c]["all"]["rate"] * 100 if c in rows[a].evals else float("nan")) for c in cols]
            for a in attacks]
    fig, ax = plt.subplots(figsize=(2.5 + 0.95 * len(cols), 2.2 + 0.38 * len(attacks)))
    im = ax.imshow(data, vmin=0, vmax=100, cmap="viridis", aspect="auto")
    ax.set_xticks(range(len(cols)))
    ax.set_xticklabels([column_title(state, c, spec.surrogate) for c in cols], rotation=35, ha="right", fontsize=7)
    ax.set_yticks(range(len(attacks)))
    ax.set_yticklabels([ATTACK_TITLES[a] for a in attacks], fontsize=8)
    for i, row in enumerate(data):
        for j, v in enumerate(row):
            if not math.isnan(v):
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=7, color="white" if v < 60 else "black")
    n = next(iter(rows.values())).n
    what = "targeted success (%)" if spec.targeted else "attack success rate (%)"
    ax.set_title(f"{spec.title.split(';')[0].split(':')[0]}: {what}\nsurrogate {spec.surrogate}, "
                 f"eps {spec.eps * 255:.0f}/255, {n} images, {DATASET}", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def ablation_plot(state: RunState, rows: list[dict[str, Any]], path: Path) -> bool:
    sweeps: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        if r["done"] and r.get("mean_asr") is not None:
            sweeps.setdefault((r["attack"], r["title"]), []).append(r)
    sweeps = {k: v for k, v in sweeps.items() if len(v) >= 2}
    if not sweeps:
        return False
    n = len(sweeps)
    ncol = min(4, n)
    nrow = (n + ncol - 1) // ncol
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 2.7 * nrow), squeeze=False)
    for ax, ((_, title), pts) in zip(axes.flat, sweeps.items()):
        pts = sorted(pts, key=lambda r: r["value"])
        xs = [p["value"] for p in pts]
        ax.plot(xs, [100 * p["mean_asr"] for p in pts], "o-", color="C0", label="mean black-box ASR")
        ax.set_title(title, fontsize=9)
        ax.set_ylabel("ASR (%)", fontsize=8)
        ax.tick_params(labelsize=7)
        flats = [p.get("flatness") for p in pts]
        if all(f is not None for f in flats):
            ax2 = ax.twinx()
            ax2.plot(xs, flats, "s--", color="C3", alpha=0.7, label="grad norm (flatness)")
            ax2.tick_params(labelsize=7, colors="C3")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    s = state.settings
    fig.suptitle(f"TPA ablation (Fig. 5 analogue): blue = mean ASR over black-box normal targets, red dashed = "
                 f"neighbourhood grad norm\nsurrogate {s.ablation_surrogate}, eps {s.ablation_eps * 255:.0f}/255, "
                 f"{s.ablation_images} images, {DATASET}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def flatness_plot(entries: list[dict[str, Any]], title: str, path: Path) -> bool:
    pts = [e for e in entries if e.get("flatness") is not None and e.get("mean_asr") is not None]
    if len(pts) < 2:
        return False
    fig, ax = plt.subplots(figsize=(5.5, 4.2))
    for e in pts:
        ax.errorbar(e["flatness"], 100 * e["mean_asr"], xerr=e.get("flat_sem") or 0, fmt="o",
                    color="C3" if e["attack"].startswith("tpa") else "C0", ms=5)
        ax.annotate(ATTACK_TITLES.get(e["attack"], e["attack"]), (e["flatness"], 100 * e["mean_asr"]), fontsize=7,
                    xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("mean ||grad of surrogate loss|| around the examples (lower = flatter)", fontsize=8)
    ax.set_ylabel("mean black-box ASR (%)", fontsize=8)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
