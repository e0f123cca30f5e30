"""train.py end to end on real Fashion-MNIST: 2-process DDP on the CPU (gloo), kill and resume,
repeatable seeds, checkpoints that load with weights_only=True through build_model."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tpa_lightning.config import load_config
from tpa_lightning.data import RobustDataModule
from tpa_lightning.models import build_model

REPO = Path(__file__).resolve().parents[2]
SMALL = ["data.limit_train=256", "data.limit_test=128", "data.batch_size=64", "attack.steps=1",
         "attack.copies=1", "training.val_attack.steps=2",
         "trainer.enable_progress_bar=false", "trainer.accelerator=cpu"]

# A job script: train.py's job plus a callback (per-rank metric dump, or a hard kill).
SCRIPT = '''
import json, os, signal, sys
import lightning as L
from tpa_lightning.config import load_config
from tpa_lightning.training.train_job import train

class Probe(L.Callback):
    def __init__(self, out, kill_at):
        self.out, self.kill_at = out, kill_at
    def on_train_epoch_start(self, trainer, pl_module):
        if self.kill_at is not None and trainer.current_epoch == self.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)          # a real, unclean death
    def on_validation_epoch_end(self, trainer, pl_module):
        pass
    def on_train_end(self, trainer, pl_module):
        m = {k: float(v) for k, v in trainer.callback_metrics.items()}
        with open(os.path.join(self.out, f"rank{trainer.global_rank}.json"), "w") as f:
            json.dump({"metrics": m, "epoch": trainer.current_epoch, "world": trainer.world_size}, f)

kill = os.environ.get("KILL_AT_EPOCH")
cfg = load_config("train", sys.argv[1:])
train(cfg, callbacks=[Probe(cfg.out, int(kill) if kill else None)])
'''


def _run(tmp_path: Path, args: list[str], env: dict[str, str] | None = None, timeout: int = 900):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    e = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    return subprocess.run([sys.executable, str(script), *args], cwd=REPO, env=e, capture_output=True,
                          text=True, timeout=timeout, check=False)


def _val_clean_acc(ckpt: Path) -> float:
    model = build_model(str(ckpt)).eval()
    cfg = load_config("train", SMALL)
    dm = RobustDataModule(limit_train=cfg.data.limit_train, limit_test=cfg.data.limit_test)
    dm.setup("fit")
    correct = total = 0
    with torch.no_grad():
        for x, y in dm.val_dataloader():
            correct += int((model(x).argmax(1) == y).sum())
            total += len(y)
    return correct / total


@pytest.mark.slow
@pytest.mark.ddp
def test_ddp_two_processes_on_cpu(tmp_path: Path) -> None:
    out = tmp_path / "run"
    res = _run(tmp_path, [*SMALL, "trainer.devices=2", "trainer.strategy=ddp", "trainer.max_epochs=2",
                          f"out={out}"])
    assert res.returncode == 0, res.stderr[-3000:]
    r0 = json.loads((out / "rank0.json").read_text())
    r1 = json.loads((out / "rank1.json").read_text())
    assert r0["world"] == r1["world"] == 2 and r0["epoch"] == r1["epoch"] == 2
    for key in ("val/clean_acc", "val/adv_acc", "val/clean_loss", "train/adv_acc"):
        assert r0["metrics"][key] == pytest.approx(r1["metrics"][key], abs=1e-7), key   # synced
    # the synced clean accuracy is that of the final model on the whole validation set (both halves)
    ckpt = out / "checkpoints" / "last.ckpt"
    torch.load(ckpt, weights_only=True)
    assert r0["metrics"]["val/clean_acc"] == pytest.approx(_val_clean_acc(ckpt), abs=1e-6)
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["epochs"] == 2 and summary["robust_acc"] == pytest.approx(r0["metrics"]["val/adv_acc"])


def _val_rows(out: Path) -> list[dict[str, str]]:
    """The validation rows of a run's metrics.csv (one per finished epoch)."""
    import csv

    with open(out / "metrics.csv", newline="") as f:
        return [r for r in csv.DictReader(f) if r.get("val/clean_acc")]


@pytest.mark.slow
def test_killed_run_resumes_from_last(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = [*SMALL, "trainer.max_epochs=2", f"out={out}"]
    killed = _run(tmp_path, args, env={"KILL_AT_EPOCH": "1"})
    assert killed.returncode != 0                        # SIGKILL after epoch 0's checkpoint
    first = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert first["epoch"] == 0
    assert not (out / "rank0.json").exists()
    before = _val_rows(out)
    assert [int(r["epoch"]) for r in before] == [0]
    resumed = _run(tmp_path, [*args, "ckpt_path=last"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    # the learning curve keeps epoch 0 (Lightning's CSVLogger alone deletes it on resume), once
    after = _val_rows(out)
    assert [int(r["epoch"]) for r in after] == [0, 1] and after[0] == before[0]
    assert not (out / "metrics.earlier.csv").exists()
    r0 = json.loads((out / "rank0.json").read_text())
    assert r0["epoch"] == 2
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1 and last["global_step"] == 2 * first["global_step"]
    assert build_model(str(out / "checkpoints" / "last.ckpt"))(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    best = list((out / "checkpoints").glob("best-*.ckpt"))
    assert best and build_model(str(best[0])) is not None


@pytest.mark.slow
def test_seed_makes_a_run_repeatable(tmp_path: Path) -> None:
    from tpa_lightning.training.train_job import train

    states = []
    for i in range(2):
        cfg = load_config("train", [*SMALL, "data.limit_train=128", "data.limit_test=64", "trainer.max_epochs=1",
                                    "seed=5", f"out={tmp_path / str(i)}"])
        train(cfg)
        states.append(torch.load(tmp_path / str(i) / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"])
    for k in states[0]:
        torch.testing.assert_close(states[0][k], states[1][k], rtol=0, atol=0)


def test_train_py_rejects_bad_config() -> None:
    res = subprocess.run([sys.executable, "train.py", "training.objective=nope"], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=False)
    assert res.returncode == 2 and "training.objective" in res.stderr and "Traceback" not in res.stderr


def test_last_checkpoint_is_the_final_epoch_even_without_improvement(tmp_path: Path) -> None:
    """lr ~ 0: validation robust accuracy never improves after epoch 0, yet last.ckpt must hold the
    state after the final epoch (Lightning's save_last alone would leave epoch 0's)."""
    from tpa_lightning.training.train_job import train

    out = tmp_path / "run"
    no_attack = [k for k in SMALL if not k.startswith("attack.")]      # clean training reads no attack keys
    cfg = load_config("train", [*no_attack, "data.limit_train=128", "data.val_size=64", "training.lr=1e-12",
                                "training.objective=clean", "trainer.max_epochs=2", f"out={out}"])
    train(cfg)
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    steps_per_epoch = 128 // 64
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 2 * steps_per_epoch
    best = list((out / "checkpoints").glob("best-epoch*.ckpt"))
    assert [p.name for p in best] == ["best-epoch0.ckpt"]
