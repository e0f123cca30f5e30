"""The evaluate.py job: config -> data + models (+ defenses) -> sections in a Lightning test loop ->
report.json, report.md, CSV tables and PNG plots under ``out``."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig
from torch import nn

import defenses

from ..config import to_container
from ..data.imagenet_labels import check_model_classes
from ..job_setup import build_trainer, datamodule_from, newest_run
from ..models import build_model
from ..models.normalized import check_input_size
from .autoattack_eval import AutoAttackSection
from .cache import SectionCache, settings_key
from .certified import CertifySection
from .dataset import fingerprint
from .defended import BoxedInput, DefenseSection, declared
from .loop import EvaluationLoop
from .probes import ProbeSection
from .provenance import file_sha256, model_fingerprint, versions
from .report import assemble, write_all
from .section import Section, attack_label
from .transfer import TransferSection
from .whitebox import CleanSection, WhiteBoxSection

MODEL = "model"


def resolve_model_spec(cfg: DictConfig) -> tuple[str, str | None]:
    """``(spec, checkpoint)`` of the evaluated model: ``checkpoint=`` if given; else ``model.name`` if
    it names weights (``pretrained:``, ``robustbench:`` or a file) or ``model.weights`` gives a local
    weight file for a ``timm:``/``torchvision:`` architecture (then the checkpoint is that file); else
    ``last.ckpt`` of the newest
    run of ``experiment`` under ``outputs/`` (FileNotFoundError if there is none)."""
    if cfg.checkpoint:
        path = Path(str(cfg.checkpoint))
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint: file not found: {path}")
        return str(path), str(path)
    name = str(cfg.model.name)
    if cfg.model.weights:                  # timm:/torchvision: architecture + a local weight file
        path = Path(str(cfg.model.weights))
        if not path.is_file():
            raise FileNotFoundError(f"model.weights: file not found: {path}")
        return name, str(path)
    if name.startswith(("pretrained:", "robustbench:")):
        return name, None
    if Path(name).is_file():
        return name, name
    run = newest_run(str(cfg.train_experiment))
    if run is None:
        raise FileNotFoundError(
            f"no checkpoint to evaluate: no outputs/{cfg.train_experiment}/<timestamp>/checkpoints/last.ckpt; "
            "run `python train.py` first or pass checkpoint=PATH")
    path = run / "checkpoints" / "last.ckpt"
    return str(path), str(path)


def _build(spec: str, cfg: DictConfig, info: Any) -> nn.Module:
    torch.manual_seed(int(cfg.seed))      # random-init architectures are repeatable
    m = cfg.model
    kwargs = dict(to_container(cfg)["model"]["kwargs"]) if not Path(spec).exists() else {}
    model = build_model(spec, num_classes=info.num_classes, in_chans=info.in_chans,
                        mean=list(info.mean) if m.normalize else None, std=list(info.std) if m.normalize else None,
                        model_dir=str(m.model_dir), arch=m.arch, weights=m.weights if spec == m.name else None, **kwargs)
    return model.eval()


def defended_models(cfg: DictConfig, model: nn.Module) -> tuple[dict[str, nn.Module], dict[str, dict[str, Any]]]:
    """The defenses of ``cfg.defenses`` around ``model``, and what each declares / is attacked with."""
    entries = to_container(cfg)["defenses"]
    names = [str(d["name"]) for d in entries]
    out: dict[str, nn.Module] = {}
    info: dict[str, dict[str, Any]] = {}
    for i, d in enumerate(entries):
        key = names[i] if names.count(names[i]) == 1 else f"{names[i]}#{i}"
        opts = dict(d.get("options") or {})
        if "seed" in defenses.defense_options(d["name"].split("+")[0]) and "+" not in d["name"]:
            opts.setdefault("seed", int(cfg.seed))
        dm: Any = defenses.build_defense(d["name"], model, **opts).eval()
        if not d.get("bpda", True) and hasattr(dm, "set_grad_mode"):
            dm.set_grad_mode("none")
        decl = declared(dm)
        decl["eot_samples_used"] = int(d["eot_samples"]) if d.get("eot_samples") is not None else decl["eot_samples"]
        decl["bpda_used"] = bool(d.get("bpda", True)) and decl["gradient"] == "bpda"
        decl["grad_mode"] = getattr(dm, "grad_mode", "default")
        out[key], info[key] = BoxedInput(dm), {"settings": d, **decl}
    return out, info


def select(attacks: list[dict[str, Any]], labels: list[str], refs: list[str]) -> tuple[list[dict[str, Any]], list[str]]:
    """The attack entries named in ``refs`` (a name selects every entry of that name; [] = all)."""
    if not refs:
        return attacks, labels
    want = {str(r).lower() for r in refs}
    keep = [i for i, (a, lab) in enumerate(zip(attacks, labels)) if lab in want or str(a["name"]).lower() in want
            or f"{str(a['name']).lower()}#{i}" in want]
    return [attacks[i] for i in keep], [labels[i] for i in keep]


def plan_sections(cfg: DictConfig, model_ids: dict[str, Any], def_info: dict[str, dict[str, Any]],
                  data_id: dict[str, Any]) -> tuple[list[Section], dict[str, Any]]:
    """The report's sections, and notes for the sections that are switched off or empty."""
    c = to_container(cfg)
    seed = int(cfg.seed)
    attacks = c["attacks"]
    labels = attack_label(attacks)
    eps = sorted({float(e) for e in c["eps"]})
    n_images = int(data_id["images"])       # per-image outcomes for paired comparisons between models
    sections: list[Section] = [CleanSection(n_images)]
    sections += [WhiteBoxSection(a, lab, eps, seed, n_images) for a, lab in zip(attacks, labels)]
    notes: dict[str, Any] = {}
    t = c["transfer"]
    if t["enabled"] and attacks:
        sources = list(dict.fromkeys([MODEL if s == MODEL else s for s in t["sources"]]))
        targets = list(dict.fromkeys(list(t["targets"]) + (list(def_info) if t["defended_targets"] else [])))
        if sources and targets:
            t_atk, t_lab = select(attacks, labels, t["attacks"])
            t_eps = [float(t["eps"]) if t["eps"] is not None else float(a["eps"]) for a in t_atk]
            sections.append(TransferSection(sources, targets, t_atk, t_lab, t_eps, seed,
                                            {k: model_ids.get(k) for k in sources + targets}))
        if not [s for s in sources if s != MODEL]:
            notes["transfer"] = ("no surrogate configured (transfer.sources holds only the evaluated model): "
                                 "the matrix has the white-box diagonal and transfer to the defended targets")
    else:
        notes["transfer"] = "switched off (transfer.enabled=false) or no attacks"
    for key, info in def_info.items():
        d_atk, d_lab = select(attacks, labels, info["settings"].get("attacks") or [])
        d_eps = [float(a["eps"]) for a in d_atk]
        sections.append(DefenseSection(key, info["settings"], d_atk, d_lab, d_eps, seed,
                                       int(cfg.sanity.noise_draws), {k: v for k, v in info.items() if k != "settings"}))
    if not def_info:
        notes["defenses"] = "no defenses configured (defenses=[])"
    cs = c["certify"]
    if cs["enabled"]:
        sections += [CertifySection(s, cs["n0"], cs["n"], cs["alpha"], cs["limit"], cs["batch_size"],
                                    cs["radii"], seed) for s in cs["sigmas"]]
    else:
        notes["certified"] = "switched off (certify.enabled=false)"
    aa = c["autoattack"]
    if aa["enabled"]:
        aa_eps = float(aa["eps"]) if aa["eps"] is not None else max(eps)
        sections.append(AutoAttackSection(aa_eps, aa["version"], aa["attacks"], aa["limit"], aa["batch_size"], seed,
                                          n_images))
    else:
        notes["autoattack"] = "switched off (autoattack.enabled=false; it is slow on a CPU)"
    if cfg.sanity.enabled:
        sections.append(ProbeSection(eps, cfg.sanity.unbounded_eps, cfg.sanity.unbounded_steps,
                                     cfg.sanity.noise_draws, seed))
    return sections, notes


def make_trainer(cfg: DictConfig, out: Path) -> L.Trainer:
    """The evaluation's Trainer (test loops only): no logger, checkpoints or summary; the sampler
    that splits the test set over processes is the evaluation's own."""
    return build_trainer(cfg, out, [], logger=False, enable_checkpointing=False, enable_model_summary=False,
                         use_distributed_sampler=False)


def evaluate(cfg: DictConfig, model: nn.Module | None = None, dataset: Any = None,
             data_info: Any = None) -> dict[str, Any]:
    """Evaluate per ``cfg`` and write the report under ``cfg.out``; returns the report dict.

    ``model`` / ``dataset`` (items ``(image, label)``) / ``data_info`` replace the configured ones
    (for use from Python; the command line always builds them from the config)."""
    started = time.time()
    if cfg.threads is not None:
        torch.set_num_threads(int(cfg.threads))
    L.seed_everything(int(cfg.seed), verbose=False)
    out = Path(str(cfg.out))
    # data
    if dataset is None:

        dm = datamodule_from(cfg)
        dm.setup("test")
        dataset, info, source = dm.test_set, dm.info, dm.source
    else:
        info = data_info
        source = getattr(dataset, "name", type(dataset).__name__)
        if info is None:
            raise ValueError("evaluate(dataset=...) needs data_info (a DatasetInfo: classes, channels, mean, std)")
    data_id = {"name": str(cfg.data.name) if data_info is None else info.name, "source": source, "split": "test",
               "limit_test": cfg.data.limit_test, "subset_seed": int(cfg.seed), **fingerprint(dataset)}
    # models
    if model is None:
        spec, ckpt = resolve_model_spec(cfg)
        model = _build(spec, cfg, info)
        if info.name == "image_folder":        # labels and input size vs the model, before anything runs
            check_model_classes(model, info, dataset)
            check_input_size(model, info.image_size)
    else:
        spec, ckpt = "<given in Python>", None
    model = model.eval()
    models: dict[str, nn.Module] = {MODEL: model}
    c = to_container(cfg)
    for s in list(c["transfer"]["sources"]) + list(c["transfer"]["targets"]):
        if s != MODEL and s not in models:
            models[s] = _build(s, cfg, info)
    dmodels, def_info = defended_models(cfg, model)
    models.update(dmodels)
    model_ids = {k: model_fingerprint(v) for k, v in models.items() if k not in dmodels}
    model_ids.update({k: {"defense_of": MODEL, **def_info[k]["settings"]} for k in dmodels})
    model_card = {"spec": spec, "checkpoint": ckpt, "checkpoint_sha256": file_sha256(ckpt) if ckpt else None,
                  **model_ids[MODEL], "declared": {**declared(model), "eot_samples_used": int(getattr(model, "eot_samples", 1))}}
    sections, notes = plan_sections(cfg, model_ids, def_info, data_id)
    # cache: reuse sections computed with the same settings, model and data
    cache = SectionCache(out, enabled=bool(cfg.resume))
    base = {"model": model_ids[MODEL], "data": data_id, "precision": str(cfg.trainer.precision),
            "batch_size": int(cfg.data.eval_batch_size or cfg.data.batch_size)}
    keys = {s.name: settings_key({**base, "section": s.settings()}) for s in sections}
    results: dict[str, dict[str, Any]] = {}
    for s in sections:
        hit = cache.get(s.name, keys[s.name])
        if hit is not None:
            results[s.name] = hit
    todo = [s for s in sections if s.name not in results]
    processes = 1
    section_seconds: dict[str, float] = {}
    if todo:
        if cfg.threads is not None:
            os.environ.setdefault("OMP_NUM_THREADS", str(int(cfg.threads)))  # DDP children
        trainer = make_trainer(cfg, out)
        # One test loop per section, each cached as soon as it ends: a killed run loses at most
        # the section it was in.
        for s in todo:
            loop = EvaluationLoop([s], models, dataset, int(cfg.data.eval_batch_size or cfg.data.batch_size),
                                  seed=int(cfg.seed), precision=str(cfg.trainer.precision),
                                  num_workers=int(cfg.data.num_workers),
                                  threads=None if cfg.threads is None else int(cfg.threads))
            trainer.test(loop, verbose=False)
            processes = trainer.world_size
            section_seconds.update({k: round(v, 2) for k, v in loop.seconds.items()})
            if not trainer.is_global_zero:
                continue
            if loop.images_total != len(dataset):
                raise RuntimeError(f"counted {loop.images_total} images, the test set has {len(dataset)}")
            results[s.name] = s.finalize(loop.totals[s.name])
            cache.put(s.name, keys[s.name], results[s.name])
        if not trainer.is_global_zero:
            return {}
    report = assemble(cfg, sections, results, notes, model_card, data_id, versions(),
                      {"processes": processes, "seconds": round(time.time() - started, 2),
                       "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
                       "section_seconds_rank0": section_seconds,
                       "cached_sections": sorted(s.name for s in sections if s not in todo)})
    write_all(report, out)
    print(f"done: report in {out / 'report.md'} (clean accuracy {report['clean']['accuracy']:.4f}; "
          f"sanity {report['sanity']['verdict']}) in {report['run']['seconds']:.0f} s")
    return report
