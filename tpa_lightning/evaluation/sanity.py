"""Verdicts that catch broken evaluations (Carlini et al. 2019, "On evaluating adversarial
robustness"; the checks of AutoAttack). Each check: name, verdict ("pass" / "warn" / "fail" / "skipped"),
the numbers behind it and a sentence."""
from __future__ import annotations

import itertools
from typing import Any


def _check(name: str, verdict: str, detail: str, **numbers: Any) -> dict[str, Any]:
    return {"name": name, "verdict": verdict, "detail": detail, "numbers": numbers}


def monotone_in_eps(whitebox: dict[str, Any], tol: float) -> dict[str, Any]:
    rises = []
    curves = {}
    for label, sec in whitebox.items():
        accs = [(p["eps"], p["accuracy"]) for p in sorted(sec["curve"], key=lambda p: p["eps"])]
        curves[label] = accs
        for (e0, a0), (e1, a1) in itertools.pairwise(accs):
            if a0 is not None and a1 is not None and a1 > a0 + tol:
                rises.append({"attack": label, "eps": [e0, e1], "accuracy": [a0, a1]})
    if not curves:
        return _check("robust_accuracy_monotone_in_eps", "skipped", "no white-box attack was run")
    return _check("robust_accuracy_monotone_in_eps", "fail" if rises else "pass",
                  "robust accuracy must not rise with eps" + (f" (tolerance {tol})" if tol else ""),
                  curves=curves, rises=rises, tolerance=tol)


def unbounded_reaches_zero(probes: dict[str, Any] | None, max_acc: float) -> dict[str, Any]:
    if not probes:
        return _check("unbounded_attack_reaches_zero", "skipped", "sanity probes not run")
    u = probes["unbounded"]
    ok = u["accuracy"] is not None and u["accuracy"] <= max_acc
    return _check("unbounded_attack_reaches_zero", "pass" if ok else "fail",
                  f"PGD with eps={u['attack']['eps']} must bring accuracy to about 0 (at most {max_acc})",
                  accuracy=u["accuracy"], correct=u["correct"], total=u["total"], max_accuracy=max_acc)


def whitebox_beats_transfer(transfer: dict[str, Any] | None, tol: float) -> dict[str, Any]:
    if not transfer or not transfer.get("cells"):
        return _check("whitebox_beats_transfer", "skipped", "no transfer matrix")
    cells = transfer["cells"]
    pairs, worse = [], []
    for c in cells:
        if c["white_box"] or c["target"] not in transfer["sources"]:
            continue
        wb = next((w for w in cells if w["white_box"] and w["source"] == c["target"]
                   and w["attack"] == c["attack"]), None)
        if wb is None:
            continue
        pair = {"target": c["target"], "attack": c["attack"], "transfer_source": c["source"],
                "asr_whitebox": wb["asr_all"], "asr_transfer": c["asr_all"]}
        pairs.append(pair)
        if wb["asr_all"] + tol < c["asr_all"]:
            worse.append(pair)
    if not pairs:
        return _check("whitebox_beats_transfer", "skipped",
                      "needs a second source model (transfer.sources) that is also a target")
    return _check("whitebox_beats_transfer", "fail" if worse else "pass",
                  "a white-box attack must succeed at least as often as a transfer attack from another model",
                  pairs=pairs, violations=worse, tolerance=tol)


def zero_gradients(name: str, zero: dict[str, Any] | None, max_frac: float) -> dict[str, Any]:
    if not zero or zero.get("fraction") is None:
        return _check(f"zero_input_gradients[{name}]", "skipped", "not measured")
    ok = zero["fraction"] <= max_frac
    return _check(f"zero_input_gradients[{name}]", "pass" if ok else "fail",
                  f"share of images whose loss has an all-zero input gradient must be at most {max_frac} "
                  "(else gradients are masked: use BPDA or a differentiable approximation)",
                  fraction=zero["fraction"], images=zero["images"], max_fraction=max_frac)


def gradient_beats_noise(name: str, attack_acc: dict[float, float], noise_acc: dict[float, float],
                         tol: float) -> dict[str, Any]:
    common = sorted(e for e in attack_acc if e in noise_acc and e > 0)
    if not common:
        return _check(f"gradient_attack_beats_random_noise[{name}]", "skipped", "no eps > 0 measured")
    worse = [{"eps": e, "attack_accuracy": attack_acc[e], "noise_accuracy": noise_acc[e]}
             for e in common if attack_acc[e] > noise_acc[e] + tol]
    return _check(f"gradient_attack_beats_random_noise[{name}]", "fail" if worse else "pass",
                  "the best gradient attack must leave no more images correct than random sign noise of "
                  "the same eps (else gradients are masked or the attack is broken)",
                  per_eps=[{"eps": e, "attack_accuracy": attack_acc[e], "noise_accuracy": noise_acc[e]}
                           for e in common], violations=worse, tolerance=tol)


def eot_for_random(models: dict[str, dict[str, Any]]) -> dict[str, Any]:
    rnd = {k: v for k, v in models.items() if v.get("random")}
    if not rnd:
        return _check("eot_for_randomised_models", "skipped", "no randomised model was attacked")
    bad = [k for k, v in rnd.items() if int(v.get("eot_samples_used", 1)) < 2]
    return _check("eot_for_randomised_models", "fail" if bad else "pass",
                  "a randomised model must be attacked with EOT (gradients averaged over >= 2 draws)",
                  models={k: {"eot_samples_used": v.get("eot_samples_used", 1)} for k, v in rnd.items()},
                  without_eot=bad)


def autoattack_not_weaker(aa: dict[str, Any] | None, whitebox: dict[str, Any], tol: float) -> dict[str, Any]:
    if not aa:
        return _check("autoattack_not_weaker_than_attacks", "skipped", "AutoAttack not run")
    eps = aa["eps"]
    accs = {lab: p["accuracy"] for lab, s in whitebox.items() for p in s["curve"] if abs(p["eps"] - eps) < 1e-12}
    if not accs:
        return _check("autoattack_not_weaker_than_attacks", "skipped", f"no white-box attack at eps={eps}")
    best = min(accs.values())
    ok = aa["robust"]["accuracy"] <= best + tol
    return _check("autoattack_not_weaker_than_attacks", "pass" if ok else "fail",
                  "AutoAttack should be at least as strong as every other attack at its eps",
                  autoattack_accuracy=aa["robust"]["accuracy"], attacks=accs, tolerance=tol)


def run_checks(report: dict[str, Any], sanity_cfg: dict[str, Any]) -> list[dict[str, Any]]:
    """All checks on a report's sections."""
    tol = float(sanity_cfg["tolerance"])
    wb = report.get("whitebox", {})
    probes = report.get("probes")
    checks = [monotone_in_eps(wb, tol), unbounded_reaches_zero(probes, float(sanity_cfg["unbounded_max_acc"])),
              whitebox_beats_transfer(report.get("transfer", {}).get("result"), tol)]
    max_zero = float(sanity_cfg["max_zero_grad"])
    checks.append(zero_gradients("model", probes and probes["zero_gradient"], max_zero))
    if probes:
        attack_acc: dict[float, float] = {}
        for s in wb.values():
            for p in s["curve"]:
                if p["accuracy"] is not None:
                    attack_acc[p["eps"]] = min(attack_acc.get(p["eps"], 1.0), p["accuracy"])
        noise_acc = {p["eps"]: p["accuracy"] for p in probes["random_noise"] if p["accuracy"] is not None}
        checks.append(gradient_beats_noise("model", attack_acc, noise_acc, tol))
    attacked = {"model": report.get("model", {}).get("declared", {})}
    for key, d in report.get("defenses", {}).items():
        attacked[key] = d["declared"]
        checks.append(zero_gradients(key, d["zero_gradient"], max_zero))
        a_acc: dict[float, float] = {}
        for p in d["adaptive"]:
            a_acc[p["eps"]] = min(a_acc.get(p["eps"], 1.0), p["accuracy"])
        n_acc = {p["attack_eps"]: p["accuracy"] for p in d["random_noise"]}
        checks.append(gradient_beats_noise(key, a_acc, n_acc, tol))
    checks.append(eot_for_random(attacked))
    checks.append(autoattack_not_weaker(report.get("autoattack", {}).get("result"), wb, tol))
    return checks


def adaptive_beats_transfer(report: dict[str, Any], tol: float) -> dict[str, Any]:
    """Against each defense, the adaptive white-box attack must do at least as well as examples
    transferred from the undefended model (non-adaptive)."""
    tr = report.get("transfer", {}).get("result")
    defs = report.get("defenses", {})
    if not tr or not defs:
        return _check("adaptive_beats_transfer_on_defenses", "skipped", "no defenses in the transfer matrix")
    pairs, worse = [], []
    for key, d in defs.items():
        for p in d["adaptive"]:
            for c in tr["cells"]:
                if c["target"] == key and c["attack"] == p["attack"] and c["asr_all"] is not None:
                    pair = {"defense": key, "attack": p["attack"], "source": c["source"],
                            "adaptive_accuracy": p["accuracy"], "transfer_accuracy": 1.0 - c["asr_all"]}
                    pairs.append(pair)
                    if p["accuracy"] > pair["transfer_accuracy"] + tol:
                        worse.append(pair)
    if not pairs:
        return _check("adaptive_beats_transfer_on_defenses", "skipped", "no defenses in the transfer matrix")
    covered = bool(worse) and all("worst_case" in defs[w["defense"]] for w in worse)
    verdict = "pass" if not worse else "warn" if covered else "fail"
    detail = "an adaptive attack on a defense must leave no more images correct than a transfer attack"
    if verdict == "warn":
        detail += ("; here it does not, so the adaptive attack is weak on this defense (the defense's reported "
                   "accuracy is the per-image worst case over both, so the headline number is not inflated)")
    return _check("adaptive_beats_transfer_on_defenses", verdict, detail, pairs=pairs, violations=worse, tolerance=tol)
