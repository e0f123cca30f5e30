"""Every setting of the transferability benchmark: attacks and their hyperparameters, budgets, images,
targets, defenses, ablation grids; one :class:`Settings` for the full run and one for ``--quick``.

Conventions (the paper's, at CIFAR-10 scale): L-inf budgets 8/255 and 16/255, T = 10 iterations,
step eps / T for every iterative attack, each attack's own published hyperparameters otherwise
(the defaults its class carries). Exceptions, forced by T = 10, are listed in :func:`notes`.
"""
from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from tpa_lightning.attacks import L2T

#: Row labels of the tables, in order; ``tpa`` is official mode, ``tpa_paper`` the paper's formula.
ATTACK_LABELS: tuple[str, ...] = ("fgsm", "pgd", "mi", "ni", "di", "ti", "vt", "ssa", "pgn", "gnp", "rap",
                                  "bsr", "mef", "sia", "decowa", "l2t", "tpa", "tpa_paper")

#: TPA's two modes: the attack under test, never counted as a baseline.
TPA_LABELS: tuple[str, ...] = ("tpa", "tpa_paper")

#: The order units are CRAFTED in (tables keep ATTACK_LABELS' order): cheap baselines, then TPA, so that
#: a partial full run has the headline comparison as early as possible.
CRAFT_PRIORITY: tuple[str, ...] = ("fgsm", "pgd", "mi", "tpa", "di", "ti", "ni", "gnp", "rap", "tpa_paper", "bsr",
                                   "vt", "ssa", "pgn", "mef", "sia", "decowa", "l2t")

#: What a row label means, for the report.
ATTACK_TITLES: dict[str, str] = {
    "fgsm": "FGSM", "pgd": "PGD", "mi": "MI-FGSM", "ni": "NI-FGSM", "di": "DI (MI)", "ti": "TI (MI)",
    "vt": "VT (VMI)", "ssa": "SSA", "pgn": "PGN", "gnp": "GNP", "rap": "RAP-LS", "bsr": "BSR",
    "mef": "MEF", "sia": "SIA", "decowa": "DeCowA", "l2t": "L2T",
    "tpa": "TPA (official)", "tpa_paper": "TPA (paper)",
}

def attack_config(label: str, eps: float, steps: int, **overrides: Any) -> tuple[str, dict[str, Any]]:
    """``(registry name, options)`` of a row label at budget ``eps`` and ``steps`` iterations.

    ``overrides`` (e.g. TPA's ``copies``) replace options; ``steps`` also sets the step eps/steps."""
    opts: dict[str, Any] = {"eps": float(eps), "steps": int(steps), "step_size": float(eps) / int(steps)}
    if label == "fgsm":
        opts = {"eps": float(eps), "steps": 1, "step_size": float(eps)}
        name = "fgsm"
    elif label == "rap":
        name = "rap"
        opts["late_start"] = int(steps) // 4
    elif label == "tpa":
        name = "tpa"
        opts["mode"] = "official"
    elif label == "tpa_paper":
        name = "tpa"
        opts["mode"] = "paper"
    elif label in ATTACK_LABELS:
        name = label
    else:
        raise ValueError(f"unknown attack label {label!r}; known: {', '.join(ATTACK_LABELS)}")
    opts.update(overrides)
    return name, opts


@dataclass(frozen=True)
class Ablation:
    """One TPA hyperparameter sweep (Figure 5 analogue): ``label`` row, option ``param`` over ``values``."""

    param: str
    values: tuple[float, ...]
    label: str = "tpa"
    title: str = ""


#: The TPA rows of the tables: label -> (TPA mode, the options its ablation sweeps start from at the
#: mode's defaults, :func:`tpa_default`).
TPA_ROWS: dict[str, tuple[str, tuple[str, ...]]] = {
    "tpa": ("official", ("copies", "noise_radius", "lookahead", "mix")),
    "tpa_paper": ("paper", ("lam", "copies", "noise_radius", "lookahead")),
}


@functools.cache
def _tpa_defaults(mode: str) -> tuple[tuple[str, float], ...]:
    from torch import nn

    from tpa_lightning.attacks import TPA

    atk = TPA(nn.Identity(), mode=mode)   # a stand-in model: only the options are read
    return (("copies", atk.copies), ("noise_radius", atk.noise_radius), ("lookahead", atk.lookahead),
            ("mix", atk.mix), ("lam", atk.lam), ("momentum", atk.momentum))


def tpa_default(mode: str, option: str) -> float:
    """TPA's default ``option`` (``copies``, ``noise_radius``, ``lookahead``, ``mix``, ``lam`` or
    ``momentum``) in ``mode``, as the class sets it: the one source of the numbers this benchmark
    states or sweeps from (``copies`` is an int)."""
    return dict(_tpa_defaults(mode))[option]


def ablation_defaults() -> dict[str, dict[str, float]]:
    """TPA defaults of the ablation rows (an override equal to the default IS the main unit): per TPA
    row label, its swept options (:data:`TPA_ROWS`) at the mode's defaults. The unit keys of the stored
    ablation depend on these values."""
    return {label: {k: tpa_default(mode, k) for k in options} for label, (mode, options) in TPA_ROWS.items()}


def ablation_default(ab: Ablation, steps: int) -> float | None:
    """The sweep's value at TPA's defaults, the main tables' setting (``steps``: their iterations);
    None if the sweep has none."""
    if ab.param == "steps":
        return float(steps)
    d = ablation_defaults().get(ab.label, {}).get(ab.param)
    return None if d is None else float(d)


@functools.cache
def l2t_expected_passes(steps: int) -> float:
    """L2T's passes per image at ``steps`` iterations, in expectation at its initial (uniform) distribution
    over operations: what its class reports (its actual count varies with the operations drawn)."""
    return L2T(nn.Identity(), steps=steps).passes_per_image()   # a stand-in model: nothing is run


def notes() -> tuple[str, ...]:
    """Departures from the attacks' published defaults, and why (written into the report)."""
    def o(k: str) -> str:
        return f"{tpa_default('official', k):g}"

    def p(k: str) -> str:
        return f"{tpa_default('paper', k):g}"

    return (
        ("All iterative attacks: T = 10 iterations, step eps/10 (TPA paper mode included; the paper used 20 "
        "iterations of 1.6/255 at eps 16/255, the released code and the authors' later examples 10)."),
        ("RAP: its published schedule (400 iterations, late start at 100) does not fit T = 10; the late start "
        "keeps its share of the schedule (iteration 2 of 10, i.e. 25 %), inner 8 steps of eps_n/8 with "
        "eps_n = eps, step eps/10."),
        ("FGSM: one step of eps. PGD: random start U(-eps, eps). DI, TI, VT, PGN, GNP, BSR, SSA: MI momentum "
        "mu = 1 as in their papers; TI kernel 7 for 32x32 inputs; SSA sigma = eps; VT/PGN radii scale with eps."),
        ("MEF, SIA, DeCowA, L2T: their authors' settings (the classes' docstrings), none tied to the image size "
        "but L2T's translations by 0.1-0.9 pixel, so the same at 32x32 as at 224x224. MEF: 20 samples, radius 2 eps, inner shift 0.15 eps, inner "
        "momentum 0.9, MI momentum 0.5 (published with 20 iterations of eps/10). SIA: 20 copies on a 3x3 block "
        "grid, its 10 block transformations, MI momentum 1. DeCowA: 20 thin-plate-spline warps on a 3x3 mesh, "
        "offsets U(-1, 1) stepped by rho = 0.01, each image its own offsets, MI momentum 1. L2T: 3 paths of 2 "
        "operations from its 98-operation pool, learning rate 0.01, each image its own distribution, MI "
        "momentum 1; its passes per image vary with the operations drawn: the tables give their expectation "
        f"at the start ({l2t_expected_passes(10):.0f} at T = 10)."),
        (f"TPA official and paper modes keep their pixel-unit defaults at both budgets (N = {o('copies')}, "
         f"b = {o('noise_radius')}, official k = {o('lookahead')}, mix {o('mix')}, momentum {o('momentum')}; "
         f"paper k = {p('lookahead')}, lambda = {p('lam')})."),
        ("Targeted attacks (Table 3) use the same 10 iterations and the CE loss towards the target class "
        "(the paper follows Zhao et al.: 300 iterations, logit loss); targets are drawn with a fixed seed "
        "and are never the true class."),
    )


FULL_ABLATIONS: tuple[Ablation, ...] = (
    Ablation("copies", (1, 2, 5, 10, 20), title="copies N"),
    Ablation("noise_radius", (0.0, 0.03, 0.06, 0.112, 0.2), title="noise radius b (pixels)"),
    Ablation("lookahead", (0.0, 0.0057, 0.0113, 0.0226, 0.045), title="look-ahead k (pixels)"),
    Ablation("mix", (0.0, 0.25, 0.5, 0.8, 1.0), title="mix (official mode)"),
    Ablation("lam", (0.0, 0.1, 0.5, 1.0, 5.0), label="tpa_paper", title="lambda (paper mode)"),
    Ablation("steps", (1, 2, 5, 10, 20), title="iterations T (TPA official)"),
    Ablation("steps", (1, 2, 5, 10, 20), label="mi", title="iterations T (MI-FGSM, reference)"),
)

QUICK_ABLATIONS: tuple[Ablation, ...] = (
    Ablation("copies", (1, 10), title="copies N"),
    Ablation("mix", (0.0, 0.8), title="mix (official mode)"),
    Ablation("steps", (5, 10), title="iterations T (TPA official)"),
    Ablation("steps", (5, 10), label="mi", title="iterations T (MI-FGSM, reference)"),
)

#: Parts of the run ``--only`` can select.
PARTS: tuple[str, ...] = ("table1", "table2", "table3", "table5", "ablation", "flatness", "seeds", "timing",
                          "precision")


@dataclass(frozen=True)
class Settings:
    """Everything that changes the numbers (hashed into the cache keys) plus how to run."""

    quick: bool = False
    images: int = 1000
    seed: int = 0
    steps: int = 10
    eps: tuple[float, ...] = (8 / 255, 16 / 255)
    surrogates: tuple[str, ...] = ("resnet18", "resnet18_aa")
    attacks: tuple[str, ...] = ATTACK_LABELS
    targeted_attacks: tuple[str, ...] = ATTACK_LABELS
    targeted_eps: tuple[float, ...] = (8 / 255, 16 / 255)
    #: the classifier the input-transformation defenses (R&P, FD, JPEG, NRP) sit in front of
    defense_base: str = "vgg"
    defenses: tuple[str, ...] = ("rp", "fd", "jpeg", "nrp", "rs")
    rs_sigma: float = 0.25
    rs_n: int = 100
    rs_alpha: float = 0.001
    #: flatness: mean ||grad_u CE(f(u), y)||_2 over ``flat_samples`` draws u = x_adv + U(-r, r)^d, r = flat_radius * eps
    flat_samples: int = 8
    flat_radius: float = 1.0
    ablation_surrogate: str = "resnet18"
    ablation_eps: float = 16 / 255
    ablation_images: int = 1000
    ablations: tuple[Ablation, ...] = FULL_ABLATIONS
    #: seed study: these attacks crafted again with these attack seeds (the run's seed is the first
    #: point), on ``ablation_surrogate`` at ``ablation_eps``, on all images, scored on the normal targets
    seed_attacks: tuple[str, ...] = ("tpa", "pgn", "vt")
    seed_values: tuple[int, ...] = (1, 2)
    #: crafting cost of every attack measured in one run (benchmarks/transfer/timing.py): images, surrogate, eps
    timing_images: int = 64
    timing_surrogate: str = "resnet18"
    timing_eps: float = 16 / 255
    #: images per cached crafting chunk (results do not depend on it: attacks are batch-independent)
    chunk: int = 100
    #: attacks crafted with bf16 autocast (about 2x faster on a CPU with AVX-512 bf16) in every group (main,
    #: targeted, seeds, ablation); every other attack is crafted in fp32. A unit's precision is part of its
    #: cache key and name only when it is bf16 (``-bf16``): fp32 units keep the keys they always had
    bf16_attacks: tuple[str, ...] = ()
    #: these attacks are crafted in both precisions on ``ablation_surrogate`` at ``ablation_eps`` (untargeted,
    #: default options, all images, scored on the normal targets): the unit in the attack's own precision
    #: (:meth:`precision_of`) is its main unit, the other is its twin (group "precision"), so the report can
    #: test, paired over the same images, whether bf16 leaves the attack's results unchanged
    precision_check: tuple[str, ...] = ()
    #: rows per forward+backward when crafting (memory, and speed: on one CPU thread the width-16 ResNet-18
    #: ran 1.3x faster at 64 rows than at 256; the examples do not depend on it beyond float rounding)
    max_batch: dict[str, int] = field(default_factory=lambda: {"resnet18_aa": 64})
    default_max_batch: int = 64
    #: NRP purifier training (python train.py task=purifier ...)
    #: surrogates crafted with fewer units: name -> (eps values, attacks) of their untargeted units;
    #: they craft no targeted units (Table 3 uses the surrogates without a plan)
    surrogate_plans: dict[str, tuple[tuple[float, ...], tuple[str, ...]]] = field(default_factory=dict)
    purifier_overrides: tuple[str, ...] = ("data.limit_train=10000", "trainer.max_epochs=3", "purifier.nb=2",
                                           "purifier.nf=32", "purifier.gc=16")
    reductions: tuple[str, ...] = ()

    def precision_of(self, attack: str) -> str:
        """The precision ``attack`` (a row label) is crafted in, in every group: ``"bf16"`` if it is one of
        ``bf16_attacks``, else ``"32"``."""
        return "bf16" if attack in self.bf16_attacks else "32"

    def max_batch_for(self, surrogate: str) -> int:
        return int(self.max_batch.get(surrogate, self.default_max_batch))

    def eps_for(self, surrogate: str) -> tuple[float, ...]:
        """The budgets of ``surrogate``'s untargeted units (Tables 1, 2, 5)."""
        plan = self.surrogate_plans.get(surrogate)
        return self.eps if plan is None else tuple(e for e in self.eps if any(abs(e - p) < 1e-12 for p in plan[0]))

    def attacks_for(self, surrogate: str) -> tuple[str, ...]:
        """The attacks of ``surrogate``'s untargeted units, in table order."""
        plan = self.surrogate_plans.get(surrogate)
        return self.attacks if plan is None else tuple(a for a in self.attacks if a in plan[1])

    def targeted_eps_for(self, surrogate: str) -> tuple[float, ...]:
        """The budgets of ``surrogate``'s targeted units (Table 3); none for a planned surrogate."""
        return () if surrogate in self.surrogate_plans else self.targeted_eps

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)


#: The shipped full-width ResNet-18 costs 16x the FLOPs of the width-16 surrogate: a TPA set of 1000
#: images took about 43 minutes on 2 idle cores in fp32 (83 images/s forward+backward, 210 passes per
#: image). It crafts Tables 1, 2 and 5 at 16/255 with every attack, no 8/255 and no Table 3; the attacks
#: of ``bf16_attacks`` are crafted in bf16 there as everywhere (on ``resnet18`` on 2026-12-03 bf16 took 0.58x
#: TPA's fp32 CPU seconds, 0.63x MI's), and the costly attacks are all in ``precision_check`` so that each
#: can join them once its check passes.
AA_PLAN: tuple[tuple[float, ...], tuple[str, ...]] = ((16 / 255,), ATTACK_LABELS)

FULL = Settings(
    surrogate_plans={"resnet18_aa": AA_PLAN},
    # bf16 only where its check passed (2026-12-03, resnet18, 16/255, 1000 images, paired black-box mean
    # bf16 minus fp32): MI +0.32 points (p = 0.35) and TPA +0.18 (p = 0.67) pass; PGD -0.96 (p = 0.012)
    # fails, so PGD and every unchecked attack stay in fp32
    bf16_attacks=("mi", "tpa"),
    # PGD, MI and TPA (checked on 2026-12-03), then every attack of at least 100 forward+backward passes
    # per image at T = 10 (attack_passes_per_image): TPA paper 210, BSR 200, VT 210, SSA 200, PGN 400,
    # MEF 200, SIA 200, DeCowA 400, L2T about 1018 (expected); each check costs one extra set of the
    # attack on resnet18 (in bf16) and, once passed, lets the attack join bf16_attacks, cutting its
    # resnet18_aa cost (RAP 74 and GNP 20 passes, the others 1 to 10, are too cheap to be worth it)
    precision_check=("pgd", "mi", "tpa", "tpa_paper", "bsr", "vt", "ssa", "pgn", "mef", "sia", "decowa", "l2t"),
    reductions=(
        ("surrogate `resnet18_aa` (the shipped full-width ResNet-18, 16x the FLOPs of `resnet18`): Tables 1, 2 "
         "and 5 at eps 16/255 only, with every attack; no eps 8/255 and no Table 3. Every table, the ablation and "
         "the flatness study run in full on the surrogate `resnet18` trained here."),
    ),
)

QUICK = Settings(
    quick=True, images=40, eps=(16 / 255,), surrogates=("resnet18",),
    attacks=("fgsm", "pgd", "mi", "di", "vt", "bsr", "tpa", "tpa_paper"),
    targeted_attacks=("mi", "tpa"), targeted_eps=(16 / 255,),
    ablation_images=40, ablations=QUICK_ABLATIONS, seed_attacks=("tpa",), seed_values=(1,), chunk=40,
    flat_samples=4, timing_images=16,
    purifier_overrides=("data.limit_train=512", "data.val_size=128", "trainer.max_epochs=1", "purifier.nb=1",
                        "purifier.nf=32", "purifier.gc=16"),
    reductions=(
        "40 test images (4 per class) instead of >= 1,000: intervals are about +-15 points wide",
        "eps 16/255 only (the full run also has 8/255)",
        "only the small surrogate `resnet18` (the full run also crafts on the shipped full-width `resnet18_aa`)",
        ("Tables 1, 2, 5: 8 of the 18 attacks (no NI, TI, SSA, PGN, GNP, RAP, MEF, SIA, DeCowA, L2T); Table 3 "
         "(targeted): MI and TPA only"),
        "ablation: 2 values each of N, mix and T (TPA) and T (MI); no b, k, lambda sweeps",
        "flatness: 4 noise draws per image instead of 8",
        "one-run crafting cost: 16 images instead of 64",
        ("the zoo is trained on 5000 images for 2 epochs and the NRP purifier for one epoch on 512: weak "
        "models (the classifiers score about 25-35 % on the quick images; the quick purifier destroys its "
        "input), for checking the pipeline, not for conclusions"),
    ),
)
