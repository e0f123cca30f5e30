"""Figure 5 analogue: TPA's success rate against N, b, k, mix/lambda and the iterations, with the
flatness of each setting's examples."""
from __future__ import annotations

from typing import Any

from .results import RunState, UnitResult
from .settings import ATTACK_TITLES, Ablation, ablation_default
from .stats import as_tensor, paired_difference
from .tables import mean_rate, pct


def black_box(state: RunState) -> tuple[str, ...]:
    sur = state.settings.ablation_surrogate
    return tuple(t.name for t in state.targets if t.kind == "normal" and t.name != sur)


def find(state: RunState, ab: Ablation, value: float) -> UnitResult | None:
    s = state.settings
    for r in state.results:
        u = r.unit
        if r.group != "ablation" or u.label != ab.label or u.surrogate != s.ablation_surrogate:
            continue
        if ab.param == "steps":
            if u.steps == int(value) and not u.overrides:
                return r
            continue
        if u.steps != s.steps:
            continue
        over = dict(u.overrides)
        default = ablation_default(ab, s.steps)
        if (ab.param in over and float(over[ab.param]) == float(value)) or \
                (not over and default is not None and float(value) == default):
            return r
    return None


def against_default(r: UnitResult, base: UnitResult | None, columns: tuple[str, ...]) -> dict[str, float] | None:
    """Paired difference of ``r`` minus the default setting ``base`` on the same images, per image the
    share of ``columns`` fooled (:func:`~.stats.paired_difference`); None without both records."""
    if base is None or base is r or not columns:
        return None
    a, b = r.fooled(columns), base.fooled(columns)
    if a is None or b is None or len(a) != len(b):
        return None
    return paired_difference(as_tensor(a).double() / len(columns), as_tensor(b).double() / len(columns))


def points(state: RunState) -> list[dict[str, Any]]:
    """One row per (ablation, value): mean black-box success, per-target success, flatness, time, and
    the paired difference from the sweep's default setting (``vs_default*``, fractions; p-value)."""
    bb = black_box(state)
    out = []
    for ab in state.settings.ablations:
        dv = ablation_default(ab, state.settings.steps)
        base = find(state, ab, dv) if dv is not None else None
        for v in ab.values:
            r = find(state, ab, v)
            row: dict[str, Any] = {"attack": ab.label, "param": ab.param, "title": ab.title, "value": v,
                                   "done": r is not None}
            if r is not None:
                sur = r.evals.get(state.settings.ablation_surrogate)
                row.update(unit=r.unit.name, mean_asr=mean_rate(r, bb), flatness=r.flat_mean, craft_seconds=r.seconds,
                           images_per_s=r.images_per_s, n=r.n, whitebox_asr=None if sur is None else sur["all"]["rate"])
                for t in bb:
                    e = r.evals.get(t)
                    row[f"asr_{t}"] = None if e is None else e["all"]["rate"]
                row["is_default"] = r is base
                d = against_default(r, base, bb)
                if d is not None:
                    row.update(vs_default=d["diff"], vs_default_lo=d["lo"], vs_default_hi=d["hi"], vs_default_p=d["p"])
            out.append(row)
    return out


def markdown(state: RunState, rows: list[dict[str, Any]]) -> str:
    bb = black_box(state)
    head = ["attack", "hyperparameter", "value", f"mean of {len(bb)} black-box (%)",
            "vs default: points (95 % CI), paired p", *bb, "white-box (%)", "flatness (grad norm)", "craft s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if not r["done"]:
            lines.append("| " + " | ".join([ATTACK_TITLES[r["attack"]], r["title"], f"{r['value']:g}"] +
                                            ["pending"] * (len(head) - 3)) + " |")
            continue
        flat = "-" if r["flatness"] is None else f"{r['flatness']:.4g}"
        lines.append("| " + " | ".join([ATTACK_TITLES[r["attack"]], r["title"], f"{r['value']:g}", pct(r["mean_asr"]),
                                        vs_default_cell(r)]
                                        + [pct(r.get(f"asr_{t}")) for t in bb]
                                        + [pct(r["whitebox_asr"]), flat, f"{r['craft_seconds']:.0f}"])
                     + " |")
    return "\n".join(lines)


def vs_default_cell(row: dict[str, Any]) -> str:
    if row.get("is_default"):
        return "default"
    if "vs_default" not in row:
        return "-"
    return (f"{100 * row['vs_default']:+.1f} ({100 * row['vs_default_lo']:+.1f} to {100 * row['vs_default_hi']:+.1f}), "
            f"p = {row['vs_default_p']:.2g}")


def analysis(state: RunState, rows: list[dict[str, Any]]) -> str:
    """Per sweep: the best value and the spread, read off the measured points."""
    out = []
    for ab in state.settings.ablations:
        pts = [r for r in rows if r["attack"] == ab.label and r["param"] == ab.param and r["done"]
               and r["mean_asr"] is not None]
        if len(pts) < 2:
            continue
        best = max(pts, key=lambda r: r["mean_asr"])
        worst = min(pts, key=lambda r: r["mean_asr"])
        sig = [r for r in pts if "vs_default_p" in r and r["vs_default_p"] < 0.05]
        dv = ablation_default(ab, state.settings.steps)
        versus = ("" if dv is None else
                  f"; different from the default {dv:g} in the paired test (p < 0.05): " +
                  (", ".join(f"{r['value']:g} ({100 * r['vs_default']:+.1f})" for r in sig) if sig else "none"))
        out.append(f"{ab.title}: best {best['value']:g} ({pct(best['mean_asr'])} %), worst {worst['value']:g} "
                   f"({pct(worst['mean_asr'])} %), spread {100 * (best['mean_asr'] - worst['mean_asr']):.1f} points"
                   + versus + ".")
    sur = state.settings.ablation_surrogate
    n = state.settings.ablation_images
    if sur in state.clean:
        clean_err = float((state.clean[sur][:n] != state.images.y[:n]).double().mean())
        below = [r for r in rows if r["done"] and r.get("whitebox_asr") is not None and r["whitebox_asr"] < clean_err]
        for r in below:
            out.append(f"{ATTACK_TITLES[r['attack']]} at {r['title']} = {r['value']:g}: white-box success "
                       f"{pct(r['whitebox_asr'])} % is BELOW the surrogate's clean error ({pct(clean_err)} %), i.e. "
                       "the attacked images are classified correctly more often than the clean ones.")
    return " ".join(out) + (f" Each point: {n} images. Paired test: per image, the share of the {len(black_box(state))} "
                            "black-box targets fooled, against the default setting on the same images (t-test over "
                            "images, each point tested on its own, without correction for the number of points; it "
                            "covers the sampling of images, not seeds)." if out else "")
