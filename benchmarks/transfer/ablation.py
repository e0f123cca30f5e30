"""Figure 5 analogue: TPA's success rate against N, b, k, mix/lambda and the iterations, with the
flatness of each setting's examples."""
from __future__ import annotations

from typing import Any

from .runner import ABLATION_DEFAULTS, RunState, UnitResult
from .settings import ATTACK_TITLES, Ablation
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
        default = ABLATION_DEFAULTS.get(ab.label, {}).get(ab.param)
        if (ab.param in over and float(over[ab.param]) == float(value)) or \
                (not over and default is not None and float(value) == float(default)):
            return r
    return None


def points(state: RunState) -> list[dict[str, Any]]:
    """One row per (ablation, value): mean black-box success, per-target success, flatness, time."""
    bb = black_box(state)
    out = []
    for ab in state.settings.ablations:
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
            out.append(row)
    return out


def markdown(state: RunState, rows: list[dict[str, Any]]) -> str:
    bb = black_box(state)
    head = ["attack", "hyperparameter", "value", f"mean of {len(bb)} black-box (%)", *bb] + \
        ["white-box (%)", "flatness (grad norm)", "craft s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        if not r["done"]:
            lines.append("| " + " | ".join([ATTACK_TITLES[r["attack"]], r["title"], f"{r['value']:g}"] +
                                            ["pending"] * (len(head) - 3)) + " |")
            continue
        flat = "-" if r["flatness"] is None else f"{r['flatness']:.4g}"
        lines.append("| " + " | ".join([ATTACK_TITLES[r["attack"]], r["title"], f"{r['value']:g}", pct(r["mean_asr"])]
                                        + [pct(r.get(f"asr_{t}")) for t in bb]
                                        + [pct(r["whitebox_asr"]), flat, f"{r['craft_seconds']:.0f}"])
                     + " |")
    return "\n".join(lines)


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
        out.append(f"{ab.title}: best {best['value']:g} ({pct(best['mean_asr'])} %), worst {worst['value']:g} "
                   f"({pct(worst['mean_asr'])} %), spread {100 * (best['mean_asr'] - worst['mean_asr']):.1f} points.")
    sur = state.settings.ablation_surrogate
    n = state.settings.ablation_images
    if sur in state.clean:
        clean_err = float((state.clean[sur][:n] != state.images.y[:n]).double().mean())
        below = [r for r in rows if r["done"] and r.get("whitebox_asr") is not None and r["whitebox_asr"] < clean_err]
        for r in below:
            out.append(f"{ATTACK_TITLES[r['attack']]} at {r['title']} = {r['value']:g}: white-box success "
                       f"{pct(r['whitebox_asr'])} % is BELOW the surrogate's clean error ({pct(clean_err)} %), i.e. "
                       "the attacked images are classified correctly more often than the clean ones.")
    return " ".join(out) + (f" Each point: {n} images; a difference of a few points between two points is within "
                            "the noise of that many images." if out else "")
