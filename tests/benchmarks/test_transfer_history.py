"""The old-against-new comparison: standings read from a results.csv agree with the run state's own
(``summary.standing``), the frozen undertrained results reproduce the 'In brief' table they were
published with, and a changed verdict is flagged."""
from __future__ import annotations

import csv
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.transfer import history, summary, tables
from benchmarks.transfer.results import RunState
from benchmarks.transfer.settings import ATTACK_TITLES


def test_csv_standings_agree_with_the_state(table1_state: Callable[..., RunState], tmp_path: Path) -> None:
    state = table1_state({"fgsm": 0.20, "mi": 0.45, "di": 0.50, "tpa": 0.48})
    rows = tables.csv_rows(state)
    path = tmp_path / "results.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (spec,) = [sp for sp in tables.table_specs(state) if sp.table == "table1"]
    expected = summary.standing(state, spec)
    assert expected is not None
    got = history.csv_standings(history.read_csv(path))[("table1", "sur", 16.0)]
    assert got["means"] == pytest.approx(expected["means"])
    assert (got["order"], got["rank"], got["best_baseline"]) == (expected["order"], expected["rank"], "di")
    assert got["gap"] == pytest.approx(expected["paired"]["diff"])     # paired mean difference = difference of means


def _published_in_brief(readme: Path) -> dict[tuple[str, str, float], tuple[str, float, int]]:
    """``(table, surrogate, eps)`` -> (leading attack title, TPA mean %, TPA rank) from the frozen
    report's 'In brief' table."""
    out = {}
    row = re.compile(r"^\| (\d) \| `([\w]+)`, (\d+)/255 \| \d+ \| (.+?) [\d.]+ \| ([\d.]+), (\d+) of \d+ \|")
    for line in readme.read_text().splitlines():
        m = row.match(line)
        if m:
            out[(f"table{m[1]}", m[2], float(m[3]))] = (m[4], float(m[5]), int(m[6]))
    return out


def test_frozen_results_reproduce_their_published_summary() -> None:
    published = _published_in_brief(history.UNDERTRAINED_CSV.parent / "README.md")
    standings = history.csv_standings(history.read_csv(history.UNDERTRAINED_CSV))
    assert len(published) == 11 and set(published) == set(standings)
    for key, (lead, tpa_mean, rank) in published.items():
        st = standings[key]
        assert ATTACK_TITLES[st["lead"]] == lead, key
        assert round(100 * st["means"]["tpa"], 1) == pytest.approx(tpa_mean), key
        assert st["rank"] == rank, key


def test_comparison_flags_a_changed_verdict() -> None:
    def standing(tpa: float, best: float, p: float | None = None) -> dict:
        means = {"tpa": tpa, "mi": best}
        order = sorted(means, key=lambda a: -means[a])
        return {"means": means, "order": order, "rank": order.index("tpa") + 1, "lead": order[0],
                "best_baseline": "mi", "gap": tpa - best, "p": p}

    old = {("table1", "r", 16.0): standing(0.4, 0.5), ("table2", "r", 16.0): standing(0.4, 0.5)}
    new = {("table1", "r", 16.0): standing(0.7, 0.6, p=0.001), ("table2", "r", 16.0): standing(0.4, 0.45, p=0.3),
           ("table3", "r", 16.0): standing(0.1, 0.2, p=0.01)}
    md = history.comparison_markdown(old, new)
    assert md is not None
    lines = md.splitlines()[2:]
    assert len(lines) == 2                           # table3 has no old standing
    assert lines[0].endswith("TPA behind -> TPA ahead (changed) |")
    assert lines[1].endswith("TPA behind -> tie (changed) |")
    assert history.comparison_markdown(old, {}) is None
