"""Make adversarial examples on a surrogate, cached chunk by chunk so that a killed run resumes.

A :class:`Unit` is one (surrogate, attack, eps, targeted, steps, option overrides, precision) adversarial set.
Its images are crafted ``chunk`` at a time; each finished chunk is written to the cache (``adv/``)
with its wall time. The attacks are batch-independent with a seed (an image's random draws depend
only on the seed and the iteration), so the result does not depend on the chunking.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from tpa_lightning.attacks import Attack, attack_passes_per_image, build_attack

from .images import Images
from .settings import attack_config
from .store import Store, settings_key

AttackFactory = Callable[..., Attack]


@dataclass(frozen=True)
class Unit:
    surrogate: str
    label: str
    eps: float
    targeted: bool
    steps: int
    overrides: tuple[tuple[str, Any], ...] = ()
    #: the attacks' random seed when it is not the run's (the seed study); None: the run's seed
    seed: int | None = None
    #: the attack's precision (``"32"``, or ``"bf16"``: bf16 autocast); only a non-fp32 precision enters the
    #: options, the cache key and the name (``-bf16``), so fp32 units keep the keys they always had
    precision: str = "32"

    @property
    def name(self) -> str:
        extra = "".join(f"-{k}{v:g}" if isinstance(v, (int, float)) else f"-{k}{v}" for k, v in self.overrides)
        extra += "" if self.seed is None else f"-seed{self.seed}"
        extra += "" if self.precision == "32" else f"-{self.precision}"
        return (f"{self.surrogate}-{self.label}-eps{self.eps * 255:.4g}-{'tgt' if self.targeted else 'untgt'}"
                f"-T{self.steps}{extra}")

    def attack_seed(self, run_seed: int) -> int:
        """The seed this unit's attack draws from: its own, else the run's."""
        return run_seed if self.seed is None else self.seed

    def config(self) -> tuple[str, dict[str, Any]]:
        """``(registry name, options)`` of the attack, with ``precision`` unless fp32."""
        name, opts = attack_config(self.label, self.eps, self.steps, **dict(self.overrides))
        if self.precision != "32":
            opts["precision"] = self.precision
        return name, opts


@dataclass
class Crafted:
    unit: Unit
    key: str
    x_adv: Tensor
    seconds: float          # wall seconds of crafting (summed over chunks, as measured when made)
    passes_per_image: float
    cached_chunks: int      # chunks read from the cache in this call
    made_chunks: int        # chunks crafted in this call

    @property
    def images_per_s(self) -> float:
        return float(self.x_adv.shape[0] / self.seconds) if self.seconds > 0 else float("nan")


def unit_settings(unit: Unit, surrogate_id: dict[str, Any], images: Images, seed: int, target_seed: int | None,
                  chunk: int) -> dict[str, Any]:
    name, opts = unit.config()
    return {"surrogate": unit.surrogate, "surrogate_id": surrogate_id, "attack": name, "label": unit.label,
            "options": opts, "targeted": unit.targeted, "target_seed": target_seed if unit.targeted else None,
            "images": images.identity(), "seed": seed, "chunk": chunk}


def unit_key(unit: Unit, surrogate_id: dict[str, Any], images: Images, seed: int, target_seed: int | None,
             chunk: int) -> str:
    """The cache key of ``unit``'s adversarial set (what its evaluations and flatness are keyed by)."""
    return settings_key(unit_settings(unit, surrogate_id, images, seed, target_seed, chunk))


def crafted_record(store: Store, unit: Unit, key: str) -> dict[str, Any] | None:
    """What is kept of a finished adversarial set without its images: ``seconds`` (crafting, summed
    over chunks as measured when made), ``passes_per_image``, ``n``, and how contended the machine was
    (``threads``, ``cpu_seconds`` of the process, ``load_avg``); None if it was never finished."""
    return store.get_json("crafted", unit.name, key)


def craft(store: Store, unit: Unit, model: nn.Module, surrogate_id: dict[str, Any], images: Images,
          targets: Tensor | None, seed: int, chunk: int, max_batch: int = 128, target_seed: int | None = None,
          factory: AttackFactory = build_attack, log: Callable[[str], None] | None = None,
          compute: bool = True) -> Crafted | None:
    """The adversarial set of ``unit`` on ``images``: read from the cache where finished, else made.

    ``targets``: target classes (targeted units only). ``factory``: builds the attack (tests count calls).
    With ``compute=False`` nothing is crafted: None unless every chunk is in the cache."""
    if unit.targeted and targets is None:
        raise ValueError(f"{unit.name}: a targeted unit needs target classes")
    settings = unit_settings(unit, surrogate_id, images, seed, target_seed, chunk)
    key = settings_key(settings)
    name, opts = unit.config()
    atk: Attack | None = None
    parts: list[Tensor] = []
    seconds = 0.0
    cpu: float | None = 0.0     # CPU seconds of this process (all threads); None if a cached chunk lacks them
    cached = made = 0
    n = images.y.numel()
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        ckey = settings_key({**settings, "rows": [start, stop]})
        label = f"{unit.name}-r{start}"
        hit = store.get_tensors("adv", label, ckey)
        if hit is not None and hit["x_adv"].shape[0] == stop - start:
            parts.append(hit["x_adv"])
            seconds += float(hit["seconds"])
            cpu = None if cpu is None or "cpu_seconds" not in hit else cpu + float(hit["cpu_seconds"])
            cached += 1
            continue
        if not compute:
            return None
        if atk is None:
            atk = factory(name, model, seed=seed, max_batch=max_batch, **opts)
        x, y = images.x[start:stop], images.y[start:stop]
        t = None if targets is None or not unit.targeted else targets[start:stop]
        t0, c0 = time.perf_counter(), time.process_time()
        x_adv = atk(x, y, target=t)
        dt, dc = time.perf_counter() - t0, time.process_time() - c0
        store.put_tensors("adv", label, ckey, {"x_adv": x_adv, "seconds": torch.tensor(dt, dtype=torch.float64),
                                               "cpu_seconds": torch.tensor(dc, dtype=torch.float64)})
        parts.append(x_adv)
        seconds += dt
        cpu = None if cpu is None else cpu + dc
        made += 1
        if log is not None:
            log(f"crafted {unit.name} rows {start}:{stop} in {dt:.1f} s ({(stop - start) / dt:.2f} img/s)")
    if atk is None:
        atk = factory(name, model, seed=seed, max_batch=max_batch, **opts)
    out = Crafted(unit, key, torch.cat(parts), seconds, attack_passes_per_image(atk), cached, made)
    record: dict[str, Any] = {"seconds": out.seconds, "passes_per_image": out.passes_per_image, "n": n}
    old = crafted_record(store, unit, key)
    if compute and (old is None or any(old.get(k) != v for k, v in record.items())):
        # the machine's 1-minute load average when the set was finished: how contended its time was
        record["load_avg"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
        record["threads"] = torch.get_num_threads()
        # CPU time the process got while crafting: cpu / (wall x threads) < 1 means it waited for a core
        record["cpu_seconds"] = cpu
        store.put_json("crafted", unit.name, key, record, settings=settings)
    return out
