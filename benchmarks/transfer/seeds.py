"""Seed study: how much the attacks' own random draws move their transfer success.

The tables use one attack seed; their intervals and paired tests cover the sampling of the images,
not the attacks' randomness (TPA's neighbourhood samples, VT's and PGN's draws). Here a few attacks
are crafted again with other seeds on the same surrogate, budget and images, and scored on the same
black-box targets."""
from __future__ import annotations

import statistics
from typing import Any

from .ablation import black_box
from .results import RunState, UnitResult
from .settings import ATTACK_TITLES
from .tables import mean_rate, paired_against


def runs(state: RunState) -> dict[str, dict[int, UnitResult]]:
    """attack -> attack seed -> finished result on the study's surrogate and budget (the run's own seed
    from the main tables' unit, with the same images)."""
    s = state.settings
    out: dict[str, dict[int, UnitResult]] = {}
    for r in state.results:
        u = r.unit
        if (u.label not in s.seed_attacks or u.surrogate != s.ablation_surrogate or abs(u.eps - s.ablation_eps) > 1e-12
                or u.targeted or u.overrides or u.steps != s.steps or r.group not in ("main", "seeds")
                or r.n != state.images.y.numel()):
            continue
        out.setdefault(u.label, {})[u.attack_seed(s.seed)] = r
    return out


def rows(state: RunState) -> list[dict[str, Any]]:
    """Per attack: mean black-box success per seed (fractions), their mean, standard deviation and range."""
    bb = black_box(state)
    all_runs = runs(state)
    out = []
    for label in state.settings.seed_attacks:
        by_seed = all_runs.get(label, {})
        means = {k: m for k, r in sorted(by_seed.items()) if (m := mean_rate(r, bb)) is not None}
        if not means:
            continue
        vals = list(means.values())
        out.append({"attack": label, "by_seed": means, "mean": statistics.fmean(vals),
                    "sd": statistics.stdev(vals) if len(vals) > 1 else None, "range": max(vals) - min(vals)})
    return out


def gaps(state: RunState) -> list[dict[str, Any]]:
    """TPA minus each other studied attack, per seed they share (paired over images), in fractions."""
    bb = black_box(state)
    all_runs = runs(state)
    tpa = all_runs.get("tpa", {})
    out = []
    for label, by_seed in all_runs.items():
        if label == "tpa":
            continue
        for k in sorted(set(tpa) & set(by_seed)):
            d = paired_against({"tpa": tpa[k], label: by_seed[k]}, "tpa", label, bb)
            if d is not None:
                out.append({"other": label, "seed": k, **d})
    return out


def section(state: RunState) -> str:
    """Markdown section; empty before any seed beyond the run's own is finished."""
    s = state.settings
    rs = rows(state)
    if not any(len(r["by_seed"]) > 1 for r in rs):
        return ""
    seeds = sorted({k for r in rs for k in r["by_seed"]})
    md = [(f"\n## Seed study: the attacks' own randomness (surrogate `{s.ablation_surrogate}`, eps = "
           f"{s.ablation_eps * 255:.0f}/255, {state.images.y.numel()} images)\n"),
          (f"The tables use attack seed {s.seed}; their intervals cover the sampling of the images only. Here "
           "the same attacks are crafted again with other seeds (same images, same targets); mean black-box "
           "success (%) over the normal targets:\n"),
          "| attack | " + " | ".join(f"seed {k}" for k in seeds) + " | mean | s.d. between seeds | range |",
          "|---|" + "---|" * (len(seeds) + 3)]
    for r in rs:
        cells = [f"{100 * r['by_seed'][k]:.1f}" if k in r["by_seed"] else "-" for k in seeds]
        sd = "-" if r["sd"] is None else f"{100 * r['sd']:.2f}"
        md.append(f"| {ATTACK_TITLES[r['attack']]} | " + " | ".join(cells)
                  + f" | {100 * r['mean']:.1f} | {sd} | {100 * r['range']:.1f} |")
    gs = gaps(state)
    if gs:
        md.append("\nTPA (official) minus each other attack, seed by seed (points, paired over the images, "
                  "95 % CI, t-test p):\n")
        md += [f"- {ATTACK_TITLES[g['other']]}, seed {g['seed']}: {100 * g['diff']:+.1f} "
               f"({100 * g['lo']:+.1f} to {100 * g['hi']:+.1f}, p = {g['p']:.2g})" for g in gs]
        signs: dict[str, set[int]] = {}
        for g in gs:
            signs.setdefault(g["other"], set()).add((g["diff"] > 0) - (g["diff"] < 0))
        same = [o for o, v in signs.items() if len(v) == 1]
        md.append("\nThe sign of TPA's gap is the same at every seed against "
                  + (", ".join(ATTACK_TITLES[o] for o in same) if same else "none of them")
                  + "; a gap smaller than the seeds' spread is not a property of the attack.")
    return "\n".join(md)
