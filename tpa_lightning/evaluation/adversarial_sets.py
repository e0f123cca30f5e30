"""Saved adversarial sets that keep their perturbation: lossless PNG folders or ``.npz`` files.

``save_adversarial_set`` writes crafted examples as 8-bit images, ``load_adversarial_set`` reads them
back exactly and ``evaluate_saved_set`` scores any target model on them.

What the 8-bit rounding guarantees: with ``k = floor(eps * 255 + 1e-6)`` (the budget in whole 8-bit
levels; the 1e-6 absorbs float error such as ``8/255 * 255 = 7.999...``), the saved images are

    clean_u8 = round(x_clean * 255)
    adv_u8   = clip(round(x_adv * 255), clean_u8 - k, clean_u8 + k), clipped to [0, 255]

so every saved pixel differs from the *8-bit clean image* by at most ``k / 255 <= eps`` (up to that
1e-6 / 255). When the clean images came from 8-bit files (as every dataset of this toolkit does),
``clean_u8 / 255`` *is* the clean image and the saved set is within ``eps`` of it exactly.

JPEG (and any other lossy format) is refused: its compression changes pixels by several 8-bit levels
and would silently destroy (or exceed) a perturbation of a few levels.

The files are read without unpickling anything (``np.load(allow_pickle=False)``, JSON, CSV, PNG).
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

FORMAT_VERSION = 1
LOSSY_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".webp", ".heic", ".avif")
META_FILE, LABELS_FILE = "meta.json", "labels.csv"


def budget_levels(eps: float) -> int:
    """``eps`` in whole 8-bit levels: ``floor(eps * 255 + 1e-6)``."""
    return math.floor(float(eps) * 255.0 + 1e-6)


def quantize(x_adv: Tensor, x_clean: Tensor, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """``(adv_u8, clean_u8)``: both rounded to uint8 (N, C, H, W), ``adv_u8`` kept within the budget."""
    clean = torch.round(x_clean.detach().to("cpu", torch.float64) * 255.0).clamp_(0, 255)
    adv = torch.round(x_adv.detach().to("cpu", torch.float64) * 255.0)
    k = budget_levels(eps)
    adv = torch.minimum(torch.maximum(adv, clean - k), clean + k).clamp_(0, 255)
    return adv.to(torch.uint8).numpy(), clean.to(torch.uint8).numpy()


def _sha256(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest()


def _format_of(path: Path, fmt: str | None) -> str:
    if fmt is not None:
        fmt = fmt.lower()
        if fmt in ("jpg", "jpeg") or f".{fmt}" in LOSSY_SUFFIXES:
            raise ValueError(f"format={fmt!r} refused: lossy compression (JPEG and the like) destroys adversarial "
                             "perturbations of a few 8-bit levels; use format='png' or 'npz'")
        if fmt not in ("png", "npz"):
            raise ValueError(f"format must be 'png' (a folder of PNGs) or 'npz', got {fmt!r}")
    suffix = path.suffix.lower()
    if suffix in LOSSY_SUFFIXES:
        raise ValueError(f"{path}: {suffix} refused: lossy compression (JPEG and the like) destroys adversarial "
                         "perturbations of a few 8-bit levels; save to a folder (PNG) or a .npz file")
    inferred = "npz" if suffix == ".npz" else "png" if suffix == "" or path.is_dir() else None
    if inferred is None:
        raise ValueError(f"{path}: save to a folder (lossless PNGs) or a .npz file, not {suffix}")
    if fmt is not None and fmt != inferred:
        raise ValueError(f"{path}: format={fmt!r} does not match the path (a {inferred} target)")
    return inferred


def save_adversarial_set(path: str | Path, x_adv: Tensor, x_clean: Tensor, labels: Tensor, eps: float,
                         meta: dict[str, Any] | None = None, format: str | None = None,
                         overwrite: bool = False) -> dict[str, Any]:
    """Save crafted examples losslessly; returns the metadata written.

    Args:
        path: a ``.npz`` file, or a folder that gets ``00000.png`` ..., ``labels.csv`` (``filename,label``,
            0-based) and ``meta.json``. A ``.jpg`` / ``.jpeg`` path (or ``format='jpeg'``) is refused.
        x_adv, x_clean: images in [0, 1], (N, C, H, W); C is 1 or 3 for PNG.
        labels: (N,) true labels.
        eps: the L-inf budget in [0, 1] units; the saved set keeps it (see the module docstring).
        meta: JSON-serialisable extras (attack, source model ...), stored under ``"user"``.
        format: ``"png"`` or ``"npz"``; by default from the path.
        overwrite: replace an existing file or folder's contents.
    """
    p = Path(path)
    kind = _format_of(p, format)
    if x_adv.dim() != 4 or x_adv.shape != x_clean.shape:
        raise ValueError(f"x_adv and x_clean must be (N, C, H, W) of one shape, got {tuple(x_adv.shape)} "
                         f"and {tuple(x_clean.shape)}")
    y = torch.as_tensor(labels).detach().to("cpu", torch.int64).reshape(-1)
    if y.numel() != x_adv.shape[0]:
        raise ValueError(f"{x_adv.shape[0]} images but {y.numel()} labels")
    if not 0.0 <= float(eps) <= 1.0:
        raise ValueError(f"eps must be in [0, 1] (pixel units), got {eps}")
    if kind == "png" and x_adv.shape[1] not in (1, 3):
        raise ValueError(f"PNG stores 1 or 3 channels, got {x_adv.shape[1]}; use a .npz file")
    if p.exists() and not overwrite and (p.is_file() or any(p.iterdir())):
        raise FileExistsError(f"{p} exists; pass overwrite=True to replace it")
    adv_u8, clean_u8 = quantize(x_adv, x_clean, eps)
    linf = int(np.abs(adv_u8.astype(np.int16) - clean_u8.astype(np.int16)).max()) if adv_u8.size else 0
    info: dict[str, Any] = {
        "format_version": FORMAT_VERSION, "format": kind, "count": int(adv_u8.shape[0]),
        "shape": list(adv_u8.shape[1:]), "eps": float(eps), "eps_levels": budget_levels(eps),
        "linf_levels": linf, "adv_sha256": _sha256(adv_u8), "clean_sha256": _sha256(clean_u8),
        "labels_sha256": _sha256(y.numpy()), "user": json.loads(json.dumps(meta or {})),
    }
    if kind == "npz":
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("wb") as fh:
            np.savez_compressed(fh, x_adv=adv_u8, labels=y.numpy(), meta=np.array(json.dumps(info)))
        return info
    p.mkdir(parents=True, exist_ok=True)
    for old in p.glob("*.png"):
        old.unlink()
    names = [f"{i:05d}.png" for i in range(adv_u8.shape[0])]
    for name, img in zip(names, adv_u8):
        arr = img[0] if img.shape[0] == 1 else img.transpose(1, 2, 0)
        Image.fromarray(np.ascontiguousarray(arr)).save(p / name, format="PNG")   # L or RGB, 8 bit
    with (p / LABELS_FILE).open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["filename", "label"])
        w.writerows([n, int(lab)] for n, lab in zip(names, y.tolist()))
    (p / META_FILE).write_text(json.dumps(info, indent=1))
    return info


def _load_u8(path: Path) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            adv, y, meta = z["x_adv"], z["labels"], json.loads(str(z["meta"]))
        return adv, y, meta
    if not path.is_dir():
        raise FileNotFoundError(f"no saved adversarial set at {path}")
    meta = json.loads((path / META_FILE).read_text())
    with (path / LABELS_FILE).open(newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    images = []
    for name, _ in rows:
        f = (path / name).resolve()
        if f.parent != path.resolve() or f.suffix.lower() != ".png":
            raise ValueError(f"{path / LABELS_FILE} names '{name}': expected a PNG file in that folder")
        arr = np.asarray(Image.open(f))
        images.append(arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1))
    adv = np.stack(images) if images else np.zeros((0, *meta["shape"]), np.uint8)
    return adv, np.array([int(lab) for _, lab in rows], dtype=np.int64), meta


def load_adversarial_set(path: str | Path) -> tuple[Tensor, Tensor, dict[str, Any]]:
    """``(x_adv float32 [0, 1] NCHW, labels int64, meta)`` of a set saved by ``save_adversarial_set``.

    Raises:
        ValueError: the images or labels are not the ones saved (their sha256 differs from the
            metadata's: e.g. the PNGs were re-encoded).
    """
    p = Path(path)
    adv, y, meta = _load_u8(p)
    if adv.dtype != np.uint8:
        raise ValueError(f"{p}: images must be uint8, found {adv.dtype}")
    if _sha256(adv) != meta.get("adv_sha256") or _sha256(y.astype(np.int64)) != meta.get("labels_sha256"):
        raise ValueError(f"{p}: the images or labels differ from those saved (sha256 mismatch): "
                         "re-encoded or edited files no longer hold the crafted perturbation")
    x = torch.from_numpy(adv.astype(np.float32) / 255.0)
    return x, torch.from_numpy(y.astype(np.int64)), meta


@torch.no_grad()
def evaluate_saved_set(path: str | Path, model: nn.Module, batch_size: int = 256,
                       device: str | torch.device | None = None) -> float:
    """Accuracy of ``model`` (in eval mode, without gradients) on a saved adversarial set.

    ``device``: where the batches go (default: the device of the model's first parameter, else CPU).
    The model's train/eval mode is restored afterwards.
    """
    x, y, _ = load_adversarial_set(path)
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else torch.device("cpu")
    if x.shape[0] == 0:
        raise ValueError(f"{path}: the saved set is empty")
    was_training = model.training
    model.eval()
    correct = 0
    try:
        for start in range(0, x.shape[0], batch_size):
            xb, yb = x[start:start + batch_size].to(device), y[start:start + batch_size].to(device)
            correct += int((model(xb).argmax(dim=-1) == yb).sum())
    finally:
        model.train(was_training)
    return correct / x.shape[0]
