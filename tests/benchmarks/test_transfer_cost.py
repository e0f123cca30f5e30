"""The cost-matched view: the Pareto front against an independent sweep by cost, the points read off a
synthetic Table 1 state, and the report section with its plot."""
from __future__ import annotations

import dataclasses
import itertools
import math
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.transfer import cost, report, tables
from benchmarks.transfer.cost import CostPoint, pareto_labels
from benchmarks.transfer.results import RunState
from benchmarks.transfer.settings import ATTACK_TITLES


def _front_by_sorting(points: list[CostPoint]) -> set[str]:
    """Independent reference: sweep by cost (then success, best first); a point is on the front when
    it beats the best success of every strictly cheaper point, or ties a point of the same cost and
    success that is itself on the front."""
    best_cheaper = -math.inf
    front: set[str] = set()
    for _cost, same in itertools.groupby(sorted(points, key=lambda p: (p.passes, -p.success)), key=lambda p: p.passes):
        group = list(same)
        top = group[0].success
        if top > best_cheaper:
            front |= {p.label for p in group if p.success == top}
        best_cheaper = max(best_cheaper, top)
    return front


@pytest.mark.parametrize("seed", range(20))
def test_pareto_front_matches_a_sweep(seed: int) -> None:
    rng = random.Random(seed)
    points = [CostPoint(f"a{i}", float(rng.choice([1, 2, 10, 30, 210])), rng.choice([0.1, 0.2, 0.35, 0.5]), 1.0)
              for i in range(rng.randint(1, 9))]
    assert pareto_labels(points) == _front_by_sorting(points)


def test_points_and_table_of_a_synthetic_run(table1_state: Callable[..., RunState], tmp_path: Path) -> None:
    state = table1_state({"fgsm": 0.20, "pgd": 0.15, "mi": 0.30, "tpa": 0.60})
    passes = {"fgsm": 1.0, "pgd": 10.0, "mi": 10.0, "tpa": 210.0}
    for r in state.results:
        r.passes_per_image = passes[r.unit.label]
    (spec,) = cost.cost_specs(state)
    points = cost.cost_points(state, spec)
    assert [p.label for p in points] == ["fgsm", "mi", "pgd", "tpa"]
    assert {p.label for p in points if p.front} == {"fgsm", "mi", "tpa"}     # pgd: mi is as cheap and better
    assert [p.success for p in points] == pytest.approx([0.20, 0.30, 0.15, 0.60])
    table = cost.markdown(points)
    # TPA: (60 - 20) points over log2(210) doublings
    assert f"{100 * 0.40 / math.log2(210):+.1f}" in table.splitlines()[-1]
    figures: list[str] = []
    md = report.cost_section(state, tmp_path, figures)
    assert md is not None and "Transfer per unit of compute" in md and figures == ["cost.png"]
    assert (tmp_path / "cost.png").stat().st_size > 1000


def test_no_section_without_results(table1_state: Callable[..., RunState], tmp_path: Path) -> None:
    state = table1_state({})
    assert report.cost_section(state, tmp_path, []) is None


def test_table_marks_the_crafting_time_of_bf16_and_contended_sets(table1_state: Callable[..., RunState]) -> None:
    """A table's 'craft s' column mixes precisions and machine loads; each time says which it had."""
    state = table1_state({"fgsm": 0.2, "mi": 0.3, "tpa": 0.6})
    by_label = {r.unit.label: r for r in state.results}
    by_label["mi"].unit = dataclasses.replace(by_label["mi"].unit, precision="bf16")
    by_label["tpa"].unit = dataclasses.replace(by_label["tpa"].unit, precision="bf16")
    by_label["tpa"].threads, by_label["tpa"].cpu_seconds = 2, 1.0     # half its threads' time: contended
    (spec,) = [s for s in tables.table_specs(state) if s.table == "table1"]
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[-2:] for line in tables.markdown(state, spec).splitlines()[2:]}
    assert [c.strip(" |") for c in rows[ATTACK_TITLES["fgsm"]]] == ["1", "1.00"]
    assert [c.strip(" |") for c in rows[ATTACK_TITLES["mi"]]] == ["1b", "1.00b"]
    assert [c.strip(" |") for c in rows[ATTACK_TITLES["tpa"]]] == ["1*b", "1.00*b"]
