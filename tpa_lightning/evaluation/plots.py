"""PNG plots of a report (matplotlib, Agg backend): robust accuracy against eps, the transfer heat
map, certified accuracy against radius."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def write_plots(report: dict[str, Any], out: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    written: list[str] = []
    if report["whitebox"]:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for lab, r in report["whitebox"].items():
            ax.plot([p["eps"] for p in r["curve"]], [p["accuracy"] for p in r["curve"]], marker="o", label=lab)
        for key, d in report["defenses"].items():
            ax.scatter([p["eps"] for p in d["adaptive"]], [p["accuracy"] for p in d["adaptive"]], marker="x",
                       label=f"{key} (adaptive)")
        ax.set(xlabel="eps (L-inf, [0, 1] pixels)", ylabel="robust accuracy", ylim=(0, 1), title="Robust accuracy")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "robust_accuracy.png", dpi=100)
        plt.close(fig)
        written.append("robust_accuracy.png")
    tr = report["transfer"]["result"]
    if tr and tr["cells"]:
        rows = [f"{s} / {a}" for s in tr["sources"] for a in tr["attacks"]]
        mat = np.zeros((len(rows), len(tr["targets"])))
        for c in tr["cells"]:
            i = tr["sources"].index(c["source"]) * len(tr["attacks"]) + tr["attacks"].index(c["attack"])
            mat[i, tr["targets"].index(c["target"])] = c["asr_all"] or 0.0
        fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(tr["targets"]), 1.2 + 0.5 * len(rows)))
        im = ax.imshow(mat, vmin=0, vmax=1, cmap="viridis")
        ax.set_xticks(range(len(tr["targets"])), tr["targets"], rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), rows, fontsize=8)
        for i in range(mat.shape[0]):
            for j in range(mat.shape[1]):
                ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if mat[i, j] < 0.5 else "black")
        ax.set(xlabel="target", ylabel="source / attack", title="Transfer success rate (all images)")
        fig.colorbar(im, ax=ax)
        fig.tight_layout()
        fig.savefig(out / "transfer_heatmap.png", dpi=100)
        plt.close(fig)
        written.append("transfer_heatmap.png")
    cert = report["certified"]["result"]
    if cert:
        fig, ax = plt.subplots(figsize=(5, 3.5))
        for key, r in cert.items():
            ax.step([p["radius"] for p in r["curve"]], [p["accuracy"] for p in r["curve"]], where="post",
                    label=f"sigma={key}")
        ax.set(xlabel="L2 radius", ylabel="certified accuracy", ylim=(0, 1), title="Randomized smoothing")
        ax.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(out / "certified_accuracy.png", dpi=100)
        plt.close(fig)
        written.append("certified_accuracy.png")
    return written
