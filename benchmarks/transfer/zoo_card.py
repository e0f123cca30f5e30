"""The zoo's model card: clean accuracy (with a Wilson 95 % interval), size, training command, time,
seed and library versions of every model, as ``zoo.json`` and ``zoo.md``."""
from __future__ import annotations

import json
import os
import shlex
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from omegaconf import OmegaConf
from torch import nn

from tpa_lightning.evaluation.provenance import model_fingerprint
from tpa_lightning.evaluation.provenance import versions as package_versions
from tpa_lightning.models import build_model

from .images import Images, load_heldout_images, load_test_images
from .stats import rate
from .zoo import ZooModel, checkpoint_epochs, model_status, train_seconds

SHIPPED_NOTE = {"resnet18_aa": "shipped in pyautoattack (examples/model_test.pt), trained on the original "
                               "CIFAR-10 elsewhere; not trained here"}


@torch.no_grad()
def count_correct(model: nn.Module, images: Images, batch_size: int = 250) -> int:
    """Images of ``images`` that ``model`` (eval mode) classifies correctly."""
    model.eval()
    correct = 0
    for i in range(0, images.y.numel(), batch_size):
        pred = model(images.x[i:i + batch_size]).argmax(1)
        correct += int((pred == images.y[i:i + batch_size]).sum())
    return correct


#: What the card's versions line names, in its order.
CARD_VERSIONS: tuple[str, ...] = ("python", "torch", "timm", "lightning")


def versions() -> dict[str, str | None]:
    """:data:`CARD_VERSIONS` as :func:`tpa_lightning.evaluation.provenance.versions` reports them, but
    torch as ``torch.__version__``: with the build tag the card has always shown (e.g. ``+cu130``),
    which the package metadata omits."""
    found = package_versions()
    return {k: str(torch.__version__) if k == "torch" else found.get(k) for k in CARD_VERSIONS}


def _run_facts(folder: Path) -> dict[str, Any]:
    """What train.py left in the model's folder: config (seed, model, data size, epochs) and metrics."""
    facts: dict[str, Any] = {}
    if (folder / "config.yaml").is_file():
        cfg = OmegaConf.load(folder / "config.yaml")
        facts.update(seed=int(cfg.seed), architecture=str(cfg.model.name),
                     model_kwargs=OmegaConf.to_container(cfg.model.kwargs),
                     objective=str(cfg.training.objective),
                     train_images=cfg.data.limit_train, max_epochs=int(cfg.trainer.max_epochs))
    if (folder / "metrics.json").is_file():
        metrics = json.loads((folder / "metrics.json").read_text())
        facts.update(val_clean_acc=metrics.get("clean_acc"), val_robust_acc=metrics.get("robust_acc"),
                     val_robust_attack=metrics.get("robust_attack"), epochs=metrics.get("epochs"),
                     data=metrics.get("data"))
    return facts


def _threads(folder: Path) -> str | None:
    """``OMP_NUM_THREADS`` of the model's last training attempt (None: torch's default)."""
    path = folder / "zoo_run.json"
    if not path.is_file():
        return None
    attempts = json.loads(path.read_text()).get("attempts") or [{}]
    value = attempts[-1].get("omp_num_threads")
    return None if value is None else str(value)


def card_entry(m: ZooModel, root: Path, images: Images, quick: bool, display_root: Path,
               heldout: Images | None = None) -> dict[str, Any]:
    """One model's card row; accuracy only where the model exists (``status`` says why not), also on
    the ``heldout`` images when given."""
    status = model_status(m, root)
    command = m.train_command(display_root, quick)
    entry: dict[str, Any] = {
        "name": m.name, "family": m.family, "role": m.role, "status": status,
        "spec": m.model_spec(display_root), "train_command": shlex.join(command) if command else None,
        "train_seconds": train_seconds(root / m.name) if command else None,
        "note": SHIPPED_NOTE.get(m.name), "omp_num_threads": _threads(root / m.name) if command else None,
    }
    if command:
        entry.update(_run_facts(root / m.name))
        saved, ran = checkpoint_epochs(m, root)
        entry.update(checkpoint_epochs=saved, trained_epochs=ran, selected=m.select,
                     stale_checkpoint=m.select == "last" and saved is not None and ran is not None and saved < ran)
    if status not in ("done", "shipped"):
        return entry
    model = build_model(m.model_spec(root))
    entry["params"] = int(sum(p.numel() for p in model.parameters()))
    entry["state_sha256"] = model_fingerprint(model)["state_sha256"]
    entry["clean_acc"] = rate(count_correct(model, images), int(images.y.numel()))
    if heldout is not None:
        entry["heldout_acc"] = rate(count_correct(model, heldout), int(heldout.y.numel()))
    return entry


def _pct(r: dict[str, Any] | None) -> str:
    if not r or r.get("rate") is None:
        return "n/a"
    return f"{100 * r['rate']:.1f} % [{100 * r['lo']:.1f}, {100 * r['hi']:.1f}]"


def markdown(card: dict[str, Any]) -> str:
    head = card["meta"]
    quick = " (quick: pipeline check only)" if head["quick"] else ""
    held = any("heldout_acc" in e for e in card["models"])
    versions_text = ", ".join(f"{k} {v}" for k, v in head["versions"].items())
    lines = [f"# Model zoo of the transferability benchmark{quick}",
             "",
             (f"Clean accuracy on {head['n_images']} test images of {head['dataset']} ({head['image_rule']}),"
             " with Wilson 95 % intervals. Training time: wall-clock seconds of the `train.py` subprocess"
             " (start-up, data loading and per-epoch validation included) on "
             f"{head['cpu_count']} CPU cores shared with other work, so an upper bound of the idle time."),
             f"Versions: {versions_text}. Written {head['written']}.",
             "",
             ("| model | family | role | clean accuracy [95 % CI] | val clean / robust (train.py) "
              "| checkpoint epoch | parameters | training s | seed |" + (" held-out accuracy [95 % CI] |" if held else "")),
             "|---|---|---|---|---|---|---|---|---|" + ("---|" if held else "")]
    for e in card["models"]:
        val = "n/a"
        if e.get("val_clean_acc") is not None:
            val = f"{100 * e['val_clean_acc']:.1f} / {100 * (e.get('val_robust_acc') or 0):.1f} %"
        secs = f"{e['train_seconds']:.0f}" if e.get("train_seconds") is not None else "n/a"
        if e.get("omp_num_threads"):
            secs += f" ({e['omp_num_threads']} thread{'s' if e['omp_num_threads'] != '1' else ''})"
        params = f"{e['params'] / 1e6:.2f} M" if e.get("params") else "n/a"
        acc = (_pct(e.get("clean_acc")) if e["status"] in ("done", "shipped")
               else f"not trained ({e['status']})")
        epochs = "n/a"
        if e.get("checkpoint_epochs") is not None:
            epochs = f"{e['checkpoint_epochs']} of {e.get('trained_epochs') or '?'}"
            epochs += " (STALE)" if e.get("stale_checkpoint") else ""
            epochs += " (best on validation)" if e.get("selected") == "best" else ""
        lines.append(f"| {e['name']} | {e['family']} | {e['role']} | {acc} | {val} | {epochs} | {params} "
                     f"| {secs} | {e.get('seed', 'n/a')} |" + (f" {_pct(e.get('heldout_acc'))} |" if held else ""))
    if any(e.get("stale_checkpoint") for e in card["models"]):
        lines += ["", ("**STALE checkpoints**: train.py's `last.ckpt` was written only when the monitored "
                       "`val/adv_acc` improved (Lightning 2.6 `ModelCheckpoint(save_last=True)` saves 'last' "
                       "only with a top-k checkpoint), so these models' checkpoints hold an earlier epoch "
                       "than the run trained; the clean accuracy above is of that checkpoint, the validation "
                       "columns are of the final epoch. Retrain with `--force` once train.py saves the final "
                       "weights.")]
    lines += ["", ("Validation columns: train.py's own held-out split of the training set (robust: its"
              " validation attack on the first validation batches only, see each config)."), ""]
    if held:
        n_held = next(e["heldout_acc"]["n"] for e in card["models"] if "heldout_acc" in e)
        lines += [(f"Held-out accuracy: the {n_held} test images the benchmark never attacks (all but its "
                   f"{head['n_images']}), where the zoo's accuracy floors are judged."), ""]
    lines += ["## Commands (run from the repository root)", ""]
    for e in card["models"]:
        how = f"`{e['train_command']}`" if e["train_command"] else e["note"] or ""
        sha = f" (weights sha256 `{e['state_sha256'][:16]}`)" if e.get("state_sha256") else ""
        lines.append(f"- **{e['name']}**: {how}{sha}")
    if not head["quick"]:
        lines += ["", ("The trained weights are committed in `benchmarks/transfer/weights/<name>/` (state dict and "
                       "rebuild recipe, no optimizer state; `python -m benchmarks.transfer.train_zoo --export` "
                       "writes them): `train_zoo` and the benchmark restore them instead of retraining, so every "
                       "machine attacks the models with the sha256 above (of the state dict, as "
                       "`tpa_lightning.evaluation.provenance.model_fingerprint` computes it).")]
    return "\n".join(lines) + "\n"


def write_card(models: Sequence[ZooModel], root: Path, quick: bool, out_dir: Path, n_images: int = 1000,
               display_root: Path | None = None) -> tuple[Path, Path]:
    """Evaluate ``models`` and write ``out_dir/zoo.md`` and ``out_dir/zoo.json``; returns both paths."""
    images = load_test_images(n_images)
    heldout = None if quick else load_heldout_images(n_images)
    card = {
        "meta": {"dataset": "CIFAR-10 (JPEG copy)" if "JPEG copy" in images.source else images.source,
                 "source": images.source, "image_rule": images.rule, "n_images": int(images.y.numel()),
                 "quick": quick, "root": str(display_root or root), "versions": versions(),
                 "cpu_count": os.cpu_count(), "written": time.strftime("%Y-%m-%d %H:%M:%S")},
        "models": [card_entry(m, root, images, quick, display_root or root, heldout) for m in models],
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "zoo.json", out_dir / "zoo.md"
    js.write_text(json.dumps(card, indent=2))
    md.write_text(markdown(card))
    return md, js
