"""The resume cache: every finished unit of work is a file named by a sha256 of all the settings that
produced it, written atomically. JSON for numbers (predictions, flatness, crafting times) under
``json_root``, ``.pt`` (plain tensors, read back with ``weights_only=True``) for adversarial images
under ``root``. The full run keeps its JSON in the repository (``docs/results/raw``: small, and the
raw data behind every table), so a later session resumes without recrafting what is finished; the
images (about 12 MB per adversarial set) stay under ``outputs/``."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tpa_lightning.evaluation.cache import safe_file_name, settings_key

__all__ = ["Store", "safe_file_name", "settings_key"]




class Store:
    """``get_tensors/put_tensors`` under ``root/<kind>/<label>-<key16>.pt`` and ``get_json/put_json``
    under ``json_root/<kind>/<label>-<key16>.json`` (``json_root`` defaults to ``root``)."""

    def __init__(self, root: str | Path, json_root: str | Path | None = None) -> None:
        self.root = Path(root)
        self.json_root = self.root if json_root is None else Path(json_root)

    def path(self, kind: str, label: str, key: str, suffix: str) -> Path:
        base = self.json_root if suffix == ".json" else self.root
        return base / kind / f"{safe_file_name(label)}-{key[:16]}{suffix}"

    def get_json(self, kind: str, label: str, key: str) -> dict[str, Any] | None:
        p = self.path(kind, label, key, ".json")
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError):
            return None
        if data.get("key") != key:
            return None
        result: dict[str, Any] = data["result"]
        return result

    def put_json(self, kind: str, label: str, key: str, result: dict[str, Any],
                 settings: Any = None) -> None:
        p = self.path(kind, label, key, ".json")
        _atomic_write(p, json.dumps({"key": key, "settings": settings, "result": result}, default=str,
                                    separators=(",", ":")).encode())

    def get_tensors(self, kind: str, label: str, key: str) -> dict[str, Tensor] | None:
        p = self.path(kind, label, key, ".pt")
        if not p.is_file():
            return None
        try:
            data = torch.load(p, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - a torn or foreign file is recomputed
            return None
        if not isinstance(data, dict) or data.get("key") != key:
            return None
        return {k: v for k, v in data.items() if isinstance(v, Tensor)}

    def put_tensors(self, kind: str, label: str, key: str, tensors: dict[str, Tensor]) -> None:
        p = self.path(kind, label, key, ".pt")
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_name(p.name + f".tmp{os.getpid()}")
        torch.save({"key": key, **{k: v.detach().cpu().contiguous() for k, v in tensors.items()}}, tmp)
        tmp.replace(p)


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    tmp.write_bytes(data)
    tmp.replace(path)
