"""The study's report: the model table, TPA-AT's paired comparisons, RobustBench-style model cards,
written as README.md, study.csv, paired.csv and study.json (plain files)."""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path
from typing import Any

from .collect import ModelFacts
from .evaluations import EPS
from .figures import learning_curves, robust_vs_time
from .paired import compare, holm

#: Issue 15's floors on held-out test images (fractions): clean and PGD-20 accuracy.
FLOORS = {"clean": 0.70, "pgd20": 0.35}
#: The evaluation columns, in table order: key -> title.
METRICS = {"clean": "clean", "pgd20": "PGD-20", "pgd100": "PGD-100", "apgd": "APGD-CE + APGD-T",
           "aa_standard": "AutoAttack standard (first 200)"}
#: The model the study is about; every other model is compared with it.
FOCUS = "tpa_at"


def _pct(p: dict[str, Any] | None) -> str:
    if not p or p.get("accuracy") is None:
        return "pending"
    return f"{100 * p['accuracy']:.1f} [{100 * p['ci95'][0]:.1f}, {100 * p['ci95'][1]:.1f}]"


def floors_met(m: ModelFacts) -> bool | None:
    """Whether the model clears every floor (None while an evaluation is missing)."""
    n = m.evaluation.numbers
    if any(k not in n for k in FLOORS):
        return None
    return all(n[k]["accuracy"] >= f for k, f in FLOORS.items())


def table_rows(models: list[ModelFacts]) -> list[dict[str, Any]]:
    """One row per model: accuracies (fractions), transfer success, budget and time."""
    rows = []
    for m in models:
        n, t = m.evaluation.numbers, m.training
        tr = m.transfer.get("by_eps", {})
        rows.append({"model": m.name, "objective": m.label,
                     **{k: n[k]["accuracy"] if k in n else None for k in METRICS},
                     "transfer_success_8": tr.get("8", {}).get("mean"), "transfer_success_16": tr.get("16", {}).get("mean"),
                     "passes_per_image": t.passes_per_image, "epochs": t.epochs, "selected_epoch": t.selected_epoch,
                     "wall_seconds": t.wall_seconds, "threads": t.threads, "floors_met": floors_met(m),
                     "sanity": m.evaluation.sanity, "state_sha256": m.state_sha256})
    return rows


def paired_rows(models: list[ModelFacts]) -> list[dict[str, Any]]:
    """TPA-AT against each other model on every metric both have per image; ``p_holm`` adjusts the
    p-values for the number of comparisons made (Holm, family-wise error 5 %)."""
    focus = next((m for m in models if m.name == FOCUS), None)
    rows: list[dict[str, Any]] = []
    if focus is None:
        return rows
    for other in models:
        if other.name == FOCUS:
            continue
        for key in METRICS:
            a, b = focus.evaluation.per_image.get(key), other.evaluation.per_image.get(key)
            if a is None or b is None:
                continue
            rows.append({"a": FOCUS, "b": other.name, "metric": key, **compare(a, b)})
    for r, adjusted in zip(rows, holm([r["p"] for r in rows])):
        r["p_holm"] = adjusted
    return rows


def model_card(m: ModelFacts) -> dict[str, Any]:
    """RobustBench's model-card fields (accuracies in percent, as RobustBench writes them) and ours."""
    n = m.evaluation.numbers
    pct = {k: round(100 * n[k]["accuracy"], 2) if k in n else None for k in METRICS}
    return {"name": m.name, "architecture": "CIFAR ResNet-18, width 16 (701,466 parameters)",
            "dataset": "cifar10", "threat_model": "Linf", "eps": EPS, "clean_acc": pct["clean"],
            "autoattack_acc": pct["aa_standard"], "autoattack_images": n["aa_standard"]["total"] if "aa_standard" in n else None,
            "apgd_ce_t_acc": pct["apgd"], "pgd20_acc": pct["pgd20"], "pgd100_acc": pct["pgd100"],
            "additional_data": False, "number_forward_passes": 1, "training": m.label,
            "training_passes_per_image": m.training.passes_per_image, "training_wall_seconds": m.training.wall_seconds,
            "selected_epoch": m.training.selected_epoch, "epochs": m.training.epochs,
            "state_sha256": m.state_sha256, "checkpoint_sha256": m.evaluation.checkpoint_sha256,
            "sanity": m.evaluation.sanity, "sanity_failed": m.evaluation.sanity_failed,
            "transfer": m.transfer, "reference": "this repository (docs/training.md)",
            "footnote": "CIFAR-10 JPEG copy; 1,000 test images (AutoAttack standard on the first 200); "
                        "checkpoint selected on validation PGD-10, never on test images"}


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else ["model"])
        w.writeheader()
        w.writerows(rows)


def markdown(models: list[ModelFacts], rows: list[dict[str, Any]], paired: list[dict[str, Any]],
             figures: list[str]) -> str:
    lines = ["# Adversarial-training study (CIFAR-10, L-inf 8/255)", "",
             (f"Generated by `python -m benchmarks.at_study` ({time.strftime('%Y-%m-%d %H:%M')}) from the committed "
              "weights (`benchmarks/transfer/weights/<name>`), evaluation reports (`eval/<name>/report.json`) and "
              "transfer results (`docs/results/results.csv`). Accuracies in percent with exact 95 % intervals, on "
              "1,000 CIFAR-10 test images (JPEG copy); AutoAttack standard on the first 200 of them. The design "
              "and the reading of these numbers: docs/training.md."), "",
             ("| model | objective | " + " | ".join(METRICS.values())
              + " | transfer success 8/255 | 16/255 | passes / image | epoch used / run | training min | floors |"),
             "|" + "---|" * (len(METRICS) + 8)]
    for m, r in zip(models, rows):
        n = m.evaluation.numbers
        tr = ["pending" if r[k] is None else f"{100 * r[k]:.1f}" for k in ("transfer_success_8", "transfer_success_16")]
        wall = "n/a" if r["wall_seconds"] is None else f"{r['wall_seconds'] / 60:.0f}"
        floors = {None: "pending", True: "met", False: "**not met**"}[r["floors_met"]]
        used = f"{r['selected_epoch'] or '?'} / {r['epochs'] or '?'}"
        ppi = "n/a" if r["passes_per_image"] is None else f"{r['passes_per_image']:g}"
        lines.append(f"| {m.name} | {m.label} | " + " | ".join(_pct(n.get(k)) for k in METRICS)
                     + f" | {tr[0]} | {tr[1]} | {ppi} | {used} | {wall} | {floors} |")
    lines += ["", (f"Floors (issue 15): clean >= {100 * FLOORS['clean']:.0f} % and PGD-20 >= "
                   f"{100 * FLOORS['pgd20']:.0f} % (8/255, step 2/255, random start). Passes / image: forward + "
                   "backward passes per training image over the whole run, attack included (matched by design). "
                   "Transfer success: the share of the 1,000 images (untargeted) that TPA, MI, DI, VT, PGN, SSA and "
                   "BSR crafted on the converged surrogates make the model misclassify, averaged over attacks and "
                   "surrogates (Table 2 of the transferability benchmark)."), ""]
    sanity = [f"{m.name}: {m.evaluation.sanity}" + (f" (failed: {', '.join(m.evaluation.sanity_failed)})"
                                                    if m.evaluation.sanity_failed else "")
              + (f" (warnings: {', '.join(m.evaluation.sanity_warnings)})" if m.evaluation.sanity_warnings else "")
              for m in models if m.evaluation.sanity]
    if sanity:
        lines += ["Sanity checks of the evaluation (Carlini et al. 2019; evaluate.py's): " + "; ".join(sanity) + ".", ""]
    lines += ["## TPA-AT against each other objective, paired over the same images", ""]
    if paired:
        lines += [("| vs | metric | TPA-AT minus other (points) [95 % CI] | only TPA-AT right | only other right "
                  "| McNemar p | Holm-adjusted p |"), "|---|---|---|---|---|---|---|"]
        for p in paired:
            lines.append(f"| {p['b']} | {METRICS[p['metric']]} | {100 * p['diff']:+.1f} [{100 * p['lo']:+.1f}, "
                         f"{100 * p['hi']:+.1f}] | {p['a_only']} | {p['b_only']} | {p['p']:.3g} | {p['p_holm']:.3g} |")
        lines += ["", ("Per image: 1 if the model classifies the (attacked) image correctly. McNemar's exact test "
                       "looks at the images exactly one of the two models gets right; the interval is the paired t "
                       "interval of the difference; Holm's adjustment covers every row of this table.")]
    else:
        lines.append("(pending: TPA-AT and at least one other model need their evaluations)")
    lines += ["", "## Figures", ""] + [f"![{f}]({f})" for f in figures]
    lines += ["", "## Commands", ""] + [f"- **{m.name}**: `{m.training.command}`" for m in models if m.training.command]
    return "\n".join(lines) + "\n"


def write_study(models: list[ModelFacts], out: Path) -> list[Path]:
    """Write the study's files into ``out``; returns them."""
    out.mkdir(parents=True, exist_ok=True)
    rows, paired = table_rows(models), paired_rows(models)
    figures = [name for name, fn in (("robust_vs_time.png", robust_vs_time), ("curves.png", learning_curves))
               if fn(models, out / name)]
    _write_csv(out / "study.csv", rows)
    _write_csv(out / "paired.csv", paired)
    cards = {"models": [model_card(m) for m in models], "paired": paired, "floors": FLOORS}
    (out / "study.json").write_text(json.dumps(cards, indent=2, default=str))
    (out / "README.md").write_text(markdown(models, rows, paired, figures))
    return [out / f for f in ("README.md", "study.csv", "paired.csv", "study.json", *figures)]
