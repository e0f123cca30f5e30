"""evaluate.py as a subprocess: bad configs exit 2 with one line; 2 processes count like 1."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from .helpers import REPO, trained_cnn


def _run(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "evaluate.py"), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize("args, words", [
    (["attacks=[{name: nosuchattack}]"], "unknown attack"),
    (["defenses=[{name: nosuchdefense}]"], "unknown defense"),
    (["checkpoint=/nonexistent/last.ckpt"], "file not found"),
    (["eps=[0,-0.1]"], "eps"),
    (["autoattack.enabled=true", "autoattack.attacks=[apgd-ce]"], "autoattack.attacks: only read with version=custom"),
])
def test_bad_config_exits_2_with_one_line(args, words, tmp_path):
    r = _run(f"out={tmp_path}", *args, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0], r.stderr


def test_no_default_training_run_exits_2(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    r = subprocess.run([sys.executable, str(REPO / "evaluate.py"), f"out={tmp_path}"],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 2 and "no checkpoint to evaluate" in r.stderr
    assert len([ln for ln in r.stderr.splitlines() if ln.strip()]) == 1


@pytest.mark.slow
def test_two_processes_count_like_one(tmp_path):
    weights = tmp_path / "tiny.pt"
    torch.save(trained_cnn().state_dict(), weights)
    common = [f"model.name={weights}", "model.arch=small_cnn", "data.limit_test=50",
              "data.batch_size=16", "eps=[0,0.1]", "attacks=[{name: pgd, steps: 3, copies: null}]",
              "defenses=[{name: bitdepth, options: {bits: 3}}]", "certify.limit=20", "certify.n=40",
              "sanity.unbounded_steps=5", "sanity.noise_draws=2", "trainer.accelerator=cpu",
              "trainer.enable_progress_bar=false", "threads=1"]
    one = _run(f"out={tmp_path / 'one'}", *common)
    assert one.returncode == 0, one.stderr[-3000:]
    two = _run(f"out={tmp_path / 'two'}", *common, "trainer.devices=2", "trainer.strategy=ddp")
    assert two.returncode == 0, two.stderr[-3000:]
    a = json.loads((tmp_path / "one" / "report.json").read_text())
    b = json.loads((tmp_path / "two" / "report.json").read_text())
    assert a["run"]["processes"] == 1 and b["run"]["processes"] == 2
    assert a["clean"]["total"] == b["clean"]["total"] == 50       # every image exactly once
    for key in ("clean", "whitebox", "transfer", "defenses", "certified", "probes", "sanity"):
        assert json.dumps(a[key], sort_keys=True) == json.dumps(b[key], sort_keys=True), key
