"""Structured configs (omegaconf dataclasses) for train.py and evaluate.py, and how they are loaded.

Order of precedence, lowest first: the dataclass defaults, ``configs/train.yaml`` (or
``evaluate.yaml``), an ``experiment=NAME`` group file, ``--config FILE``, group selections such as
``data=cifar10`` (files in ``configs/<group>/``), then ``key=value`` overrides. Config values are
data: nothing in them is ever executed or imported.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from defenses import DEFENSES

from .attacks import ATTACKS
from .chunking import check_max_batch

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
GROUPS = ("data", "model", "attack", "defense", "experiment")


class ConfigError(ValueError):
    """A bad config: its message is one line that names the key and what is allowed."""


@dataclass
class DataConfig:
    name: str = "fashion_mnist"          # fashion_mnist | cifar10 | image_folder
    root: str = "data"
    batch_size: int = 128                # per process
    eval_batch_size: int | None = None
    num_workers: int = 0
    augment: bool = False
    cutout: int = 0                      # with augment: side (pixels) of a random square set to 0 (0: off)
    limit_train: int | None = None    # fixed subset of the training images (None: all)
    limit_test: int | None = None     # fixed subset of the test (and validation) images
    val_size: int = 1000                 # held out of the training set, fixed by seed
    jpeg_dir: str | None = None       # folder with the CIFAR-10 JPEG copy's tar.gz files
    image_size: int | None = None     # image_folder: centre-crop size
    labels_csv: str | None = None     # image_folder: filename,label CSV labelling the flat folder data.root
    labels_offset: int = 0               # image_folder: subtracted from the CSV labels (1 for 1-based files)
    download: bool = False


@dataclass
class ModelConfig:
    name: str = "small_cnn"              # small_cnn | cifar_resnet18 | timm:<name> | pretrained:<name> | robustbench:<name> | path
    weights: str | None = None        # local weight file for timm:/torchvision: models
    arch: str | None = None           # architecture of a plain state-dict file
    model_dir: str = "models"            # where robustbench weights are read from
    normalize: bool = True               # put the dataset's mean/std inside the model
    channels_last: bool = False          # weights and batches in channels-last memory format (faster convs)
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttackConfig:
    """An attack and its options; None means the attack's own default (see its docstring)."""

    name: str | None = None           # train.py: None = the objective's own attack (pgd_at: pgd, tpa_at: tpa ...)
    eps: float = 0.1                     # L-inf budget in [0, 1] pixel units
    steps: int = 2
    step_size: float | None = None
    norm: str = "linf"
    copies: int | None = 2            # TPA N (and the copies of VT, PGN, SSA, BSR ...)
    mode: str | None = None           # TPA: official | paper
    noise_radius: float | None = None
    lookahead: float | None = None
    mix: float | None = None
    momentum: float | None = None
    lam: float | None = None
    init: str | None = None
    loss: str | None = None           # ce | logit
    clamp_each_step: bool | None = None
    max_batch: int | str = "auto"        # rows per forward+backward chunk; auto: 64 on a CPU, all on a GPU
    seed: int | None = None           # None: derived from the run's seed
    options: dict[str, Any] = field(default_factory=dict)   # any other keyword of the attack
    transforms: list[str] = field(default_factory=list)     # composed input transforms: di, ti, si, admix


def _val_attack() -> AttackConfig:
    return AttackConfig(name="pgd", eps=0.1, steps=10, copies=None)


@dataclass
class TrainingConfig:
    objective: str = "tpa_at"            # clean | pgd_at | trades | mart | fast_at | tpa_at | gaussian_noise
    adv_ratio: float = 1.0               # share of each batch replaced by adversarial examples
    warmup_epochs: int = 0               # epochs of clean training before the attack starts
    eps_ramp_epochs: int = 0             # eps grows linearly to attack.eps over these epochs
    trades_beta: float = 6.0
    mart_beta: float = 6.0
    noise_sigma: float = 0.25            # gaussian_noise objective (randomized smoothing base model)
    optimizer: str = "adamw"             # sgd | adamw
    lr: float = 0.002
    weight_decay: float = 0.0005
    sgd_momentum: float = 0.9
    schedule: str = "cosine"             # none | cosine | onecycle
    val_attack: AttackConfig = field(default_factory=_val_attack)
    val_attack_batches: int | None = None   # attack only this many validation batches (None: all)
    clean_train_metrics: bool = False    # also log train/clean_* of attacked images (one extra forward each)
    label_smoothing: float = 0.0         # of the training cross-entropy (not trades/mart); 0.1 is usual
    lr_warmup_epochs: float = 0.0        # schedule=cosine: linear warm-up epochs before the decay
    ema_decay: float | None = None     # EMA of the weights (Lightning's EMAWeightAveraging), e.g. 0.999 per step


@dataclass
class TrainerConfig:
    """Passed to ``lightning.Trainer`` (precision may be 32, bf16 or 16 as shorthand)."""

    max_epochs: int = 3
    accelerator: str = "auto"
    devices: Any = 1
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32"
    limit_train_batches: float | None = None
    limit_val_batches: float | None = None
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    deterministic: bool = False
    gradient_clip_val: float | None = None
    fast_dev_run: bool = False


@dataclass
class PurifierConfig:
    """``task=purifier``: train an NRP purifier (defenses/nrp)."""

    nb: int = 2
    nf: int = 32
    gc: int = 16
    eps: float = 0.0627                  # 16/255, SSP budget
    ssp_steps: int = 3
    pixel_weight: float = 1.0
    lr: float = 0.0002
    feature_model: str | None = None  # model spec for the feature extractor (default: model.name)


@dataclass
class TrainConfig:
    experiment: str = "fmnist_tpa_at"
    task: str = "classifier"             # classifier | purifier
    seed: int = 0
    out: str | None = None            # default outputs/<experiment>/<timestamp>
    ckpt_path: str | None = None      # "last" resumes the newest run of this experiment, or a path
    data: DataConfig = field(default_factory=lambda: DataConfig(limit_train=6000))
    model: ModelConfig = field(default_factory=ModelConfig)
    attack: AttackConfig = field(default_factory=AttackConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    purifier: PurifierConfig = field(default_factory=PurifierConfig)


def _eval_attacks() -> list[AttackConfig]:
    return [AttackConfig(name="pgd", steps=10, copies=None), AttackConfig(name="tpa", steps=10, copies=2)]


@dataclass
class TransferSettings:
    """Transfer matrix: adversarial examples crafted on each source by each attack (at the attack's
    ``eps``, or ``eps`` here), scored on each target. ``model`` names the evaluated model; other
    entries are model specs (``small_cnn``, ``robustbench:<name>``, a checkpoint path ...)."""

    enabled: bool = True
    sources: list[str] = field(default_factory=lambda: ["model"])
    targets: list[str] = field(default_factory=lambda: ["model"])
    defended_targets: bool = True        # also score every entry of ``defenses`` (around the model)
    attacks: list[str] = field(default_factory=list)   # names of ``attacks`` entries to use ([]: all)
    eps: float | None = None          # None: each attack's own eps


@dataclass
class DefenseSettings:
    """A defense of ``defenses/`` around the evaluated model, attacked adaptively."""

    name: str = "bitdepth"
    options: dict[str, Any] = field(default_factory=dict)   # keywords of defenses.build_defense
    bpda: bool = True                    # False: plain gradients (grad_mode "none"), shows masking
    eot_samples: int | None = None    # None: as the defense declares; 1 disables EOT
    attacks: list[str] = field(default_factory=list)   # names of ``attacks`` entries to run ([]: all)


def _eval_defenses() -> list[DefenseSettings]:
    return [DefenseSettings(name="bitdepth", options={"bits": 3}, attacks=["pgd"]),
            DefenseSettings(name="fd", attacks=["pgd"])]


@dataclass
class CertifySettings:
    """Randomized smoothing certification (defenses ``rs``) of the evaluated model."""

    enabled: bool = True
    sigmas: list[float] = field(default_factory=lambda: [0.25])
    n0: int = 10
    n: int = 100
    alpha: float = 0.001
    limit: int | None = 50            # certify only the first N test images (None: all)
    batch_size: int = 1000               # noisy rows per forward pass
    radii: list[float] = field(default_factory=lambda: [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0])


@dataclass
class AutoAttackSettings:
    """AutoAttack through ``pyautoattack`` (Linf) on the evaluated model."""

    enabled: bool = False
    version: str = "standard"            # standard | plus | rand | custom
    attacks: list[str] = field(default_factory=list)   # for version=custom, e.g. [apgd-ce, apgd-t]
    eps: float | None = None          # None: the largest value of ``eps``
    limit: int | None = None          # only the first N test images (None: all)
    batch_size: int = 250


@dataclass
class SanitySettings:
    """Checks that catch broken evaluations (Carlini et al. 2019; AutoAttack's checks)."""

    enabled: bool = True
    tolerance: float = 0.02              # slack (a fraction of images) for "must not rise" comparisons
    unbounded_eps: float = 1.0           # an attack this large must reach about 0 %
    unbounded_steps: int = 20
    unbounded_max_acc: float = 0.05
    max_zero_grad: float = 0.05          # most images allowed with an all-zero input gradient
    noise_draws: int = 8                 # gradient-free check: random sign noise of the largest eps


@dataclass
class EvaluateConfig:
    seed: int = 0
    out: str = "outputs/evaluate"
    checkpoint: str | None = None     # default: last.ckpt of the newest default training run
    train_experiment: str = "fmnist_tpa_at"   # whose newest run (outputs/<it>/) gives the default checkpoint
    resume: bool = True                  # reuse per-section results cached in <out>/cache
    threads: int | None = 1           # torch CPU threads per process (None: torch's default)
    data: DataConfig = field(default_factory=lambda: DataConfig(limit_test=500, batch_size=250))
    model: ModelConfig = field(default_factory=ModelConfig)
    eps: list[float] = field(default_factory=lambda: [0.0, 0.05, 0.1, 0.2])
    attacks: list[AttackConfig] = field(default_factory=_eval_attacks)
    transfer: TransferSettings = field(default_factory=TransferSettings)
    defenses: list[DefenseSettings] = field(default_factory=_eval_defenses)
    certify: CertifySettings = field(default_factory=CertifySettings)
    autoattack: AutoAttackSettings = field(default_factory=AutoAttackSettings)
    sanity: SanitySettings = field(default_factory=SanitySettings)
    trainer: TrainerConfig = field(default_factory=lambda: TrainerConfig(max_epochs=1))


SCHEMAS: dict[str, type] = {"train": TrainConfig, "evaluate": EvaluateConfig}

#: ``trainer.precision`` shorthands and Lightning's names for them (the one precision table of the jobs).
LIGHTNING_PRECISION: dict[str, str] = {"32": "32-true", "64": "64-true", "bf16": "bf16-mixed", "16": "16-mixed"}

_CHOICES: dict[str, tuple[str, ...]] = {
    "data.name": ("fashion_mnist", "cifar10", "image_folder"),
    "task": ("classifier", "purifier"),
    "training.objective": ("clean", "pgd_at", "trades", "mart", "fast_at", "tpa_at", "gaussian_noise"),
    "training.optimizer": ("sgd", "adamw"),
    "training.schedule": ("none", "cosine", "onecycle"),
    "trainer.precision": (*LIGHTNING_PRECISION, *LIGHTNING_PRECISION.values(), "bf16-true"),
}


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


def _check_attack(prefix: str, a: DictConfig) -> None:
    if a.eps < 0:
        raise ConfigError(f"{prefix}.eps: must be >= 0, got {a.eps}")
    if a.steps < 1:
        raise ConfigError(f"{prefix}.steps: must be >= 1, got {a.steps}")
    if a.copies is not None and a.copies < 1:
        raise ConfigError(f"{prefix}.copies: must be >= 1, got {a.copies}")
    if a.step_size is not None and a.step_size <= 0:
        raise ConfigError(f"{prefix}.step_size: must be > 0, got {a.step_size}")
    try:
        check_max_batch(f"{prefix}.max_batch", a.max_batch)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    if a.norm not in ("linf", "l2"):
        raise ConfigError(f"{prefix}.norm: must be one of linf, l2, got {a.norm}")
    if a.mode is not None and a.mode not in ("official", "paper"):
        raise ConfigError(f"{prefix}.mode: must be one of official, paper, got {a.mode}")


def validate(cfg: DictConfig) -> None:
    """Reject impossible values with a one-line ConfigError naming the key."""
    for key, allowed in _CHOICES.items():
        value = OmegaConf.select(cfg, key, default=None)
        if value is not None and str(value) not in allowed:
            raise ConfigError(f"{key}: must be one of {', '.join(allowed)}, got {value}")
    d = cfg.data
    for key in ("batch_size", "limit_train", "limit_test", "eval_batch_size"):
        if d[key] is not None and d[key] < 1:
            raise ConfigError(f"data.{key}: must be >= 1, got {d[key]}")
    for key, dataset in (("image_size", "image_folder"), ("jpeg_dir", "cifar10")):
        if d[key] is not None and d.name != dataset:
            raise ConfigError(f"data.{key}: read only for data.name={dataset}, not {d.name}; leave it unset")
    for key, unset in (("labels_csv", None), ("labels_offset", 0)):
        if d[key] != unset and d.name != "image_folder":
            raise ConfigError(f"data.{key}: read only for data.name=image_folder, not {d.name}; leave it unset")
    if d.labels_offset < 0 or (d.labels_offset and d.labels_csv is None):
        raise ConfigError(f"data.labels_offset: must be >= 0 and needs data.labels_csv, got {d.labels_offset}")
    if d.cutout < 0:
        raise ConfigError(f"data.cutout: must be >= 0 pixels, got {d.cutout}")
    if d.cutout > 0 and not d.augment:
        raise ConfigError("data.cutout: read only with data.augment=true (it is part of the augmentation)")
    if d.val_size < 0 or d.num_workers < 0:
        raise ConfigError("data.val_size and data.num_workers: must be >= 0")
    if "attack" in cfg:
        _check_attack("attack", cfg.attack)
    if "training" in cfg:
        t = cfg.training
        _check_attack("training.val_attack", t.val_attack)
        if not 0.0 <= t.adv_ratio <= 1.0:
            raise ConfigError(f"training.adv_ratio: must be in [0, 1], got {t.adv_ratio}")
        if t.lr <= 0:
            raise ConfigError(f"training.lr: must be > 0, got {t.lr}")
        if t.noise_sigma <= 0:
            raise ConfigError(f"training.noise_sigma: must be > 0, got {t.noise_sigma}")
        for key in ("warmup_epochs", "eps_ramp_epochs"):
            if t[key] < 0:
                raise ConfigError(f"training.{key}: must be >= 0, got {t[key]}")
        if t.ema_decay is not None and not 0.0 < t.ema_decay < 1.0:
            raise ConfigError(f"training.ema_decay: must be in (0, 1) or null, got {t.ema_decay}")
    if "attacks" in cfg:
        for i, a in enumerate(cfg.attacks):
            _check_attack(f"attacks[{i}]", a)
    if "eps" in cfg:
        for e in cfg.eps:
            if e < 0:
                raise ConfigError(f"eps: every value must be >= 0, got {e}")
    if "certify" in cfg:
        _validate_evaluate(cfg)
    if cfg.trainer.max_epochs < 1:
        raise ConfigError(f"trainer.max_epochs: must be >= 1, got {cfg.trainer.max_epochs}")


def _check_attack_refs(key: str, refs: Any, attacks: Any) -> None:
    """``refs`` must name entries of ``attacks`` (by name, or ``name#index`` where a name repeats)."""
    names = [str(a.name).lower() for a in attacks]
    labels = set(names) | {f"{n}#{i}" for i, n in enumerate(names)}
    for r in refs:
        if str(r).lower() not in labels:
            raise ConfigError(f"{key}: '{r}' is not one of the configured attacks ({', '.join(sorted(labels))})")


def _validate_evaluate(cfg: DictConfig) -> None:
    """Keys of EvaluateConfig: names of attacks and defenses, budgets, smoothing settings."""
    for key in ("data.augment", "data.cutout", "model.channels_last"):   # training-only keys
        if OmegaConf.select(cfg, key):
            raise ConfigError(f"{key}: not read by evaluate.py (a training setting); leave it unset")
    if cfg.threads is not None and cfg.threads < 1:
        raise ConfigError(f"threads: must be >= 1 or null, got {cfg.threads}")
    if not cfg.eps:
        raise ConfigError("eps: must hold at least one value, e.g. eps=[0,0.1]")
    for i, a in enumerate(cfg.attacks):
        if str(a.name).lower() not in ATTACKS:
            raise ConfigError(f"attacks[{i}].name: unknown attack '{a.name}'; allowed: {', '.join(sorted(ATTACKS))}")
    for i, d in enumerate(cfg.defenses):
        parts = str(d.name).split("+")
        bad = [p for p in parts if p not in DEFENSES]
        if bad:
            raise ConfigError(f"defenses[{i}].name: unknown defense '{d.name}'; allowed: "
                              f"{', '.join(sorted(DEFENSES))} (or a chain such as jpeg+fd)")
        _check_attack_refs(f"defenses[{i}].attacks", d.attacks, cfg.attacks)
        if d.eot_samples is not None and d.eot_samples < 1:
            raise ConfigError(f"defenses[{i}].eot_samples: must be >= 1, got {d.eot_samples}")
    t = cfg.transfer
    _check_attack_refs("transfer.attacks", t.attacks, cfg.attacks)
    for i, spec in enumerate(list(t.sources) + list(t.targets)):
        if not str(spec):
            raise ConfigError("transfer.sources / transfer.targets: empty model spec")
    if t.eps is not None and t.eps < 0:
        raise ConfigError(f"transfer.eps: must be >= 0, got {t.eps}")
    c = cfg.certify
    for s in c.sigmas:
        if s <= 0:
            raise ConfigError(f"certify.sigmas: every sigma must be > 0, got {s}")
    for key in ("n0", "n", "batch_size"):
        if c[key] < 1:
            raise ConfigError(f"certify.{key}: must be >= 1, got {c[key]}")
    if c.limit is not None and c.limit < 1:
        raise ConfigError(f"certify.limit: must be >= 1, got {c.limit}")
    if not 0.0 < c.alpha < 1.0:
        raise ConfigError(f"certify.alpha: must be in (0, 1), got {c.alpha}")
    if any(r < 0 for r in c.radii):
        raise ConfigError("certify.radii: every radius must be >= 0")
    aa = cfg.autoattack
    if aa.version not in ("standard", "plus", "rand", "custom"):
        raise ConfigError(f"autoattack.version: must be one of standard, plus, rand, custom, got {aa.version}")
    known_aa = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
    for name in aa.attacks:
        if name not in known_aa:
            raise ConfigError(f"autoattack.attacks: unknown attack '{name}'; allowed: {', '.join(known_aa)}")
    if aa.version == "custom" and aa.enabled and not aa.attacks:
        raise ConfigError("autoattack.attacks: version=custom needs a list of attacks, e.g. [apgd-ce]")
    if aa.eps is not None and aa.eps < 0:
        raise ConfigError(f"autoattack.eps: must be >= 0, got {aa.eps}")
    if aa.limit is not None and aa.limit < 1:
        raise ConfigError(f"autoattack.limit: must be >= 1, got {aa.limit}")
    if aa.batch_size < 1:
        raise ConfigError(f"autoattack.batch_size: must be >= 1, got {aa.batch_size}")
    s = cfg.sanity
    if s.tolerance < 0 or s.unbounded_eps < 0 or not 0.0 <= s.unbounded_max_acc <= 1.0:
        raise ConfigError("sanity.tolerance, sanity.unbounded_eps: must be >= 0; sanity.unbounded_max_acc: in [0, 1]")
    if s.unbounded_steps < 1 or s.noise_draws < 1:
        raise ConfigError("sanity.unbounded_steps and sanity.noise_draws: must be >= 1")
    if not 0.0 <= s.max_zero_grad <= 1.0:
        raise ConfigError(f"sanity.max_zero_grad: must be in [0, 1], got {s.max_zero_grad}")
    if cfg.checkpoint is not None and not Path(str(cfg.checkpoint)).is_file():
        raise ConfigError(f"checkpoint: file not found: {cfg.checkpoint}")


def to_container(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain dicts/lists/scalars (what goes into checkpoints and reports)."""
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]
