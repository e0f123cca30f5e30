"""The seed study of the transfer benchmark (benchmarks/transfer/seeds.py and the seed of a Unit)."""
from __future__ import annotations

import statistics
from collections.abc import Callable

import pytest
import torch
from scipy.stats import ttest_rel

from benchmarks.transfer import runner, seeds
from benchmarks.transfer.crafting import Unit, unit_key
from benchmarks.transfer.images import Images
from benchmarks.transfer.results import RunState, UnitResult
from benchmarks.transfer.settings import FULL, QUICK
from benchmarks.transfer.stats import rate


def test_unit_seed_names_and_keys() -> None:
    base = Unit("resnet18", "tpa", 16 / 255, False, 10)
    seeded = Unit("resnet18", "tpa", 16 / 255, False, 10, seed=1)
    assert base.name == "resnet18-tpa-eps16-untgt-T10" and seeded.name == base.name + "-seed1"
    assert base.attack_seed(0) == 0 and seeded.attack_seed(0) == 1
    imgs = Images(torch.zeros(2, 3, 2, 2), torch.tensor([0, 1]), torch.arange(2), "synthetic", "all")

    def key(u: Unit) -> str:
        return unit_key(u, {"id": 1}, imgs, u.attack_seed(0), 1, 100)

    # a unit without its own seed keeps the key it always had (the committed numbers stay found)
    assert key(base) == unit_key(base, {"id": 1}, imgs, 0, 1, 100)
    assert key(seeded) != key(base)
    assert key(Unit("resnet18", "tpa", 16 / 255, False, 10, seed=0)) == key(base)   # the same computation


def test_seed_units_listed_seed_by_seed_only_when_asked() -> None:
    got = [u for g, u in runner.work_list(FULL, {"seeds"})]
    assert [(u.label, u.seed) for u in got] == [("tpa", 1), ("pgn", 1), ("vt", 1), ("tpa", 2), ("pgn", 2), ("vt", 2)]
    assert all(u.surrogate == FULL.ablation_surrogate and u.eps == FULL.ablation_eps for u in got)
    assert not any(g == "seeds" for g, _ in runner.work_list(FULL, {"table1", "ablation"}))
    assert [(u.label, u.seed) for _, u in runner.work_list(QUICK, {"seeds"})] == [("tpa", 1)]


def _add(state: RunState, label: str, seed: int | None, fooled: list[int]) -> None:
    """A result fooling the images marked 1 in ``fooled`` on both black-box columns (and the surrogate)."""
    n = len(fooled)
    r = UnitResult(Unit("sur", label, 16 / 255, False, 10, seed=seed), "main" if seed is None else "seeds",
                   "k", 1.0, 1.0, 1.0, n)
    for t in ("sur", "a", "b"):
        r.hits[t] = list(fooled)
        e = rate(sum(fooled), n)
        r.evals[t] = {"all": e, "correct": e}
    state.results.append(r)


def test_seed_rows_and_gaps_by_hand(table1_state: Callable[..., RunState]) -> None:
    n = 200
    state = table1_state({"mi": 0.5}, n=n)
    state.settings = state.settings.replace(ablation_surrogate="sur", seed_attacks=("tpa", "pgn"), seed_values=(1, 2))
    tpa = {None: [1] * 140 + [0] * 60, 1: [1] * 150 + [0] * 50, 2: [0] * 10 + [1] * 130 + [0] * 60}
    pgn = {None: [1] * 160 + [0] * 40, 1: [1] * 145 + [0] * 55}        # PGN's seed 2 never finished
    for k, v in tpa.items():
        _add(state, "tpa", k, v)
    for k, v in pgn.items():
        _add(state, "pgn", k, v)
    rows = {r["attack"]: r for r in seeds.rows(state)}
    assert rows["tpa"]["by_seed"] == pytest.approx({0: 0.70, 1: 0.75, 2: 0.65})
    assert rows["tpa"]["sd"] == pytest.approx(statistics.stdev([0.70, 0.75, 0.65]))
    assert rows["tpa"]["range"] == pytest.approx(0.10)
    assert rows["pgn"]["by_seed"] == pytest.approx({0: 0.80, 1: 0.725}) and rows["pgn"]["mean"] == pytest.approx(0.7625)
    gaps = {(g["other"], g["seed"]): g for g in seeds.gaps(state)}
    assert set(gaps) == {("pgn", 0), ("pgn", 1)}                        # only the seeds both have
    for k in (0, 1):
        a, b = tpa[None if k == 0 else k], pgn[None if k == 0 else k]
        assert gaps[("pgn", k)]["diff"] == pytest.approx((sum(a) - sum(b)) / n)
        assert gaps[("pgn", k)]["p"] == pytest.approx(float(ttest_rel(a, b).pvalue))
    text = seeds.section(state)
    assert "| TPA (official) | 70.0 | 75.0 | 65.0 | 70.0 | 5.00 | 10.0 |" in text
    assert "| PGN | 80.0 | 72.5 | - | 76.2 |" in text
    # TPA trails PGN at seed 0 (-10.0) and leads at seed 1 (+2.5): no consistent sign
    assert "the same at every seed against none of them" in text
    from benchmarks.transfer import summary

    brief = summary.section(state, [])
    assert "TPA (official) 70.0 (s.d. 5.00 over 3 seeds); PGN 76.2 (s.d. 5.30 over 2 seeds)" in brief


def test_seed_section_waits_for_a_second_seed(table1_state: Callable[..., RunState]) -> None:
    state = table1_state({"tpa": 0.7, "mi": 0.5})                 # the run's own seed only
    state.settings = state.settings.replace(ablation_surrogate="sur")
    assert seeds.section(state) == ""
