"""What the study knows of each model, read from committed files only: its training record (weights
folder), its two evaluate.py reports (:mod:`.evaluations`), and the transferability benchmark's results
on it (only when they were made on these very weights)."""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf

from benchmarks.transfer.zoo import train_seconds, zoo_model
from benchmarks.transfer.zoo_curves import read_curve as zoo_curve
from benchmarks.transfer.zoo_weights import WEIGHTS_DIR
from tpa_lightning.evaluation.provenance import file_sha256, model_fingerprint
from tpa_lightning.evaluation.report import per_image_columns
from tpa_lightning.models import build_model

from .evaluations import EVAL_DIR, REPO, report_path

#: What each study model trains on (table label).
OBJECTIVE_LABELS = {"fast_at": "fast-AT (FGSM-RS)", "pgd_at": "PGD-AT (PGD-3)", "trades": "TRADES (beta 6, 3 steps)",
                    "tpa_at": "TPA-AT (T=1, N=1)"}
#: The transfer attacks whose success against each model the study reports (issue 15).
TRANSFER_ATTACKS: tuple[str, ...] = ("tpa", "mi", "di", "vt", "pgn", "ssa", "bsr")
#: The transferability benchmark's committed results and run record.
RESULTS_CSV = REPO / "docs" / "results" / "results.csv"
RUN_JSON = REPO / "docs" / "results" / "run.json"
#: metrics.csv columns of the study's learning curves, and their names
CURVE_COLUMNS = {"val/clean_acc": "val_clean", "val/adv_acc": "val_robust", "train/adv_acc": "train_robust"}


@dataclass
class Training:
    """A model's training record: objective, budget, selection and time."""

    passes_per_epoch: float | None = None       # forward+backward passes per training image per epoch
    epochs: int | None = None
    selected_epoch: int | None = None          # 1-based epoch of the committed (best-on-validation) weights
    val_clean: float | None = None
    val_robust: float | None = None             # validation PGD-10 of the final epoch
    wall_seconds: float | None = None
    threads: str | None = None
    train_images: int | None = None
    command: str | None = None
    curve: list[dict[str, float]] = field(default_factory=list)

    @property
    def passes_per_image(self) -> float | None:
        """Forward+backward passes per training image over the whole run (the matched budget)."""
        if self.passes_per_epoch is None or self.epochs is None:
            return None
        return self.passes_per_epoch * self.epochs


@dataclass
class Evaluation:
    """A model's evaluate.py numbers: name -> proportion dict (``correct``, ``total``, ``accuracy``,
    ``ci95``) and the per-image outcome strings by the same names."""

    numbers: dict[str, dict[str, Any]] = field(default_factory=dict)
    per_image: dict[str, str] = field(default_factory=dict)
    sanity: str | None = None
    sanity_failed: list[str] = field(default_factory=list)
    sanity_warnings: list[str] = field(default_factory=list)
    checkpoint_sha256: str | None = None
    seconds: float | None = None
    #: reports left out because they were made on other weights (``<name><suffix>``)
    stale: list[str] = field(default_factory=list)


@dataclass
class ModelFacts:
    name: str
    label: str
    state_sha256: str | None
    training: Training
    evaluation: Evaluation
    transfer: dict[str, Any]


def read_curve(path: Path) -> list[dict[str, float]]:
    """Per epoch (1-based): validation clean and robust accuracy train.py logged (metrics.csv)."""
    if not path.is_file():
        return []
    return [{**r, "epoch": r["epoch"] + 1} for r in zoo_curve(path, CURVE_COLUMNS)]


def training_of(name: str, weights: Path = WEIGHTS_DIR) -> Training:
    folder = weights / name
    t = Training()
    if (folder / "metrics.json").is_file():
        m = json.loads((folder / "metrics.json").read_text())
        t.passes_per_epoch, t.epochs = m.get("passes_per_image"), m.get("epochs")   # train.py's: per epoch
        t.val_clean, t.val_robust = m.get("clean_acc"), m.get("robust_acc")
        t.train_images = (m.get("data") or {}).get("train")
    ckpt = folder / "checkpoints" / "last.ckpt"
    if ckpt.is_file():
        t.selected_epoch = int(torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"]) + 1
    if (folder / "zoo_run.json").is_file():
        record = json.loads((folder / "zoo_run.json").read_text())
        t.wall_seconds = train_seconds(folder)
        t.threads = (record.get("attempts") or [{}])[-1].get("omp_num_threads")
        t.command = " ".join(record.get("command") or []) or None
    if t.command is None and (folder / "config.yaml").is_file():
        t.command = f"python train.py experiment={OmegaConf.load(folder / 'config.yaml').experiment}"
    t.curve = read_curve(folder / "metrics.csv")
    return t


def _pgd_label(report: dict[str, Any], steps: int) -> str | None:
    """The white-box label of the PGD entry with ``steps`` steps (``pgd#0``, ``pgd#1``...)."""
    return next((lab for lab, r in report["whitebox"].items()
                 if r["settings"]["name"] == "pgd" and int(r["settings"]["steps"]) == steps), None)


def evaluation_of(name: str, eval_dir: Path = EVAL_DIR, checkpoint_sha256: str | None = None) -> Evaluation:
    """Clean, PGD-20, PGD-100 and APGD-CE + APGD-T on the 1,000 images; AutoAttack standard on 200.
    With ``checkpoint_sha256`` (the committed checkpoint file's), a report made on another file is
    left out and named in ``stale``."""
    ev = Evaluation()

    def usable(path: Path) -> dict[str, Any] | None:
        """The report at ``path``, or None when it is missing or stale (then named in ``ev.stale``)."""
        if not path.is_file():
            return None
        report: dict[str, Any] = json.loads(path.read_text())
        made_on = report.get("model", {}).get("checkpoint_sha256")
        if checkpoint_sha256 is not None and made_on is not None and made_on != checkpoint_sha256:
            ev.stale.append(path.parent.name)
            return None
        return report

    r = usable(report_path(name, "", eval_dir))
    if r is not None:
        cols = per_image_columns(r)
        eps = float(r["autoattack"]["result"]["eps"]) if r["autoattack"]["result"] else None
        ev.numbers["clean"], ev.per_image["clean"] = r["clean"], r["clean"]["per_image"]
        for steps in (20, 100):
            lab = _pgd_label(r, steps)
            point = next((p for p in r["whitebox"][lab]["curve"] if p["eps"] == eps), None) if lab else None
            if point is not None:
                ev.numbers[f"pgd{steps}"], ev.per_image[f"pgd{steps}"] = point, point["per_image"]
        if r["autoattack"]["result"]:
            ev.numbers["apgd"] = r["autoattack"]["result"]["robust"]
            ev.per_image["apgd"] = cols["autoattack"]
        ev.sanity, ev.sanity_failed = r["sanity"]["verdict"], list(r["sanity"]["failed"])
        ev.sanity_warnings = list(r["sanity"]["warnings"])
        ev.checkpoint_sha256 = r["model"].get("checkpoint_sha256")
        ev.seconds = r["run"].get("seconds")
    r = usable(report_path(name, "_aa_standard", eval_dir))
    if r is not None:
        aa = r["autoattack"]["result"]
        ev.numbers["aa_standard"], ev.per_image["aa_standard"] = aa["robust"], aa["per_image_robust"]
        ev.numbers["aa_standard_clean"] = aa["clean"]
    return ev


def transfer_of(name: str, sha: str | None, results_csv: Path = RESULTS_CSV, run_json: Path = RUN_JSON) -> dict[str, Any]:
    """The transfer attacks' success against ``name`` (untargeted, :data:`TRANSFER_ATTACKS`), per eps
    (in /255) and attack, averaged over the surrogates; ``status`` is ``pending`` when the committed
    benchmark results were not made on these weights (fingerprint ``sha``)."""
    if not (results_csv.is_file() and run_json.is_file()):
        return {"status": "pending", "why": "no transferability results"}
    made_on = json.loads(run_json.read_text()).get("models", {}).get(name, {}).get("state_sha256")
    if sha is None or made_on != sha:
        return {"status": "pending", "why": "the committed transfer results are of other weights"}
    per: dict[str, dict[str, list[float]]] = {}
    surrogates: set[str] = set()
    with open(results_csv, newline="") as f:
        for r in csv.DictReader(f):
            if (r["group"] == "main" and r["target"] == name and r["attack"] in TRANSFER_ATTACKS
                    and r["targeted"] == "False" and not r["overrides"]):
                per.setdefault(f"{float(r['eps_255']):g}", {}).setdefault(r["attack"], []).append(float(r["asr"]))
                surrogates.add(r["surrogate"])
    if not per:
        return {"status": "pending", "why": "no transfer rows for this model"}
    by_eps = {eps: {"mean": sum(sum(v) / len(v) for v in attacks.values()) / len(attacks),
                    "attacks": {a: sum(v) / len(v) for a, v in attacks.items()}} for eps, attacks in per.items()}
    return {"status": "done", "surrogates": sorted(surrogates), "by_eps": by_eps}


def committed_experiment(name: str, weights: Path = WEIGHTS_DIR) -> str | None:
    """The experiment the committed weights of ``name`` were trained with (their config.yaml), or None."""
    cfg = weights / name / "config.yaml"
    return str(OmegaConf.load(cfg).experiment) if cfg.is_file() else None


def facts_of(name: str, weights: Path = WEIGHTS_DIR, eval_dir: Path = EVAL_DIR,
             results_csv: Path = RESULTS_CSV, run_json: Path = RUN_JSON) -> ModelFacts:
    """Everything known of study model ``name``; nothing but its name while the committed weights are
    not of its study experiment (``at_<name>``: e.g. the zoo's earlier 2-epoch secured models)."""
    label = OBJECTIVE_LABELS.get(name, name)
    if committed_experiment(name, weights) != zoo_model(name).experiment:
        return ModelFacts(name, label, None, Training(), Evaluation(), {"status": "pending", "why": "not trained yet"})
    ckpt = weights / name / "checkpoints" / "last.ckpt"
    sha = model_fingerprint(build_model(str(ckpt)))["state_sha256"] if ckpt.is_file() else None
    file_sha = file_sha256(str(ckpt)) if ckpt.is_file() else None
    return ModelFacts(name, label, sha, training_of(name, weights), evaluation_of(name, eval_dir, file_sha),
                      transfer_of(name, sha, results_csv, run_json))
