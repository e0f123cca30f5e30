"""The cost-matched view: each attack's mean black-box success against its cost in forward+backward
passes per image (the unit of :func:`tpa_lightning.attacks.attack_passes_per_image`, independent of
the machine and of how busy it was), per table: the points, the attacks on the cost-success Pareto
front, a Markdown table (the plot is :func:`.plots.cost_plot`, the section :func:`.report.cost_section`).
It answers "which attack gives the most transfer per unit of compute"."""
from __future__ import annotations

import math
from dataclasses import dataclass

from .results import RunState
from .settings import ATTACK_TITLES
from .tables import TableSpec, mean_rate, pct, rows_of, table_specs

#: The tables whose black-box columns the view averages (untargeted: normally trained, secured).
COST_TABLES = ("table1", "table2")


@dataclass(frozen=True)
class CostPoint:
    """One attack of one table: ``passes`` per image, mean black-box ``success`` (a fraction),
    crafting ``seconds`` as measured, and whether it is on the Pareto front."""

    label: str
    passes: float
    success: float
    seconds: float
    front: bool = False


def pareto_labels(points: list[CostPoint]) -> set[str]:
    """Labels of the points no other point dominates (as cheap or cheaper AND as successful or more,
    strictly better in one of the two)."""
    def dominates(a: CostPoint, b: CostPoint) -> bool:
        return (a.passes <= b.passes and a.success >= b.success
                and (a.passes < b.passes or a.success > b.success))

    return {p.label for p in points if not any(dominates(q, p) for q in points if q is not p)}


def cost_points(state: RunState, spec: TableSpec) -> list[CostPoint]:
    """The finished attacks of ``spec`` with their cost and mean black-box success, cheapest first
    (ties: the more successful first), the front marked."""
    rows = rows_of(state, spec)
    points = []
    for label, r in rows.items():
        m = mean_rate(r, spec.black_box)
        if m is not None and r.passes_per_image > 0:
            points.append(CostPoint(label, float(r.passes_per_image), m, float(r.seconds)))
    front = pareto_labels(points)
    points = [CostPoint(p.label, p.passes, p.success, p.seconds, p.label in front) for p in points]
    return sorted(points, key=lambda p: (p.passes, -p.success))


def cost_specs(state: RunState) -> list[TableSpec]:
    return [s for s in table_specs(state) if s.table in COST_TABLES and s.black_box]


def markdown(points: list[CostPoint]) -> str:
    """The table of one spec: passes per image, mean black-box success, success per doubling of cost
    over the cheapest attack (points gained per log2 of the cost ratio), front membership."""
    lines = [("| attack | passes / image | mean black-box success % | points per doubling of cost | "
             "Pareto front |"), "|---|---|---|---|---|"]
    base = points[0] if points else None
    for p in points:
        gain = "-"
        if base is not None and p.passes > base.passes:
            gain = f"{100 * (p.success - base.success) / math.log2(p.passes / base.passes):+.1f}"
        lines.append(f"| {ATTACK_TITLES.get(p.label, p.label)} | {p.passes:g} | {pct(p.success)} | {gain} | "
                     f"{'yes' if p.front else ''} |")
    return "\n".join(lines)
