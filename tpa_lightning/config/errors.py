"""The one error a bad config raises, and the config as plain data."""
from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf


class ConfigError(ValueError):
    """A bad config: its message is one line that names the key and what is allowed."""


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain dicts/lists/scalars (what goes into checkpoints and reports)."""
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]
