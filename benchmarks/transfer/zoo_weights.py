"""The zoo's trained weights, kept in the repository so that every session and every machine attacks
the SAME models (the resume cache and the committed raw results are keyed by weight fingerprints).

``python -m benchmarks.transfer.train_zoo --export`` copies each finished model of the full zoo
(``outputs/zoo/<name>``) and the NRP purifier into :data:`WEIGHTS_DIR` as a slim checkpoint: the
model's state dict and what ``build_model`` needs to rebuild it (no optimizer state), plus train.py's
``config.yaml`` and ``metrics.json`` and the zoo's ``zoo_run.json`` (command and training time, for the
model card).
:func:`restore_model` puts them back where train.py would have written them, so a fresh checkout
skips training (about 35 minutes on 2 cores). Files are read with ``weights_only=True``.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import torch

from .zoo import ZooModel

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
#: Files of a model folder that travel with the weights (train.py's resolved config, metrics and
#: learning curve, the zoo's run record), read by the model card and the adversarial-training study.
SIDE_FILES = ("config.yaml", "metrics.json", "metrics.csv", "zoo_run.json")
#: Checkpoint entries kept in the slim copy (Lightning's optimizer and loop states are dropped).
KEPT_KEYS = ("state_dict", "epoch", "global_step", "tpa_lightning_model")
PURIFIER = "nrp_purifier"


def slim_checkpoint(src: Path, dst: Path) -> None:
    """Write the weights-and-metadata part of the Lightning checkpoint ``src`` to ``dst``."""
    ckpt: dict[str, Any] = torch.load(src, map_location="cpu", weights_only=True)
    missing = [k for k in ("state_dict", "tpa_lightning_model") if k not in ckpt]
    if missing:
        raise ValueError(f"{src} is not a train.py checkpoint (no {', '.join(missing)})")
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    torch.save({k: ckpt[k] for k in KEPT_KEYS if k in ckpt}, tmp)
    tmp.replace(dst)


def export_model(m: ZooModel, root: Path, weights: Path = WEIGHTS_DIR) -> Path | None:
    """Copy the finished model ``m`` from ``root`` into ``weights/<name>/`` (its selected checkpoint, see
    :attr:`ZooModel.select`, as ``last.ckpt``); None if it is shipped."""
    ckpt = m.checkpoint(root)
    if ckpt is None:
        return None
    folder = ckpt.parent.parent
    if not (ckpt.is_file() and (folder / "metrics.json").is_file()):
        raise ValueError(f"{m.name}: no finished training in {folder} (train it first)")
    out = weights / m.name
    slim_checkpoint(m.selected_checkpoint(root) or ckpt, out / "checkpoints" / "last.ckpt")
    for f in SIDE_FILES:
        if (folder / f).is_file():
            shutil.copy2(folder / f, out / f)
    return out


def restore_model(m: ZooModel, root: Path, weights: Path = WEIGHTS_DIR) -> bool:
    """Put the committed copy of ``m`` into ``root`` if ``root`` has no folder for it (a folder that
    exists holds a run of its own, finished or in progress, and is never touched); True if done."""
    ckpt = m.checkpoint(root)
    src = weights / m.name
    if ckpt is None or ckpt.parent.parent.exists() or not (src / "checkpoints" / "last.ckpt").is_file():
        return False
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    for f in SIDE_FILES:
        if (src / f).is_file():
            shutil.copy2(src / f, ckpt.parent.parent / f)
    shutil.copy2(src / "checkpoints" / "last.ckpt", ckpt)
    return True


def export_purifier(path: Path, weights: Path = WEIGHTS_DIR) -> Path:
    if not path.is_file():
        raise ValueError(f"no NRP purifier at {path} (python -m benchmarks.transfer trains it)")
    out = weights / PURIFIER / path.name
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, out)
    return out


def restore_purifier(path: Path, weights: Path = WEIGHTS_DIR) -> bool:
    src = weights / PURIFIER / path.name
    if path.is_file() or not src.is_file():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, path)
    return True
