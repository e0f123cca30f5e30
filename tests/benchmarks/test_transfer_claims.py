"""Unit claims: processes run side by side share the queue, and a killed holder frees its unit."""
from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from benchmarks.transfer import results, runner
from benchmarks.transfer.claims import claim
from benchmarks.transfer.crafting import Unit
from benchmarks.transfer.images import Images
from benchmarks.transfer.settings import QUICK
from benchmarks.transfer.store import Store, safe_file_name
from benchmarks.transfer.targets import model_target
from tpa_lightning.evaluation.provenance import model_fingerprint

pytest.importorskip("fcntl")

HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_CREAT | os.O_RDWR, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("held", flush=True)
time.sleep(600)
"""


def test_a_claim_is_exclusive_and_released(tmp_path: Path) -> None:
    path = tmp_path / "claims" / "u.lock"
    with claim(path) as first:
        assert first is True
        with claim(path) as second:          # another open of the same file: refused while held
            assert second is False
        with claim(tmp_path / "claims" / "other.lock") as other:
            assert other is True             # claims on other units are independent
    with claim(path) as again:
        assert again is True


def test_a_killed_holder_frees_the_claim(tmp_path: Path) -> None:
    path = tmp_path / "u.lock"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        with claim(path) as held:
            assert held is False
        proc.kill()
        proc.wait(timeout=30)
        with claim(path) as held:
            assert held is True              # nothing to clean up after a kill
    finally:
        if proc.poll() is None:
            proc.kill()


def _state(tmp_path: Path, images: Images, tiny: Callable[[int], nn.Module]) -> results.RunState:
    s = QUICK.replace(attacks=("mi",), surrogates=("sur",), defenses=(), targeted_eps=(), chunk=4, flat_samples=2,
                      images=images.y.numel())
    models = {"sur": tiny(0), "a": tiny(1)}
    ids = {n: model_fingerprint(m) for n, m in models.items()}
    targets = [model_target(n, "normal", n, models[n], ids[n]) for n in models]
    clean = {t.name: t.predict(images.x) for t in targets}
    return results.RunState(s, Store(tmp_path / "cache", tmp_path / "raw"), images, (images.y + 1) % 10, models, ids,
                           {}, targets, clean)


def test_a_unit_held_elsewhere_is_skipped_then_made(tmp_path: Path, cifar_samples: tuple[Tensor, Tensor],
                                                      tiny: Callable[[int], nn.Module]) -> None:
    x, y = cifar_samples
    images = Images(x[:8], y[:8], torch.arange(8), "foolbox cifar10 samples", "first 8")
    state = _state(tmp_path, images, tiny)
    unit = Unit("sur", "mi", 8 / 255, False, 2)
    lock = tmp_path / "cache" / "claims" / f"{safe_file_name(unit.name)}.lock"
    parts = {"table1"}
    with claim(lock) as held:                 # another worker is on it
        assert held
        assert runner.process_unit(state, "main", unit, parts, compute=True) is None
        assert not list((tmp_path / "raw").rglob("*.json")) and unit.name not in state.computed
    made = runner.process_unit(state, "main", unit, parts, compute=True)
    assert made is not None and set(made.evals) == {"sur", "a"} and unit.name in state.computed
    # while a worker holds a finished unit, a report (compute=False) still reads what is stored
    with claim(lock):
        seen = runner.process_unit(state, "main", unit, parts, compute=False)
    assert seen is not None and seen.evals == made.evals


def test_two_workers_split_the_queue(tmp_path: Path, cifar_samples: tuple[Tensor, Tensor],
                                     tiny: Callable[[int], nn.Module], monkeypatch: pytest.MonkeyPatch) -> None:
    """The run loop skips what another worker holds and goes on to the next unit."""
    x, y = cifar_samples
    images = Images(x[:8], y[:8], torch.arange(8), "foolbox cifar10 samples", "first 8")
    state = _state(tmp_path, images, tiny)
    state.settings = state.settings.replace(attacks=("fgsm", "mi", "pgd"))
    state.timings["setup_seconds"] = 0.0
    monkeypatch.setattr(runner, "setup", lambda *a, **k: state)
    work = list(dict.fromkeys(u for _, u in runner.work_list(state.settings, {"table1"})))
    assert len(work) == 3
    held = work[1]                                # the middle one: the loop goes on past it
    with claim(tmp_path / "cache" / "claims" / f"{safe_file_name(held.name)}.lock"):
        # train=True: the zoo is not watched (setup is replaced; there is no zoo here)
        out = runner.run_benchmark(state.settings, tmp_path / "cache", parts={"table1"}, train=True, worker=True)
    assert out.pending == [held.name] and held.name not in out.computed
    others = sorted(u.name for u in work if u != held)
    assert sorted(out.computed) == others == sorted(r.unit.name for r in out.results)


def test_worker_cli_writes_no_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.transfer import __main__ as cli
    from benchmarks.transfer import report

    seen: list[bool] = []

    def fake_run(s: object, cache: Path, root: Path, **kw: object) -> results.RunState:
        seen.append(bool(kw.get("worker")))
        return results.RunState(QUICK, Store(tmp_path), None, None, {}, {}, {}, [], {})  # type: ignore[arg-type]

    def no_report(*a: object, **k: object) -> None:
        raise AssertionError("a worker wrote the report")

    monkeypatch.setattr(runner, "run_benchmark", fake_run)
    monkeypatch.setattr(report, "write", no_report)
    monkeypatch.setattr(report, "record_invocation", lambda raw, cur: None)
    assert cli.main(["--worker", "--skip-train", "--out", str(tmp_path / "out")]) == 0
    assert seen == [True]
    with pytest.raises(SystemExit) as err:
        cli.main(["--worker", "--report-only"])
    assert err.value.code == 2 and "--worker and --report-only" in capsys.readouterr().err
