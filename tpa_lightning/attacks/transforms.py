"""Composable transfer-attack transforms: DI, TI, SI and Admix as modifiers of any gradient attack.

``build_attack("tpa", model, transforms=["di", "ti"])`` (config: ``attack.transforms=[di,ti]``) is
TPA whose every input gradient is taken through DI and whose direction is smoothed by TI.

The modifiers and their defaults (the papers' and their published code's):

- ``"di"``: :class:`DiverseInputs`, DI (Xie et al., CVPR 2019, "Improving Transferability of
  Adversarial Examples with Input Diversity"): with probability ``p=0.5`` the input is resized to
  a random r in [S, ``resize_rate`` S) with ``resize_rate=1.1`` (nearest), zero-padded at a random
  position to 1.1 S and resized back to S (bilinear), inside the gradient. Images whose
  ``int(1.1 S) == S`` (S < 10, e.g. 8x8) are left as they are. Cost x1.
- ``"ti"``: :class:`TranslationInvariance`, TI (Dong et al., CVPR 2019, "Evading Defenses to
  Transferable Adversarial Examples by Translation-Invariant Attacks"): the attack's direction is
  convolved per channel with a Gaussian kernel of size 7 for inputs up to 64x64 (CIFAR-style) and 15
  otherwise (ImageNet), spanning +-3 standard deviations. Cost x1 (no extra pass).
- ``"si"``: :class:`ScaleInvariance`, SI (Lin et al., ICLR 2020, "Nesterov Accelerated Gradient
  and Scale Invariance for Adversarial Attacks"): ``scales`` m = 5 copies ``u / 2^i``,
  i = 0..4; the gradient w.r.t. ``u`` is the mean over the copies (chain rule included). Cost x5.
- ``"admix"``: :class:`Admix` (Wang et al., ICCV 2021, "Admix: Enhancing the Transferability of
  Adversarial Attacks"): ``mixes`` m2 = 3 partners ``u'`` drawn from the OTHER images of the batch
  (a random permutation each, detached), ``strength`` eta = 0.2, each mix ``u + eta u'`` at
  ``scales`` m1 = 5 scales ``/ 2^i``: 15 copies, gradient averaged. Admix contains SI's scale copies
  by definition, so ``["admix", "si"]`` is refused. Cost x15.

Composition. Any subset of the four, each at most once, in any order: the input-side ones are
applied in the fixed order admix, si, di (``di(si(admix(u)))``, as SI-DI and Admix-DI are
published), then the attack's own transform (DI, BSR classes) just before the model; TI smooths
the attack's direction last. The cost in forward+backward passes per image is the attack's times
the product of the factors (SI x5, Admix x15, DI x1, TI x1): ``attack.passes_per_image()``.

How it works. ``build_attack`` makes an instance of a subclass of the attack's class
(:func:`transformed_class`) that overrides three hooks of :class:`~.base.Attack`:

- :meth:`~.base.Attack.input_grad`: each call stacks K = product of the input factors copies of its
  (M, C, H, W) rows copy-major and draws the copies' transforms; the gradient returned is the mean
  over the K copies, so EVERY gradient the attack takes is ``mean_k d A(T_k(u)) / du`` (TPA: the
  centre, the noisy copies and the look-ahead points; RAP: its inner loop too);
- :meth:`~.base.Attack.transform`: applies copy k's ``T_k`` to its rows inside the gradient (chunked
  by ``max_batch``, EOT as usual), then the attack's own transform;
- :meth:`~.base.Attack.direction`: TI on the result.

Randomness. DI's and Admix's draws come from the call's generator (``attack.generator``, seeded by
the call's seed): one draw per copy, per stacked block of B rows (TPA's centre and each noisy copy
get their own, as separate gradient calls would), per ``input_grad`` call, shared by every image of
the batch (as the published code and the DI class do; also under ``keys``). So with a seed the
result is repeatable and, for DI, SI and TI, attacking a batch equals attacking each image alone.
Admix mixes in OTHER IMAGES OF THE BATCH by definition: it is repeatable with a seed but NOT batch
consistent (a lone image is mixed with itself). SI and TI draw nothing; DI with ``p=0`` draws
nothing, so the attack is then exactly the plain one.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar, cast

import torch
from torch import Tensor, nn

from ..checks import check_int, check_positive
from .base import Attack, iterate_copies
from .input_diversity import resize_pad, smooth_gradient

#: One copy's differentiable transform: ``fn(u, rows)`` with ``rows`` the rows of ``u`` inside
#: their block of B images (Admix reads its partners by them).
CopyFn = Callable[[Tensor, slice], Tensor]
A = TypeVar("A", bound=Attack)


def _identity(u: Tensor, rows: slice) -> Tensor:
    return u


class InputTransform:
    """A modifier of the model's input inside the gradient: :meth:`draw` gives the differentiable
    transforms of its ``passes_factor`` copies; the attack averages the gradients over them."""

    name: ClassVar[str] = ""

    @property
    def passes_factor(self) -> int:
        """Copies per input, i.e. the factor on the attack's passes per image."""
        return 1

    def draw(self, attack: Attack, block: Tensor) -> list[CopyFn]:
        """The ``passes_factor`` copy transforms for the B rows ``block`` (detached inputs of one
        stacked block), drawing any randomness from ``attack.generator``."""
        raise NotImplementedError


class GradientTransform:
    """A modifier of the attack's direction (after the gradients, before the update); no pass."""

    name: ClassVar[str] = ""
    passes_factor: ClassVar[int] = 1

    def apply(self, g: Tensor) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class DiverseInputs(InputTransform):
    """DI: with probability ``p`` a random resize to [S, ``resize_rate`` S), random zero-pad to
    ``resize_rate`` S and resize back (module docstring). ``p=0`` draws nothing."""

    p: float = 0.5
    resize_rate: float = 1.1
    name: ClassVar[str] = "di"

    def __post_init__(self) -> None:
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"di: p must be in [0, 1], got {self.p}")
        if self.resize_rate < 1.0:
            raise ValueError(f"di: resize_rate must be >= 1, got {self.resize_rate}")

    def draw(self, attack: Attack, block: Tensor) -> list[CopyFn]:
        if self.p == 0.0:
            return [_identity]
        apply_, a, b, c = attack.rand_scalars(4, block.device).tolist()
        if apply_ >= self.p:
            return [_identity]
        fn = resize_pad(block.shape[-2], block.shape[-1], self.resize_rate, a, b, c)
        return [lambda u, rows: fn(u)]


@dataclass(frozen=True)
class ScaleInvariance(InputTransform):
    """SI: ``scales`` copies ``u / 2^i``, i = 0 .. scales - 1."""

    scales: int = 5
    name: ClassVar[str] = "si"

    def __post_init__(self) -> None:
        check_int("si: scales", self.scales, 1)

    @property
    def passes_factor(self) -> int:
        return self.scales

    def draw(self, attack: Attack, block: Tensor) -> list[CopyFn]:
        return [_scale_fn(2.0 ** i) for i in range(self.scales)]


def _scale_fn(divisor: float) -> CopyFn:
    return lambda u, rows: u / divisor


@dataclass(frozen=True)
class Admix(InputTransform):
    """Admix: ``mixes`` partners per image from a random permutation of the block's images
    (detached; the block is the stacked point set the image is in, e.g. TPA's noisy copy i is mixed
    with the other images' noisy copy i), each ``(u + strength * u') / 2^i`` at ``scales`` scales:
    scales x mixes copies. Under EOT the E evaluations of a row share its draws."""

    scales: int = 5
    mixes: int = 3
    strength: float = 0.2
    name: ClassVar[str] = "admix"

    def __post_init__(self) -> None:
        check_int("admix: scales", self.scales, 1)
        check_int("admix: mixes", self.mixes, 1)
        check_positive("admix: strength", self.strength, allow_zero=True)

    @property
    def passes_factor(self) -> int:
        return self.scales * self.mixes

    def draw(self, attack: Attack, block: Tensor) -> list[CopyFn]:
        assert attack.generator is not None
        n = block.shape[0]
        added = [self.strength * block[torch.randperm(n, generator=attack.generator, device=block.device)]
                 for _ in range(self.mixes)]
        return [_mix_fn(a, 2.0 ** i) for i in range(self.scales) for a in added]


def _mix_fn(added: Tensor, divisor: float) -> CopyFn:
    return lambda u, rows: (u + added[rows]) / divisor


@dataclass(frozen=True)
class TranslationInvariance(GradientTransform):
    """TI: the direction convolved per channel with a Gaussian kernel of ``kernel_size`` (None: 7
    up to 64x64, else 15) spanning +-``sigma`` standard deviations."""

    kernel_size: int | None = None
    sigma: float = 3.0
    name: ClassVar[str] = "ti"

    def __post_init__(self) -> None:
        if self.kernel_size is not None:
            check_int("ti: kernel_size", self.kernel_size, 1)
            if self.kernel_size % 2 == 0:
                raise ValueError(f"ti: kernel_size must be odd, got {self.kernel_size}")
        check_positive("ti: sigma", self.sigma)

    def apply(self, g: Tensor) -> Tensor:
        return smooth_gradient(g, self.kernel_size, self.sigma)


Transform = InputTransform | GradientTransform

#: Every modifier by name, in the order they are applied (input side: admix, si, di; then ti).
TRANSFORMS: dict[str, type[Transform]] = {
    "admix": Admix, "si": ScaleInvariance, "di": DiverseInputs, "ti": TranslationInvariance,
}
_ORDER = {name: i for i, name in enumerate(TRANSFORMS)}


def parse_transforms(transforms: Iterable[str | Transform] | str | None) -> tuple[Transform, ...]:
    """The modifiers ``transforms`` names (case-insensitive names of :data:`TRANSFORMS` or
    instances, e.g. ``DiverseInputs(p=1.0)``), in the order they are applied.

    Raises:
        ValueError: an unknown name or object, a modifier given twice, or admix with si.
    """
    if transforms is None:
        return ()
    items: list[Any] = [transforms] if isinstance(transforms, str | InputTransform | GradientTransform) else []
    if not items:
        try:
            items = list(transforms)
        except TypeError:
            raise ValueError(f"transforms must be a list of names from {', '.join(TRANSFORMS)}, "
                             f"got {transforms!r}") from None
    out: list[Transform] = []
    for item in items:
        if isinstance(item, InputTransform | GradientTransform):
            t = item
        elif isinstance(item, str) and item.lower() in TRANSFORMS:
            t = TRANSFORMS[item.lower()]()
        else:
            raise ValueError(f"unknown transform {item!r}; known: {', '.join(TRANSFORMS)}")
        if t.name in {o.name for o in out}:
            raise ValueError(f"transform {t.name!r} given twice in {list(items)!r}")
        out.append(t)
    names = {t.name for t in out}
    if {"admix", "si"} <= names:
        raise ValueError("transforms: admix already contains SI's scale copies (Wang et al. 2021); "
                         "give admix or si, not both")
    return tuple(sorted(out, key=lambda t: _ORDER.get(t.name, len(_ORDER))))


def _then(first: CopyFn, second: CopyFn) -> CopyFn:
    return lambda u, rows: second(first(u, rows), rows)


class TransformedAttack(Attack):
    """Mixin of the classes :func:`transformed_class` makes: an attack with ``transforms``
    (module docstring). Keyword arguments only; ``transforms`` survives :meth:`replace`."""

    #: the attack class this one modifies
    attack_class: ClassVar[type[Attack]] = Attack

    def __init__(self, model: nn.Module, *, transforms: Iterable[str | Transform] | str | None = (),
                 **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.transforms: tuple[Transform, ...] = parse_transforms(transforms)
        self.input_transforms = tuple(t for t in self.transforms if isinstance(t, InputTransform))
        self.gradient_transforms = tuple(t for t in self.transforms if isinstance(t, GradientTransform))
        # set during input_grad: the copy transforms [block][copy], rows per copy, rows per block
        self._copy_fns: list[list[CopyFn]] | None = None
        self._copy_rows = 0
        self._block_rows = 0

    def passes_factor(self) -> int:
        """Factor of the transforms on the attack's passes per image (product of theirs)."""
        return math.prod(t.passes_factor for t in self.input_transforms)

    def passes_per_image(self) -> float:
        return super().passes_per_image() * self.passes_factor()

    def input_grad(self, inputs: Tensor, labels: Tensor, values: Tensor | None = None) -> Tensor:
        if not self.input_transforms or self._copy_fns is not None:
            return super().input_grad(inputs, labels, values)
        m = inputs.shape[0]
        b = labels.shape[0] if labels.shape[0] and m % labels.shape[0] == 0 else m
        u = inputs.detach().float()
        fns: list[list[CopyFn]] = []
        for start in range(0, m, b):                       # one draw per stacked block of B rows
            copies: list[CopyFn] = [_identity]
            for t in self.input_transforms:
                copies = [_then(f, g) for f in copies for g in t.draw(self, u[start:start + b])]
            fns.append(copies)
        k = len(fns[0])
        self._copy_fns, self._copy_rows, self._block_rows = fns, m, b
        terms = None if values is None else torch.empty(k * m, device=u.device)
        try:
            g = super().input_grad(u.unsqueeze(0).expand(k, *u.shape).reshape(k * m, *u.shape[1:]), labels,
                                   terms)
        finally:
            self._copy_fns = None
        if values is not None and terms is not None:
            values.copy_(terms.view(k, m).mean(0))        # a row's value: the mean over its copies
        return g.view(k, m, *g.shape[1:]).mean(0)

    def transform(self, u: Tensor, rows: slice) -> Tensor:
        fns = self._copy_fns
        if fns is None:
            return super().transform(u, rows)
        m, b = self._copy_rows, self._block_rows
        start = rows.start or 0
        parts = []
        for k, lo, hi in iterate_copies(start, start + u.shape[0], m):     # copy k of the transforms
            first = start + lo - k * m                                       # row in the attack's batch
            pieces = []
            for j, a, c in iterate_copies(first, first + hi - lo, b):       # the attack's block j
                r = first + a - j * b
                pieces.append(fns[j][k](u[lo + a:lo + c], slice(r, r + c - a)))
            piece = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
            parts.append(super().transform(piece, slice(first, first + hi - lo)))
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        d = super().direction(x, delta, labels, it)
        for t in self.gradient_transforms:
            d = t.apply(d)
        return d

    def __reduce_ex__(self, protocol: Any) -> Any:
        # the class is made at run time: rebuild it from the attack class it modifies
        return (_new_transformed, (self.attack_class,), self.__dict__)

    def __repr__(self) -> str:
        return f"{super().__repr__()[:-1]}, transforms={[t.name for t in self.transforms]})"


def _new_transformed(attack_class: type[Attack]) -> Attack:
    cls = transformed_class(attack_class)
    return cls.__new__(cls)


_CLASSES: dict[type[Attack], type[Attack]] = {}


def transformed_class(cls: type[A]) -> type[A]:
    """The subclass of ``cls`` taking ``transforms=[...]`` (made once per class; a class made by
    this function is returned as it is)."""
    if issubclass(cls, TransformedAttack):
        return cls
    if cls not in _CLASSES:
        _CLASSES[cls] = type(f"{cls.__name__}WithTransforms", (TransformedAttack, cls), {
            "__module__": __name__, "attack_class": cls,
            "__doc__": f"{cls.__name__} with composable transforms (tpa_lightning.attacks.transforms).",
        })
    return cast("type[A]", _CLASSES[cls])


def with_transforms(attack: Attack, transforms: Iterable[str | Transform] | str | None) -> Attack:
    """A new attack: ``attack``'s class and constructor options with ``transforms`` (replacing any it
    had); ``attack`` is left as it is. Empty ``transforms`` gives the plain attack class."""
    base = attack.attack_class if isinstance(attack, TransformedAttack) else type(attack)
    options = {k: v for k, v in attack._init_options.items() if k != "transforms"}
    if not parse_transforms(transforms):
        return base(**options)
    cls: type[Any] = transformed_class(base)
    return cast(Attack, cls(**options, transforms=transforms))
