"""TPA (Fan et al., NeurIPS 2024, arXiv 2311.06423): both the released code and the paper's formula."""
from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from ..checks import OptionError, check_choice, check_int, check_positive
from .base import Attack, per_sample_norm

MODES: tuple[str, ...] = ("official", "paper")
INITS: tuple[str, ...] = ("released", "zeros", "uniform")

#: Upper end of the released code's initial perturbation, U(0, 0.005) in ImageNet-normalised units,
#: in pixel units (x 0.226).
RELEASED_INIT_HIGH = 0.0011

_DEFAULTS: dict[str, dict[str, Any]] = {
    "official": {"eps": 16 / 255, "steps": 10, "copies": 10, "noise_radius": 0.112, "lookahead": 0.0113,
                     "mix": 0.8, "momentum": 0.9, "init": "released", "clamp_each_step": False},
    "paper": {"eps": 16 / 255, "steps": 20, "copies": 10, "noise_radius": 0.112, "lookahead": 0.05,
                  "lam": 5.0, "momentum": 0.0, "init": "zeros", "clamp_each_step": True, "step_size": 1.6 / 255},
}


class TPA(Attack):
    """Theoretically Provable Attack (TPA): flatness-seeking transfer attack.

    Fan, Li, Chen, Zhou, Li, "Transferability Bound Theory: Exploring Relationship between
    Adversarial Transferability and Flatness", NeurIPS 2024. L-inf only. All units are [0, 1] pixel
    units (the released code's ImageNet-normalised constants were multiplied by the std, ~0.226).

    ``mode="official"`` (default) reproduces the authors' released code (class ``TAEFEP``), which
    produced the paper's tables. One iteration, with ``A`` the objective and ``g = dA/du``::

        d0  = g(x + delta)
        z_i = x + delta + noise_i,  noise_i ~ U(-b, b) per element,  i = 1..N
        w_i = z_i - k * sign(g(z_i))           # signed look-ahead towards LOWER objective
        d   = (1 - mix) * d0 + mix * mean_i g(w_i)
        buf = sign(d) (first iteration) else momentum * buf + sign(d)     # SGD-style heavy ball
        delta = clamp(delta + step_size * buf, -eps, eps)

    Defaults: ``eps=16/255``, ``steps=10`` (the first release used 20), ``step_size=eps/10``,
    ``copies`` N = 10, ``noise_radius`` b = 0.112 (28.6/255; 0.496 normalised), ``lookahead``
    k = 0.0113 (2.9/255; 0.05 normalised), ``mix`` = 0.8, ``momentum`` = 0.9,
    ``init="released"`` = U(0, 0.0011) (U(0, 0.005) normalised), ``clamp_each_step=False``
    (the released code does not clamp iterates to [0, 1]; the result is clamped at the end).

    ``mode="paper"`` implements Eq. 5/7/10 literally: maximise
    ``A(x + delta) - lam * E ||g(x + delta + noise)||_2`` with a finite-difference Hessian-vector
    estimate (first-order gradients only)::

        d0  = g(x + delta);  z_i = x + delta + noise_i
        ga  = g(z_i);  v = ga / ||ga||_2 (per image);  gb = g(z_i + k v);  h_i = (gb - ga) / k
        d   = d0 - (lam / N) * sum_i h_i
        delta = clamp(delta + step_size * sign(d), -eps, eps);  x + delta clamped to [0, 1]

    Paper defaults: ``lam`` = 5, b = 16 in the released code's normalised-and-/255 units, i.e.
    ``noise_radius=0.112`` pixels, k = ``lookahead=0.05`` (the paper gives no unit; used here as
    an L2 length in pixel units), N = 10, ``eps=16/255``, ``step_size=1.6/255``, ``steps=20``,
    ``momentum=0`` (offered; with momentum the SGD-style buffer above is used), ``init="zeros"``,
    ``clamp_each_step=True``.

    Cost: ``1 + 2N`` forward+backward passes per image per iteration (210 per image at N=10,
    10 iterations), run as TWO batched calls: the centre with the N noisy copies stacked (B*(N+1)
    rows), then the N look-ahead points (B*N rows), each chunked by ``max_batch``.

    Args (beyond :class:`Attack`'s): ``mode``, ``copies``, ``noise_radius``, ``lookahead``, ``mix``
    (official only), ``lam`` (paper only), ``momentum``, ``init`` (``"released"``, ``"zeros"``,
    ``"uniform"`` = U(-eps, eps)). ``None`` means the mode's default.

    Raises:
        ValueError: an unknown mode or init, a value out of range, or ``mix`` given in paper mode /
            ``lam`` in official mode (options the other mode would silently ignore).
    """

    name: ClassVar[str] = "tpa"
    norms: ClassVar[tuple[str, ...]] = ("linf",)

    def __init__(self, model: nn.Module, eps: float | None = None, steps: int | None = None,
                 step_size: float | None = None, *, mode: str = "official", copies: int | None = None,
                 noise_radius: float | None = None, lookahead: float | None = None, mix: float | None = None,
                 lam: float | None = None, momentum: float | None = None, init: str | None = None,
                 clamp_each_step: bool | None = None, **kwargs: Any) -> None:
        check_choice("mode", mode, MODES)
        d = _DEFAULTS[mode]
        eps = d["eps"] if eps is None else eps
        steps = d["steps"] if steps is None else steps
        if step_size is None:
            step_size = d.get("step_size", float(eps) / 10)
        super().__init__(model, eps=eps, steps=steps, step_size=step_size,
                         clamp_each_step=d["clamp_each_step"] if clamp_each_step is None else clamp_each_step,
                         **kwargs)
        self.mode = mode
        self.copies = check_int("copies", d["copies"] if copies is None else copies, 1)
        self.noise_radius = float(d["noise_radius"] if noise_radius is None else noise_radius)
        check_positive("noise_radius", self.noise_radius, allow_zero=True)
        self.lookahead = float(d["lookahead"] if lookahead is None else lookahead)
        check_positive("lookahead", self.lookahead, allow_zero=(mode == "official"))
        if mix is not None and mode != "official":
            raise OptionError("mix", f"is an option of TPA mode 'official' only, got mode={mode!r}")
        if lam is not None and mode != "paper":
            raise OptionError("lam", f"is an option of TPA mode 'paper' only, got mode={mode!r}")
        self.mix = float(d.get("mix", 0.0) if mix is None else mix)
        if not 0.0 <= self.mix <= 1.0:
            raise OptionError("mix", f"must be in [0, 1], got {mix}")
        self.lam = float(d.get("lam", 0.0) if lam is None else lam)
        check_positive("lam", self.lam, allow_zero=True)
        self.momentum = float(d["momentum"] if momentum is None else momentum)
        check_positive("momentum", self.momentum, allow_zero=True)
        self.init = check_choice("init", d["init"] if init is None else init, INITS)
        self.buf: Tensor | None = None

    def passes_per_step(self) -> float:
        return float(1 + 2 * self.copies)

    def reset(self, x: Tensor) -> None:
        self.buf = None

    def init_delta(self, x: Tensor) -> Tensor:
        if self.init == "zeros":
            return torch.zeros_like(x)
        if self.init == "uniform":
            return self.rand_like_sample(x, low=-self.eps, high=self.eps).clone()
        return self.rand_like_sample(x, low=0.0, high=RELEASED_INIT_HIGH).clone()

    def sample_noise(self, x: Tensor, it: int) -> Tensor:
        """Noise of the N copies, shape (N, B, C, H, W), each element U(-b, b). Override to inject."""
        if self.noise_radius == 0:
            return torch.zeros(self.copies, *x.shape, device=x.device)
        return self.rand_like_sample(x, self.copies, -self.noise_radius, self.noise_radius)

    def direction(self, x: Tensor, delta: Tensor, labels: Tensor, it: int) -> Tensor:
        u = x + delta
        b = x.shape[0]
        z = u.unsqueeze(0) + self.sample_noise(x, it)                     # (N, B, C, H, W)
        g1 = self.stacked_grad(torch.cat([u.unsqueeze(0), z]), labels)     # 1 call: B*(N+1) rows
        d0, gz = g1[0], g1[1:]
        if self.mode == "official":
            w = z - self.lookahead * gz.sign()
            gw = self.stacked_grad(w, labels)                               # 1 call: B*N rows
            return (1.0 - self.mix) * d0 + self.mix * gw.mean(0)
        v = gz / per_sample_norm(gz.flatten(0, 1)).view(self.copies, b, 1, 1, 1).clamp_min(1e-12)
        gb = self.stacked_grad(z + self.lookahead * v, labels)
        h = (gb - gz) / self.lookahead
        return d0 - (self.lam / self.copies) * h.sum(0)

    def update(self, delta: Tensor, direction: Tensor, it: int) -> Tensor:
        s = direction.sign()
        self.buf = s if self.buf is None else self.momentum * self.buf + s
        return delta + self.step_size * self.buf
