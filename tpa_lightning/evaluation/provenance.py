"""Where numbers come from: package versions, model fingerprints."""
from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from typing import Any

from torch import nn

PACKAGES = ("tpa-lightning", "torch", "torchvision", "lightning", "torchmetrics", "numpy", "scipy", "matplotlib",
            "omegaconf", "timm", "pyautoattack", "robustbench")


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def model_fingerprint(model: nn.Module) -> dict[str, Any]:
    """sha256 over the model's state dict (names, shapes and values) and its parameter count."""
    h = hashlib.sha256()
    for key, t in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes()
                 if t.numel() else b"")
    return {"class": type(model).__name__, "parameters": int(sum(p.numel() for p in model.parameters())),
            "state_sha256": h.hexdigest()}


def file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
