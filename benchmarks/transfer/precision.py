"""The crafting-precision check: which attacks may be crafted in bf16? Each ``precision_check`` attack is
crafted in both precisions, bf16 autocast and fp32, on the same surrogate, budget, images and seed: its
unit in the precision the run crafts it in (``Settings.precision_of``: bf16 for ``bf16_attacks``) is its
main unit, the other its twin (group "precision"). Per attack and normal target, and for the mean over
the black-box columns, the report gives both success rates and their difference (bf16 minus fp32)
paired over the images, a verdict per attack, and a warning for any attack crafted in bf16 without a
passing check."""
from __future__ import annotations

from typing import Any

import torch

from .ablation import black_box
from .results import RunState, UnitResult
from .settings import ATTACK_LABELS, ATTACK_TITLES
from .stats import paired_difference
from .tables import mean_rate, paired_against, pct

#: a checked attack passes when its black-box mean moves by less than this (a fraction: 1 point) ...
MAX_DIFF = 0.01
#: ... and the paired difference is not significant at this level
ALPHA = 0.05


def _order(label: str) -> int:
    return ATTACK_LABELS.index(label) if label in ATTACK_LABELS else len(ATTACK_LABELS)


def twins(state: RunState) -> dict[str, tuple[UnitResult, UnitResult]]:
    """attack -> (its bf16 set, its fp32 set), where both are finished: the ``precision_check`` attacks'
    untargeted sets on ``ablation_surrogate`` at ``ablation_eps`` with default options and the run's seed
    and steps, found by their unit's precision in either group ("main" or "precision")."""
    s = state.settings
    found: dict[str, dict[str, UnitResult]] = {}
    for r in state.results:
        u = r.unit
        if (r.group in ("main", "precision") and u.label in s.precision_check and u.surrogate == s.ablation_surrogate
                and abs(u.eps - s.ablation_eps) < 1e-12 and not u.targeted and not u.overrides and u.seed is None
                and u.steps == s.steps and u.precision in ("bf16", "32")):
            found.setdefault(u.label, {}).setdefault(u.precision, r)
    return {a: (p["bf16"], p["32"]) for a, p in sorted(found.items(), key=lambda kv: _order(kv[0]))
            if "bf16" in p and "32" in p}


def rows(state: RunState) -> list[dict[str, Any]]:
    """Per attack (table order) and column (each normal target, then ``mean``: the black-box mean):
    success in bf16 and in fp32 (fractions) and the paired difference (bf16 minus fp32, with its 95 %
    interval and p)."""
    bb = tuple(black_box(state))
    out = []
    for label, (bf16, fp32) in twins(state).items():
        for col in [c for c in bf16.evals if c in fp32.hits and c in bf16.hits] + ["mean"]:
            if col == "mean":
                a, b = mean_rate(bf16, bb), mean_rate(fp32, bb)
                d = paired_against({"bf16": bf16, "fp32": fp32}, "bf16", "fp32", bb)
            else:
                a, b = bf16.evals[col]["all"]["rate"], fp32.evals[col]["all"]["rate"]
                d = paired_difference(_hits(bf16, col), _hits(fp32, col))
            if a is None or b is None or d is None:
                continue
            out.append({"attack": label, "column": col, "bf16": a, "fp32": b, "diff": d["diff"], "lo": d["lo"],
                        "hi": d["hi"], "p": d["p"], "n": d["n"]})
    return out


def _hits(r: UnitResult, col: str) -> torch.Tensor:
    return torch.tensor(r.hits[col], dtype=torch.float64)


def attack_verdict(check: list[dict[str, Any]], attack: str) -> bool | None:
    """Whether bf16 leaves ``attack``'s results unchanged (``check``: :func:`rows`): the paired difference
    of its black-box mean is under one point in absolute value and not significant at 5 %; None without
    a finished pair (no black-box mean row)."""
    means = [r for r in check if r["attack"] == attack and r["column"] == "mean"]
    if not means:
        return None
    return all(r["p"] >= ALPHA and abs(r["diff"]) < MAX_DIFF for r in means)


def attack_verdicts(check: list[dict[str, Any]]) -> dict[str, bool]:
    """attack -> :func:`attack_verdict`, for every attack with a finished pair (table order)."""
    labels = sorted({r["attack"] for r in check}, key=_order)
    return {a: v for a in labels if (v := attack_verdict(check, a)) is not None}


def verdict(check: list[dict[str, Any]]) -> bool | None:
    """Whether bf16 left every checked attack's results unchanged (:func:`attack_verdict`); None without a
    finished pair."""
    per = attack_verdicts(check)
    return all(per.values()) if per else None


def unchecked_bf16(state: RunState, check: list[dict[str, Any]] | None = None) -> dict[str, str]:
    """The attacks of ``bf16_attacks`` without a passing check (table order) -> why: ``"check failed"``,
    ``"check pending"`` (in ``precision_check``, its pair not finished) or ``"not checked"`` (not in
    ``precision_check``)."""
    s = state.settings
    check = rows(state) if check is None else check
    out = {}
    for a in sorted(s.bf16_attacks, key=_order):
        ok = attack_verdict(check, a)
        if ok is not True:
            out[a] = "check failed" if ok is False else "check pending" if a in s.precision_check else "not checked"
    return out


def _titles(labels: list[str] | tuple[str, ...]) -> str:
    return ", ".join(ATTACK_TITLES.get(a, a) for a in labels)


def section(state: RunState) -> str | None:
    """The report's section on the check: which attacks the run crafts in bf16, the verdict per checked
    attack, a warning naming the attacks crafted in bf16 without a passing check, and the paired
    differences. None unless a pair is finished or a set of one of ``bf16_attacks`` is (in bf16)."""
    s = state.settings
    check = rows(state)
    if not check and not any(r.unit.precision == "bf16" and r.unit.label in s.bf16_attacks for r in state.results):
        return None
    per = attack_verdicts(check)
    bf16 = [a for a in ATTACK_LABELS if a in s.bf16_attacks] + [a for a in s.bf16_attacks if a not in ATTACK_LABELS]
    crafted = (f"This run crafts {_titles(bf16)} with bf16 autocast, in every table, the ablation and the seed study "
               "(their crafting times are bf16 times), and every other attack in fp32." if bf16
               else "This run crafts every attack in fp32.")
    checked = sorted(s.precision_check, key=_order)
    if not checked:
        lines = ["\n## Crafting precision: bf16 against fp32\n", f"{crafted} No attack is checked against fp32."]
    else:
        lines = ["\n## Crafting precision: bf16 against fp32\n",
                 (f"{crafted} To check which attacks bf16 leaves unchanged, {_titles(checked)} are crafted in both "
                  f"precisions on `{s.ablation_surrogate}` at {s.ablation_eps * 255:.0f}/255, same images and seed. "
                  "Success %, and the difference bf16 minus fp32 in points paired over the images (95 % t "
                  "interval, p).")]
        verdicts = [f"{ATTACK_TITLES.get(a, a)} **{'unchanged' if ok else 'CHANGED'}**" for a, ok in per.items()]
        pending = [a for a in checked if a not in per]
        lines.append("\nVerdict per attack (criterion: its black-box mean differs by less than 1 point and not "
                     f"significantly at 5 %): {', '.join(verdicts) or 'none finished'}"
                     + (f"; pending: {_titles(pending)}" if pending else "") + ".")
    bad = unchecked_bf16(state, check)
    if bad:
        lines.append("\n**Warning: crafted in bf16 without a passing check: "
                     + ", ".join(f"{ATTACK_TITLES.get(a, a)} ({why})" for a, why in bad.items()) + ".**")
    if check:
        lines += ["", "| attack | target | bf16 | fp32 | difference (95 % CI), p |", "|---|---|---|---|---|"]
        for r in check:
            col = "black-box mean" if r["column"] == "mean" else r["column"]
            lines.append(f"| {ATTACK_TITLES.get(r['attack'], r['attack'])} | {col} | {pct(r['bf16'])} | "
                         f"{pct(r['fp32'])} | {100 * r['diff']:+.2f} ({100 * r['lo']:+.2f}, {100 * r['hi']:+.2f}), "
                         f"p = {r['p']:.2g} |")
    return "\n".join(lines)
