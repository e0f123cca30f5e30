"""``Attack``: the base class. The attack loop is written once here (template method); each attack
overrides only the hooks it needs:

- :meth:`Attack.init_delta`    initial perturbation (default: zeros);
- :meth:`Attack.transform`     differentiable input transform applied inside the gradient (DI, BSR);
- :meth:`Attack.direction`     the ascent direction at ``x + delta`` (default: the input gradient);
- :meth:`Attack.update`        how ``delta`` moves along the direction (default: sign step / L2 step);
- :meth:`Attack.project`       back into the budget (and the [0, 1] box with ``clamp_each_step``).

The base class owns everything around that: input checks, the model-mode context, the objective
(summed per sample), the random generator, batched and ``max_batch``-chunked gradient passes
(:meth:`Attack.input_grad`; :meth:`Attack.pullback_grad` for gradients through a map applied
before them), EOT and ``torch.autocast``.

Randomness. Three schemes, chosen per call (``atk(x, y, seed=..., keys=...)``; the seed defaults to
the one given at construction):

- ``keys`` given (one int per image, e.g. its index in the dataset) and a seed: image ``i`` draws
  its per-image quantities (noise, random start, copies) from its own stream, seeded by
  ``(seed, keys[i])``. Draws are independent between images AND independent of the batch an
  image is in: what adversarial training and evaluation both want.
- a seed without ``keys``: every per-image quantity is drawn ONCE per call and shared by every
  image of the batch, so an image's draws depend only on the seed and the iteration, never on its
  batch (attacking a batch equals attacking each image alone). Every image of a batch then starts
  from the same random pattern: right for a repeatable evaluation, wrong for training.
- ``seed=None``: a randomly seeded generator, independent draws per image, not repeatable.

Random input transforms (DI, BSR, and the other per-copy parameters of :meth:`rand_scalars`) are
drawn once per copy for the whole batch from the call's generator, as in the methods' published code.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from ..checks import OptionError, check_choice, check_images, check_int, check_labels, check_positive
from ..chunking import AUTO, ChunkSize, check_max_batch
from .context import model_eval_no_param_grad
from .objectives import LOSSES, per_sample_objective

if TYPE_CHECKING:
    from typing_extensions import Self

NORMS: tuple[str, ...] = ("linf", "l2")
PRECISIONS: dict[str, torch.dtype | None] = {
    "32": None, "32-true": None, "fp32": None,
    "bf16": torch.bfloat16, "bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16,
    "16": torch.float16, "16-mixed": torch.float16, "fp16": torch.float16, "16-true": torch.float16,
}


def attack_precision(precision: str | int | None) -> str:
    """The attack precision (a key of :data:`PRECISIONS`) for a Lightning or config precision:
    ``"bf16-mixed"``/``"bf16"`` -> ``"bf16"``, ``"16-mixed"``/``"16"`` -> ``"16"``, anything else
    (``"32"``, ``"32-true"``, ``"64-true"``, None) -> ``"32"`` (attacks run in fp32 or under autocast)."""
    p = str(precision or "32")
    return "bf16" if p.startswith("bf16") else "16" if p.startswith("16") else "32"


def per_sample_norm(t: Tensor, p: float = 2.0) -> Tensor:
    """Norm of each sample (over all but the first dim), shaped ``(N, 1, 1, ...)`` for broadcasting."""
    flat = t.flatten(1)
    n = flat.abs().amax(1) if p == float("inf") else flat.norm(p=p, dim=1)
    return n.view(-1, *([1] * (t.dim() - 1)))


def per_sample_mean_abs(t: Tensor) -> Tensor:
    """Mean of |t| over each sample's C*H*W, shaped for broadcasting (the MI-FGSM normaliser)."""
    return t.abs().flatten(1).mean(1).view(-1, *([1] * (t.dim() - 1)))


def stream_seed(seed: int, key: int) -> int:
    """Seed of image ``key``'s random stream under the call seed ``seed`` (a 63-bit hash of both, so
    neighbouring keys or seeds give unrelated streams)."""
    digest = hashlib.blake2b(f"{int(seed)}:{int(key)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1



class Attack:
    """Base class of every attack: call ``atk(x, y)`` (untargeted) or ``atk(x, y, target=t)``.

    Args:
        model: classifier taking [0, 1] NCHW images, returning logits. DDP/DataParallel wrappers are
            unwrapped. It runs in eval mode with parameter grads off; both are restored afterwards.
        eps: budget in [0, 1] pixel units (L-inf: per element; L2: per image over C*H*W).
            Default 8/255 (attack-specific defaults in the subclasses).
        steps: iterations (>= 1). Default 10.
        step_size: step per iteration, pixel units; default ``eps / steps``.
        norm: ``"linf"`` (default) or ``"l2"`` where the attack allows it.
        seed: seed of the attack's ``torch.Generator`` (re-seeded on every call, so the same seed
            gives the same result); ``None`` (default) is nondeterministic.
        max_batch: most inputs sent through the model in one forward+backward; multi-sample
            passes are stacked and chunked by it, so memory is bounded by it. ``"auto"``
            (default): 64-row chunks on a CPU (the fastest measured there), the whole stacked
            batch at once on a GPU, halved on out-of-memory (:mod:`tpa_lightning.chunking`). An
            int is used as given. The result does not depend on it (each row's gradient is
            independent).
        clamp_each_step: keep every iterate ``x + delta`` inside [0, 1] (default True).
        precision: ``"32"`` (default), ``"bf16"`` or ``"16"``: the model runs under
            ``torch.autocast``; delta, the update and the gradients stay fp32.
        loss: ``"ce"`` (default) or ``"logit"``; see :func:`attack_objective`.
        eot_samples: forward passes averaged per gradient (Expectation over Transformation) for
            randomised models; default ``getattr(model, "eot_samples", 1)``.
    """

    #: registry name
    name: ClassVar[str] = "attack"
    #: norms this attack supports
    norms: ClassVar[tuple[str, ...]] = ("linf",)
    default_eps: ClassVar[float] = 8 / 255
    default_steps: ClassVar[int] = 10
    #: the constructor's options as called (model included), for :meth:`replace`
    _init_options: dict[str, Any]

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        obj = super().__new__(cls)
        # What the constructor was called with, for replace(): bound to the outermost __init__'s names
        # (a call __init__ will reject anyway, or a copy made without arguments, records nothing).
        signature = inspect.signature(cls.__init__)
        try:
            bound = signature.bind_partial(obj, *args, **kwargs)
        except TypeError:
            bound = None
        options = {} if bound is None else {k: v for k, v in bound.arguments.items() if k != "self"}
        for name, param in signature.parameters.items():
            if param.kind is inspect.Parameter.VAR_KEYWORD and name in options:
                options.update(options.pop(name))
        obj._init_options = options
        return obj

    def __init__(self, model: nn.Module, eps: float | None = None, steps: int | None = None,
                 step_size: float | None = None, norm: str = "linf", seed: int | None = None,
                 max_batch: int | str = AUTO, clamp_each_step: bool = True, precision: str | int = "32",
                 loss: str = "ce", eot_samples: int | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.eps = float(self.default_eps if eps is None else eps)
        check_positive("eps", self.eps, allow_zero=True)
        self.steps = check_int("steps", self.default_steps if steps is None else steps, 1)
        self.step_size = float(self.eps / self.steps if step_size is None else step_size)
        check_positive("step_size", self.step_size, allow_zero=True)   # 0: the random start alone
        check_choice("norm", norm, NORMS)
        if norm not in self.norms:
            raise OptionError("norm", f"must be one of {', '.join(self.norms)} ({type(self).__name__} supports no "
                              f"other), got {norm!r}")
        self.norm = norm
        self.seed = seed
        self.max_batch = check_max_batch("max_batch", max_batch)
        self._chunks = ChunkSize(self.max_batch)
        self.clamp_each_step = bool(clamp_each_step)
        self.precision = check_choice("precision", str(precision), tuple(PRECISIONS))
        self.autocast_dtype = PRECISIONS[self.precision]
        self.loss = check_choice("loss", loss, LOSSES)
        eot = getattr(model, "eot_samples", 1) if eot_samples is None else eot_samples
        self.eot_samples = check_int("eot_samples", eot, 1)
        self._num_classes: int | None = None
        # per-call state, set in __call__
        self.net: nn.Module = model
        self.targeted = False
        self.generator: torch.Generator | None = None
        self.image_generators: list[torch.Generator] | None = None
        self.seeded = False

    # ------------------------------------------------------------------ public
    def __call__(self, x: Tensor, y: Tensor, target: Tensor | None = None, *, seed: int | None = None,
                 keys: Tensor | None = None) -> Tensor:
        return self.perturb(x, y, target=target, seed=seed, keys=keys)

    def replace(self, **changes: Any) -> Attack:
        """A new attack of the same class with the constructor options of this one, ``changes``
        applied (the constructor checks them again); this attack is left as it is.

        Raises:
            ValueError / TypeError: as the constructor does for a bad or unknown option.
        """
        return type(self)(**{**self._init_options, **changes})

    def perturb(self, x: Tensor, y: Tensor, target: Tensor | None = None, *, seed: int | None = None,
                keys: Tensor | None = None) -> Tensor:
        """Return ``x_adv`` in [0, 1] with ``x_adv - x`` inside the budget.

        ``x``: float NCHW images in [0, 1]; ``y``: true labels (N,); ``target``: target labels for
        a targeted attack (the objective then pulls towards ``target``), or None. ``seed``: this
        call's seed (default: the attack's ``seed``). ``keys``: one integer per image naming its
        random stream (e.g. its dataset index); needs a seed. See the module docstring.

        Raises:
            ValueError: bad images, labels or keys.
        """
        check_images(x, "x")
        with model_eval_no_param_grad(self.model) as net:
            self.net = net
            num_classes = self._infer_num_classes(x)
            check_labels(y, x.shape[0], num_classes, "y")
            if target is not None:
                check_labels(target, x.shape[0], num_classes, "target")
            labels = (target if target is not None else y).to(x.device)
            self.targeted = target is not None
            call_seed = self.seed if seed is None else int(seed)
            self.generator = self._make_generator(x.device, call_seed)
            self.image_generators = self._image_generators(x, call_seed, keys)
            x = x.detach().float()
            with torch.enable_grad():
                delta = self.optimize_delta(x, labels)
            return (x + delta).clamp(0.0, 1.0).detach().to(x.dtype)

    def passes_per_image(self) -> float:
        """Forward+backward passes per image of one call (EOT included)."""
        return float(self.steps * self.passes_per_step() * self.eot_samples)

    def passes_per_step(self) -> float:
        """Forward+backward passes per image per iteration (before EOT). Override if not 1."""
        return 1.0

    # ------------------------------------------------------------------ template
    def optimize_delta(self, x: Tensor, labels: Tensor) -> Tensor:
        """The attack loop, written once. Returns the final fp32 ``delta``."""
        self.reset(x)
        delta = self.project(x, self.init_delta(x).float())
        for it in range(self.steps):
            d = self.direction(x, delta, labels, it)
            delta = self.project(x, self.update(delta, d, it))
        return delta.detach()

    # ------------------------------------------------------------------ hooks
    def reset(self, x: Tensor) -> None:
        """Clear per-call state (momentum buffers ...). Called once per call, before ``init_delta``."""

    def init_delta(self, x: Tensor) -> Tensor:
        """Initial perturbation (default zeros)."""
        return torch.zeros_like(x)

    def transform(self, u: Tensor, rows: slice) -> Tensor:
        """Differentiable transform applied to the inputs ``u`` (rows ``rows`` of the stacked batch)
        just before the model, inside the gradient. Default: identity."""
        return u

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        """Ascent direction at ``x + delta`` (default: the input gradient of the objective)."""
        return self.input_grad(x + delta, labels)

    def update(self, delta: Tensor, direction: Tensor, it: int) -> Tensor:
        """Move ``delta`` along ``direction``: ``step_size * sign`` (L-inf) or an L2-normalised step."""
        return delta + self.step_size * self.steepest(direction)

    def project(self, x: Tensor, delta: Tensor) -> Tensor:
        """Project ``delta`` into the eps-ball, and ``x + delta`` into [0, 1] if ``clamp_each_step``."""
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            n = per_sample_norm(delta)
            delta = delta * torch.clamp(self.eps / n.clamp_min(1e-12), max=1.0)
        if self.clamp_each_step:
            delta = (x + delta).clamp(0.0, 1.0) - x
        return delta

    # ------------------------------------------------------------------ helpers
    def steepest(self, g: Tensor) -> Tensor:
        """Steepest-ascent unit step for the norm: ``sign(g)`` (L-inf) or ``g / ||g||_2`` (L2)."""
        if self.norm == "linf":
            return g.sign()
        return g / per_sample_norm(g).clamp_min(1e-12)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager[Any]:
        """``torch.autocast`` for the chosen precision (a no-op at fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.autocast_dtype)

    def input_grad(self, inputs: Tensor, labels: Tensor, values: Tensor | None = None) -> Tensor:
        """Input gradients of the summed objective for a (stacked) batch.

        ``inputs``: (M, C, H, W), any M (e.g. B * copies stacked copy-major); ``labels``: (M,) or
        (B,) with M a multiple of B (then repeated). Runs chunks of at most ``max_batch`` rows
        (``"auto"``: see :mod:`tpa_lightning.chunking`) through :meth:`transform`, the model (under
        autocast) and ``torch.autograd.grad`` w.r.t. the input only. With ``eot_samples = E > 1``
        each row is evaluated E times (stacked, chunked) and the gradients averaged. Returns fp32
        gradients shaped like ``inputs``; they do not depend on the chunk size (each row's
        gradient is independent of the other rows).

        ``values``: an optional fp32 tensor of shape (M,), filled with each row's term of the
        objective (:func:`~.objectives.per_sample_objective`, averaged over the E evaluations), from
        the same passes.
        """
        m = inputs.shape[0]
        if labels.shape[0] != m:
            labels = labels.repeat(m // labels.shape[0])
        e = self.eot_samples
        flat = inputs.detach().float()
        if e > 1:
            flat = flat.repeat(e, 1, 1, 1)
            labels = labels.repeat(e)
        grads = torch.empty_like(flat)
        terms = None if values is None else torch.empty(flat.shape[0], device=flat.device)

        def chunk_grad(start: int, stop: int) -> None:
            chunk = flat[start:stop].requires_grad_(True)
            first = start % m if e > 1 else start
            with self.autocast(chunk.device):
                if e > 1 and (start // m) != ((stop - 1) // m):
                    # chunk crosses an EOT repetition boundary: transform row by row block
                    pieces = [self.transform(chunk[i:i + 1], slice((start + i) % m, (start + i) % m + 1))
                              for i in range(stop - start)]
                    u = torch.cat(pieces)
                else:
                    u = self.transform(chunk, slice(first, first + stop - start))
                logits = self.net(u)
            per = per_sample_objective(logits, labels[start:stop], self.targeted, self.loss)
            (g,) = torch.autograd.grad(per.sum(), chunk)
            grads[start:stop] = g.float()   # written only once the chunk has succeeded
            if terms is not None:
                terms[start:stop] = per.detach()

        if self._chunks.max_batch != self.max_batch:   # max_batch was reassigned after construction
            self._chunks = ChunkSize(check_max_batch("max_batch", self.max_batch))
        self._chunks.run(chunk_grad, flat.shape[0], flat.device)
        if e > 1:
            grads = grads.view(e, m, *grads.shape[1:]).mean(0)
        if values is not None and terms is not None:
            values.copy_(terms.view(e, m).mean(0))
        return grads

    def stacked_grad(self, points: Tensor, labels: Tensor) -> Tensor:
        """Gradients at ``points`` shaped (K, B, C, H, W): one batched, chunked pass of B*K rows."""
        k, b = points.shape[:2]
        return self.input_grad(points.reshape(k * b, *points.shape[2:]), labels).view(points.shape)

    def pullback_grad(self, fn: Callable[[Tensor], Tensor], leaf: Tensor, labels: Tensor,
                      weights: Tensor | None = None, values: Tensor | None = None) -> Tensor:
        """Gradient w.r.t. ``leaf`` (any shape) of ``sum_r weights[r] * A_r`` over the model inputs
        ``fn(leaf)`` (M rows): the rows' input gradients come from ONE :meth:`input_grad` call
        (chunked by ``max_batch``, EOT, autocast, ``values`` as there) and are pulled back through
        ``fn``, a differentiable map run here in fp32 (warps, transformation pools, maps of
        transform parameters). ``labels``: as :meth:`input_grad` takes them; ``weights``: (M,) or
        None (all 1). Returns fp32 zeros where ``fn(leaf)`` does not depend on ``leaf``.
        """
        with torch.enable_grad():
            src = leaf.detach().float().requires_grad_(True)
            rows = fn(src)
        g = self.input_grad(rows.detach(), labels, values=values)
        if weights is not None:
            g = g * weights.view(-1, *([1] * (g.dim() - 1))).to(g.dtype)
        if not rows.requires_grad:
            return torch.zeros_like(src)
        (out,) = torch.autograd.grad(rows, src, grad_outputs=g.to(rows.dtype), allow_unused=True)
        return torch.zeros_like(src) if out is None else out

    def _make_generator(self, device: torch.device, seed: int | None) -> torch.Generator:
        gen = torch.Generator(device=device)
        self.seeded = seed is not None
        if seed is not None:
            gen.manual_seed(int(seed))
        else:
            gen.seed()
        return gen

    def _image_generators(self, x: Tensor, seed: int | None, keys: Tensor | None) -> list[torch.Generator] | None:
        """One generator per image, seeded by ``(seed, keys[i])`` (None without keys)."""
        if keys is None:
            return None
        keys = torch.as_tensor(keys)
        if seed is None:
            raise ValueError("keys need a seed: pass seed= to the call or to the attack")
        if keys.dim() != 1 or keys.shape[0] != x.shape[0] or keys.is_floating_point():
            raise ValueError(f"keys must be integers of shape ({x.shape[0]},), got {keys.dtype} {tuple(keys.shape)}")
        return [torch.Generator(device=x.device).manual_seed(stream_seed(seed, int(k))) for k in keys.tolist()]

    def rand_like_sample(self, x: Tensor, copies: int | None = None, low: float = 0.0,
                         high: float = 1.0, normal: bool = False) -> Tensor:
        """Per-image random tensor: U(low, high) (or N(0, 1) with ``normal``).

        Shape ``(B, C, H, W)`` or, with ``copies=K``, ``(K, B, C, H, W)``. With ``keys`` each image
        draws from its own stream; with a seed and no keys the draw is made once per image shape and
        broadcast over the batch; without a seed each image gets its own draw (module docstring).
        """
        assert self.generator is not None
        b = x.shape[0]
        lead = () if copies is None else (copies,)
        draw = torch.randn if normal else torch.rand
        if self.image_generators is not None:
            one = (*lead, 1, *x.shape[1:])
            r = torch.cat([draw(one, generator=g, device=x.device, dtype=torch.float32)
                           for g in self.image_generators], dim=len(lead))
            shared = False
        else:
            shared = self.seeded
            shape = (*lead, 1 if shared else b, *x.shape[1:])
            r = draw(shape, generator=self.generator, device=x.device, dtype=torch.float32)
        if not normal:
            r = r * (high - low) + low
        return r.expand(*lead, b, *x.shape[1:]) if shared else r

    def rand_scalars(self, n: int, device: torch.device) -> Tensor:
        """``n`` U(0, 1) scalars from the attack's generator (for per-copy transform parameters)."""
        assert self.generator is not None
        return torch.rand(n, generator=self.generator, device=device)

    def _infer_num_classes(self, x: Tensor) -> int:
        if self._num_classes is None:
            with torch.no_grad(), self.autocast(x.device):
                out = self.net(x[:1].float())
            if out.dim() != 2:
                raise ValueError(f"the model must return logits of shape (N, classes), got {tuple(out.shape)}")
            self._num_classes = int(out.shape[1])
        return self._num_classes

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(eps={self.eps:.5g}, steps={self.steps}, step_size={self.step_size:.5g}, "
                f"norm={self.norm!r}, seed={self.seed}, max_batch={self.max_batch!r}, precision={self.precision!r})")


class MomentumMixin(Attack):
    """Adds the MI-FGSM update ``m <- mu m + g / mean|g|; delta += a * sign(m)`` (L2: ``m / ||m||_2``)."""

    def __init__(self, model: nn.Module, *, momentum: float = 1.0, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        check_positive("momentum", momentum, allow_zero=True)
        self.momentum = float(momentum)
        self.m: Tensor | None = None

    def reset(self, x: Tensor) -> None:
        self.m = None

    def update(self, delta: Tensor, direction: Tensor, it: int) -> Tensor:
        g = direction / per_sample_mean_abs(direction).clamp_min(1e-12)
        self.m = g if self.m is None else self.momentum * self.m + g
        return delta + self.step_size * self.steepest(self.m)


def iterate_copies(start: int, stop: int, block: int) -> Iterator[tuple[int, int, int]]:
    """Split rows ``[start, stop)`` of a copy-major stacked batch (copies of ``block`` rows) into
    runs ``(copy_index, local_start, local_stop)`` relative to ``start``."""
    r = start
    while r < stop:
        k = r // block
        end = min(stop, (k + 1) * block)
        yield k, r - start, end - start
        r = end
