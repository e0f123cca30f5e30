"""The crafting precision, per attack: ``bf16_attacks`` are crafted in bf16 in every group and the others in
fp32; bf16 units carry the precision in their options, key and name (fp32 units keep the keys they always
had, so the stored results are reused); the precision check crafts each checked attack in the other
precision too and comes first in the work list; a bf16 unit is crafted under bf16 autocast; the report's
paired differences equal a hand computation, and its per-attack verdicts and warning follow them."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest
import torch
from torch import Tensor, nn

from benchmarks.transfer import precision, results, runner
from benchmarks.transfer.crafting import Unit, unit_key, unit_settings
from benchmarks.transfer.images import Images
from benchmarks.transfer.settings import ATTACK_LABELS, FULL, PARTS, QUICK, attack_config
from benchmarks.transfer.stats import rate
from benchmarks.transfer.store import Store, settings_key
from benchmarks.transfer.targets import Target, model_target
from tpa_lightning.evaluation.provenance import model_fingerprint

RAW = Path(__file__).resolve().parents[2] / "docs" / "results" / "raw"
ALL_PARTS = set(PARTS)


def _old_key(u: Unit, sid: dict[str, Any], images: Images, seed: int, target_seed: int | None, chunk: int) -> str:
    """The cache key by the rule from before units had a precision (fp32 only): no ``precision`` option."""
    name, opts = attack_config(u.label, u.eps, u.steps, **dict(u.overrides))
    return settings_key({"surrogate": u.surrogate, "surrogate_id": sid, "attack": name, "label": u.label,
                         "options": opts, "targeted": u.targeted, "target_seed": target_seed if u.targeted else None,
                         "images": images.identity(), "seed": seed, "chunk": chunk})


def _old_name(u: Unit) -> str:
    """The unit name by the rule from before units had a precision."""
    extra = "".join(f"-{k}{v:g}" if isinstance(v, (int, float)) else f"-{k}{v}" for k, v in u.overrides)
    extra += "" if u.seed is None else f"-seed{u.seed}"
    return f"{u.surrogate}-{u.label}-eps{u.eps * 255:.4g}-{'tgt' if u.targeted else 'untgt'}-T{u.steps}{extra}"


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


def test_precision_of_follows_bf16_attacks_in_every_group() -> None:
    assert FULL.bf16_attacks == ("mi", "tpa")
    assert [FULL.precision_of(a) for a in ("mi", "tpa", "pgd", "tpa_paper", "vt")] == ["bf16", "bf16", "32", "32", "32"]
    assert all(QUICK.precision_of(a) == "32" for a in ATTACK_LABELS)       # the quick run: fp32 everywhere
    for s in (FULL, FULL.replace(bf16_attacks=("pgd", "vt", "tpa_paper")), FULL.replace(bf16_attacks=())):
        work = runner.work_list(s, ALL_PARTS)
        groups = {g for g, _ in work}
        assert groups == {"main", "targeted", "seeds", "ablation", "precision"}
        for g, u in work:
            if g != "precision":
                assert u.precision == ("bf16" if u.label in s.bf16_attacks else "32"), (g, u.name)
        # in every group but the check, each bf16 attack that group crafts is in bf16 and nothing else is
        for g in groups - {"precision"}:
            units = [u for h, u in work if h == g]
            assert {u.label for u in units if u.precision == "bf16"} == {u.label for u in units} & set(s.bf16_attacks)
    # FULL: MI and TPA in bf16 in each group that has them, everything else fp32
    work = runner.work_list(FULL, ALL_PARTS)
    for g in ("main", "targeted", "seeds", "ablation"):
        assert {u.label for h, u in work if h == g and u.precision == "bf16"} == \
            ({"tpa"} if g == "seeds" else {"mi", "tpa"}), g
        assert any(h == g and u.precision == "32" for h, u in work), g
    assert any(u.name == "resnet18_aa-tpa-eps16-untgt-T10-bf16" for _, u in work)
    assert all(u.precision == "32" for _, u in runner.work_list(QUICK, ALL_PARTS))
    # ablation units of an attack in bf16 (the defaults are still the main units: same precision)
    main = {u for _, u in runner.main_units(FULL, FULL.ablation_surrogate)}
    abl = [u for _, u in runner.ablation_units(FULL)]
    assert all(u.precision == FULL.precision_of(u.label) for u in abl)
    assert all(u in main for u in abl if not u.overrides and u.steps == FULL.steps)


def test_precision_units_are_the_other_precision_and_come_first() -> None:
    s = FULL
    twins = runner.precision_units(s)
    assert [u.label for _, u in twins] == runner.craft_order(s.precision_check)
    assert all(g == "precision" and u.precision != s.precision_of(u.label) for g, u in twins)
    assert {u.label: u.precision for _, u in twins} == {a: "32" if a in ("mi", "tpa") else "bf16"
                                                        for a in s.precision_check}
    assert all(u.surrogate == s.ablation_surrogate and u.eps == s.ablation_eps and not u.targeted
               and not u.overrides and u.seed is None and u.steps == s.steps for _, u in twins)
    work = runner.work_list(s, ALL_PARTS)
    assert len(work) == len(set(work))
    k = len(s.precision_check)
    head = work[: 2 * k]
    assert [(g, u.label, u.precision) for g, u in head] == \
        [("main", a, s.precision_of(a)) for a in runner.craft_order(s.precision_check)] + \
        [(g, u.label, u.precision) for g, u in twins]
    assert [u.name for _, u in head[:3]] == ["resnet18-pgd-eps16-untgt-T10", "resnet18-mi-eps16-untgt-T10-bf16",
                                             "resnet18-tpa-eps16-untgt-T10-bf16"]
    assert [u.name for _, u in head[k:k + 3]] == ["resnet18-pgd-eps16-untgt-T10-bf16", "resnet18-mi-eps16-untgt-T10",
                                                  "resnet18-tpa-eps16-untgt-T10"]
    # the check's main units are not listed again with the tables (each once); the twins only in the check
    assert [w for w in work if w[0] == "precision"] == twins
    assert runner.precision_units(s.replace(precision_check=())) == []
    assert not any(g == "precision" for g, _ in runner.work_list(s, ALL_PARTS - {"precision"}))
    # a run without bf16 still checks: the twins are then bf16
    assert all(u.precision == "bf16" for _, u in runner.precision_units(s.replace(bf16_attacks=())))


def test_fp32_units_keep_their_keys_and_names() -> None:
    """Every fp32 unit of the full run (all groups) has the name and key of the rule from before units had a
    precision; every bf16 unit adds ``-bf16`` and the ``precision`` option to exactly that."""
    images = Images(torch.zeros(2, 3, 2, 2), torch.zeros(2, dtype=torch.long), torch.arange(2), "s", "all")
    sid = {"sha": "x"}
    work = runner.work_list(FULL, ALL_PARTS)
    n32 = 0
    for _, u in work:
        key = unit_key(u, sid, images, FULL.seed, FULL.seed + 1, FULL.chunk)
        old = _old_key(u, sid, images, FULL.seed, FULL.seed + 1, FULL.chunk)
        if u.precision == "32":
            n32 += 1
            assert (u.name, key) == (_old_name(u), old), u.name
        else:
            assert u.precision == "bf16" and u.name == _old_name(u) + "-bf16" and key != old, u.name
            settings = unit_settings(u, sid, images, FULL.seed, FULL.seed + 1, FULL.chunk)
            assert settings["options"] == {**attack_config(u.label, u.eps, u.steps, **dict(u.overrides))[1],
                                           "precision": "bf16"}
    assert n32 > len(work) // 2


class _StoredImages:
    """Images as a stored record names them (only their identity enters a key)."""

    def __init__(self, identity: dict[str, Any]) -> None:
        self._identity = identity

    def identity(self) -> dict[str, Any]:
        return self._identity


def test_stored_check_results_are_reused_as_they_are() -> None:
    """The sets committed by the 2026-12-03 check (bf16 and fp32 PGD, MI, TPA on resnet18 at 16/255) have
    the names and keys of the full run's units: MI and TPA's bf16 sets are now their main units, their
    fp32 sets the check's twins, and PGD the other way round."""
    names = {f"resnet18-{a}-eps16-untgt-T10{p}" for a in ("pgd", "mi", "tpa") for p in ("", "-bf16")}
    stored = {}
    for f in sorted((RAW / "crafted").glob("resnet18-*-eps16-untgt-T10*.json")):
        d = json.loads(f.read_text())
        if f.name[: -len("-0123456789abcdef.json")] in names and d["settings"]["images"]["n"] == FULL.images \
                and d["settings"]["surrogate_id"]["state_sha256"].startswith("fbe2a130"):
            stored[f.name[: -len("-0123456789abcdef.json")]] = d
    if set(stored) != names:
        pytest.skip(f"the committed check's sets are not all in {RAW}: {sorted(names - set(stored))}")
    work = {u.name: (g, u) for g, u in runner.work_list(FULL, {"precision"})}
    assert {n: work[n][0] for n in names} == {
        "resnet18-pgd-eps16-untgt-T10": "main", "resnet18-pgd-eps16-untgt-T10-bf16": "precision",
        "resnet18-mi-eps16-untgt-T10": "precision", "resnet18-mi-eps16-untgt-T10-bf16": "main",
        "resnet18-tpa-eps16-untgt-T10": "precision", "resnet18-tpa-eps16-untgt-T10-bf16": "main"}
    for n, d in stored.items():
        st = d["settings"]
        u = work[n][1]
        images = cast(Images, _StoredImages(st["images"]))
        assert unit_key(u, st["surrogate_id"], images, st["seed"], FULL.seed + 1, st["chunk"]) == d["key"], n


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
    s = FULL.replace(bf16_attacks=("mi",), precision_check=("pgd", "mi"), surrogates=("sur",), ablation_surrogate="sur",
                     images=4, chunk=4, defenses=(), steps=2)
    targets = [model_target("sur", "normal", "sur", model, model_fingerprint(model))]
    state = results.RunState(s, Store(tmp_path), images, images.y, {"sur": model}, {"sur": model_fingerprint(model)},
                             {}, targets, {"sur": targets[0].predict(images.x)})
    work = runner.work_list(s, {"precision"})
    assert [(g, u.label, u.precision) for g, u in work] == [("main", "pgd", "32"), ("main", "mi", "bf16"),
                                                            ("precision", "pgd", "bf16"), ("precision", "mi", "32")]
    for group, unit in work:
        seen.clear()
        assert runner.process_unit(state, group, unit, {"precision"}, compute=True) is not None
        crafting_calls = [d for d in seen if d != torch.float32] if unit.precision == "bf16" else seen
        assert crafting_calls and all(d == (torch.bfloat16 if unit.precision == "bf16" else torch.float32)
                                      for d in crafting_calls)


# ---------------------------------------------------------------- the report
def _result(label: str, group: str, prec: str, hits: dict[str, list[int]]) -> results.UnitResult:
    r = results.UnitResult(Unit("sur", label, 16 / 255, False, 10, precision=prec), group, "k", 1.0, 1.0, 1.0,
                           len(hits["sur"]))
    for t, h in hits.items():
        r.hits[t] = h
        e = rate(sum(h), len(h))
        r.evals[t] = {"all": e, "correct": e}
    return r


def _state(n: int = 8, **changes: Any) -> results.RunState:
    s = FULL.replace(ablation_surrogate="sur", surrogates=("sur",), **changes)
    y = torch.zeros(n, dtype=torch.long)
    targets = [Target(t, "normal", t, {}, lambda x: x) for t in ("sur", "a", "b")]
    return results.RunState(s, Store("/nonexistent"), Images(torch.zeros(n, 3, 2, 2), y, torch.arange(n), "s", "all"),
                            y, {}, {}, {}, targets, {})


RUN = {"sur": [1] * 8, "a": [1, 1, 1, 1, 0, 0, 0, 0], "b": [1, 1, 0, 0, 0, 0, 0, 0]}
FP32 = {"sur": [1] * 8, "a": [1, 1, 1, 0, 0, 0, 0, 0], "b": [1, 1, 0, 0, 0, 0, 0, 1]}


def test_report_rows_are_the_paired_differences() -> None:
    state = _state(bf16_attacks=("pgd",), precision_check=("pgd",))
    state.set_results([_result("pgd", "main", "bf16", RUN), _result("pgd", "precision", "32", FP32)])
    rows = {r["column"]: r for r in precision.rows(state)}
    assert set(rows) == {"sur", "a", "b", "mean"}
    assert rows["a"]["diff"] == pytest.approx(1 / 8) and rows["b"]["diff"] == pytest.approx(-1 / 8)
    assert rows["a"]["bf16"] == pytest.approx(4 / 8) and rows["a"]["fp32"] == pytest.approx(3 / 8)
    # black-box mean (a, b): per image (a + b) / 2, bf16 minus fp32 -> differences 0,0,0,+0.5,0,0,0,-0.5
    assert rows["mean"]["diff"] == pytest.approx(0.0) and rows["mean"]["bf16"] == pytest.approx(6 / 16)
    assert precision.verdict(list(rows.values())) is True
    assert precision.verdict([{**rows["mean"], "diff": 0.02, "p": 0.5}]) is False
    md = precision.section(state)
    assert md is not None and "PGD **unchanged**" in md and "Warning" not in md
    assert "This run crafts PGD with bf16 autocast" in md and "| PGD | black-box mean | 37.5 | 37.5 | +0.00" in md
    # the pair is found by precision in either group: an fp32 run whose check crafted the bf16 twin
    swapped = _state(bf16_attacks=(), precision_check=("pgd",))
    swapped.set_results([_result("pgd", "main", "32", FP32), _result("pgd", "precision", "bf16", RUN)])
    assert precision.rows(swapped) == precision.rows(state)
    md = precision.section(swapped)
    assert md is not None and "This run crafts every attack in fp32." in md and "Warning" not in md
    # a set of another group (an ablation unit, on fewer images) or surrogate is no twin
    other = _state(bf16_attacks=(), precision_check=("pgd",))
    other.set_results([_result("pgd", "main", "32", FP32), _result("pgd", "ablation", "bf16", RUN)])
    assert precision.twins(other) == {} and precision.section(other) is None


def test_verdict_per_attack_and_the_warning_for_bf16_without_a_passing_check() -> None:
    state = _state(n=8, bf16_attacks=("mi", "pgd", "tpa", "vt"), precision_check=("pgd", "mi", "tpa", "ssa"))
    fooled = {"sur": [1] * 8, "a": [1] * 8, "b": [1] * 8}
    half = {"sur": [1] * 8, "a": [1, 0] * 4, "b": [0, 1] * 4}
    state.set_results([
        _result("mi", "main", "bf16", RUN), _result("mi", "precision", "32", RUN),         # identical: passes
        _result("pgd", "main", "bf16", fooled), _result("pgd", "precision", "32", half),   # +50 points: fails
        _result("tpa", "main", "bf16", RUN),                                               # its twin pending
        _result("vt", "main", "bf16", RUN),                                                # not checked
        _result("ssa", "main", "32", RUN)])                                                # fp32, pending
    check = precision.rows(state)
    assert set(precision.twins(state)) == {"pgd", "mi"}
    assert precision.attack_verdict(check, "mi") is True
    assert precision.attack_verdict(check, "pgd") is False
    assert precision.attack_verdict(check, "tpa") is None and precision.attack_verdict(check, "vt") is None
    assert list(precision.attack_verdicts(check).items()) == [("pgd", False), ("mi", True)]      # table order
    assert precision.verdict(check) is False
    assert precision.verdict([r for r in check if r["attack"] == "mi"]) is True
    assert precision.verdict([]) is None
    assert precision.unchecked_bf16(state) == {"pgd": "check failed", "vt": "not checked", "tpa": "check pending"}
    md = precision.section(state)
    assert md is not None
    assert "This run crafts PGD, MI-FGSM, VT (VMI), TPA (official) with bf16 autocast" in md
    assert "PGD **CHANGED**, MI-FGSM **unchanged**; pending: SSA, TPA (official)." in md
    assert ("**Warning: crafted in bf16 without a passing check: PGD (check failed), VT (VMI) (not checked), "
            "TPA (official) (check pending).**") in md
    assert "| PGD | black-box mean | 100.0 | 50.0 | +50.00" in md
    # only the passing attack in bf16: no warning
    ok = _state(n=8, bf16_attacks=("mi",), precision_check=("pgd", "mi"))
    ok.set_results(state.results)
    md = precision.section(ok)
    assert md is not None and "Warning" not in md and precision.unchecked_bf16(ok) == {}


@pytest.mark.parametrize(("diff", "p", "ok"), [(0.0099, 0.05, True), (-0.0099, 0.9, True), (0.01, 0.9, False),
                                              (-0.01, 0.9, False), (0.0, 0.049, False), (0.005, 0.04, False)])
def test_attack_verdict_criterion(diff: float, p: float, ok: bool) -> None:
    """Passes when the black-box mean moves by less than 1 point AND p >= 0.05; other columns do not count."""
    row = {"attack": "mi", "column": "mean", "diff": diff, "p": p}
    noise = {"attack": "mi", "column": "a", "diff": 0.5, "p": 0.0}
    assert precision.attack_verdict([row, noise], "mi") is ok
    assert precision.attack_verdict([noise], "mi") is None
    assert precision.verdict([row, noise]) is ok


def test_no_section_without_a_pair_or_a_bf16_set() -> None:
    state = _state(bf16_attacks=(), precision_check=("pgd",))
    assert precision.section(state) is None
    state.set_results([_result("pgd", "main", "32", RUN)])
    assert precision.section(state) is None
    # a bf16 set without any check still gets the section, with the warning
    bare = _state(bf16_attacks=("vt",), precision_check=())
    bare.set_results([_result("vt", "main", "bf16", RUN)])
    md = precision.section(bare)
    assert md is not None and "crafted in bf16 without a passing check: VT (VMI) (not checked)" in md
    assert "No attack is checked against fp32." in md and "| attack |" not in md
    # checked, its pair not finished yet
    waiting = _state(bf16_attacks=("tpa",), precision_check=("tpa",))
    waiting.set_results([_result("tpa", "main", "bf16", RUN)])
    md = precision.section(waiting)
    assert md is not None and "none finished; pending: TPA (official)." in md
    assert "crafted in bf16 without a passing check: TPA (official) (check pending)" in md
