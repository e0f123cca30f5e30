"""Per-section results cached as JSON in ``<out>/cache``, reused when the settings are the same."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any


def settings_key(settings: Any) -> str:
    """sha256 of the canonical JSON of ``settings`` (floats by repr, keys sorted)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()


def safe_file_name(label: str) -> str:
    """``label`` with every character but letters, digits and ``-_.`` replaced by ``_``, cut at 80."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]


class SectionCache:
    """``get(name, key)`` returns the cached result of section ``name`` if it was computed with the
    same settings ``key``; ``put`` stores one (atomically: write then rename)."""

    def __init__(self, root: Path, enabled: bool = True) -> None:
        self.root = Path(root) / "cache"
        self.enabled = enabled

    def _path(self, name: str) -> Path:
        return self.root / f"{safe_file_name(name)}.json"

    def get(self, name: str, key: str) -> dict[str, Any] | None:
        if not self.enabled:
            return None
        path = self._path(name)
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError):
            return None
        return data.get("result") if data.get("key") == key else None

    def put(self, name: str, key: str, result: dict[str, Any]) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self._path(name)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"section": name, "key": key, "result": result}, indent=1, sort_keys=True))
        tmp.replace(path)
