"""The adversarial-training pilot: every variant is a valid train.py config whose training attack is
the one its description names, and the table is written from the runs' metrics.json."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks import at_pilot
from tpa_lightning.config import load_config
from tpa_lightning.training.config_keys import check_keys_are_read, objective_attack_config


@pytest.mark.parametrize("name", list(at_pilot.VARIANTS))
def test_variants_are_valid_configs(name: str) -> None:
    experiment, extra, what = at_pilot.VARIANTS[name]
    cfg = load_config("train", [f"experiment={experiment}", *at_pilot.SHORT, *extra])
    check_keys_are_read(cfg)
    assert (cfg.data.limit_train, cfg.trainer.max_epochs) == (10000, 3)
    attack = objective_attack_config(cfg)
    if name.startswith("tpa_"):
        steps, copies = int(name[5]), int(name[7])
        assert (attack["steps"], attack["copies"], attack["init"]) == (steps, copies, "uniform")
        assert attack["step_size"] == pytest.approx(1.25 * attack["eps"])     # fast-AT step; 2.5 eps / T at T = 2
        assert f"T={steps} N={copies}" in what


def test_table_from_the_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []

    def fake_run(cmd: list[str], cwd: Path, check: bool) -> Any:
        calls.append(cmd)
        out = Path(next(c for c in cmd if c.startswith("out=")).split("=", 1)[1])
        out.mkdir(parents=True)
        (out / "metrics.json").write_text(json.dumps({"passes_per_image": 4.0, "epochs": 3, "clean_acc": 0.5,
                                                      "robust_acc": 0.25}))

    monkeypatch.setattr(subprocess, "run", fake_run)
    monkeypatch.setattr(at_pilot, "DOCS", tmp_path / "docs")
    assert at_pilot.main(["--out", str(tmp_path / "runs"), "--variants", "pgd_at,tpa_t1n2"]) == 0
    assert [c[2] for c in calls] == ["experiment=at_pgd_at", "experiment=at_tpa_at"] and "attack.copies=2" in calls[1]
    md = (tmp_path / "docs" / "at_pilot.md").read_text()
    assert "| tpa_t1n2 | TPA T=1 N=2, step 1.25 eps, uniform start | 4 | 50.0 | 25.0 |" in md
    # a second call reads the finished runs back without training again
    at_pilot.main(["--out", str(tmp_path / "runs"), "--variants", "pgd_at"])
    assert len(calls) == 2
