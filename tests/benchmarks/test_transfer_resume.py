"""Resuming the transferability benchmark across sessions: numbers kept apart from images, finished
units never recrafted, the zoo's committed weights restored, the order and scope of the work."""
from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from benchmarks.transfer import results, runner
from benchmarks.transfer.crafting import Unit
from benchmarks.transfer.images import Images
from benchmarks.transfer.settings import FULL, QUICK, Settings
from benchmarks.transfer.store import Store
from benchmarks.transfer.targets import model_target
from tpa_lightning.evaluation.provenance import model_fingerprint

Tiny = Callable[[int], nn.Module]


@pytest.fixture
def images(cifar_samples: tuple[Tensor, Tensor]) -> Images:
    x, y = cifar_samples
    return Images(x[:8], y[:8], torch.arange(8), "foolbox cifar10 samples", "first 8")


def test_store_keeps_numbers_and_images_apart(tmp_path: Path) -> None:
    store = Store(tmp_path / "cache", tmp_path / "raw")
    store.put_json("eval", "u--t", "k" * 64, {"pred": [1, 2]})
    store.put_tensors("adv", "u-r0", "k" * 64, {"x_adv": torch.zeros(2, 3, 4, 4)})
    assert [p.parent.name for p in (tmp_path / "raw").rglob("*.json")] == ["eval"]
    assert [p.parent.name for p in (tmp_path / "cache").rglob("*.pt")] == ["adv"]
    assert not list((tmp_path / "cache").rglob("*.json")) and not list((tmp_path / "raw").rglob("*.pt"))
    assert store.get_json("eval", "u--t", "k" * 64) == {"pred": [1, 2]}
    # a fresh store over the same raw folder (a later session, no tensor cache) reads the numbers
    assert Store(tmp_path / "elsewhere", tmp_path / "raw").get_json("eval", "u--t", "k" * 64) == {"pred": [1, 2]}


def _state(tmp_path: Path, images: Images, target_names: tuple[str, ...], tiny: Tiny) -> results.RunState:
    s = QUICK.replace(attacks=("mi",), surrogates=("sur",), defenses=(), targeted_eps=(), chunk=4, flat_samples=2,
                      images=images.y.numel())
    models = {"sur": tiny(0), "a": tiny(1), "b": tiny(2)}
    ids = {n: model_fingerprint(m) for n, m in models.items()}
    targets = [model_target(n, "normal", n, models[n], ids[n]) for n in target_names]
    clean = {t.name: t.predict(images.x) for t in targets}
    store = Store(tmp_path / "cache", tmp_path / "raw")
    return results.RunState(s, store, images, (images.y + 1) % 10, models, ids, {}, targets, clean)


def test_finished_unit_is_not_recrafted_from_the_committed_numbers(tmp_path: Path, images: Images, tiny: Tiny,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    parts = {"table1", "flatness"}
    unit = Unit("sur", "mi", 8 / 255, False, 2)
    state = _state(tmp_path, images, ("sur", "a"), tiny)
    first = runner.process_unit(state, "main", unit, parts, compute=True)
    assert first is not None and set(first.evals) == {"sur", "a"} and first.flat_mean is not None
    # the numbers are what an independent attack of the same settings gives on each target
    from tpa_lightning.attacks import build_attack

    atk = build_attack("mi", state.models["sur"], eps=8 / 255, steps=2, step_size=4 / 255, seed=0, max_batch=256)
    x_adv = torch.cat([atk(images.x[i:i + 4], images.y[i:i + 4]) for i in (0, 4)])
    for name in ("sur", "a"):
        fooled = int((state.models[name](x_adv).argmax(1) != images.y).sum())
        assert first.evals[name]["all"]["k"] == fooled

    # a later session: no tensor cache, only the raw numbers; crafting must not happen
    shutil.rmtree(tmp_path / "cache")

    def no_craft(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a finished unit was crafted again")

    monkeypatch.setattr(runner, "craft", no_craft)
    for compute in (True, False):
        again = runner.process_unit(state, "main", unit, parts, compute=compute)
        assert again is not None
        assert again.evals == first.evals and again.flat_images == first.flat_images
        assert again.seconds == pytest.approx(first.seconds) and again.passes_per_image == first.passes_per_image

    # a new target appears: now the images are needed, and crafted again (same seed, same examples)
    calls: list[str] = []
    from benchmarks.transfer import crafting

    def counting_craft(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[1].name)
        return crafting.craft(*args, **kwargs)

    monkeypatch.setattr(runner, "craft", counting_craft)
    state2 = _state(tmp_path, images, ("sur", "a", "b"), tiny)
    third = runner.process_unit(state2, "main", unit, parts, compute=True)
    assert calls == [unit.name] and third is not None and set(third.evals) == {"sur", "a", "b"}
    assert third.evals["a"] == first.evals["a"]
    fooled_b = int((state.models["b"](x_adv).argmax(1) != images.y).sum())
    assert third.evals["b"]["all"]["k"] == fooled_b


def _fake_train_py_checkpoint(path: Path, model: nn.Module) -> None:
    """A checkpoint laid out as train.py's (Lightning's entries plus the model's rebuild recipe)."""
    from tpa_lightning.models import MODEL_META_KEY

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()}, "epoch": 1,
                "global_step": 20, "optimizer_states": [{"state": {0: {"momentum_buffer": torch.ones(1000)}}}],
                "loops": {"fit_loop": {"x": 1}},
                MODEL_META_KEY: {"spec": "small_cnn", "num_classes": 10, "in_chans": 3, "mean": [0.5, 0.5, 0.5],
                                 "std": [0.25, 0.25, 0.25], "kwargs": {}}}, path)
    (path.parent.parent / "metrics.json").write_text(json.dumps({"epochs": 2}))
    (path.parent.parent / "zoo_run.json").write_text(json.dumps({"command": ["python", "train.py"]}))
    (path.parent.parent / "config.yaml").write_text("seed: 0\n")


def test_zoo_weights_export_and_restore(tmp_path: Path) -> None:
    from benchmarks.transfer.zoo import zoo_model
    from benchmarks.transfer.zoo_weights import export_model, restore_model
    from tpa_lightning.models import build_model

    m = zoo_model("vgg")
    trained = build_model("small_cnn", 10, 3, mean=[0.5] * 3, std=[0.25] * 3)
    root, weights = tmp_path / "zoo", tmp_path / "weights"
    ckpt = m.checkpoint(root)
    assert ckpt is not None
    _fake_train_py_checkpoint(ckpt, trained)
    out = export_model(m, root, weights)
    assert out is not None
    slim = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert "optimizer_states" not in slim and "loops" not in slim and slim["epoch"] == 1
    assert (out / "metrics.json").is_file() and (out / "zoo_run.json").is_file()

    fresh = tmp_path / "fresh"
    assert restore_model(m, fresh, weights)
    restored = build_model(str(m.checkpoint(fresh)))
    assert model_fingerprint(restored) == model_fingerprint(trained)
    assert json.loads((fresh / "vgg" / "metrics.json").read_text()) == {"epochs": 2}
    assert (fresh / "vgg" / "config.yaml").read_text() == "seed: 0\n"
    # a folder that exists (a run of its own) is never overwritten; a shipped model has nothing to restore
    assert not restore_model(m, fresh, weights)
    assert not restore_model(zoo_model("resnet18_aa"), fresh, weights)
    # nothing committed, nothing restored; an unfinished run is not exported
    assert not restore_model(zoo_model("mobilenet"), tmp_path / "other", weights)
    (root / "vgg" / "metrics.json").unlink()
    with pytest.raises(ValueError, match="no finished training"):
        export_model(m, root, weights)


def test_committed_weights_belong_to_the_default_full_zoo_only() -> None:
    from benchmarks.transfer.train_zoo import uses_committed_weights
    from benchmarks.transfer.zoo import DEFAULT_ROOT, QUICK_ROOT

    assert uses_committed_weights(DEFAULT_ROOT, quick=False)
    assert not uses_committed_weights(DEFAULT_ROOT, quick=True)
    assert not uses_committed_weights(QUICK_ROOT, quick=False)
    assert not uses_committed_weights(Path("/tmp/some/zoo"), quick=False)


def test_work_order_and_the_reduced_surrogate_plan() -> None:
    s: Settings = FULL
    work = runner.work_list(s, {"table1", "table2", "table3", "table5", "ablation", "flatness"})
    groups = [g for g, _ in work]
    units = [u for _, u in work]
    # order: full-surrogate tables, ablation, targeted, then the planned surrogate
    first = {g: groups.index(g) for g in ("main", "ablation", "targeted")}
    assert first["main"] < first["ablation"] < first["targeted"]
    aa = [u for u in units if u.surrogate == "resnet18_aa"]
    assert aa and all(not u.targeted and abs(u.eps - 16 / 255) < 1e-12 for u in aa)
    assert {u.label for u in aa} == set(s.surrogate_plans["resnet18_aa"][1])
    assert units.index(aa[0]) > max(i for i, g in enumerate(groups) if g == "targeted")
    full = [u for g, u in work if g == "main" and u.surrogate == "resnet18"]
    assert {u.label for u in full} == set(s.attacks) and {u.eps for u in full} == set(s.eps)
    tgt = [u for g, u in work if g == "targeted"]
    assert {u.surrogate for u in tgt} == {"resnet18"} and len(tgt) == len(s.targeted_attacks) * len(s.targeted_eps)
    # the planned surrogate's tables follow its plan
    assert s.eps_for("resnet18_aa") == (16 / 255,) and s.targeted_eps_for("resnet18_aa") == ()
    assert s.attacks_for("resnet18") == s.attacks


def test_paired_difference_matches_scipy_ttest_rel() -> None:
    from scipy.stats import ttest_rel

    from benchmarks.transfer.stats import paired_difference

    g = torch.Generator().manual_seed(5)
    a = (torch.rand(300, generator=g) < 0.7).double()
    b = torch.where(torch.rand(300, generator=g) < 0.9, a, 1 - a)      # mostly the same images fooled
    got = paired_difference(a, b)
    ref = ttest_rel(a.numpy(), b.numpy())
    ci = ref.confidence_interval(0.95)
    assert got["diff"] == pytest.approx(float((a - b).mean()))
    assert got["lo"] == pytest.approx(ci.low) and got["hi"] == pytest.approx(ci.high)
    assert got["p"] == pytest.approx(ref.pvalue)
    same = paired_difference(a, a)
    assert same["diff"] == 0 and same["p"] == 1.0
    with pytest.raises(ValueError):
        paired_difference(a, b[:10])


def test_shards_partition_the_units() -> None:
    work = runner.work_list(FULL, {"table1", "table2", "table3", "table5", "ablation", "flatness"})
    shards = [runner.shard_of(work, (i, 3)) for i in range(3)]
    assert sorted((shards[0] + shards[1] + shards[2]), key=work.index) == work       # every (group, unit) once
    units = [{u for _, u in sh} for sh in shards]
    assert not (units[0] & units[1]) and not (units[0] & units[2]) and not (units[1] & units[2])
    # a unit in two groups (an ablation default that is also a table unit) stays in one shard
    dup = [u for g, u in work if g == "ablation" and ("main", u) in work]
    assert dup and all(sum(u in us for us in units) == 1 for u in dup)
    assert runner.shard_of(work, None) == work


def test_unit_patterns_select_and_skip() -> None:
    work = runner.work_list(FULL, {"table1", "table2", "table3", "table5", "ablation", "flatness"})
    names = [u.name for _, u in work]
    only = runner.select_units(work, ["resnet18_aa-tpa-*"])
    assert [u.name for _, u in only] == [n for n in names if n.startswith("resnet18_aa-tpa-")] != []
    rest = runner.select_units(work, ["!resnet18_aa-tpa-*"])
    assert len(rest) + len(only) == len(work) and not {u for _, u in rest} & {u for _, u in only}
    both = runner.select_units(work, ["resnet18-*eps8*", "!resnet18-tpa*"])
    assert both and all("eps8" in u.name and not u.name.startswith("resnet18-tpa") for _, u in both)
    assert runner.select_units(work, None) == work
    # combined with a shard: the shard's share, then the pattern
    sh = runner.shard_of(work, (1, 2))
    assert runner.select_units(sh, ["!resnet18_aa-*"]) == [(g, u) for g, u in sh
                                                           if not u.name.startswith("resnet18_aa-")]


def test_cli_unit_patterns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.transfer import __main__ as cli

    assert cli.parse_args(["--units", "a*, !b*"]).units == ["a*", "!b*"]
    for bad in (["--units", " , "], ["--units", "!"], ["--units", "a*", "--report-only"]):
        with pytest.raises(SystemExit) as e:
            cli.parse_args(bad)
        assert e.value.code == 2 and "--units" in capsys.readouterr().err
    # a pattern that matches no unit is an error, not a run that silently does nothing
    code = cli.main(["--units", "no-such-unit*", "--skip-train", "--root", str(tmp_path / "zoo"),
                     "--cache", str(tmp_path / "cache"), "--out", str(tmp_path / "out"), "--images", "4"])
    assert code == 2 and "no-such-unit" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()             # checked before anything is recorded


@pytest.mark.parametrize("args", [["--shard", "2/2"], ["--shard", "a/b"], ["--shard", "0/2", "--report-only"]])
def test_cli_rejects_bad_shards(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.transfer import __main__ as cli

    with pytest.raises(SystemExit) as e:
        cli.parse_args(args)
    assert e.value.code == 2 and "--shard" in capsys.readouterr().err
    assert cli.parse_args(["--shard", "1/2"]).shard == (1, 2)


def test_invocation_records_are_listed_oldest_first(tmp_path: Path) -> None:
    from benchmarks.transfer import report

    late = {"command": "b", "started": "2026-12-02 01:00:00", "pid": 7, "finished": None}
    early = {"command": "a", "started": "2026-11-30 23:00:00", "pid": 9, "finished": "x"}
    report.record_invocation(tmp_path, late)
    report.record_invocation(tmp_path, early)
    late["finished"] = "2026-12-02 02:00:00"
    report.record_invocation(tmp_path, late)                     # an update, not a second record
    assert [r["command"] for r in report.invocations(tmp_path)] == ["a", "b"]
    assert report.invocations(tmp_path)[1]["finished"] == "2026-12-02 02:00:00"
    assert report.invocations(tmp_path / "none") == []


def test_image_identity_follows_pixels_not_paths(images: Images) -> None:
    moved = Images(images.x, images.y, images.index, "CIFAR-10 (JPEG copy) /elsewhere/test.tar.gz", images.rule)
    assert moved.identity() == images.identity()
    x = images.x.clone()
    x[0, 0, 0, 0] = 1.0 - x[0, 0, 0, 0]
    changed = Images(x, images.y, images.index, images.source, images.rule)
    assert changed.identity() != images.identity()


def test_crafting_records_how_much_cpu_it_got(tmp_path: Path, images: Images, tiny: Tiny) -> None:
    from benchmarks.transfer.crafting import craft, crafted_record
    from benchmarks.transfer.results import UnitResult

    store = Store(tmp_path)
    unit = Unit("tiny", "mi", 8 / 255, False, 3)
    out = craft(store, unit, tiny(0), {}, images, None, seed=0, chunk=4)
    assert out is not None
    rec = crafted_record(store, unit, out.key)
    assert rec is not None and rec["threads"] == torch.get_num_threads()
    assert 0 < rec["cpu_seconds"] <= rec["seconds"] * rec["threads"] * 1.5 + 0.05
    r = UnitResult(unit, "main", out.key, 10.0, 1.0, 1.0, 8, threads=2)
    r.cpu_seconds = 19.0            # 95 % of 2 threads x 10 s: had the cores
    assert r.contended is False
    r.cpu_seconds = 10.0            # half: waited for a core
    assert r.contended is True
    r.cpu_seconds, r.load_avg = None, 3.0       # older records: the load average decides
    assert r.contended is True
    r.load_avg = None
    assert r.contended is None


def test_fooled_counts_come_from_the_per_image_hits() -> None:
    r = results.UnitResult(Unit("sur", "mi", 16 / 255, False, 10), "main", "k", 1.0, 1.0, 1.0, 4)
    r.hits = {"a": [1, 0, 1, 0], "b": [1, 1, 0, 0], "sur": [1, 1, 1, 0]}
    assert r.fooled(["a", "b"]) == [2, 1, 1, 0]
    assert r.fooled(["a", "b", "sur"]) == [3, 2, 2, 0]
    assert r.fooled(["a", "missing"]) is None and r.fooled([]) is None


def test_a_set_much_slower_than_its_twin_is_marked() -> None:
    def res(eps: float, seconds: float, cpu: float | None, label: str = "tpa") -> results.UnitResult:
        r = results.UnitResult(Unit("sur", label, eps, False, 10), "main", "k", seconds, 1.0, 210.0, 1000,
                              threads=1, load_avg=2.2)
        r.cpu_seconds = cpu
        return r

    # the same passes at two budgets, no CPU time recorded: 936 s against 516 s is 1.81x
    slow, fast, other = res(16 / 255, 936.0, None), res(8 / 255, 516.0, None), res(16 / 255, 900.0, None, "vt")
    results.compare_twins([slow, fast, other])
    assert slow.twin_ratio == pytest.approx(936 / 516) and fast.twin_ratio == pytest.approx(516 / 936)
    assert other.twin_ratio is None                      # no twin: another attack is not one
    assert slow.contended is True and fast.contended is False and other.contended is False   # load 2.2 <= 2.5
    # recorded CPU time decides over the twin rule: it had its core, so the time is the attack's
    slow.cpu_seconds = 930.0
    assert slow.contended is False
    # within the margin both stand
    a, b = res(16 / 255, 600.0, None), res(8 / 255, 516.0, None)
    results.compare_twins([a, b])
    assert a.contended is False and b.contended is False
    # the run's state compares the twins whenever its results are set, before any report reads them
    slow, fast = res(16 / 255, 936.0, None), res(8 / 255, 516.0, None)
    state = results.RunState(QUICK, Store("/nonexistent"), None, None, {}, {}, {}, [], {},  # type: ignore[arg-type]
                            results=[slow])
    assert slow.twin_ratio is None
    state.set_results([slow, fast])
    assert slow.twin_ratio == pytest.approx(936 / 516) and slow.contended is True
    results.RunState(QUICK, Store("/nonexistent"), None, None, {}, {}, {}, [], {},  # type: ignore[arg-type]
                    results=[res(16 / 255, 700.0, None), fast])
    assert fast.twin_ratio == pytest.approx(516 / 700)


def test_only_computes_its_parts_but_reports_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.transfer import __main__ as cli
    from benchmarks.transfer import report

    calls: list[tuple[Any, bool]] = []
    written: list[Any] = []

    def fake_run(s: Settings, cache: Path, root: Path, parts: set[str] | None = None, train: bool = True,
                 compute: bool = True, **kw: Any) -> Any:
        calls.append((parts, compute))
        return results.RunState(s, Store(tmp_path), None, None, {}, {}, {}, [], {})  # type: ignore[arg-type]

    monkeypatch.setattr(runner, "run_benchmark", fake_run)
    monkeypatch.setattr(report, "write", lambda state, out, meta: written.append(state) or out / "README.md")
    monkeypatch.setattr(report, "record_invocation", lambda raw, cur: None)
    assert cli.main(["--only", "timing", "--out", str(tmp_path / "out"), "--skip-train"]) == 0
    # the timing alone is computed; the report is assembled from every part, computing nothing
    assert calls == [({"timing"}, True), (None, False)] and len(written) == 1
    calls.clear()
    assert cli.main(["--report-only", "--only", "table1", "--out", str(tmp_path / "out")]) == 0
    assert calls == [(None, False)]


def test_seed_unit_crafts_with_its_own_seed(tmp_path: Path, images: Images, tiny: Tiny,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from benchmarks.transfer import crafting
    from tpa_lightning.attacks import build_attack

    seeds_used: list[int] = []

    def recording_craft(*args: Any, **kwargs: Any) -> Any:
        seeds_used.append(args[6])                    # craft(store, unit, model, id, images, targets, seed, ...)
        return crafting.craft(*args, **kwargs)

    monkeypatch.setattr(runner, "craft", recording_craft)
    state = _state(tmp_path, images, ("sur", "a"), tiny)
    unit = Unit("sur", "tpa", 8 / 255, False, 2, seed=1)
    got = runner.process_unit(state, "seeds", unit, {"seeds", "flatness"}, compute=True)
    assert seeds_used == [1]
    assert got is not None and set(got.evals) == {"sur", "a"}
    assert got.flat_mean is None                      # the seed study measures transfer only
    # the numbers are those of an independent TPA with seed 1 on the same chunks
    name, opts = unit.config()
    atk = build_attack(name, state.models["sur"], seed=1, max_batch=256, **opts)
    x_adv = torch.cat([atk(images.x[i:i + 4], images.y[i:i + 4]) for i in (0, 4)])
    assert got.hits["a"] == (state.models["a"](x_adv).argmax(1) != images.y).int().tolist()
