"""Crafting cost of every attack, measured in one run.

The tables' crafting times come from many invocations over several sessions, some of them with other
work on the machine. Here every attack crafts the same images on the same surrogate in one process,
one after the other, in two rounds (forward order, then reverse, so that a slow stretch of the
machine does not land on the same attacks twice); the faster round counts. Ratios between attacks
are comparable; absolute seconds hold for this machine and thread count only.
"""
from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from tpa_lightning.attacks import attack_passes_per_image, build_attack

from .crafting import AttackFactory
from .images import Images
from .settings import attack_config
from .store import Store, settings_key

#: the attack every cost is compared with (one gradient per step: the cheapest iterative attack)
REFERENCE = "mi"
ROUNDS = 2
#: below this many wall seconds the CPU share is not reported: a sub-millisecond interval's CPU time
#: is dominated by the thread pool spinning up and down and reads well above or below 100 %
MIN_SHARE_SECONDS = 0.05


def cpu_share(seconds: float, cpu_seconds: float, threads: int) -> float | None:
    """CPU time over wall time x ``threads`` (1.0: every thread busy throughout); None for an interval
    shorter than :data:`MIN_SHARE_SECONDS`, too short to say."""
    if threads < 1:
        raise ValueError(f"cpu_share: threads must be >= 1, got {threads}")
    if seconds < MIN_SHARE_SECONDS:
        return None
    return cpu_seconds / (seconds * threads)


def timing_settings(surrogate: str, surrogate_id: dict[str, Any], attacks: Sequence[str], images: Images,
                    eps: float, steps: int, seed: int, max_batch: int) -> dict[str, Any]:
    return {"surrogate": surrogate, "surrogate_id": surrogate_id, "attacks": list(attacks),
            "images": images.identity(), "eps": eps, "steps": steps, "seed": seed, "max_batch": max_batch,
            "rounds": ROUNDS}


def measure(model: nn.Module, attacks: Sequence[str], images: Images, eps: float, steps: int, seed: int,
            max_batch: int, factory: AttackFactory = build_attack) -> dict[str, Any]:
    """Craft ``images`` with every attack in ``attacks`` (labels of :data:`settings.ATTACK_LABELS`),
    ``ROUNDS`` times in alternating order; per attack the faster round's wall seconds, the CPU share
    it got in that round, passes per image and cost relative to :data:`REFERENCE`."""
    if not attacks:
        raise ValueError("timing: no attacks to measure")
    if images.y.numel() == 0:
        raise ValueError("timing: no images")
    x, y = images.x, images.y
    threads = torch.get_num_threads()
    built = {}
    for label in attacks:
        name, opts = attack_config(label, eps, steps)
        built[label] = factory(name, model, seed=seed, max_batch=max_batch, **opts)
    built[attacks[0]](x[:2], y[:2])             # warm-up: first-call allocations are not an attack's cost
    best: dict[str, tuple[float, float]] = {}
    for r in range(ROUNDS):
        for label in (attacks if r % 2 == 0 else list(reversed(attacks))):
            t0, c0 = time.perf_counter(), time.process_time()
            built[label](x, y)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
            if label not in best or dt < best[label][0]:
                best[label] = (dt, dc)
    n = y.numel()
    ref = best.get(REFERENCE)
    rows = []
    for label in attacks:
        sec, cpu = best[label]
        passes = float(attack_passes_per_image(built[label]))
        rows.append({"attack": label, "seconds": sec, "images_per_s": n / sec, "passes_per_image": passes,
                     "ms_per_pass": 1000 * sec / (n * passes), "cpu_share": cpu_share(sec, cpu, threads),
                     "relative": None if ref is None else sec / ref[0]})
    return {"rows": rows, "n": n, "threads": threads, "machine": platform.machine(),
            "load_avg": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "measured": time.strftime("%Y-%m-%d %H:%M:%S")}


def timing(store: Store, surrogate: str, surrogate_id: dict[str, Any], model: nn.Module, attacks: Sequence[str],
           images: Images, eps: float, steps: int, seed: int, max_batch: int, compute: bool,
           factory: AttackFactory = build_attack, log: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    """The stored one-run timing for these settings; measured (and stored) when missing and ``compute``,
    else None."""
    settings = timing_settings(surrogate, surrogate_id, attacks, images, eps, steps, seed, max_batch)
    key = settings_key(settings)
    label = f"{surrogate}-eps{eps * 255:.4g}-T{steps}-n{images.y.numel()}"
    got = store.get_json("timing", label, key)
    if got is not None or not compute:
        return got
    if log is not None:
        log(f"timing: {len(attacks)} attacks on {images.y.numel()} images of {surrogate}, {ROUNDS} rounds")
    result = measure(model, attacks, images, eps, steps, seed, max_batch, factory)
    store.put_json("timing", label, key, result, settings=settings)
    return result
