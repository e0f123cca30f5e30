"""The configs of train.py and evaluate.py as dataclasses (the schema omegaconf checks types and keys
against); ``configs/train.yaml`` and ``configs/evaluate.yaml`` mirror them."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    steps: int | None = None          # None: the attack's own default (TPA 10, PGD 10 ...)
    step_size: float | None = None
    norm: str = "linf"
    copies: int | None = None         # TPA N (and the copies of VT, PGN, SSA, BSR ...); None: the attack's
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


def _train_attack() -> AttackConfig:
    """The default run's training attack: TPA's 2 steps x 2 copies (the attack's own 10 x 10 is for
    crafting, too slow for a minutes-long training run)."""
    return AttackConfig(steps=2, copies=2)


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
    collapse_drop: float | None = None  # stop when val/adv_acc falls this far below its best (RobustCollapseStop)


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
    attack: AttackConfig = field(default_factory=_train_attack)
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
