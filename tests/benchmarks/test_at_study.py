"""The adversarial-training study's reader and report: paired tests against hand-written references,
and the numbers of genuine evaluate.py reports (a tiny Fashion-MNIST CNN) carried into the table."""
from __future__ import annotations

import csv
import hashlib
import json
import math
import shutil
from pathlib import Path

import pytest
from evaluation.helpers import INFO, Rounded, config, fmnist_test_images, trained_cnn

from benchmarks.at_study import collect, evaluations, figures
from benchmarks.at_study.collect import Evaluation, ModelFacts, Training, evaluation_of
from benchmarks.at_study.paired import compare, holm
from benchmarks.at_study.report import FLOORS, floors_met, write_study
from tpa_lightning.evaluation import evaluate


def _exact_mcnemar(b: int, c: int) -> float:
    """Two-sided exact McNemar p written out: twice the binomial(b + c, 1/2) tail at min(b, c)."""
    n, k = b + c, min(b, c)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


@pytest.mark.parametrize("a,b", [("1101100111", "1001000110"), ("0000011111" * 3, "1111100000" * 3),
                                 ("1111", "1111")])
def test_paired_comparison_matches_hand_computation(a: str, b: str) -> None:
    r = compare(a, b)
    a_only = sum(x == "1" and y == "0" for x, y in zip(a, b))
    b_only = sum(x == "0" and y == "1" for x, y in zip(a, b))
    assert (r["a_only"], r["b_only"], r["n"]) == (a_only, b_only, len(a))
    assert r["diff"] == pytest.approx((a.count("1") - b.count("1")) / len(a))
    assert r["p"] == pytest.approx(_exact_mcnemar(a_only, b_only) if a_only + b_only else 1.0)
    assert r["lo"] <= r["diff"] <= r["hi"]
    with pytest.raises(ValueError, match="same images"):
        compare(a, b + "1")


def test_holm_adjustment_by_hand() -> None:
    # sorted p: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.5 (x1 = 0.5)
    assert holm([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.06, 0.5, 0.04, 0.06])
    assert holm([0.4, 0.6]) == pytest.approx([0.8, 0.8])       # monotone: never below an earlier step
    assert holm([]) == []


OVERRIDES = ("eps=[0,0.1]", ("attacks=[{name: pgd, eps: 0.1, steps: 20, step_size: 0.025, copies: null},"
             " {name: pgd, eps: 0.1, steps: 100, step_size: 0.025, copies: null}]"),
             "transfer.enabled=false", "defenses=[]", "certify.enabled=false", "autoattack.enabled=true",
             "autoattack.version=custom", "autoattack.attacks=[apgd-ce]", "autoattack.limit=8", "autoattack.eps=0.1",
             "sanity.unbounded_steps=5", "sanity.noise_draws=2")


@pytest.fixture(scope="module")
def eval_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Genuine evaluate.py reports of two models on the same 32 images, where the study reads them."""
    root = tmp_path_factory.mktemp("at_eval")
    data = fmnist_test_images(32)
    for name, model in (("tpa_at", trained_cnn()), ("pgd_at", Rounded(trained_cnn()))):
        work = root / "work" / name
        evaluate(config(work, *OVERRIDES), model=model, dataset=data, data_info=INFO)
        (root / name).mkdir()
        for f in ("report.json", "per_image.csv"):
            shutil.copy2(work / f, root / name / f)
    return root


def test_the_reports_numbers_reach_the_table(eval_dir: Path, tmp_path: Path) -> None:
    models = []
    for name in ("tpa_at", "pgd_at"):
        ev = evaluation_of(name, eval_dir)
        report = json.loads((eval_dir / name / "report.json").read_text())
        pgd20 = next(p for r in report["whitebox"].values() if r["settings"]["steps"] == 20
                     for p in r["curve"] if p["eps"] == 0.1)
        assert ev.numbers["clean"]["correct"] == report["clean"]["correct"]
        assert ev.numbers["pgd20"]["correct"] == pgd20["correct"] and ev.per_image["pgd20"] == pgd20["per_image"]
        assert ev.numbers["apgd"]["correct"] == report["autoattack"]["result"]["robust"]["correct"]
        assert "aa_standard" not in ev.numbers            # its report is not there
        models.append(ModelFacts(name, name, None, Training(wall_seconds=60.0 * (len(models) + 1)), ev,
                                 {"status": "pending"}))
    files = write_study(models, tmp_path)
    assert all(f.is_file() for f in files)
    # paired rows: the discordant images counted here from the two per_image.csv files
    with open(tmp_path / "paired.csv", newline="") as f:
        paired = {r["metric"]: r for r in csv.DictReader(f)}
    assert set(paired) == {"clean", "pgd20", "pgd100", "apgd"}
    rows = {}
    for name in ("tpa_at", "pgd_at"):
        with open(eval_dir / name / "per_image.csv", newline="") as f:
            rows[name] = list(csv.DictReader(f))
    col = next(k for k in rows["tpa_at"][0] if k.startswith("pgd#0@"))
    a_only = sum(a[col] == "1" and b[col] == "0" for a, b in zip(rows["tpa_at"], rows["pgd_at"]))
    assert int(paired["pgd20"]["a_only"]) == a_only
    readme = (tmp_path / "README.md").read_text()
    assert "| tpa_at |" in readme and "McNemar" in readme and "robust_vs_time.png" in readme


def test_floors_decide_on_both_numbers() -> None:
    def facts(clean: float, pgd20: float | None) -> ModelFacts:
        n = {"clean": {"accuracy": clean}, **({"pgd20": {"accuracy": pgd20}} if pgd20 is not None else {})}
        return ModelFacts("m", "m", None, Training(), Evaluation(numbers=n), {})

    assert floors_met(facts(FLOORS["clean"], FLOORS["pgd20"])) is True
    assert floors_met(facts(0.9, FLOORS["pgd20"] - 0.001)) is False
    assert floors_met(facts(0.9, None)) is None


def test_transfer_is_pending_unless_made_on_these_weights(tmp_path: Path) -> None:
    results = tmp_path / "results.csv"
    header = ["group", "surrogate", "attack", "eps_255", "targeted", "overrides", "target", "asr"]
    rows = [["main", "resnet18", "tpa", "16.0", "False", "", "tpa_at", "0.5"],
            ["main", "resnet18", "mi", "16.0", "False", "", "tpa_at", "0.3"],
            ["main", "resnet18_aa", "tpa", "16.0", "False", "", "tpa_at", "0.2"],
            ["main", "resnet18", "pgd", "16.0", "False", "", "tpa_at", "0.9"],     # not a study attack
            ["ablation", "resnet18", "tpa", "16.0", "False", "x", "tpa_at", "0.9"]]
    with open(results, "w", newline="") as f:
        csv.writer(f).writerows([header, *rows])
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"models": {"tpa_at": {"state_sha256": "abc"}}}))
    assert collect.transfer_of("tpa_at", "other", results, run)["status"] == "pending"
    t = collect.transfer_of("tpa_at", "abc", results, run)
    assert t["status"] == "done" and t["surrogates"] == ["resnet18", "resnet18_aa"]
    # tpa: mean of its two surrogates (0.35); mi 0.3; the model's mean over attacks 0.325
    assert t["by_eps"]["16"]["attacks"] == pytest.approx({"tpa": 0.35, "mi": 0.3})
    assert t["by_eps"]["16"]["mean"] == pytest.approx(0.325)


def test_evaluation_commands_match_the_configs_header() -> None:
    header = (evaluations.REPO / "configs" / "experiment" / "eval_at_study.yaml").read_text()
    cmd = evaluations.evaluate_command("pgd_at", "_aa_standard", Path("outputs/at_eval"))
    assert cmd[:3] == ["python", "evaluate.py", "experiment=eval_at_study"]
    for part in evaluations.RUNS["_aa_standard"]:
        key = part.split("=")[0]
        assert key in header, key
    assert evaluations.STUDY_MODELS == tuple(m.name for m in collect_zoo_secured())


def collect_zoo_secured():
    from benchmarks.transfer.zoo import ZOO

    return [m for m in ZOO if m.role == "secured"]


def test_weights_of_another_experiment_are_not_the_study_model(tmp_path: Path) -> None:
    """The zoo's earlier secured models (experiment zoo_pgd_at) sit where the study's pgd_at will be
    committed: until then the study knows nothing of pgd_at."""
    (tmp_path / "pgd_at").mkdir()
    (tmp_path / "pgd_at" / "config.yaml").write_text("experiment: zoo_pgd_at\n")
    facts = collect.facts_of("pgd_at", weights=tmp_path, eval_dir=tmp_path / "eval")
    assert facts.state_sha256 is None and facts.training.epochs is None and facts.transfer["status"] == "pending"
    assert collect.committed_experiment("pgd_at", tmp_path) == "zoo_pgd_at"


def test_training_budget_is_passes_per_epoch_times_epochs(tmp_path: Path) -> None:
    """train.py's metrics.json counts passes per image per epoch; the study's budget is the whole run's."""
    folder = tmp_path / "tpa_at"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"passes_per_image": 4.0, "epochs": 15, "clean_acc": 0.7}))
    t = collect.training_of("tpa_at", tmp_path)
    assert (t.passes_per_epoch, t.epochs, t.passes_per_image) == (4.0, 15, 60.0)
    assert Training().passes_per_image is None


def _report_made_on(folder: Path, source: Path, checkpoint_sha256: str | None) -> None:
    """A copy of the genuine report ``source`` as if evaluate.py had read a checkpoint with that sha256."""
    folder.mkdir(parents=True, exist_ok=True)
    report = json.loads(source.read_text())
    report["model"]["checkpoint_sha256"] = checkpoint_sha256
    (folder / "report.json").write_text(json.dumps(report))


def test_reports_of_other_weights_are_left_out_as_stale(eval_dir: Path, tmp_path: Path) -> None:
    """A retrained, re-exported model must not inherit its predecessor's numbers."""
    _report_made_on(tmp_path / "tpa_at", eval_dir / "tpa_at" / "report.json", "old")
    _report_made_on(tmp_path / "tpa_at_aa_standard", eval_dir / "tpa_at" / "report.json", "new")
    ev = evaluation_of("tpa_at", tmp_path, checkpoint_sha256="new")
    assert ev.stale == ["tpa_at"] and "clean" not in ev.numbers and "aa_standard" in ev.numbers
    same = evaluation_of("tpa_at", tmp_path, checkpoint_sha256="old")
    assert same.stale == ["tpa_at_aa_standard"] and same.numbers["clean"]["correct"] == json.loads(
        (eval_dir / "tpa_at" / "report.json").read_text())["clean"]["correct"]
    models = [ModelFacts("tpa_at", "TPA-AT", None, Training(), ev, {"status": "pending"})]
    write_study(models, tmp_path / "study")
    assert "stale" in (tmp_path / "study" / "README.md").read_text()


def test_run_evaluations_redoes_a_stale_report_and_keeps_a_current_one(
        eval_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    weights, out, work = tmp_path / "weights", tmp_path / "eval", tmp_path / "work"
    ckpt = weights / "tpa_at" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"first weights")
    first = hashlib.sha256(b"first weights").hexdigest()
    for suffix in evaluations.RUNS:
        _report_made_on(out / f"tpa_at{suffix}", eval_dir / "tpa_at" / "report.json", first)
    (out / "tpa_at" / "per_image.csv").write_text("old\n")
    ran: list[list[str]] = []

    def fake_evaluate(cmd: list[str], cwd: Path, check: bool) -> None:
        ran.append(cmd)
        folder = Path(next(c for c in cmd if c.startswith("out="))[4:])
        _report_made_on(folder, eval_dir / "tpa_at" / "report.json", hashlib.sha256(ckpt.read_bytes()).hexdigest())

    monkeypatch.setattr(evaluations.subprocess, "run", fake_evaluate)
    assert evaluations.run_evaluations(("tpa_at",), work, None, out, weights) == []      # both current
    ckpt.write_bytes(b"retrained weights")
    assert evaluations.run_evaluations(("tpa_at",), work, None, out, weights) == ["tpa_at", "tpa_at_aa_standard"]
    assert all(evaluations.is_current("tpa_at", s, out, weights) for s in evaluations.RUNS)
    assert not (out / "tpa_at" / "per_image.csv").exists()      # the old report's files do not linger
    assert all(f"checkpoint={ckpt}" in cmd for cmd in ran)


def test_the_committed_checkpoint_is_named_relative_to_the_repository() -> None:
    cmd = evaluations.evaluate_command("tpa_at", "", Path("outputs/at_eval"))
    assert "checkpoint=benchmarks/transfer/weights/tpa_at/checkpoints/last.ckpt" in cmd


def test_learning_curves_are_drawn_against_the_passes_spent(tmp_path: Path) -> None:
    """The matched-compute axis: after epoch e (1-based) a run has spent e * passes-per-epoch passes."""
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,step,val/clean_acc,val/adv_acc\n0,10,0.5,0.25\n1,20,0.625,0.375\n")
    fast = ModelFacts("fast_at", "fast-AT", None, Training(passes_per_epoch=2.0, curve=collect.read_curve(metrics)),
                      Evaluation(), {})
    trades = ModelFacts("trades", "TRADES", None, Training(passes_per_epoch=5.0, curve=collect.read_curve(metrics)),
                        Evaluation(), {})
    assert figures.curve_points(fast, "val_clean") == [(2.0, 50.0), (4.0, 62.5)]
    assert figures.curve_points(trades, "val_robust") == [(5.0, 25.0), (10.0, 37.5)]
    unknown = ModelFacts("x", "x", None, Training(curve=collect.read_curve(metrics)), Evaluation(), {})
    assert [x for x, _ in figures.curve_points(unknown, "val_clean")] == [1.0, 2.0]
    assert figures.learning_curves([fast, trades], tmp_path / "curves.png")
    assert (tmp_path / "curves.png").stat().st_size > 1000
