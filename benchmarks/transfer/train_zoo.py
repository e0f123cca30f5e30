"""Train the model zoo of the transferability benchmark (what is missing only), then write its model card.

``python -m benchmarks.transfer.train_zoo [--quick] [--root DIR] [--force] [names...]`` (from the
repository root) trains every requested model of :data:`~benchmarks.transfer.zoo.ZOO` whose training
has not finished, each as ``python train.py experiment=zoo_<name> out=<root>/<name>`` in a subprocess,
then measures each model's clean accuracy and writes ``docs/results/zoo.md`` and ``zoo.json``
(``--quick``: ``docs/results/quick/``, models in ``outputs/zoo_quick``).

Models of the full zoo whose weights are committed (:mod:`.zoo_weights`, ``--export`` writes them)
are restored from there instead of trained, so every machine attacks the same models.

A killed run resumes: a model whose ``metrics.json`` (written by train.py when it ends) exists is
skipped, and one with only ``checkpoints/last.ckpt`` continues from it (``ckpt_path=last``).
Each model folder keeps ``train.log`` (the subprocess's output) and ``zoo_run.json`` (the command, the
wall-clock seconds and ``OMP_NUM_THREADS`` of every attempt), from which the card takes the training time.
The subprocesses inherit the environment: on a CPU shared with other jobs, ``OMP_NUM_THREADS=1`` can be
much faster than torch's default of one thread per core (measured 2.4x here with other jobs running).
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .zoo import (
    DEFAULT_ROOT,
    QUICK_ROOT,
    RUN_RECORD,
    ZOO,
    ZooModel,
    ZooTrainingError,
    checkpoint_epochs,
    model_status,
    read_run_record,
    zoo_model,
)
from .zoo_card import write_card
from .zoo_weights import PURIFIER, WEIGHTS_DIR, export_model, export_purifier, restore_model

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS = REPO_ROOT / "docs" / "results"

__all__ = ["ensure_zoo", "export_zoo", "main", "resolve_root", "uses_committed_weights"]


def resolve_root(root: str | Path = DEFAULT_ROOT, quick: bool = False) -> Path:
    """The absolute zoo folder: a relative ``root`` is taken from the repository root (where train.py
    runs); with ``quick`` the default root becomes :data:`QUICK_ROOT`, so weak quick models never
    land among the full zoo's."""
    root = Path(root)
    if quick and root == DEFAULT_ROOT:
        root = QUICK_ROOT
    return root if root.is_absolute() else REPO_ROOT / root


def _display_root(root: Path) -> Path:
    """``root`` relative to the repository when inside it (how train commands are shown and run)."""
    try:
        return root.relative_to(REPO_ROOT)
    except ValueError:
        return root


def _write_record(folder: Path, record: dict[str, Any]) -> None:
    tmp = folder / (RUN_RECORD + ".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(folder / RUN_RECORD)


def _close_interrupted(folder: Path, record: dict[str, Any]) -> None:
    """An attempt that never ended (the driver was killed) counts up to its last checkpoint: the work
    after it is redone by the resumed run."""
    ckpt = folder / "checkpoints" / "last.ckpt"
    for attempt in record.get("attempts", []):
        if attempt.get("ended") is None:
            saved = ckpt.stat().st_mtime if ckpt.is_file() else attempt["started"]
            attempt["ended"] = max(saved, attempt["started"])
            attempt["seconds"] = attempt["ended"] - attempt["started"]
            attempt["interrupted"] = True


def _train_one(m: ZooModel, root: Path, quick: bool) -> int:
    """Run (or resume) the train command of ``m``; returns the subprocess's exit status."""
    folder = root / m.name
    command = m.train_command(_display_root(root), quick)
    assert command is not None
    resume = model_status(m, root) == "partial"
    args = [sys.executable, *command[1:]] + (["ckpt_path=last"] if resume else [])
    folder.mkdir(parents=True, exist_ok=True)
    record = read_run_record(folder) or {"name": m.name, "command": command, "quick": quick, "attempts": []}
    _close_interrupted(folder, record)
    attempt: dict[str, Any] = {"started": time.time(), "ended": None, "seconds": None, "returncode": None,
                               "resumed": resume, "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
    record["attempts"].append(attempt)
    _write_record(folder, record)
    log = folder / "train.log"
    print(f"[zoo] {'resuming' if resume else 'training'} {m.name}: {shlex.join(command)} (log: {log})",
          flush=True)
    with open(log, "a") as fh:
        fh.write(f"\n# {time.strftime('%Y-%m-%d %H:%M:%S')} {shlex.join(args)}\n")
        fh.flush()
        rc = subprocess.run(args, cwd=REPO_ROOT, stdout=fh, stderr=subprocess.STDOUT, check=False).returncode
    attempt["ended"] = time.time()
    attempt["seconds"] = attempt["ended"] - attempt["started"]
    attempt["returncode"] = rc
    _write_record(folder, record)
    print(f"[zoo] {m.name}: exit status {rc} after {attempt['seconds']:.0f} s", flush=True)
    return rc


def ensure_zoo(names: Sequence[str] | None = None, root: Path = DEFAULT_ROOT, quick: bool = False,
               force: bool = False) -> dict[str, str]:
    """Train what is missing of the zoo and return ``name -> build_model spec`` of every requested model.

    Args:
        names: zoo models (default: all of :data:`ZOO`); an unknown name raises ValueError.
        root: where models live (``<root>/<name>/checkpoints/last.ckpt``); relative to the repository
            root; with ``quick``, the default root means :data:`QUICK_ROOT`.
        quick: add :data:`QUICK_OVERRIDES` to every train command (weak models, minutes in total).
        force: delete and retrain the requested trained models even where they exist.

    Shipped models (no experiment, e.g. ``resnet18_aa``) are returned as their spec. A finished model
    trained with a different command (say, quick where a full run is asked for) raises ValueError:
    pass ``force=True`` or another root. Models that fail to train raise :class:`ZooTrainingError`
    after all the others have been tried.
    """
    models = list(ZOO) if names is None else [zoo_model(n) for n in names]
    root = resolve_root(root, quick)
    failed: list[str] = []
    for m in models:
        if m.experiment is None:
            continue
        folder = root / m.name
        if force and folder.is_dir():
            shutil.rmtree(folder)
        if not force and uses_committed_weights(root, quick) and restore_model(m, root):
            print(f"[zoo] {m.name}: restored the committed weights ({WEIGHTS_DIR / m.name}) into {folder}",
                  flush=True)
        if model_status(m, root) == "done":
            record = read_run_record(folder)
            wanted = m.train_command(_display_root(root), quick)
            if record is not None and _recipe(record.get("command")) != _recipe(wanted):
                raise ValueError(f"{folder} was trained with '{shlex.join(record['command'])}', not "
                                 f"'{shlex.join(wanted or [])}': pass force=True (--force) or another root")
            saved, ran = checkpoint_epochs(m, root)
            if m.select == "last" and saved is not None and ran is not None and saved < ran:
                print(f"[zoo] warning: {m.name}: last.ckpt holds epoch {saved} of {ran} (train.py saved "
                      "'last' only when val/adv_acc improved); retrain it with --force once train.py "
                      "saves the final weights", file=sys.stderr, flush=True)
            continue
        if _train_one(m, root, quick) != 0 or model_status(m, root) != "done":
            failed.append(f"{m.name} (log: {folder / 'train.log'})")
    if failed:
        raise ZooTrainingError(f"training failed for {', '.join(failed)}")
    return {m.name: m.model_spec(root) for m in models}


def _recipe(command: Sequence[str] | None) -> list[str]:
    """A train command without its ``out=`` folder: what decides the model (a finished run may be
    linked into another root, e.g. to export models trained in several folders together)."""
    return [a for a in (command or []) if not a.startswith("out=")]


def uses_committed_weights(root: Path, quick: bool) -> bool:
    """Whether ``root`` is the full zoo's default folder, the one the committed weights belong to
    (quick models and other roots never mix with them)."""
    return not quick and resolve_root(root) == resolve_root(DEFAULT_ROOT)


def export_zoo(root: Path, names: Sequence[str] | None = None) -> list[Path]:
    """Copy the finished models ``names`` of ``root`` (default: every finished one, and the NRP
    purifier if trained) into the committed :data:`~benchmarks.transfer.zoo_weights.WEIGHTS_DIR`;
    naming models keeps an older run elsewhere in ``root`` from replacing newer committed weights."""
    chosen = [m for m in ZOO if names is None or m.name in names]
    out = [p for m in chosen if model_status(m, root) == "done" and (p := export_model(m, root)) is not None]
    purifier = root / PURIFIER / "purifier.pt"
    if names is None and purifier.is_file():
        out.append(export_purifier(purifier))
    return out


def write_committed_card(n_images: int, out_dir: Path = RESULTS) -> tuple[Path, Path]:
    """The model card of the committed weights, whatever root they were exported from: every zoo model
    is restored from :data:`~benchmarks.transfer.zoo_weights.WEIGHTS_DIR` into a scratch folder and
    described there (its commands shown with the default root, where the benchmark restores them)."""
    with tempfile.TemporaryDirectory() as tmp:
        for m in ZOO:
            restore_model(m, Path(tmp))
        return write_card(list(ZOO), Path(tmp), False, out_dir, n_images=n_images,
                          display_root=_display_root(resolve_root(DEFAULT_ROOT)))


def card_folder(root: Path, quick: bool) -> Path:
    """Where the model card of a run over ``root`` without ``--export`` goes (with it, the card of the
    committed weights goes to ``docs/results``: :func:`write_committed_card`): ``docs/results/quick``
    for the quick zoo, ``docs/results`` for the default root, else ``root`` itself, so that training one
    model elsewhere (a retrain in its own folder) never overwrites the committed card with a card of
    that folder."""
    if quick:
        return RESULTS / "quick"
    if root.resolve() == resolve_root(DEFAULT_ROOT, False).resolve():
        return RESULTS
    return root


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.transfer.train_zoo",
                                     description="Train the CIFAR-10 model zoo (what is missing) and write "
                                                 "its model card to docs/results/zoo.{md,json} (for another "
                                                 "--root without --export: to that folder).")
    known = ", ".join(m.name for m in ZOO)
    parser.add_argument("names", nargs="*", help=f"zoo models (default: all): {known}")
    parser.add_argument("--quick", action="store_true",
                        help="one short epoch per model (checks the pipeline)")
    parser.add_argument("--root", type=Path, default=None,
                        help=f"model folder (default {DEFAULT_ROOT}; {QUICK_ROOT} with --quick)")
    parser.add_argument("--force", action="store_true", help="retrain the named models even where they exist")
    parser.add_argument("--export", action="store_true",
                        help=f"after training, copy the finished named models (default: all) into {WEIGHTS_DIR} "
                             "(committed, so that later runs restore instead of training) and write "
                             "docs/results/zoo.{md,json} from the committed weights")
    parser.add_argument("--images", type=int, default=1000,
                        help="test images for the clean accuracy (class-balanced, deterministic; "
                             "default 1000)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse(argv)
    names = [m.name for m in ZOO]
    unknown = [n for n in args.names if n not in names]
    if unknown:
        print(f"error: unknown zoo model '{unknown[0]}'; known: {', '.join(names)}", file=sys.stderr)
        return 2
    if not 1 <= args.images <= 10_000:
        print(f"error: --images must be in [1, 10000], got {args.images}", file=sys.stderr)
        return 2
    root = resolve_root(args.root or DEFAULT_ROOT, args.quick)
    status = 0
    try:
        ensure_zoo(args.names or None, root, quick=args.quick, force=args.force)
    except (ValueError, ZooTrainingError) as err:
        print(f"error: {err}", file=sys.stderr)
        status = 2 if isinstance(err, ValueError) else 1
        if status == 2:
            return status
    if args.export:
        if args.quick:
            print("error: --export is for the full zoo only (quick models are never committed)", file=sys.stderr)
            return 2
        for p in export_zoo(root, args.names or None):
            print(f"[zoo] exported {p}")
        md, js = write_committed_card(args.images)
    else:
        md, js = write_card(list(ZOO), root, args.quick, card_folder(root, args.quick),
                            n_images=args.images, display_root=_display_root(root))
    print(f"[zoo] model card: {md} and {js}")
    return status


if __name__ == "__main__":
    sys.exit(main())
