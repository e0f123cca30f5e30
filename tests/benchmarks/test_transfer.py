"""Fast checks of the transferability benchmark's parts (tiny models, the 20 foolbox CIFAR-10 images)."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from scipy.stats import binomtest
from torch import Tensor, nn

from benchmarks.transfer import __main__ as cli
from benchmarks.transfer.crafting import Unit, craft
from benchmarks.transfer.flatness import neighbourhood_grad_norm, rank_correlation
from benchmarks.transfer.images import Images, balanced_indices, target_classes
from benchmarks.transfer.stats import success_counts, wilson
from benchmarks.transfer.store import Store
from tpa_lightning.attacks import build_attack

REPO = Path(__file__).resolve().parents[2]
Tiny = Callable[[int], nn.Module]


@pytest.fixture
def images(cifar_samples: tuple[Tensor, Tensor]) -> Images:
    x, y = cifar_samples
    return Images(x[:8], y[:8], torch.arange(8), "foolbox cifar10 samples", "first 8")


# ---------------------------------------------------------------- success rates
def test_success_counts_equal_a_hand_loop() -> None:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (200,), generator=g)
    clean = torch.where(torch.rand(200, generator=g) < 0.7, y, (y + 1) % 10)
    pred = torch.randint(-1, 10, (200,), generator=g)
    tgt = target_classes(y, torch.arange(200), 10, seed=3)
    assert bool((tgt != y).all())
    for target in (None, tgt):
        got = success_counts(pred, y, clean, target)
        k_all = k_cor = n_cor = 0
        for i in range(200):
            ok = int(pred[i]) == int(target[i]) if target is not None else int(pred[i]) != int(y[i])
            k_all += ok
            if int(clean[i]) == int(y[i]):
                n_cor += 1
                k_cor += ok
        assert got["all"]["k"] == k_all and got["all"]["n"] == 200
        assert got["all"]["rate"] == pytest.approx(k_all / 200)
        assert got["correct"]["k"] == k_cor and got["correct"]["n"] == n_cor


def test_abstention_counts_as_untargeted_success() -> None:
    y = torch.tensor([1, 2])
    got = success_counts(torch.tensor([-1, 2]), y, y)
    assert got["all"]["k"] == 1


@pytest.mark.parametrize(("k", "n"), [(0, 10), (3, 10), (10, 10), (517, 1000), (1, 64), (63, 64)])
def test_wilson_matches_scipy(k: int, n: int) -> None:
    ci = binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-9)
    assert hi == pytest.approx(ci.high, abs=1e-9)


def test_target_classes_do_not_depend_on_n() -> None:
    y = torch.randint(0, 10, (50,), generator=torch.Generator().manual_seed(1))
    full = target_classes(y, torch.arange(50), 10, seed=5)
    part = target_classes(y[:20], torch.arange(20), 10, seed=5)
    assert torch.equal(full[:20], part)


def test_balanced_indices_interleave_classes() -> None:
    labels = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2])
    assert balanced_indices(labels, 5).tolist() == [0, 3, 5, 1, 4]


# ---------------------------------------------------------------- resume cache
class CountingFactory:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, name: str, model: nn.Module, **opts: Any) -> Any:
        atk = build_attack(name, model, **opts)
        outer = self

        class Counted(type(atk)):  # type: ignore[misc, valid-type]
            def perturb(self, x: Tensor, y: Tensor, target: Tensor | None = None, **kw: Any) -> Tensor:
                outer.calls += 1
                return super().perturb(x, y, target=target, **kw)

        atk.__class__ = Counted
        return atk


def test_cache_skips_finished_chunks_and_key_follows_settings(tmp_path: Path, images: Images, tiny: Tiny) -> None:
    store, model, ident = Store(tmp_path), tiny(0), {"m": 0}
    unit = Unit("tiny", "mi", 8 / 255, False, 2)
    f = CountingFactory()
    a = craft(store, unit, model, ident, images, None, seed=0, chunk=3, factory=f)
    assert a is not None and f.calls == 3 and a.made_chunks == 3
    b = craft(store, unit, model, ident, images, None, seed=0, chunk=3, factory=f)
    assert b is not None and f.calls == 3 and b.cached_chunks == 3
    assert torch.equal(a.x_adv, b.x_adv) and a.key == b.key and a.seconds == pytest.approx(b.seconds)
    # a killed run: one chunk file lost -> only that chunk is redone
    next((tmp_path / "adv").glob("*-r3-*.pt")).unlink()
    c = craft(store, unit, model, ident, images, None, seed=0, chunk=3, factory=f)
    assert c is not None and f.calls == 4 and torch.equal(c.x_adv, a.x_adv)
    # nothing is computed in report-only mode
    assert craft(store, Unit("tiny", "mi", 4 / 255, False, 2), model, ident, images, None, seed=0, chunk=3,
                 factory=f, compute=False) is None
    # any setting change gives a new key
    keys = {a.key}
    for u, seed in [(Unit("tiny", "mi", 4 / 255, False, 2), 0), (Unit("tiny", "mi", 8 / 255, False, 3), 0),
                    (Unit("tiny", "pgd", 8 / 255, False, 2), 0), (unit, 1),
                    (Unit("tiny", "tpa", 8 / 255, False, 2, (("copies", 2),)), 0),
                    (Unit("tiny", "tpa", 8 / 255, False, 2, (("copies", 3),)), 0)]:
        r = craft(store, u, model, ident, images, None, seed=seed, chunk=8, factory=build_attack)
        assert r is not None and r.key not in keys
        keys.add(r.key)
    r = craft(store, unit, model, {"m": 1}, images, None, seed=0, chunk=8)
    assert r is not None and r.key not in keys


def test_chunking_does_not_change_the_examples(tmp_path: Path, images: Images, tiny: Tiny) -> None:
    model = tiny(2)
    unit = Unit("tiny", "tpa", 8 / 255, False, 2, (("copies", 2),))
    a = craft(Store(tmp_path / "a"), unit, model, {}, images, None, seed=0, chunk=8)
    b = craft(Store(tmp_path / "b"), unit, model, {}, images, None, seed=0, chunk=3)
    assert a is not None and b is not None
    assert torch.allclose(a.x_adv, b.x_adv, atol=1e-6)


def test_targeted_unit_moves_towards_targets(tmp_path: Path, images: Images, tiny: Tiny) -> None:
    model = tiny(3)
    t = target_classes(images.y, images.index, 10, seed=1)
    r = craft(Store(tmp_path), Unit("tiny", "pgd", 64 / 255, True, 10), model, {}, images, t, seed=0, chunk=8)
    assert r is not None
    with torch.no_grad():
        before = nn.functional.cross_entropy(model(images.x), t)
        after = nn.functional.cross_entropy(model(r.x_adv), t)
    assert after < before


# ---------------------------------------------------------------- flatness
def test_flatness_of_a_linear_objective_is_its_weight_norm() -> None:
    torch.manual_seed(0)
    fc = nn.Linear(3 * 8 * 8, 5)
    lin = nn.Sequential(nn.Flatten(), fc)
    x = torch.rand(6, 3, 8, 8)
    y = torch.zeros(6, dtype=torch.int64)
    norms = neighbourhood_grad_norm(lin, x, y, radius=0.1, samples=3, seed=0, batch=4,
                                    objective=lambda logits, _y: logits[:, 2])
    expected = float(fc.weight[2].detach().norm())
    assert norms.shape == (6,)
    assert torch.allclose(norms, torch.full((6,), expected, dtype=torch.float64), rtol=1e-5)
    assert all(p.requires_grad for p in lin.parameters())


def test_flatness_ce_of_a_linear_model_matches_closed_form() -> None:
    torch.manual_seed(1)
    fc = nn.Linear(12, 3)
    lin = nn.Sequential(nn.Flatten(), fc)
    x = torch.rand(4, 3, 2, 2)
    y = torch.tensor([0, 1, 2, 0])
    got = neighbourhood_grad_norm(lin, x, y, radius=0.0, samples=5, seed=0)
    w = fc.weight
    p = torch.softmax(lin(x), 1)
    grad = (p - nn.functional.one_hot(y, 3).float()) @ w     # d CE / d x = W^T (p - e_y)
    assert torch.allclose(got.float(), grad.norm(dim=1), rtol=1e-5)


def test_rank_correlation_counts_discordant_pairs() -> None:
    c = rank_correlation([1.0, 2.0, 3.0], [0.9, 0.5, 0.1])
    assert c["rho"] == pytest.approx(-1.0) and c["discordant"] == 0 and c["pairs"] == 3
    c = rank_correlation([1.0, 2.0, 3.0], [0.1, 0.5, 0.9])
    assert c["rho"] == pytest.approx(1.0) and c["discordant"] == 3


@pytest.mark.parametrize("block", [1, 7, 256])
def test_discordant_pairs_match_the_pairwise_loop(block: int) -> None:
    """The blocked count equals the plain loop over pairs, ties (skipped) and NaN (a pair, never
    discordant) included."""
    from benchmarks.transfer.flatness import discordant_pairs

    g = torch.Generator().manual_seed(0)
    flat = (torch.randint(0, 12, (300,), generator=g).double() / 7).tolist()
    success = (torch.randint(0, 7, (300,), generator=g).double() / 6).tolist()
    flat[5] = success[9] = float("nan")
    disc = pairs = 0
    for i in range(len(flat)):
        for j in range(i + 1, len(flat)):
            df, ds = flat[i] - flat[j], success[i] - success[j]
            if df == 0 or ds == 0:
                continue
            pairs += 1
            disc += (df < 0 and ds < 0) or (df > 0 and ds > 0)
    assert discordant_pairs(flat, success, block=block) == (disc, pairs)
    assert 0 < disc < pairs


# ---------------------------------------------------------------- CLI
@pytest.mark.parametrize("args", [["--only", "table9"], ["--images", "0"], ["--bogus"], ["--images", "x"],
                                  ["--threads", "0"]])
def test_cli_bad_args_exit_2_with_one_line(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.parse_args(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "error" in err


def test_cli_bad_args_subprocess() -> None:
    proc = subprocess.run([sys.executable, "-m", "benchmarks.transfer", "--only", "nope"], cwd=REPO, check=False,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1


def test_cli_zoo_training_failure_exits_2_with_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.transfer import runner
    from benchmarks.transfer.zoo import ZooTrainingError

    def failing_run(*args: object, **kwargs: object) -> None:
        raise ZooTrainingError("training failed for vgg (log: x)")

    monkeypatch.setattr(runner, "run_benchmark", failing_run)
    assert cli.main(["--report-only", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.splitlines() == ["python -m benchmarks.transfer: error: training failed for vgg (log: x)"]
    monkeypatch.setattr(runner, "run_benchmark", lambda *a, **k: 1 / 0)   # anything else is a bug: its traceback stays
    with pytest.raises(ZeroDivisionError):
        cli.main(["--report-only", "--out", str(tmp_path)])


def test_cli_settings() -> None:
    a = cli.parse_args(["--quick", "--images", "20", "--only", "table1,ablation"])
    s = cli.settings_from(a)
    assert s.quick and s.images == 20 and s.ablation_images == 20 and a.only == {"table1", "ablation"}


# ---------------------------------------------------------------- work list, tables, analysis text
def _state(rates: dict[str, dict[str, float]], n: int = 100) -> Any:
    from benchmarks.transfer.results import RunState, UnitResult
    from benchmarks.transfer.settings import QUICK
    from benchmarks.transfer.stats import rate
    from benchmarks.transfer.targets import Target

    s = QUICK.replace(attacks=tuple(rates), surrogates=("sur",), defenses=(), targeted_eps=())
    y = torch.arange(n) % 10
    names = ["sur", "a", "b"]
    targets = [Target(t, "normal", t, {}, lambda x: x) for t in names]
    clean = {t: y.clone() for t in names}
    state = RunState(s, Store("/nonexistent"), Images(torch.zeros(n, 3, 2, 2), y, torch.arange(n), "synthetic", "all"),
                     y, {}, {}, {}, targets, clean)
    for label, per in rates.items():
        r = UnitResult(Unit("sur", label, 16 / 255, False, 10), "main", "k", 1.0, 100.0, 1.0, n)
        for t, v in per.items():
            e = rate(round(v * n), n)
            r.evals[t] = {"all": e, "correct": e}
        state.results.append(r)
    return state


def test_analysis_text_follows_the_numbers() -> None:
    from benchmarks.transfer import tables

    state = _state({"mi": {"sur": 1.0, "a": 0.60, "b": 0.70}, "tpa": {"sur": 1.0, "a": 0.40, "b": 0.50}})
    spec = tables.table_specs(state)[0]
    assert spec.black_box == ("a", "b")
    text = tables.analysis(state, spec)
    assert "TPA (official) 45.0 %" in text and "MI-FGSM 65.0 %" in text and "does NOT beat" in text
    md = tables.markdown(state, spec)
    assert "| TPA (official) | 100.0" in md and "| 45.0 |" in md
    state = _state({"mi": {"sur": 1.0, "a": 0.40, "b": 0.50}, "tpa": {"sur": 1.0, "a": 0.90, "b": 0.95}})
    text = tables.analysis(state, tables.table_specs(state)[0])
    assert "ahead of every baseline" in text and "above in 2" in text


def test_analysis_text_calls_a_lead_the_paired_test_cannot_separate_a_tie() -> None:
    from scipy.stats import ttest_rel

    from benchmarks.transfer import tables
    from benchmarks.transfer.stats import rate

    def with_hits(extra: int) -> tuple[str, float]:
        n = 100
        base = [1] * 50 + [0] * 50
        lead = [1] * (50 + extra) + [0] * (50 - extra)
        state = _state({"mi": {"sur": 1.0, "a": 0.5, "b": 0.5}, "tpa": {"sur": 1.0, "a": 0.5, "b": 0.5}})
        for r, a in zip(state.results, (base, lead), strict=True):
            r.hits = {"sur": [1] * n, "a": a, "b": base}
            for t in ("a", "b"):
                e = rate(sum(r.hits[t]), n)
                r.evals[t] = {"all": e, "correct": e}
        per_image = [[(x + y) / 2 for x, y in zip(r.hits["a"], r.hits["b"], strict=True)] for r in state.results]
        p = float(ttest_rel(per_image[1], per_image[0]).pvalue)
        return tables.analysis(state, tables.table_specs(state)[0]), p

    text, p = with_hits(1)                      # one image more: ahead on average, p about 0.32
    assert p > 0.05 and "ahead of every baseline" in text and "statistical tie" in text and f"p = {p:.2g}" in text
    text, p = with_hits(30)                     # thirty more: significant
    assert p < 0.05 and "significant in the paired test" in text and "statistical tie" not in text
    assert "the share of these columns fooled" in text


def test_targeted_analysis_counts_hits_on_the_target_class() -> None:
    from dataclasses import replace

    from benchmarks.transfer import tables

    state = _state({"mi": {"sur": 1.0, "a": 0.30, "b": 0.20}, "tpa": {"sur": 1.0, "a": 0.25, "b": 0.15}})
    for r in state.results:
        r.unit = replace(r.unit, targeted=True)
        r.group = "targeted"
        r.hits = {t: [1] * round(100 * e["all"]["rate"]) + [0] * (100 - round(100 * e["all"]["rate"]))
                  for t, e in r.evals.items()}
    spec = replace(tables.table_specs(state)[0], table="table3")
    text = tables.analysis(state, spec)
    assert text.startswith("Mean targeted success over the 2 black-box columns: TPA (official) 20.0 %")
    assert "the share of these columns predicting the target class" in text and "fooled" not in text


def test_ablation_default_points_are_the_main_units() -> None:
    from benchmarks.transfer.runner import ablation_units, main_units
    from benchmarks.transfer.settings import FULL

    main = {u for _, u in main_units(FULL, FULL.ablation_surrogate)}
    abl = [u for _, u in ablation_units(FULL)]
    assert len(abl) == len(set(abl))
    defaults = [u for u in abl if not u.overrides and u.steps == FULL.steps]
    assert {u.label for u in defaults} == {"tpa", "tpa_paper", "mi"}
    assert all(u in main for u in defaults)


def test_ablation_defaults_come_from_tpa_and_keep_the_stored_keys() -> None:
    """The ablation's defaults are read off the TPA class; they must equal the values the committed
    raw results were keyed with (an override equal to a default is dropped from the unit and its key)."""
    from benchmarks.transfer.runner import ablation_units
    from benchmarks.transfer.settings import FULL, ablation_defaults, notes

    stored_with = {"tpa": {"copies": 10, "noise_radius": 0.112, "lookahead": 0.0113, "mix": 0.8},
                   "tpa_paper": {"lam": 5.0, "copies": 10, "noise_radius": 0.112, "lookahead": 0.05}}
    derived = ablation_defaults()
    assert derived == stored_with
    assert {k: list(v) for k, v in derived.items()} == {k: list(v) for k, v in stored_with.items()}
    assert all(type(derived[r][k]) is type(v) for r, d in stored_with.items() for k, v in d.items())
    # the ablation's units at the defaults carry no override, the others theirs, as when the store was made
    overrides = {(u.label, u.overrides) for _, u in ablation_units(FULL) if u.steps == FULL.steps}
    assert ("tpa", ()) in overrides and ("tpa_paper", ()) in overrides
    assert ("tpa", (("copies", 10),)) not in overrides and ("tpa", (("copies", 20),)) in overrides
    assert ("tpa_paper", (("lam", 1.0),)) in overrides
    assert ("N = 10, b = 0.112, official k = 0.0113, mix 0.8, momentum 0.9; paper k = 0.05, lambda = 5"
            in " ".join(notes()))


def test_ablation_flags_white_box_success_below_the_clean_error() -> None:
    from benchmarks.transfer import ablation
    from benchmarks.transfer.results import UnitResult
    from benchmarks.transfer.settings import Ablation
    from benchmarks.transfer.stats import rate

    n = 100
    state = _state({})
    state.settings = state.settings.replace(
        ablations=(Ablation("lam", (0.0, 5.0), label="tpa_paper", title="lambda (paper mode)"),),
        ablation_surrogate="sur", ablation_images=n)
    y = state.images.y
    state.clean["sur"] = torch.where(torch.arange(n) < 30, (y + 1) % 10, y)      # clean error 30 %
    for over, wb in (((("lam", 0.0),), 0.95), ((), 0.20)):                     # () = the default lambda 5
        r = UnitResult(Unit("sur", "tpa_paper", 16 / 255, False, 10, over), "ablation", "k", 1.0, 1.0, 21.0, n)
        for t, v in (("sur", wb), ("a", 0.5), ("b", 0.5)):
            e = rate(round(v * n), n)
            r.evals[t] = {"all": e, "correct": e}
        state.results.append(r)
    rows = ablation.points(state)
    assert [r["whitebox_asr"] for r in rows] == [pytest.approx(0.95), pytest.approx(0.20)]
    text = ablation.analysis(state, rows)
    assert "lambda (paper mode) = 5: white-box success 20.0 % is BELOW the surrogate's clean error (30.0 %)" in text
    assert "lambda (paper mode) = 0:" not in text
    md = ablation.markdown(state, rows)
    assert "| TPA (paper) | lambda (paper mode) | 5 | 50.0 | default | 50.0 | 50.0 | 20.0 |" in md
    assert "| TPA (paper) | lambda (paper mode) | 0 | 50.0 | - | 50.0 | 50.0 | 95.0 |" in md   # no per-image hits


def test_ablation_points_are_paired_against_the_default_setting() -> None:
    from scipy.stats import ttest_rel

    from benchmarks.transfer import ablation
    from benchmarks.transfer.results import UnitResult
    from benchmarks.transfer.settings import Ablation
    from benchmarks.transfer.stats import rate

    n = 60
    state = _state({})
    state.settings = state.settings.replace(
        ablations=(Ablation("copies", (1.0, 10.0, 20.0), title="copies N"),), ablation_surrogate="sur",
        ablation_images=n)
    g = torch.Generator().manual_seed(4)
    hits: dict[float, dict[str, list[int]]] = {}
    for copies, p_fool in ((1.0, 0.3), (10.0, 0.6), (20.0, 0.62)):
        over = () if copies == 10.0 else (("copies", int(copies)),)      # N = 10 is TPA's default
        r = UnitResult(Unit("sur", "tpa", 16 / 255, False, 10, over), "ablation", "k", 1.0, 1.0, 21.0, n)
        hits[copies] = {t: (torch.rand(n, generator=g) < p_fool).long().tolist() for t in ("a", "b")}
        r.hits = hits[copies]
        for t, h in r.hits.items():
            e = rate(sum(h), n)
            r.evals[t] = {"all": e, "correct": e}
        state.results.append(r)
    rows = {r["value"]: r for r in ablation.points(state)}
    assert rows[10.0]["is_default"] and "vs_default" not in rows[10.0]

    def share(c: float) -> list[float]:
        return [(a + b) / 2 for a, b in zip(hits[c]["a"], hits[c]["b"], strict=True)]

    for c in (1.0, 20.0):
        ref = ttest_rel(share(c), share(10.0))
        ci = ref.confidence_interval(0.95)
        assert rows[c]["vs_default"] == pytest.approx(sum(share(c)) / n - sum(share(10.0)) / n)
        assert rows[c]["vs_default_p"] == pytest.approx(ref.pvalue)
        assert (rows[c]["vs_default_lo"], rows[c]["vs_default_hi"]) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert rows[1.0]["vs_default_p"] < 0.05 < rows[20.0]["vs_default_p"]   # 30 % vs 60 % separates; 62 % does not
    text = ablation.analysis(state, list(rows.values()))
    d1 = 100 * rows[1.0]["vs_default"]
    assert f"different from the default 10 in the paired test (p < 0.05): 1 ({d1:+.1f})." in text
    md = ablation.markdown(state, list(rows.values()))
    assert f"| TPA (official) | copies N | 1 | {100 * rows[1.0]['mean_asr']:.1f} | {d1:+.1f} (" in md


def test_analysis_flags_paper_mode_below_the_clean_error() -> None:
    from benchmarks.transfer import tables

    state = _state({"mi": {"sur": 1.0, "a": 0.6, "b": 0.7}, "tpa": {"sur": 1.0, "a": 0.7, "b": 0.8},
                    "tpa_paper": {"sur": 0.25, "a": 0.3, "b": 0.3}})
    y = state.images.y
    state.clean["sur"] = torch.where(torch.arange(y.numel()) < 35, (y + 1) % 10, y)     # clean error 35 %
    text = tables.analysis(state, tables.table_specs(state)[0])
    assert "TPA (paper mode) reaches only 25.0 % on the surrogate itself, BELOW its clean error (35.0 %)" in text
    state.clean["sur"] = y.clone()                                                       # clean error 0
    assert "BELOW its clean error" not in tables.analysis(state, tables.table_specs(state)[0])


def test_flatness_control_keeps_only_what_fools_the_surrogate() -> None:
    from scipy.stats import spearmanr

    from benchmarks.transfer.flatness import fooling_correlation
    from benchmarks.transfer.report import _controlled_text

    def entry(wb: float, flat: list[float], fooled: list[int], hits: list[int]) -> dict[str, Any]:
        return {"whitebox_asr": wb, "flatness": sum(flat) / len(flat), "mean_asr": sum(fooled) / (2 * len(fooled)),
                "flat_images": flat, "fooled_images": fooled, "n_black_box": 2, "whitebox_images": hits}

    full = [entry(0.25, [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 1], [0, 0, 0, 1]),     # failed: flat, transfers badly
            entry(1.0, [4.0, 4.2, 3.9, 4.1], [1, 2, 1, 2], [1, 1, 1, 1]),
            entry(1.0, [5.0, 5.5, 5.2, 4.9], [2, 2, 1, 2], [1, 1, 1, 1]),
            entry(1.0, [6.0, 6.1, 6.3, 5.8], [2, 2, 2, 2], [1, 1, 1, 1])]
    text = _controlled_text(full, *fooling_correlation(full))
    assert "among the 3 attacks that fool the surrogate on at least 99 %" in text
    assert "rho = +1.00" in text and "3 of 3 pairs have the flatter set transferring worse" in text
    f = [v for e in full for v, h in zip(e["flat_images"], e["whitebox_images"]) if h]
    s = [k / 2 for e in full for k, h in zip(e["fooled_images"], e["whitebox_images"]) if h]
    assert f"among the {len(f)} adversarial images" in text
    assert f"rho = {spearmanr(f, s).statistic:+.2f}" in text.split("Per image")[1]


def test_flatness_plot_labels_do_not_overlap(tmp_path: Path) -> None:
    import matplotlib.pyplot as plt
    from matplotlib.text import Text

    from benchmarks.transfer import plots

    fig, ax = plt.subplots(figsize=(6.0, 4.6))
    xy = [(5.0 + 0.01 * i, 80.0 + 0.05 * i) for i in range(8)] + [(1.0, 30.0)]   # a tight cluster
    ax.plot(*zip(*xy, strict=True), "o")
    ax.set_xlim(0, 8)
    ax.set_ylim(20, 90)
    fig.canvas.draw()
    texts = [f"attack {i}" for i in range(len(xy))]
    plots._place_labels(ax, xy, texts, 6.5)
    renderer = fig.canvas.get_renderer()
    for t in ax.texts:
        t.update_positions(renderer)
    boxes = [Text.get_window_extent(t, renderer) for t in ax.texts]      # the text, without its leader line
    assert sorted(t.get_text() for t in ax.texts) == sorted(texts)
    for i in range(len(boxes)):
        for j in range(i + 1, len(boxes)):
            assert not boxes[i].overlaps(boxes[j]), (ax.texts[i].get_text(), ax.texts[j].get_text())
    lone = next(t for t in ax.texts if t.get_text() == "attack 8")
    assert lone.arrow_patch is None                     # a label with room stays beside its point
    plt.close(fig)
    entries = [{"attack": "mi", "flatness": 5.0, "flat_sem": 0.1, "mean_asr": 0.8, "whitebox_asr": 1.0},
               {"attack": "tpa_paper", "flatness": 0.8, "flat_sem": 0.05, "mean_asr": 0.3, "whitebox_asr": 0.25}]
    assert plots.flatness_plot(entries, "t", tmp_path / "f.png") and (tmp_path / "f.png").stat().st_size > 0
    assert not plots.flatness_plot(entries[:1], "t", tmp_path / "g.png")


def test_ablation_order_spans_every_sweep_first() -> None:
    from benchmarks.transfer.runner import ablation_units, extremes_first
    from benchmarks.transfer.settings import FULL

    assert extremes_first((1, 2, 5, 10, 20)) == [1, 20, 5, 2, 10]
    assert extremes_first((0.0, 0.5)) == [0.0, 0.5] and extremes_first((3,)) == [3]
    for vals in [ab.values for ab in FULL.ablations]:
        assert sorted(extremes_first(vals)) == sorted(vals)
    fp32 = FULL.replace(bf16_attacks=())
    units = [u for _, u in ablation_units(fp32)]
    assert all(u.precision == "32" for u in units)
    bf16 = FULL.replace(bf16_attacks=("tpa",))       # the order does not depend on the precisions
    assert [dataclasses.replace(u, precision="bf16" if u.label == "tpa" else "32") for u in units] == \
        [u for _, u in ablation_units(bf16)]
    # the first units: each sweep's smallest value, one per sweep
    first = units[: len(FULL.ablations)]
    assert [u.label for u in first] == [ab.label for ab in FULL.ablations]
    assert first[-1].name == "resnet18-mi-eps16-untgt-T1" and first[0].name.endswith("copies1")
    # every sweep's two extremes come before any sweep's middle value
    ends = {u for ab in FULL.ablations for u in units if u.name.endswith(
        (f"{ab.param}{ab.values[0]:g}", f"{ab.param}{ab.values[-1]:g}"))}
    assert max(units.index(u) for u in ends) < 2 * len(FULL.ablations)
