"""Assemble the report (a RobustBench-style model card) and write report.json, report.md, CSVs and plots."""
from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .plots import write_plots
from .sanity import adaptive_beats_transfer, run_checks
from .section import Section

SCHEMA = "tpa-lightning/report/v1"



def _plain(cfg: DictConfig) -> dict[str, Any]:
    """The config as plain dicts, lists and scalars (what the report stores)."""
    out = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(out, dict)
    return out  # type: ignore[return-value]

def _pct(v: float | None) -> float | None:
    return None if v is None else round(100.0 * v, 2)


def assemble(cfg: DictConfig, sections: list[Section], results: dict[str, Any], notes: dict[str, Any],
             model: dict[str, Any], data: dict[str, Any], versions: dict[str, Any],
             run: dict[str, Any]) -> dict[str, Any]:
    settings = _plain(cfg)
    eps = sorted({float(e) for e in settings["eps"]})
    whitebox = {r["attack"]: r for k, r in results.items() if k.startswith("whitebox_")}
    defenses = {k[len("defense_"):]: r for k, r in results.items() if k.startswith("defense_")}
    certified = {f"{r['sigma']:g}": r for k, r in results.items() if k.startswith("certify_")}
    aa = results.get("autoattack")
    main_eps = max(eps)
    robust_at_main = {lab: _pct(next((p["accuracy"] for p in r["curve"] if p["eps"] == main_eps), None))
                      for lab, r in whitebox.items()}
    report: dict[str, Any] = {
        "schema": SCHEMA,
        # --- RobustBench model-card fields (accuracies in percent, as RobustBench writes them) ---
        "name": Path(model["checkpoint"]).parent.parent.name if model.get("checkpoint") else model["spec"],
        "architecture": model["spec"],
        "dataset": data["name"],
        "threat_model": "Linf",
        "eps": main_eps,
        "clean_acc": _pct(results["clean"]["accuracy"]),
        "robust_acc": robust_at_main,
        "autoattack_acc": _pct(aa["robust"]["accuracy"]) if aa else None,
        "number_forward_passes": 1,
        "reported": None,
        "footnote": "computed by tpa-lightning evaluate.py; accuracies above in percent, sections below as fractions",
        # --- provenance ---
        "seed": int(cfg.seed),
        "settings": settings,
        "versions": versions,
        "model": model,
        "data": data,
        "run": run,
        # --- numbers ---
        "clean": results["clean"],
        "whitebox": whitebox,
        "transfer": {"status": "done" if "transfer" in results else "skipped", "note": notes.get("transfer"),
                     "result": results.get("transfer")},
        "defenses": defenses,
        "defenses_note": notes.get("defenses"),
        "certified": {"status": "done" if certified else "skipped", "note": notes.get("certified"),
                      "result": certified},
        "autoattack": {"status": "done" if aa else "skipped", "note": notes.get("autoattack"), "result": aa},
        "probes": results.get("probes"),
    }
    if cfg.sanity.enabled:
        checks = run_checks(report, _plain(cfg)["sanity"])
        checks.append(adaptive_beats_transfer(report, float(cfg.sanity.tolerance)))
    else:
        checks = []
    verdicts = [c["verdict"] for c in checks]
    report["sanity"] = {"verdict": "fail" if "fail" in verdicts else "pass" if verdicts else "skipped",
                        "failed": [c["name"] for c in checks if c["verdict"] == "fail"],
                        "warnings": [c["name"] for c in checks if c["verdict"] == "warn"], "checks": checks}
    report["files"] = {}
    return report


# ----------------------------------------------------------------------------- tables
def tables(report: dict[str, Any]) -> dict[str, tuple[list[str], list[list[Any]]]]:
    """Every table of the report: name -> (header, rows). Each becomes ``<name>.csv``."""
    t: dict[str, tuple[list[str], list[list[Any]]]] = {}
    c = report["clean"]
    t["clean"] = (["correct", "total", "accuracy", "ci95_low", "ci95_high"],
                  [[c["correct"], c["total"], c["accuracy"], *c["ci95"]]])
    rows = [[lab, p["eps"], p["correct"], p["total"], p["accuracy"], *p["ci95"]]
            for lab, r in report["whitebox"].items() for p in r["curve"]]
    t["whitebox"] = (["attack", "eps", "correct", "total", "robust_accuracy", "ci95_low", "ci95_high"], rows)
    tr = report["transfer"]["result"]
    if tr:
        t["transfer"] = (["source", "attack", "eps", "target", "white_box", "images", "fooled", "asr_all",
                          "target_clean_correct", "fooled_of_correct", "asr_correct"],
                         [[x[k] for k in ("source", "attack", "eps", "target", "white_box", "images", "fooled",
                                          "asr_all", "target_clean_correct", "fooled_of_correct", "asr_correct")]
                          for x in tr["cells"]])
    if report["defenses"]:
        rows = []
        for key, d in report["defenses"].items():
            dec = d["declared"]
            rows.append([key, "clean", None, d["clean"]["accuracy"], None, None, d["clean"]["correct"],
                         d["clean"]["total"], dec["gradient"], dec["bpda_used"], dec["eot_samples_used"], dec["random"]])
            for p, tr_p, w in zip(d["adaptive"], d["transfer_from_model"], d["worst_case"]):
                rows.append([key, p["attack"], p["eps"], w["accuracy"], p["accuracy"], tr_p["accuracy"], w["correct"],
                             p["total"], dec["gradient"], dec["bpda_used"], dec["eot_samples_used"], dec["random"]])
        t["defenses"] = (["defense", "attack", "eps", "accuracy", "adaptive_accuracy", "transfer_accuracy",
                          "correct", "total", "gradient", "bpda", "eot_samples", "random"], rows)
    if report["certified"]["result"]:
        t["certified"] = (["sigma", "radius", "certified_accuracy", "correct", "total", "n0", "n", "alpha"],
                          [[r["sigma"], p["radius"], p["accuracy"], p["correct"], p["total"], r["n0"], r["n"],
                            r["alpha"]] for r in report["certified"]["result"].values() for p in r["curve"]])
    aa = report["autoattack"]["result"]
    if aa:
        t["autoattack"] = (["eps", "version", "clean_accuracy", "robust_accuracy", "correct", "total"],
                           [[aa["eps"], aa["version"], aa["clean"]["accuracy"], aa["robust"]["accuracy"],
                             aa["robust"]["correct"], aa["robust"]["total"]]])
    columns = per_image_columns(report)
    if columns:
        n = max(len(v) for v in columns.values())
        t["per_image"] = (["index", *columns],
                          [[i, *(int(v[i]) if i < len(v) else None for v in columns.values())] for i in range(n)])
    t["sanity"] = (["check", "verdict", "detail"], [[c["name"], c["verdict"], c["detail"]]
                                                      for c in report["sanity"]["checks"]])
    return t


def per_image_columns(report: dict[str, Any]) -> dict[str, str]:
    """Each per-image outcome string of a report ('1' = classified correctly, dataset order) by column
    name: ``clean``, ``<attack>@<eps>`` for every white-box point, ``autoattack`` (its first ``limit``
    images). Empty for reports written before per-image outcomes were kept."""
    cols: dict[str, str] = {}
    if "per_image" in report["clean"]:
        cols["clean"] = report["clean"]["per_image"]
    for lab, r in report["whitebox"].items():
        cols.update({f"{lab}@{p['eps']:g}": p["per_image"] for p in r["curve"] if "per_image" in p})
    aa = report["autoattack"]["result"]
    if aa and "per_image_robust" in aa:
        cols["autoattack"] = aa["per_image_robust"]
    return cols


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def markdown(report: dict[str, Any], tabs: dict[str, tuple[list[str], list[list[Any]]]]) -> str:
    lines = [f"# Robustness report: {report['name']}", "",
             (f"Model `{report['model']['spec']}` ({report['model']['parameters']} parameters), "
              f"{report['data']['images']} test images of {report['data']['source'] or report['dataset']} "
              f"(sha256 {report['data']['sha256'][:12]}), seed {report['seed']}, "
              f"{report['run']['processes']} process(es), {report['run']['seconds']} s."), "",
             ((f"**Sanity checks: {report['sanity']['verdict']}**")
              + (f" (failed: {', '.join(report['sanity']['failed'])})" if report['sanity']['failed'] else "")
              + (f" (warnings: {', '.join(report['sanity']['warnings'])})" if report['sanity']['warnings'] else "")),
             ""]
    c = report["clean"]
    lines += [(f"Clean accuracy: **{c['accuracy']:.4f}** (95 % CI {c['ci95'][0]:.4f}-{c['ci95'][1]:.4f}, "
               f"Clopper-Pearson; {c['correct']}/{c['total']})"), ""]
    titles = {"whitebox": "White-box robust accuracy (L-inf)",
              "transfer": ("Transfer attacks: success rate on each target (asr_all: over all images; "
                           "asr_correct: over images the target classified correctly)"),
              "defenses": "Defenses around the model: accuracy = per-image worst case of the adaptive attack "
                           "(BPDA / EOT as declared) and the same attack transferred from the undefended model",
              "certified": "Certified accuracy of randomized smoothing (L2 radius)",
              "autoattack": "AutoAttack", "sanity": "Sanity checks"}
    for name, title in titles.items():
        lines += [f"## {title}", ""]
        note = {"transfer": report["transfer"]["note"], "defenses": report.get("defenses_note"),
                "certified": report["certified"]["note"], "autoattack": report["autoattack"]["note"]}.get(name)
        if note:
            lines += [f"_{note}_", ""]
        if name not in tabs:
            lines += ["(not computed)", ""]
            continue
        header, rows = tabs[name]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in rows]
        lines.append("")
    for ch in report["sanity"]["checks"]:
        lines.append(f"- **{ch['name']}**: {ch['verdict']}: {json.dumps(ch['numbers'], default=str)[:600]}")
    lines += ["", "Plots: " + ", ".join(f"`{p}`" for p in report["files"].get("plots", [])), ""]
    return "\n".join(lines)


def write_all(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    tabs = tables(report)
    for name, (header, rows) in tabs.items():
        with open(out / f"{name}.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows(rows)
    report["files"] = {"json": "report.json", "markdown": "report.md",
                       "csv": sorted(f"{n}.csv" for n in tabs), "plots": write_plots(report, out)}
    (out / "report.json").write_text(json.dumps(report, indent=2, default=str))
    (out / "report.md").write_text(markdown(report, tabs))
