"""The crafting-precision check: bf16 units carry the precision in their options, key and name (fp32
units keep the keys they always had), the work list puts the check first, a bf16 unit is crafted
under bf16 autocast, and the report's paired differences equal a hand computation."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from benchmarks.transfer import precision, results, runner
from benchmarks.transfer.crafting import Unit, unit_key
from benchmarks.transfer.images import Images
from benchmarks.transfer.settings import FULL, attack_config
from benchmarks.transfer.stats import rate
from benchmarks.transfer.store import Store, settings_key
from benchmarks.transfer.targets import Target, model_target
from tpa_lightning.evaluation.provenance import model_fingerprint

BF16 = FULL.replace(craft_precision="bf16", precision_check=("pgd", "tpa"))


def test_precision_enters_options_key_and_name_only_when_not_fp32() -> None:
    plain, bf16 = Unit("r", "pgd", 16 / 255, False, 10), Unit("r", "pgd", 16 / 255, False, 10, precision="bf16")
    assert plain.config() == attack_config("pgd", 16 / 255, 10)
    assert bf16.config()[1] == {**attack_config("pgd", 16 / 255, 10)[1], "precision": "bf16"}
    assert (plain.name, bf16.name) == ("r-pgd-eps16-untgt-T10", "r-pgd-eps16-untgt-T10-bf16")
    images = Images(torch.zeros(2, 3, 2, 2), torch.zeros(2, dtype=torch.long), torch.arange(2), "s", "all")
    sid = {"sha": "x"}
    # the fp32 key is the one computed from the settings as they were before units had a precision
    before = {"surrogate": "r", "surrogate_id": sid, "attack": "pgd", "label": "pgd",
              "options": attack_config("pgd", 16 / 255, 10)[1], "targeted": False, "target_seed": None,
              "images": images.identity(), "seed": 0, "chunk": 100}
    assert unit_key(plain, sid, images, 0, None, 100) == settings_key(before)
    assert unit_key(bf16, sid, images, 0, None, 100) != unit_key(plain, sid, images, 0, None, 100)


def test_work_list_checks_first_then_crafts_everything_in_bf16() -> None:
    parts = {"table1", "table3", "ablation", "seeds", "precision"}
    work = runner.work_list(BF16, parts)
    assert len(work) == len(set(work))
    s = BF16
    head = [(g, u.label, u.precision) for g, u in work[:4]]
    assert head == [("main", "pgd", "bf16"), ("main", "tpa", "bf16"), ("precision", "pgd", "32"),
                    ("precision", "tpa", "32")]
    assert all(u.surrogate == s.ablation_surrogate and u.eps == s.ablation_eps for _, u in work[:4])
    assert all(u.precision == "bf16" for g, u in work[4:])
    fp32 = FULL.replace(craft_precision="32")
    assert runner.precision_units(fp32) == []                        # an fp32 run has no check
    assert all(u.precision == "32" for _, u in runner.work_list(fp32, parts))


def test_bf16_unit_is_crafted_under_bf16_autocast(tmp_path: Path, tiny: Callable[[int], nn.Module]) -> None:
    seen: list[torch.dtype] = []

    class Probe(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = tiny(0)

        def forward(self, x: Tensor) -> Tensor:
            seen.append(torch.get_autocast_dtype("cpu") if torch.is_autocast_enabled("cpu") else torch.float32)
            return self.net(x)

    model = Probe()
    images = Images(torch.rand(4, 3, 8, 8), torch.arange(4) % 10, torch.arange(4), "s", "all")
    s = BF16.replace(precision_check=("mi",), surrogates=("sur",), ablation_surrogate="sur", images=4, chunk=4,
                     defenses=(), steps=2)
    targets = [model_target("sur", "normal", "sur", model, model_fingerprint(model))]
    state = results.RunState(s, Store(tmp_path), images, images.y, {"sur": model}, {"sur": model_fingerprint(model)},
                             {}, targets, {"sur": targets[0].predict(images.x)})
    for group, unit in runner.work_list(s, {"precision"}):
        seen.clear()
        assert runner.process_unit(state, group, unit, {"precision"}, compute=True) is not None
        crafting_calls = [d for d in seen if d != torch.float32] if unit.precision == "bf16" else seen
        assert crafting_calls and all(d == (torch.bfloat16 if unit.precision == "bf16" else torch.float32)
                                      for d in crafting_calls)


def _result(label: str, group: str, prec: str, hits: dict[str, list[int]]) -> results.UnitResult:
    r = results.UnitResult(Unit("sur", label, 16 / 255, False, 10, precision=prec), group, "k", 1.0, 1.0, 1.0, 8)
    for t, h in hits.items():
        r.hits[t] = h
        e = rate(sum(h), len(h))
        r.evals[t] = {"all": e, "correct": e}
    return r


def test_report_rows_are_the_paired_differences() -> None:
    s = BF16.replace(precision_check=("pgd",), ablation_surrogate="sur", surrogates=("sur",))
    y = torch.zeros(8, dtype=torch.long)
    targets = [Target(n, "normal", n, {}, lambda x: x) for n in ("sur", "a", "b")]
    state = results.RunState(s, Store("/nonexistent"), Images(torch.zeros(8, 3, 2, 2), y, torch.arange(8), "s", "all"),
                             y, {}, {}, {}, targets, {})
    run = {"sur": [1] * 8, "a": [1, 1, 1, 1, 0, 0, 0, 0], "b": [1, 1, 0, 0, 0, 0, 0, 0]}
    fp32 = {"sur": [1] * 8, "a": [1, 1, 1, 0, 0, 0, 0, 0], "b": [1, 1, 0, 0, 0, 0, 0, 1]}
    state.set_results([_result("pgd", "main", "bf16", run), _result("pgd", "precision", "32", fp32)])
    rows = {r["column"]: r for r in precision.rows(state)}
    assert set(rows) == {"sur", "a", "b", "mean"}
    assert rows["a"]["diff"] == pytest.approx(1 / 8) and rows["b"]["diff"] == pytest.approx(-1 / 8)
    # black-box mean (a, b): per image (a + b) / 2, run minus fp32 -> differences 0,0,0,+0.5,0,0,0,-0.5
    assert rows["mean"]["diff"] == pytest.approx(0.0) and rows["mean"]["run"] == pytest.approx(6 / 16)
    assert precision.verdict(list(rows.values())) is True
    assert precision.verdict([{**rows["mean"], "diff": 0.02, "p": 0.5}]) is False
    md = precision.section(state)
    assert md is not None and "Verdict: **unchanged**" in md
