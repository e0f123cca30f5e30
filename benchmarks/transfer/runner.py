"""Orchestration: zoo and purifier, models and targets, then every unit of work in priority order.

A unit = one adversarial set (surrogate, attack, eps, targeted, overrides), its evaluations on the
targets it belongs to, and its flatness. Each piece is cached (see :mod:`.store`); after each unit
the report is rewritten from what is finished, so a killed run leaves a valid partial report and a
restarted run resumes where it stopped. ``compute=False`` (``--report-only``) reads the cache only.
"""
from __future__ import annotations

import fnmatch
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .claims import claim
from .crafting import Unit, craft, crafted_record, unit_key
from .flatness import neighbourhood_grad_norm
from .images import load_test_images, target_classes
from .results import RunState, UnitResult
from .settings import CRAFT_PRIORITY, PARTS, Settings, ablation_default
from .stats import success_counts
from .store import Store, safe_file_name, settings_key
from .targets import Target, cached_predictions, defense_target, model_target
from .timing import timing
from .train_zoo import ensure_zoo, resolve_root, uses_committed_weights
from .zoo import DEFAULT_ROOT, ZOO, zoo_model
from .zoo_weights import restore_model, restore_purifier

REPO = Path(__file__).resolve().parents[2]

#: Which target kinds a part of the run evaluates.
PART_KINDS = {"table1": "normal", "table2": "secured", "table5": "defense"}

def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------ zoo
def zoo_names(s: Settings) -> list[str]:
    """Every zoo model: both surrogates are also normal targets (Table 1's white-box and cross columns)."""
    del s
    return [m.name for m in ZOO if m.role in ("surrogate", "normal", "secured", "smoothing")]


def prepare_zoo(s: Settings, root: Path, train: bool) -> dict[str, str]:
    """name -> build_model spec of every zoo model that exists (trained now if ``train``)."""
    names = zoo_names(s)
    if train:
        specs = dict(ensure_zoo(names=names, root=root, quick=s.quick))
    else:
        if uses_committed_weights(root, s.quick):
            for n in names:
                if restore_model(zoo_model(n), resolve_root(root)):
                    log(f"restored the committed weights of {n}")
        specs = {}
        for n in names:
            m = zoo_model(n)
            ckpt = m.checkpoint(root)
            # a finished train.py run writes metrics.json; a bare last.ckpt may be mid-training
            if ckpt is None or (ckpt.is_file() and (ckpt.parent.parent / "metrics.json").is_file()):
                specs[n] = m.model_spec(root)
    return specs


def purifier_path(root: Path) -> Path:
    return Path(root) / "nrp_purifier" / "purifier.pt"


def prepare_purifier(s: Settings, root: Path, train: bool) -> str | None:
    """Train the NRP purifier on CIFAR-10 (JPEG copy) with train.py if it is missing."""
    path = purifier_path(root)
    if not path.is_file() and uses_committed_weights(root, s.quick) and restore_purifier(path):
        log(f"restored the committed NRP purifier into {path}")
    if path.is_file() or not train:
        return str(path) if path.is_file() else None
    cmd = [sys.executable, "train.py", "task=purifier", "data.name=cifar10", f"seed={s.seed}",
           f"out={path.parent}", "trainer.enable_progress_bar=false", *s.purifier_overrides]
    log("training the NRP purifier: " + " ".join(cmd[1:]))
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not path.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        log("purifier training failed: " + " | ".join(tail))
        return None
    return str(path)


# ------------------------------------------------------------------ models and targets
def fingerprint(model: nn.Module, spec: str) -> dict[str, Any]:
    from tpa_lightning.evaluation.provenance import model_fingerprint

    return {"spec_kind": spec if ":" in spec and not Path(spec).exists() else "checkpoint",
            **model_fingerprint(model)}


def load_models(specs: dict[str, str]) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]]]:
    from tpa_lightning.models import build_model

    models, ids = {}, {}
    for name, spec in specs.items():
        m = build_model(spec).eval()
        for p in m.parameters():
            p.requires_grad_(False)
        models[name], ids[name] = m, fingerprint(m, spec)
    return models, ids


def build_targets(s: Settings, models: dict[str, nn.Module], ids: dict[str, dict[str, Any]],
                  purifier: str | None) -> tuple[list[Target], list[str]]:
    """Targets in column order, and what is missing."""
    from tpa_lightning.evaluation.provenance import file_sha256

    targets: list[Target] = []
    missing: list[str] = []
    for m in ZOO:
        if m.role in ("surrogate", "normal", "secured"):
            if m.name not in models:
                missing.append(m.name)
                continue
            kind = "secured" if m.role == "secured" else "normal"
            targets.append(model_target(m.name, kind, f"{m.name} ({m.family})", models[m.name], ids[m.name]))
    base = s.defense_base
    for d in s.defenses:
        seed = s.seed + 7
        if d == "rs":
            if "gaussian" not in models:
                missing.append("gaussian (randomized smoothing base)")
                continue
            targets.append(defense_target("rs", "gaussian", models["gaussian"], ids["gaussian"], seed,
                                          rs_sigma=s.rs_sigma, rs_n=s.rs_n, rs_alpha=s.rs_alpha))
            continue
        if base not in models:
            missing.append(f"{base} (defense base)")
            continue
        if d == "nrp":
            if purifier is None:
                missing.append("NRP purifier")
                continue
            targets.append(defense_target("nrp", base, models[base], ids[base], seed, nrp_weights=purifier,
                                          nrp_id={"sha256": file_sha256(purifier)}))
            continue
        targets.append(defense_target(d, base, models[base], ids[base], seed))
    return targets, missing


# ------------------------------------------------------------------ units
def craft_order(labels: tuple[str, ...]) -> list[str]:
    return sorted(labels, key=lambda a: CRAFT_PRIORITY.index(a) if a in CRAFT_PRIORITY else len(CRAFT_PRIORITY))


def main_units(s: Settings, surrogate: str) -> list[tuple[str, Unit]]:
    out: list[tuple[str, Unit]] = []
    for eps in sorted(s.eps_for(surrogate), reverse=True):
        out += [("main", Unit(surrogate, a, eps, False, s.steps, precision=s.precision_of(a)))
                for a in craft_order(s.attacks_for(surrogate))]
    return out


def targeted_units(s: Settings, surrogate: str) -> list[tuple[str, Unit]]:
    return [("targeted", Unit(surrogate, a, eps, True, s.steps, precision=s.precision_of(a)))
            for eps in sorted(s.targeted_eps_for(surrogate), reverse=True) for a in craft_order(s.targeted_attacks)]


def seed_units(s: Settings) -> list[tuple[str, Unit]]:
    """The seed study's units, seed by seed (a run stopped part-way has every attack at the first seeds)."""
    return [("seeds", Unit(s.ablation_surrogate, a, s.ablation_eps, False, s.steps, seed=k,
                           precision=s.precision_of(a)))
            for k in s.seed_values for a in s.seed_attacks]


def precision_units(s: Settings) -> list[tuple[str, Unit]]:
    """The precision check's twins: each ``precision_check`` attack (in craft order) on
    ``ablation_surrogate`` at ``ablation_eps`` in the precision it is NOT crafted in
    (:meth:`~.settings.Settings.precision_of`), paired with its main unit there in the one it is."""
    return [("precision", Unit(s.ablation_surrogate, a, s.ablation_eps, False, s.steps,
                               precision="32" if s.precision_of(a) == "bf16" else "bf16"))
            for a in craft_order(s.precision_check)]


def extremes_first(values: tuple[float, ...]) -> list[float]:
    """``values`` (ascending) reordered so that a sweep cut short still spans its range: the smallest,
    the largest, then the middle ones from the centre outwards."""
    if len(values) <= 2:
        return list(values)
    mid = (len(values) - 1) / 2
    inner = sorted(range(1, len(values) - 1), key=lambda i: (abs(i - mid), i))
    return [values[0], values[-1]] + [values[i] for i in inner]


def ablation_units(s: Settings) -> list[tuple[str, Unit]]:
    """The ablation's units, interleaved across the sweeps (each sweep's values extremes first), so that
    a run stopped part-way has measured every sweep's range rather than a few sweeps in full."""
    sweeps: list[list[Unit]] = []
    for ab in s.ablations:
        units = []
        for v in extremes_first(ab.values):
            if ab.param == "steps":
                u = Unit(s.ablation_surrogate, ab.label, s.ablation_eps, False, int(v),
                         precision=s.precision_of(ab.label))
            else:
                default = ablation_default(ab, s.steps)
                over: tuple[tuple[str, Any], ...] = () if default is not None and float(v) == default \
                    else ((ab.param, int(v) if ab.param == "copies" else float(v)),)
                u = Unit(s.ablation_surrogate, ab.label, s.ablation_eps, False, s.steps, over,
                         precision=s.precision_of(ab.label))
            units.append(u)
        sweeps.append(units)
    out: list[tuple[str, Unit]] = []
    seen: set[Unit] = set()
    for i in range(max((len(w) for w in sweeps), default=0)):
        for units in sweeps:
            if i < len(units) and units[i] not in seen:
                seen.add(units[i])
                out.append(("ablation", units[i]))
    return out


def work_list(s: Settings, parts: set[str]) -> list[tuple[str, Unit]]:
    """Units in the order they are made, most informative per CPU-hour first: the precision check (the
    checked attacks' main units at ``ablation_eps`` on ``ablation_surrogate``, then their twins in the
    other precision: it decides which attacks may be crafted in bf16), the untargeted units of the
    surrogates crafted in full (largest eps first), the ablation, the seed study, the targeted units, and
    last the untargeted units of the surrogates with a reduced plan (the expensive full-width ResNet-18).
    A unit listed by two parts comes once, where it is first listed."""
    main = bool(parts & {"table1", "table2", "table5", "flatness"})
    full = [sur for sur in s.surrogates if sur not in s.surrogate_plans]
    work: list[tuple[str, Unit]] = []
    if "precision" in parts:
        twins = {u.label for _, u in precision_units(s)}
        work += [w for w in main_units(s, s.ablation_surrogate)
                 if w[1].label in twins and w[1].eps == s.ablation_eps] + precision_units(s)
    if main:
        work += [w for sur in full for w in main_units(s, sur)]
    if "ablation" in parts:
        work += ablation_units(s)
    if "seeds" in parts:
        work += seed_units(s)
    if "table3" in parts:
        work += [w for sur in s.surrogates for w in targeted_units(s, sur)]
    if main:
        work += [w for sur in s.surrogates if sur in s.surrogate_plans for w in main_units(s, sur)]
    return list(dict.fromkeys(work))          # the precision check lists its main twins first: once


def shard_of(work: list[tuple[str, Unit]], shard: tuple[int, int] | None) -> list[tuple[str, Unit]]:
    """The ``i``-th of ``n`` interleaved shares of ``work`` (``shard = (i, n)``), by distinct unit in work
    order, so that a unit listed in two groups (an ablation default is also a table unit) belongs to
    one shard only and is never crafted twice at once."""
    if shard is None:
        return work
    i, n = shard
    order = list(dict.fromkeys(u for _, u in work))
    mine = {u for j, u in enumerate(order) if j % n == i}
    return [(g, u) for g, u in work if u in mine]


def select_units(work: list[tuple[str, Unit]], patterns: Sequence[str] | None) -> list[tuple[str, Unit]]:
    """The units of ``work`` whose names match ``patterns`` (shell-style, e.g. ``resnet18_aa-tpa-*``); a
    pattern starting with ``!`` excludes what it matches. With only exclusions, everything else is kept;
    ``None`` keeps all."""
    if not patterns:
        return work
    keep = [p for p in patterns if not p.startswith("!")]
    drop = [p[1:] for p in patterns if p.startswith("!")]
    return [(g, u) for g, u in work
            if (not keep or any(fnmatch.fnmatchcase(u.name, p) for p in keep))
            and not any(fnmatch.fnmatchcase(u.name, p) for p in drop)]


def unit_targets(group: str, state: RunState, parts: set[str]) -> list[Target]:
    if group in ("targeted", "ablation", "seeds", "precision"):
        return [t for t in state.targets if t.kind == "normal"]
    kinds = {PART_KINDS[p] for p in parts if p in PART_KINDS}
    if parts & {"flatness", "precision"}:
        kinds.add("normal")
    return [t for t in state.targets if t.kind in kinds]


def process_unit(state: RunState, group: str, unit: Unit, parts: set[str], compute: bool) -> UnitResult | None:
    """:func:`measure_unit` under the unit's claim (:mod:`.claims`) when ``compute``: None, computing
    nothing, while another process holds it, so that processes run side by side share the queue."""
    if not compute:
        return measure_unit(state, group, unit, parts, False)
    with claim(state.store.root / "claims" / f"{safe_file_name(unit.name)}.lock") as held:
        if not held:
            log(f"{unit.name}: another process holds it; skipped")
            return None
        return measure_unit(state, group, unit, parts, True)


def measure_unit(state: RunState, group: str, unit: Unit, parts: set[str], compute: bool) -> UnitResult | None:
    """Evaluate and measure one unit; None if nothing of it is finished and ``compute`` is False.

    The adversarial images are crafted (or read from the tensor cache) only when some evaluation or
    the flatness is missing from the JSON store: a unit whose numbers are all stored (the committed
    ``docs/results/raw``) needs neither its images nor the surrogate's time."""
    s = state.settings
    if unit.surrogate not in state.models:
        return None
    images = state.images
    if group == "ablation" and s.ablation_images < images.y.numel():
        k = s.ablation_images
        images = images.first(k)
    n = images.y.numel()
    tcls = state.targets_cls[:n]
    model = state.models[unit.surrogate]
    target_seed = s.seed + 1
    seed = unit.attack_seed(s.seed)
    key = unit_key(unit, state.ids[unit.surrogate], images, seed, target_seed, s.chunk)
    targets = unit_targets(group, state, parts)
    preds: dict[str, Tensor | None] = {t.name: _cached_only(state.store, t, n, unit.name, key) for t in targets}
    need_flat = not unit.targeted and (group == "ablation" or (group == "main" and "flatness" in parts))
    fkey = settings_key({"unit": key, "radius": s.flat_radius, "samples": s.flat_samples, "seed": s.seed + 3})
    flat = state.store.get_json("flat", unit.name, fkey) if need_flat else None
    record = crafted_record(state.store, unit, key)
    complete = record is not None and all(p is not None for p in preds.values()) and (flat is not None or not need_flat)
    crafted = None
    if not complete:
        if compute:
            state.computed.add(unit.name)
        crafted = craft(state.store, unit, model, state.ids[unit.surrogate], images,
                        tcls if unit.targeted else None, seed, s.chunk, s.max_batch_for(unit.surrogate),
                        target_seed=target_seed, log=log, compute=compute)
        if crafted is None and record is None:
            return None
    if crafted is not None:
        res = UnitResult(unit, group, key, crafted.seconds, crafted.images_per_s, crafted.passes_per_image, n)
    else:
        assert record is not None
        sec = float(record["seconds"])
        res = UnitResult(unit, group, key, sec, n / sec if sec > 0 else float("nan"),
                         float(record["passes_per_image"]), n)
    final = crafted_record(state.store, unit, key) or {}
    res.load_avg, res.threads = final.get("load_avg"), final.get("threads")
    res.cpu_seconds = final.get("cpu_seconds")
    for t in targets:
        pred = preds[t.name]
        if pred is None and crafted is not None and compute:
            pred = cached_predictions(state.store, t, crafted.x_adv, unit.name, key)
        if pred is None:
            continue
        clean = state.clean[t.name][:n]
        res.evals[t.name] = success_counts(pred, images.y, clean, tcls if unit.targeted else None)
        res.hits[t.name] = ((pred == tcls) if unit.targeted else (pred != images.y)).int().tolist()
    if need_flat and flat is None and compute and crafted is not None:
        t0 = time.perf_counter()
        norms = neighbourhood_grad_norm(model, crafted.x_adv, images.y, s.flat_radius * unit.eps,
                                        s.flat_samples, s.seed + 3)
        flat = {"norms": norms.tolist(), "seconds": time.perf_counter() - t0}
        state.store.put_json("flat", unit.name, fkey, flat)
    if flat is not None:
        v = torch.tensor(flat["norms"], dtype=torch.float64)
        res.flat_images = v.tolist()
        res.flat_mean = float(v.mean())
        res.flat_sem = float(v.std() / max(1, v.numel()) ** 0.5) if v.numel() > 1 else 0.0
    return res


def _cached_only(store: Store, t: Target, n: int, what: str, what_key: str) -> Tensor | None:
    """``t``'s stored classes for the ``n`` images of ``what`` (key ``what_key``), or None."""
    key = settings_key({"what": what_key, "target": t.identity, "name": t.name})
    hit = store.get_json("eval", f"{what}--{t.name}", key)
    if hit is None or len(hit["pred"]) != n:
        return None
    return torch.tensor(hit["pred"], dtype=torch.int64)


# ------------------------------------------------------------------ the run
def refresh_models(state: RunState, root: Path, compute: bool) -> bool:
    """Pick up zoo models (and the purifier) that finished since the start (trained by another
    process); returns True if something was added."""
    s = state.settings
    specs = prepare_zoo(s, root, False)
    new = {n: sp for n, sp in specs.items() if n not in state.models}
    pur = str(purifier_path(root)) if purifier_path(root).is_file() else None
    if not new and pur == state.purifier:
        return False
    models, ids = load_models(new)
    state.models.update(models)
    state.ids.update(ids)
    state.specs.update(new)
    state.purifier = pur
    targets, state.missing = build_targets(s, state.models, state.ids, pur)
    ckey = settings_key({"clean": state.images.identity()})
    for t in targets:
        if t.name not in state.clean:
            pred = cached_predictions(state.store, t, state.images.x, "clean", ckey) if compute else \
                _cached_only(state.store, t, state.images.y.numel(), "clean", ckey)
            if pred is not None:
                state.clean[t.name] = pred
    state.targets = [t for t in targets if t.name in state.clean]
    log(f"picked up {', '.join(new) or 'the purifier'}; missing now: {state.missing or 'nothing'}")
    return True


def setup(s: Settings, cache: Path, root: Path, train: bool, compute: bool, raw: Path | None = None) -> RunState:
    t0 = time.perf_counter()
    specs = prepare_zoo(s, root, train and compute)
    t1 = time.perf_counter()
    purifier = prepare_purifier(s, root, train and compute) if "nrp" in s.defenses else None
    t2 = time.perf_counter()
    models, ids = load_models(specs)
    images = load_test_images(s.images)
    targets, missing = build_targets(s, models, ids, purifier)
    store = Store(cache, raw)
    tcls = target_classes(images.y, images.index, 10, s.seed + 1)
    clean: dict[str, Tensor] = {}
    ckey = settings_key({"clean": images.identity()})
    for t in targets:
        pred = cached_predictions(store, t, images.x, "clean", ckey) if compute else \
            _cached_only(store, t, images.y.numel(), "clean", ckey)
        if pred is not None:
            clean[t.name] = pred
    targets = [t for t in targets if t.name in clean]
    state = RunState(s, store, images, tcls, models, ids, specs, targets, clean, missing=missing,
                     purifier=purifier)
    state.timings.update(zoo_seconds=t1 - t0, purifier_seconds=t2 - t1, setup_seconds=time.perf_counter() - t0)
    return state


def run_benchmark(s: Settings, cache: Path, root: Path = DEFAULT_ROOT, parts: set[str] | None = None, train: bool = True,
                  compute: bool = True, on_progress: Callable[[RunState], None] | None = None,
                  raw: Path | None = None, shard: tuple[int, int] | None = None,
                  units: Sequence[str] | None = None, worker: bool = False) -> RunState:
    """Run (or resume) the benchmark: images under ``cache``, numbers under ``raw`` (default ``cache``);
    with ``shard = (i, n)`` only the units of :func:`shard_of`, and of those only the ones that
    :func:`select_units` keeps for the name patterns ``units``. A unit another process holds is
    skipped (:func:`process_unit`); a ``worker``, one of several processes, leaves the one-run timing
    (which needs the machine to itself) alone."""
    parts = set(parts) if parts else set(PARTS)
    torch.manual_seed(s.seed)
    state = setup(s, cache, root, train, compute, raw)
    log(f"setup done in {state.timings['setup_seconds']:.0f} s: {len(state.models)} models, "
        f"{len(state.targets)} targets, {state.images.y.numel()} images; missing: {state.missing or 'nothing'}")
    if on_progress is not None:
        on_progress(state)
    work = select_units(shard_of(work_list(s, parts), shard), units)
    t0 = time.perf_counter()
    watch = compute and not train
    finished: dict[tuple[str, Unit], UnitResult] = {}
    while True:
        added = False
        for i, (group, unit) in enumerate(work):
            if watch and refresh_models(state, root, compute):
                added = True
                for g, u in list(finished):   # evaluate the new targets on what is finished, now
                    r = process_unit(state, g, u, parts, compute)
                    if r is not None:
                        finished[(g, u)] = r
                state.set_results(finished.values())
            prev = finished.get((group, unit))
            if prev is not None and set(prev.evals) >= {t.name for t in unit_targets(group, state, parts)}:
                continue
            state.pending = [u.name for g, u in work[i:] if (g, u) not in finished]
            r = process_unit(state, group, unit, parts, compute)
            if r is None:
                continue
            finished[(group, unit)] = r
            state.set_results(finished.values())
            if compute:
                log(f"unit {i + 1}/{len(work)} {unit.name}: {r.seconds:.1f} s crafting, {len(r.evals)} targets")
                state.pending = [u.name for g, u in work if (g, u) not in finished]
                state.timings["units_seconds"] = time.perf_counter() - t0
                if on_progress is not None:
                    on_progress(state)
        # another pass only when models appeared during this one (their units or columns are new)
        if not added:
            break
    state.set_results(finished.values())
    state.pending = [u.name for g, u in work if (g, u) not in finished]
    state.timings["units_seconds"] = time.perf_counter() - t0
    if "timing" in parts:
        # not in a shard or a unit selection: the measurement needs the machine to itself
        state.timing = one_run_timing(state, compute and shard is None and not units and not worker)
    return state


def one_run_timing(state: RunState, compute: bool) -> dict[str, Any] | None:
    """The crafting cost of every attack of ``settings.timing_surrogate`` measured in one run on the
    first ``settings.timing_images`` images (stored; measured only when missing and ``compute``)."""
    s = state.settings
    sur = s.timing_surrogate
    if sur not in state.models:
        return None
    return timing(state.store, sur, state.ids[sur], state.models[sur], s.attacks_for(sur),
                  state.images.first(s.timing_images), s.timing_eps,
                  s.steps, s.seed, s.max_batch_for(sur), compute, log=log)
