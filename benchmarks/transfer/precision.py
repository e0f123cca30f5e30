"""The crafting-precision check: does crafting in bf16 (the run's ``craft_precision``) leave the results
unchanged? The ``precision_check`` attacks are crafted a second time in fp32 on the same surrogate,
budget, images and seed; per attack and normal target, and for the mean over the black-box columns,
the report gives both success rates and their difference paired over the images."""
from __future__ import annotations

from typing import Any

import torch

from .ablation import black_box
from .results import RunState, UnitResult
from .settings import ATTACK_TITLES
from .stats import paired_difference
from .tables import mean_rate, paired_against, pct


def twins(state: RunState) -> dict[str, tuple[UnitResult, UnitResult]]:
    """attack -> (its unit in the run's precision, its fp32 twin), where both are finished."""
    s = state.settings
    found: dict[str, dict[str, UnitResult]] = {}
    for r in state.results:
        u = r.unit
        if (u.label in s.precision_check and u.surrogate == s.ablation_surrogate and abs(u.eps - s.ablation_eps) < 1e-12
                and not u.targeted and not u.overrides and u.seed is None and u.steps == s.steps):
            if r.group == "main" and u.precision == s.craft_precision:
                found.setdefault(u.label, {})["run"] = r
            elif r.group == "precision" and u.precision == "32":
                found.setdefault(u.label, {})["fp32"] = r
    return {a: (p["run"], p["fp32"]) for a, p in found.items() if "run" in p and "fp32" in p}


def rows(state: RunState) -> list[dict[str, Any]]:
    """Per attack and column (each normal target, then ``mean``: the black-box mean): success in the
    run's precision and in fp32 (fractions) and the paired difference (run minus fp32, with its
    95 % interval and p)."""
    bb = tuple(black_box(state))
    out = []
    for label, (run, fp32) in sorted(twins(state).items()):
        for col in [c for c in run.evals if c in fp32.hits and c in run.hits] + ["mean"]:
            if col == "mean":
                a, b = mean_rate(run, bb), mean_rate(fp32, bb)
                d = paired_against({"run": run, "fp32": fp32}, "run", "fp32", bb)
            else:
                a, b = run.evals[col]["all"]["rate"], fp32.evals[col]["all"]["rate"]
                d = paired_difference(_hits(run, col), _hits(fp32, col))
            if a is None or b is None or d is None:
                continue
            out.append({"attack": label, "column": col, "run": a, "fp32": b, "diff": d["diff"], "lo": d["lo"],
                        "hi": d["hi"], "p": d["p"], "n": d["n"]})
    return out


def _hits(r: UnitResult, col: str) -> torch.Tensor:
    return torch.tensor(r.hits[col], dtype=torch.float64)


def verdict(check: list[dict[str, Any]]) -> bool | None:
    """Whether the precision left the results unchanged: for every attack, the paired difference of the
    black-box mean is not significant at 5 % and under one point; None without a finished pair."""
    means = [r for r in check if r["column"] == "mean"]
    if not means:
        return None
    return all(r["p"] >= 0.05 and abs(r["diff"]) < 0.01 for r in means)


def section(state: RunState) -> str | None:
    """The report's section on the check (None when the run crafts in fp32 or no pair is finished)."""
    s = state.settings
    check = rows(state)
    if s.craft_precision == "32" or not check:
        return None
    ok = verdict(check)
    lines = ["\n## Crafting precision: bf16 against fp32\n",
             (f"Every unit of this run is crafted with `{s.craft_precision}` autocast. To check that this leaves "
              f"the results unchanged, {', '.join(ATTACK_TITLES[a] for a in s.precision_check)} were also crafted "
              f"in fp32 on `{s.ablation_surrogate}` at {s.ablation_eps * 255:.0f}/255, same images and seed. Success "
              "%, and the difference in points paired over the images (95 % t interval, p)."),
             (f"\nVerdict: **{'unchanged' if ok else 'CHANGED'}** (criterion: for every attack the black-box mean "
             "differs by less than 1 point and not significantly at 5 %).\n"),
             "| attack | target | " + s.craft_precision + " | fp32 | difference (95 % CI), p |", "|---|---|---|---|---|"]
    for r in check:
        col = "black-box mean" if r["column"] == "mean" else r["column"]
        lines.append(f"| {ATTACK_TITLES[r['attack']]} | {col} | {pct(r['run'])} | {pct(r['fp32'])} | "
                     f"{100 * r['diff']:+.2f} ({100 * r['lo']:+.2f}, {100 * r['hi']:+.2f}), p = {r['p']:.2g} |")
    return "\n".join(lines)
