"""PNG figures: success heat maps of the tables, the ablation curves, flatness against transfer, success
against cost."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .cost import cost_points
from .results import RunState
from .settings import ATTACK_TITLES
from .tables import TableSpec, attack_order, column_title, rows_of

DATASET = "CIFAR-10 (JPEG copy)"


def save_axes(fig: Any, ax: Any, path: Path, xlabel: str, ylabel: str, title: str, dpi: int = 110) -> None:
    """Label one line or scatter plot (grid, legend), write it to ``path`` as PNG and close it."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
    plt.close(fig)


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


def _place_labels(ax: Any, xy: list[tuple[float, float]], texts: list[str], fontsize: float) -> None:
    """Annotate each point, moving a label up or down (in steps of one text line) until its drawn box
    no longer overlaps an earlier label's; a moved label gets a thin leader line to its point."""
    renderer = ax.figure.canvas.get_renderer()
    placed: list[Any] = []
    step = fontsize * 1.3                       # points
    for i in sorted(range(len(xy)), key=lambda j: -xy[j][1]):
        ann = ax.annotate(texts[i], xy[i], xytext=(3, 3), textcoords="offset points", fontsize=fontsize)
        for k in range(60):                     # offsets 0, +1, -1, +2, -2, ... lines
            dy = 3 + (k + 1) // 2 * (1 if k % 2 else -1) * step
            ann.xyann = (3, dy)
            box = ann.get_window_extent(renderer).padded(1)
            if not any(box.overlaps(b) for b in placed):
                break
        placed.append(box)
        if dy != 3:                             # the same label again, with a leader line
            ann.remove()
            ax.annotate(texts[i], xy[i], xytext=(3, dy), textcoords="offset points", fontsize=fontsize,
                        arrowprops={"arrowstyle": "-", "lw": 0.4, "color": "0.5"})


def flatness_plot(entries: list[dict[str, Any]], title: str, path: Path, fools_at: float = 0.99) -> bool:
    """Mean black-box ASR against flatness, one point per attack: filled if the attack fools the surrogate
    on at least ``fools_at`` of the images (white-box ASR), hollow if not; TPA in red."""
    pts = [e for e in entries if e.get("flatness") is not None and e.get("mean_asr") is not None]
    if len(pts) < 2:
        return False
    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    for e in pts:
        color = "C3" if e["attack"].startswith("tpa") else "C0"
        fools = e.get("whitebox_asr") is not None and e["whitebox_asr"] >= fools_at
        ax.errorbar(e["flatness"], 100 * e["mean_asr"], xerr=e.get("flat_sem") or 0, fmt="o", color=color, ms=5,
                    mfc=color if fools else "white", mew=1.2)
    ax.margins(x=0.12, y=0.08)
    fig.canvas.draw()
    _place_labels(ax, [(e["flatness"], 100 * e["mean_asr"]) for e in pts],
                  [ATTACK_TITLES.get(e["attack"], e["attack"]) for e in pts], 6.5)
    ax.errorbar([], [], fmt="o", color="0.3", ms=5, label=f"fools the surrogate (white-box >= {100 * fools_at:.0f} %)")
    ax.errorbar([], [], fmt="o", color="0.3", ms=5, mfc="white", mew=1.2, label="does not")
    ax.legend(fontsize=6.5, loc="lower right", frameon=False)
    ax.set_xlabel("mean ||grad of surrogate loss|| around the examples (lower = flatter)", fontsize=8)
    ax.set_ylabel("mean black-box ASR (%)", fontsize=8)
    ax.set_title(title, fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def cost_plot(state: RunState, specs: list[TableSpec], path: Path) -> bool:
    """One panel per spec: success against passes per image (log scale), the front as a line."""
    panels = [(s, cost_points(state, s)) for s in specs]
    panels = [(s, pts) for s, pts in panels if pts]
    if not panels:
        return False
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.6 * cols, 3.8 * rows), squeeze=False)
    for ax, (spec, pts) in zip(axes.flat, panels, strict=False):
        ax.scatter([p.passes for p in pts], [100 * p.success for p in pts],
                   c=["tab:red" if p.label.startswith("tpa") else "tab:blue" for p in pts], s=18)
        front = [p for p in pts if p.front]
        ax.plot([p.passes for p in front], [100 * p.success for p in front], color="0.5", lw=0.8, ls="--")
        for p in pts:
            ax.annotate(p.label, (p.passes, 100 * p.success), fontsize=6.5, xytext=(3, 2),
                        textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("forward+backward passes per image")
        ax.set_ylabel("mean black-box success %")
        ax.set_title(f"{spec.table} `{spec.surrogate}` eps {spec.eps * 255:.0f}/255", fontsize=8)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return True
