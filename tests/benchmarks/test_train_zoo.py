"""The zoo driver, without training a CIFAR model: the train subprocess is replaced by a fake."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from benchmarks.transfer import train_zoo
from benchmarks.transfer.stats import wilson
from benchmarks.transfer.train_zoo import ensure_zoo, main, resolve_root
from benchmarks.transfer.zoo import (
    QUICK_OVERRIDES,
    QUICK_ROOT,
    RUN_RECORD,
    ZOO,
    ZooTrainingError,
    train_seconds,
    zoo_model,
)


def _finish(folder: Path) -> None:
    """What a finished train.py run leaves: the last checkpoint and metrics.json."""
    (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
    (folder / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    (folder / "metrics.json").write_text(json.dumps({"clean_acc": 0.5}))


class FakeTrain:
    """Stands in for ``subprocess.run``: records the command, "trains" by writing the files."""

    def __init__(self, returncode: int = 0) -> None:
        self.calls: list[list[str]] = []
        self.returncode = returncode

    def __call__(self, args: list[str], cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[bytes]:
        self.calls.append(list(args))
        assert Path(cwd) == train_zoo.REPO_ROOT and args[1] == "train.py"
        out = next(a.split("=", 1)[1] for a in args if a.startswith("out="))
        folder = Path(out) if Path(out).is_absolute() else Path(cwd) / out
        if self.returncode == 0:
            _finish(folder)
        return subprocess.CompletedProcess(args, self.returncode)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeTrain:
    f = FakeTrain()
    monkeypatch.setattr(train_zoo.subprocess, "run", f)
    return f


def test_finished_models_are_skipped_and_missing_ones_trained(tmp_path: Path, fake: FakeTrain) -> None:
    _finish(tmp_path / "vgg")
    specs = ensure_zoo(["vgg", "vit", "resnet18_aa"], root=tmp_path)
    assert len(fake.calls) == 1 and "experiment=zoo_vit" in fake.calls[0]
    assert not any(a.startswith("ckpt_path") for a in fake.calls[0])
    assert specs == {"vgg": str(tmp_path / "vgg" / "checkpoints" / "last.ckpt"),
                     "vit": str(tmp_path / "vit" / "checkpoints" / "last.ckpt"),
                     "resnet18_aa": "pretrained:autoattack_resnet18"}
    record = json.loads((tmp_path / "vit" / RUN_RECORD).read_text())
    assert record["command"] == zoo_model("vit").train_command(tmp_path)
    assert record["attempts"][0]["returncode"] == 0
    assert train_seconds(tmp_path / "vit") is not None
    ensure_zoo(["vgg", "vit"], root=tmp_path)      # everything there now: nothing runs
    assert len(fake.calls) == 1


def test_a_partly_trained_model_resumes_from_its_last_checkpoint(tmp_path: Path, fake: FakeTrain) -> None:
    (tmp_path / "densenet" / "checkpoints").mkdir(parents=True)
    (tmp_path / "densenet" / "checkpoints" / "last.ckpt").write_bytes(b"epoch 1")
    ensure_zoo(["densenet"], root=tmp_path)
    assert fake.calls[0][-1] == "ckpt_path=last"


def test_force_retrains(tmp_path: Path, fake: FakeTrain) -> None:
    _finish(tmp_path / "gaussian")
    ensure_zoo(["gaussian"], root=tmp_path, force=True)
    assert len(fake.calls) == 1


def test_quick_uses_its_own_root_and_overrides(fake: FakeTrain, monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    monkeypatch.setattr(train_zoo, "REPO_ROOT", tmp_path)
    assert resolve_root(quick=True) == tmp_path / QUICK_ROOT
    specs = ensure_zoo(["mobilenet"], quick=True)
    assert specs["mobilenet"] == str(tmp_path / QUICK_ROOT / "mobilenet" / "checkpoints" / "last.ckpt")
    assert fake.calls[0][-len(QUICK_OVERRIDES):] == list(QUICK_OVERRIDES)
    with pytest.raises(ValueError, match="force"):     # a quick model is not a full one
        ensure_zoo(["mobilenet"], root=tmp_path / QUICK_ROOT, quick=False)


def test_a_failed_training_is_reported_after_the_others(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    failing = FakeTrain(returncode=1)
    monkeypatch.setattr(train_zoo.subprocess, "run", failing)
    with pytest.raises(ZooTrainingError, match="vgg.*convnext"):
        ensure_zoo(["vgg", "convnext"], root=tmp_path)
    assert len(failing.calls) == 2


def test_unknown_model_names(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="unknown zoo model"):
        ensure_zoo(["resnet9000"])
    assert main(["resnet9000"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "resnet9000" in err[0] and ZOO[0].name in err[0]


@pytest.mark.parametrize("k,n", [(0, 10), (3, 10), (10, 10), (1, 1), (712, 1000), (999, 1000), (0, 1000)])
def test_wilson_interval_matches_scipy(k: int, n: int) -> None:
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(method="wilson")
    lo, hi = wilson(k, n)
    assert lo == pytest.approx(ci.low, abs=1e-12) and hi == pytest.approx(ci.high, abs=1e-12)


@pytest.mark.filterwarnings("ignore::FutureWarning")   # importing lightning/timm: torch.jit deprecations
def test_card_versions_keep_their_names_and_torch_build() -> None:
    """The card names python, torch (with its build tag), timm and lightning, as it always has; the
    versions come from tpa_lightning.evaluation.provenance."""
    import platform

    import lightning
    import timm
    import torch

    from benchmarks.transfer.zoo_card import versions

    assert versions() == {"python": platform.python_version(), "torch": torch.__version__,
                          "timm": timm.__version__, "lightning": lightning.__version__}


def test_heldout_images_are_the_test_images_the_benchmark_never_uses() -> None:
    import torch

    from benchmarks.transfer.images import load_heldout_images, load_test_images

    try:
        used, held = load_test_images(1000), load_heldout_images(1000)
    except FileNotFoundError:
        pytest.skip("no CIFAR-10 copy here")
    both = torch.cat([used.index, held.index])
    assert both.numel() == 10_000 and torch.equal(both.sort().values, torch.arange(10_000))  # a partition
    assert torch.equal(held.index, held.index.sort().values)                               # test order
    assert torch.bincount(held.y, minlength=10).tolist() == [900] * 10                     # 1000 minus 100 each


def test_the_committed_card_is_written_only_for_the_default_root_or_export(tmp_path: Path, fake: FakeTrain,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    results = train_zoo.RESULTS
    assert train_zoo.card_folder(resolve_root(), quick=False) == results
    assert train_zoo.card_folder(tmp_path, quick=True) == results / "quick"
    assert train_zoo.card_folder(tmp_path, quick=False) == tmp_path
    # with --export the card goes to docs/results too: test_export_copies_only_the_named_models_...
    written: list[Path] = []

    def fake_card(models: list[Any], root: Path, quick: bool, out_dir: Path, **kw: Any) -> tuple[Path, Path]:
        written.append(out_dir)
        return out_dir / "zoo.md", out_dir / "zoo.json"

    monkeypatch.setattr(train_zoo, "write_card", fake_card)
    assert main(["--root", str(tmp_path), "vgg"]) == 0          # a retrain in a folder of its own
    assert written == [tmp_path] and fake.calls and (tmp_path / "vgg" / "metrics.json").is_file()


def test_adversarially_trained_models_use_their_best_validation_checkpoint(tmp_path: Path) -> None:
    """A ``select="best"`` model: its spec and its export are the checkpoint train.py's metrics.json
    names as best on validation; the restored copy (only last.ckpt) then holds those weights."""
    import torch

    from benchmarks.transfer.zoo_weights import export_model, restore_model

    m = zoo_model("tpa_at")
    assert m.select == "best" and all(z.select == "best" for z in ZOO if z.role == "secured")
    ckpts = tmp_path / "at" / "tpa_at" / "checkpoints"
    ckpts.mkdir(parents=True)
    for name, value in (("last.ckpt", 2.0), ("best-epoch3.ckpt", 1.0)):
        torch.save({"state_dict": {"w": torch.full((2,), value)}, "epoch": int(value), "global_step": 1,
                    "tpa_lightning_model": {"spec": "x"}}, ckpts / name)
    (ckpts.parent / "metrics.json").write_text(json.dumps({"best_checkpoint": "/elsewhere/best-epoch3.ckpt"}))
    assert m.model_spec(tmp_path / "at") == str(ckpts / "best-epoch3.ckpt")
    weights = tmp_path / "weights"
    export_model(m, tmp_path / "at", weights)
    exported = torch.load(weights / "tpa_at" / "checkpoints" / "last.ckpt", weights_only=True)
    assert exported["state_dict"]["w"].tolist() == [1.0, 1.0] and exported["epoch"] == 1
    assert restore_model(m, tmp_path / "zoo", weights)
    assert m.model_spec(tmp_path / "zoo") == str(tmp_path / "zoo" / "tpa_at" / "checkpoints" / "last.ckpt")
    assert zoo_model("resnet18").model_spec(tmp_path / "at") == str(tmp_path / "at" / "resnet18" / "checkpoints"
                                                                      / "last.ckpt")


def test_a_finished_model_linked_into_another_root_is_used_as_it_is(tmp_path: Path, fake: FakeTrain) -> None:
    """Models trained in separate folders are gathered into one root (to export and describe them
    together): the same recipe in another ``out=`` folder is the same model, another recipe is not."""
    ensure_zoo(["vgg"], root=tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "vgg").symlink_to(tmp_path / "a" / "vgg")
    ensure_zoo(["vgg"], root=tmp_path / "b")
    assert len(fake.calls) == 1                          # not trained again
    record = json.loads((tmp_path / "a" / "vgg" / RUN_RECORD).read_text())
    record["command"] = [*record["command"], "trainer.max_epochs=1"]
    (tmp_path / "a" / "vgg" / RUN_RECORD).write_text(json.dumps(record))
    with pytest.raises(ValueError, match="force"):
        ensure_zoo(["vgg"], root=tmp_path / "b")


def test_export_copies_only_the_named_models_and_describes_the_committed_weights(
        tmp_path: Path, fake: FakeTrain, monkeypatch: pytest.MonkeyPatch) -> None:
    """Exporting one model from a root that also holds older runs must neither replace the other
    committed weights nor leave a card of that root's models only."""
    ensure_zoo(["vgg", "vit"], root=tmp_path / "runs")                  # both finished there
    exported: list[str] = []
    restored: list[str] = []
    cards: list[tuple[Path, Path, Path | None]] = []
    monkeypatch.setattr(train_zoo, "export_model", lambda m, root: exported.append(m.name) or root / m.name)
    monkeypatch.setattr(train_zoo, "restore_model", lambda m, root: restored.append(m.name) or True)

    def fake_card(models: list[Any], root: Path, quick: bool, out_dir: Path, **kw: Any) -> tuple[Path, Path]:
        cards.append((root, out_dir, kw.get("display_root")))
        return out_dir / "zoo.md", out_dir / "zoo.json"

    monkeypatch.setattr(train_zoo, "write_card", fake_card)
    assert main(["--root", str(tmp_path / "runs"), "--export", "vgg"]) == 0
    assert exported == ["vgg"]
    assert restored == [m.name for m in ZOO]                             # the card's models: all committed ones
    (root, out_dir, display), = cards
    assert out_dir == train_zoo.RESULTS and root != tmp_path / "runs" and display == Path("outputs/zoo")
    assert train_zoo.export_zoo(tmp_path / "runs") and exported[1:] == ["vgg", "vit"]   # no names: every finished one
