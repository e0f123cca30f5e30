"""Loading a config: the schema, ``configs/<kind>.yaml``, an experiment, ``--config``, groups and
``key=value`` overrides merged in that order, then validated; every error is one line naming the key."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from .errors import ConfigError
from .schema import SCHEMAS
from .validation import validate

REPO_ROOT = Path(__file__).resolve().parents[2]
CONFIG_DIR = REPO_ROOT / "configs"
GROUPS = ("data", "model", "attack", "defense", "experiment")


def _one_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0] if text else type(err).__name__


def _read_yaml(path: Path, what: str) -> DictConfig:
    if not path.is_file():
        raise ConfigError(f"{what}: file not found: {path}")
    try:
        loaded = OmegaConf.load(path)
    except Exception as err:  # noqa: BLE001 -- any YAML syntax error: report it in one line
        raise ConfigError(f"{what}: cannot parse {path}: {_one_line(err)}") from None
    if not isinstance(loaded, DictConfig):
        raise ConfigError(f"{what}: {path} must hold a mapping of keys, got a list")
    return loaded


def _group_file(group: str, name: str) -> Path:
    path = CONFIG_DIR / group / f"{name}.yaml"
    if not path.is_file():
        options = sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))
        raise ConfigError(f"{group}={name}: no such config; allowed: {', '.join(options) or '(none)'}")
    return path


def _merge(base: DictConfig, *others: Any, what: str = "the config") -> DictConfig:
    try:
        merged = OmegaConf.merge(base, *others)
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err)) from None
    except (TypeError, ValueError) as err:   # e.g. a list index given where a key is expected
        raise ConfigError(f"{what}: cannot be applied: {_one_line(err)}") from None
    assert isinstance(merged, DictConfig)
    return merged


def _describe(err: OmegaConfBaseException) -> str:
    key = getattr(err, "full_key", None) or ""
    msg = _one_line(err)
    if "not in struct" in msg or "Key '" in msg and "not" in msg:
        parent = key.rsplit(".", 1)[0] if "." in key else ""
        return f"{key}: unknown config key" + (f" under '{parent}'" if parent else "")
    return f"{key}: {msg}" if key else msg


FREE_FORM_KEYS = ("kwargs", "options")


def _open_free_form(node: Any) -> None:
    """Let ``kwargs``/``options`` mappings take any key while the rest of the schema stays strict."""
    if isinstance(node, DictConfig):
        for key in node:
            child = node._get_node(key)
            if key in FREE_FORM_KEYS and isinstance(child, DictConfig):
                OmegaConf.set_struct(child, False)
            else:
                _open_free_form(child)


def _schema(kind: str) -> DictConfig:
    schema = OmegaConf.structured(SCHEMAS[kind])
    OmegaConf.set_struct(schema, True)
    _open_free_form(schema)
    return schema


def _default_layers(kind: str) -> list[Any]:
    default_file = CONFIG_DIR / f"{kind}.yaml"
    return [_read_yaml(default_file, f"configs/{kind}.yaml")] if default_file.is_file() else []


def default_config(kind: str) -> DictConfig:
    """The config of ``kind`` before any experiment, file, group or override: the dataclass defaults
    with ``configs/<kind>.yaml`` on top (what "a key was given" is measured against)."""
    return _merge(_schema(kind), *_default_layers(kind))


def load_config(kind: str, argv_overrides: list[str], config_file: str | None = None) -> DictConfig:
    """The resolved, validated config of ``kind`` ("train" or "evaluate")."""
    schema = _schema(kind)
    layers: list[Any] = _default_layers(kind)
    groups: list[tuple[str, str]] = []
    dotlist: list[str] = []
    for item in argv_overrides:
        if "=" not in item:
            raise ConfigError(f"{item}: expected key=value")
        key, value = item.split("=", 1)
        if key in GROUPS and "." not in value and "/" not in value and value and not value.startswith("{"):
            groups.append((key, value))
        else:
            dotlist.append(item)
    experiment = next((v for k, v in groups if k == "experiment"), None)
    if experiment is not None:
        exp = _read_yaml(_group_file("experiment", experiment), f"experiment={experiment}")
        if kind == "train" and "experiment" not in exp:
            exp["experiment"] = experiment
        layers.append(exp)
    if config_file:
        layers.append(_read_yaml(Path(config_file), "--config"))
    for group, name in groups:
        if group == "experiment":
            continue
        node = _read_yaml(_group_file(group, name), f"{group}={name}")
        layers.append(OmegaConf.create({group: node}))
    try:
        layers.append(OmegaConf.from_dotlist(dotlist))
    except OmegaConfBaseException as err:
        raise ConfigError(_describe(err)) from None
    cfg = _merge(schema, *layers, what=", ".join(k.split("=", 1)[0] for k in dotlist) or "the config")
    validate(cfg)
    return cfg
