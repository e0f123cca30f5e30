"""The paper's numbers beside ours (benchmarks/transfer/paper.py)."""
from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from benchmarks.transfer import paper
from benchmarks.transfer.results import RunState

StateFactory = Callable[..., RunState]

SPEC = Path(__file__).resolve().parents[2].parent / "shared" / "spec" / "paper-tables.md"
OURS = {"MI": "mi", "NI": "ni", "DI": "di", "TI": "ti", "VT": "vt", "SSA": "ssa", "RAP": "rap", "BSR": "bsr",
        "TPA": "tpa"}


def _resnet50_tables(text: str) -> dict[str, list[str]]:
    """Table number -> the markdown rows of its ResNet50-surrogate block."""
    out: dict[str, list[str]] = {}
    for block in re.split(r"\n(?=#### )", text):
        m = re.match(r"#### Table (\d)", block)
        if not m:
            continue
        parts = re.split(r"Surrogate \*\*(\w+)\*\*:", block)
        seg = parts[0] if len(parts) == 1 else parts[parts.index("ResNet50") + 1]
        out[f"table{m.group(1)}"] = [ln for ln in seg.splitlines() if ln.startswith("|") and not ln.startswith("|---")]
    return out


@pytest.mark.skipif(not SPEC.is_file(), reason="shared/spec/paper-tables.md is not beside this checkout")
def test_paper_means_are_those_of_the_transcribed_tables() -> None:
    tables = _resnet50_tables(SPEC.read_text())
    for table, (n_cols, means) in paper.PAPER_MEANS.items():
        head, *rows = tables[table]
        cols = [c.strip() for c in head.strip("|").split("|")][1:]
        keep = [i for i, c in enumerate(cols) if c != "ResNet50"]       # the surrogate's own column is white-box
        assert len(keep) == n_cols
        got = {}
        for row in rows:
            cells = [c.strip() for c in row.strip("|").split("|")]
            if cells[0] in OURS:
                got[OURS[cells[0]]] = sum(float(cells[1:][i]) for i in keep) / len(keep)
        assert got.keys() == means.keys()
        for k, v in means.items():
            assert v == pytest.approx(got[k], abs=0.005), (table, k)


def test_compare_uses_only_the_baselines_both_benchmarks_ran(table1_state: StateFactory) -> None:
    from benchmarks.transfer.tables import table_specs

    # PGN (not in the paper) is our best baseline; among the paper's attacks VT is
    state = table1_state({"mi": 0.50, "vt": 0.60, "pgn": 0.80, "tpa": 0.70})
    spec = next(sp for sp in table_specs(state) if sp.table == "table1")
    c = paper.compare(state, spec)
    assert c is not None
    assert c["paper_best"] == "bsr" and c["paper_gap"] == pytest.approx(97.79 - 92.00)
    assert c["ours_best"] == "vt" and c["ours_gap"] == pytest.approx(10.0)
    assert c["any_best"] == "pgn" and c["any_gap"] == pytest.approx(-10.0)
    # 20 more images fooled on both columns: per image TPA - VT is 1 on 20 of 200, 0 elsewhere
    from scipy.stats import ttest_rel

    tpa, vt = [1.0] * 140 + [0.0] * 60, [1.0] * 120 + [0.0] * 80
    assert c["ours_p"] == pytest.approx(float(ttest_rel(tpa, vt).pvalue))
    text = paper.section(state)
    assert "| 1 | 13 normally trained ImageNet models | 97.8 | BSR 92.0 | +5.8 |" in text
    assert "significantly (paired p < 0.05) in 1" in text and "pending" not in text
    assert paper.compare(table1_state({"mi": 0.5, "pgn": 0.9}), spec) is None            # no TPA row
    # a planned baseline without its row is named, and the comparison is not counted as finished
    part = table1_state({"mi": 0.50, "vt": 0.60, "tpa": 0.70})
    part.settings = part.settings.replace(attacks=("mi", "vt", "ssa", "tpa"))
    c = paper.compare(part, spec)
    assert c is not None and c["pending"] == ["ssa"]
    # the same best baseline gives one gap, the same number in both columns (not two roundings of it)
    assert c["any_best"] == c["ours_best"] == "vt" and c["any_gap"] == c["ours_gap"]
    assert "SSA pending" in paper.section(part) and "Of 0 comparisons" in paper.section(part)


def test_compare_needs_a_shared_baseline(table1_state: StateFactory) -> None:
    from benchmarks.transfer.tables import table_specs

    state = table1_state({"pgn": 0.5, "tpa": 0.6})       # PGN alone: nothing the paper ran
    spec = next(sp for sp in table_specs(state) if sp.table == "table1")
    assert paper.compare(state, spec) is None and paper.section(state) == ""
