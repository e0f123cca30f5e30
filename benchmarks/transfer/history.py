"""How the conclusions moved from the undertrained zoo: the "In brief" standings of the run on the
2-4-epoch zoo (its ``results.csv``, frozen in ``docs/results/undertrained/``) against the current run's.

A standing is, per table analogue, surrogate and eps: each attack's mean success over the table's
black-box columns, the leading attack, TPA's rank and TPA minus the best baseline (in points; the
paired mean difference over the same images equals the difference of the means, so the CSV's counts
give it exactly). The current run's side comes from :func:`.summary.standing`, with its paired p."""
from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .settings import ATTACK_TITLES, TPA_LABELS
from .zoo import ZOO

#: The frozen results of the run on the undertrained zoo (docs/results/ as committed before the re-run).
UNDERTRAINED_CSV = Path(__file__).resolve().parents[2] / "docs" / "results" / "undertrained" / "results.csv"
_SECURED = {m.name for m in ZOO if m.role == "secured"}


def target_kind(name: str) -> str:
    """``defense`` (``<defense>@<base>``), ``secured`` (an adversarially trained zoo model) or ``normal``."""
    if "@" in name:
        return "defense"
    return "secured" if name in _SECURED else "normal"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _black_box(table: str, surrogate: str, targets: Iterable[str]) -> list[str]:
    kinds = {"table1": "normal", "table3": "normal", "table2": "secured", "table5": "defense"}
    return sorted(t for t in targets if target_kind(t) == kinds[table] and t != surrogate)


def csv_standings(rows: list[dict[str, str]]) -> dict[tuple[str, str, float], dict[str, Any]]:
    """``(table, surrogate, eps_255)`` -> ``{"means", "order", "rank", "lead", "best_baseline", "gap",
    "columns"}`` from the default-setting rows (no option overrides, groups ``main``/``targeted``)
    of a ``results.csv``; only tables with a TPA row, a baseline and every black-box column."""
    cells: dict[tuple[str, str, float], dict[str, dict[str, float]]] = {}
    for r in rows:
        if r["group"] not in ("main", "targeted") or r["overrides"]:
            continue
        key = (r["group"], r["surrogate"], float(r["eps_255"]))
        cells.setdefault(key, {}).setdefault(r["attack"], {})[r["target"]] = int(r["success"]) / int(r["n"])
    out: dict[tuple[str, str, float], dict[str, Any]] = {}
    for (group, sur, eps), by_attack in cells.items():
        targets = {t for per in by_attack.values() for t in per}
        for table in (("table3",) if group == "targeted" else ("table1", "table2", "table5")):
            cols = _black_box(table, sur, targets)
            means = {a: sum(per[c] for c in cols) / len(cols) for a, per in by_attack.items()
                     if cols and all(c in per for c in cols)}
            baselines = [a for a in means if a not in TPA_LABELS]
            if "tpa" not in means or not baselines:
                continue
            order = sorted(means, key=lambda a: -means[a])
            best = max(baselines, key=lambda a: means[a])
            out[(table, sur, eps)] = {"means": means, "order": order, "rank": order.index("tpa") + 1,
                                      "lead": order[0], "best_baseline": best,
                                      "gap": means["tpa"] - means[best], "columns": cols}
    return out


def _verdict(gap: float, p: float | None) -> str:
    if p is None:
        return "TPA ahead" if gap > 0 else "TPA behind"
    if p >= 0.05:
        return "tie"
    return "TPA ahead" if gap > 0 else "TPA behind"


def comparison_markdown(old: dict[tuple[str, str, float], dict[str, Any]],
                        new: dict[tuple[str, str, float], dict[str, Any]]) -> str | None:
    """Old against new for every table present in both (None if none is): leading attack, TPA's mean
    and rank, TPA minus the best baseline, and whether the verdict changed (the new one from the
    paired test at 5 %, the old one from the sign of the gap)."""
    keys = [k for k in new if k in old]
    if not keys:
        return None
    lines = [("| table | surrogate, eps | undertrained zoo: lead; TPA mean, rank; TPA - best baseline | "
             "converged zoo: lead; TPA mean, rank; TPA - best baseline (p) | verdict then -> now |"),
             "|---|---|---|---|---|"]
    for k in sorted(keys):
        o, n = old[k], new[k]
        p = n.get("p")
        then = _verdict(o["gap"], None)
        now = _verdict(n["gap"], p)
        cell_old = (f"{ATTACK_TITLES.get(o['lead'], o['lead'])}; {100 * o['means']['tpa']:.1f}, "
                    f"{o['rank']} of {len(o['means'])}; {ATTACK_TITLES.get(o['best_baseline'], o['best_baseline'])} "
                    f"{100 * o['gap']:+.1f}")
        cell_new = (f"{ATTACK_TITLES.get(n['lead'], n['lead'])}; {100 * n['means']['tpa']:.1f}, "
                    f"{n['rank']} of {len(n['means'])}; {ATTACK_TITLES.get(n['best_baseline'], n['best_baseline'])} "
                    f"{100 * n['gap']:+.1f}" + ("" if p is None else f" (p = {p:.2g})"))
        lines.append(f"| {k[0][-1]} | `{k[1]}`, {k[2]:g}/255 | {cell_old} | {cell_new} | "
                     f"{then} -> {now}{'' if then == now else ' (changed)'} |")
    return "\n".join(lines)
