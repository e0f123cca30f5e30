"""The committed full report (docs/results) regenerates from what is committed beside it: the raw results
(docs/results/raw) and the zoo's weights (benchmarks/transfer/weights), as ``--report-only`` does."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from benchmarks.transfer import report, runner
from benchmarks.transfer.images import load_test_images
from benchmarks.transfer.settings import FULL
from benchmarks.transfer.zoo import ZOO
from benchmarks.transfer.zoo_weights import restore_model, restore_purifier

RESULTS = Path(__file__).resolve().parents[2] / "docs" / "results"

#: run.json entries :func:`report.write` adds to the invocation's ``meta`` (everything else is ``meta``)
WRITTEN_BY_REPORT = ("dataset", "status", "settings", "models", "purifier", "missing", "timings",
                     "one_run_timing", "images", "finished", "pending")


def _masked(readme: str) -> str:
    """The README without what depends on when and where it is written: the time, the machine, the
    path the images were read from (the pixels' sha256 is compared in run.json)."""
    readme = re.sub(r"\(report written [0-9-]+ [0-9:]+\)", "(report written ...)", readme)
    readme = re.sub(r"^- Machine: .*$", "- Machine: ...", readme, flags=re.MULTILINE)
    return re.sub(r"^(- Images: .*; source ).*$", r"\1...", readme, flags=re.MULTILINE)


def _sha(m: object, root: Path) -> str | None:
    """The state-dict fingerprint of zoo model ``m`` restored under ``root`` (None if absent)."""
    from tpa_lightning.evaluation.provenance import model_fingerprint
    from tpa_lightning.models import build_model

    ckpt = m.checkpoint(root)  # type: ignore[attr-defined]
    return None if ckpt is None or not ckpt.is_file() else model_fingerprint(build_model(str(ckpt)))["state_sha256"]


def _report_sha(name: str) -> str | None:
    """The fingerprint the committed report's run.json records for zoo model ``name``."""
    models = json.loads((RESULTS / "run.json").read_text())["models"]
    return models.get(name, {}).get("state_sha256")


def test_full_report_regenerates_from_the_committed_results(tmp_path: Path) -> None:
    try:
        load_test_images(FULL.images)
    except FileNotFoundError as err:
        pytest.skip(f"no CIFAR-10 test split here: {err}")
    root = tmp_path / "zoo"
    for m in ZOO:
        restore_model(m, root)
    restore_purifier(runner.purifier_path(root))
    replaced = [m.name for m in ZOO if m.experiment is not None and _sha(m, root) != _report_sha(m.name)]
    if replaced:
        pytest.skip(f"benchmarks/transfer/weights holds retrained models ({', '.join(replaced)}) that the "
                    "committed report was not made on (the converged zoo of issue 14); the report "
                    "regenerates with the weights of its run.json, which stay in git history")
    raw = tmp_path / "raw"
    shutil.copytree(RESULTS / "raw", raw)          # read only, but never risk the committed copy
    committed = json.loads((RESULTS / "run.json").read_text())
    meta = {k: v for k, v in committed.items() if k not in WRITTEN_BY_REPORT}

    state = runner.run_benchmark(FULL, tmp_path / "cache", root, train=False, compute=False, raw=raw)
    state.timings = dict(committed["timings"])     # this invocation's own wall times, as the committed one's
    out = tmp_path / "report"
    out.mkdir()
    shutil.copy(RESULTS / "zoo.md", out / "zoo.md")   # the README links the zoo's card when it is there
    report.write(state, out, meta)

    assert _masked((out / "README.md").read_text()) == _masked((RESULTS / "README.md").read_text())
    for name in ("results.csv", "ablation.csv", "flatness.csv"):
        assert (out / name).read_text() == (RESULTS / name).read_text(), name
    assert sorted(p.name for p in out.glob("*.png")) == sorted(p.name for p in RESULTS.glob("*.png"))
    run = json.loads((out / "run.json").read_text())
    for key in ("models", "purifier"):           # paths differ; the weights' fingerprints must not
        ours, theirs = run.pop(key), committed.pop(key)
        if key == "models":
            assert {n: {k: v for k, v in m.items() if k != "spec"} for n, m in ours.items()} == \
                {n: {k: v for k, v in m.items() if k != "spec"} for n, m in theirs.items()}
    assert run == committed
