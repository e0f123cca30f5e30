"""The study's evaluate.py runs: for each model, ``configs/experiment/eval_at_study.yaml`` on its
exported checkpoint (clean, PGD-20, PGD-100, APGD-CE + APGD-T, sanity checks on 1,000 test images),
and AutoAttack's full standard version on the first 200 of them. Their report.json files are copied
to :data:`EVAL_DIR` (committed), where :mod:`.collect` reads them.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.transfer.zoo_weights import WEIGHTS_DIR
from tpa_lightning.evaluation.provenance import file_sha256

REPO = Path(__file__).resolve().parents[2]
#: Where the study's evaluation reports are committed (``<name>/report.json``, ``<name>_aa_standard/...``).
EVAL_DIR = REPO / "docs" / "results" / "at_study" / "eval"
#: The study's models, in table order (the zoo's secured targets, ``configs/experiment/at_<name>.yaml``).
STUDY_MODELS: tuple[str, ...] = ("fast_at", "pgd_at", "trades", "tpa_at")
#: L-inf radius of the study (8/255).
EPS = 8 / 255
#: The two runs of each model: suffix of the report folder -> evaluate.py overrides after the experiment.
RUNS: dict[str, tuple[str, ...]] = {
    "": (),
    "_aa_standard": ("autoattack.version=standard", "autoattack.attacks=[]", "autoattack.limit=200", "attacks=[]",
                     f"eps=[{EPS!r}]", "sanity.enabled=false"),
}
#: What is copied from an evaluate.py folder into :data:`EVAL_DIR` (the cache and the plots stay behind).
KEPT_FILES = ("report.json", "report.md", "per_image.csv")


def checkpoint_of(name: str, weights: Path = WEIGHTS_DIR) -> Path:
    """The committed (selected) checkpoint of study model ``name``."""
    return weights / name / "checkpoints" / "last.ckpt"


def repo_relative(path: Path) -> Path:
    """``path`` relative to the repository root when it lies inside it (evaluate.py runs there, and its
    report then names the checkpoint the same on every machine), else unchanged."""
    try:
        return path.resolve().relative_to(REPO)
    except ValueError:
        return path


def evaluate_command(name: str, suffix: str, work: Path, threads: int | None = None,
                     weights: Path = WEIGHTS_DIR) -> list[str]:
    """The evaluate.py command line of one run (``suffix`` a key of :data:`RUNS`), writing to
    ``work/<name><suffix>``."""
    cmd = ["python", "evaluate.py", "experiment=eval_at_study", f"checkpoint={repo_relative(checkpoint_of(name, weights))}",
           f"out={work / (name + suffix)}", *RUNS[suffix]]
    return cmd + ([f"threads={threads}"] if threads is not None else [])


def report_path(name: str, suffix: str, eval_dir: Path = EVAL_DIR) -> Path:
    return eval_dir / (name + suffix) / "report.json"


def reported_checkpoint(report: Path) -> str | None:
    """The sha256 of the checkpoint file an evaluate.py ``report`` was made on (None if absent or not
    recorded, as for a model given in Python)."""
    if not report.is_file():
        return None
    return json.loads(report.read_text()).get("model", {}).get("checkpoint_sha256")


def is_current(name: str, suffix: str, eval_dir: Path = EVAL_DIR, weights: Path = WEIGHTS_DIR) -> bool:
    """Whether run ``suffix`` of ``name`` has a report made on the committed checkpoint's exact bytes
    (a retrained, re-exported model makes its old reports stale)."""
    ckpt = checkpoint_of(name, weights)
    made_on = reported_checkpoint(report_path(name, suffix, eval_dir))
    return made_on is not None and ckpt.is_file() and made_on == file_sha256(str(ckpt))


def run_evaluations(names: tuple[str, ...], work: Path, threads: int | None, eval_dir: Path = EVAL_DIR,
                    weights: Path = WEIGHTS_DIR) -> list[str]:
    """Run every evaluation of ``names`` that is missing or stale (made on other weights; evaluate.py
    resumes from ``work``'s cache, which is keyed by the model's fingerprint) and put its files in
    ``eval_dir`` in place of the old ones; returns the names of the runs made. A model without
    committed weights is skipped with a line on stderr."""
    made = []
    for name in names:
        if not checkpoint_of(name, weights).is_file():
            print(f"[at_study] {name}: no committed weights in {weights / name} (train and export it first)",
                  file=sys.stderr)
            continue
        for suffix in RUNS:
            if is_current(name, suffix, eval_dir, weights):
                continue
            cmd = evaluate_command(name, suffix, work, threads, weights)
            print(f"[at_study] {' '.join(cmd)}", flush=True)
            subprocess.run([sys.executable, *cmd[1:]], cwd=REPO, check=True)
            dest = eval_dir / (name + suffix)
            shutil.rmtree(dest, ignore_errors=True)
            dest.mkdir(parents=True)
            for f in KEPT_FILES:
                src = work / (name + suffix) / f
                if src.is_file():
                    shutil.copy2(src, dest / f)
            made.append(name + suffix)
    return made
