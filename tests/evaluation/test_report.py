"""A full report on a tiny trained model and real images: every section, documented keys, numbers
that match a direct computation, identical reruns, resume from the cache."""
from __future__ import annotations

import json
import re

import pytest
import torch

from tpa_lightning.attacks import build_attack
from tpa_lightning.evaluation import clopper_pearson, evaluate

from .helpers import INFO, REPO, config, fmnist_test_images, trained_cnn

pytestmark = pytest.mark.slow   # about a minute on 2 shared cores (the module fixture evaluates 64 images)

OVERRIDES = (
    "eps=[0,0.05,0.1]",
    "attacks=[{name: pgd, eps: 0.1, steps: 5, copies: null}, {name: fgsm, eps: 0.1, copies: null}]",
    "transfer.sources=[model,small_cnn]", "transfer.targets=[model,small_cnn]",
    "defenses=[{name: bitdepth, options: {bits: 3}, attacks: [pgd]}]",
    "certify.n0=10", "certify.n=50", "certify.limit=16",
    "autoattack.enabled=true", "autoattack.version=custom", "autoattack.attacks=[apgd-ce]", "autoattack.limit=8",
    "sanity.unbounded_steps=10", "sanity.noise_draws=4",
)


@pytest.fixture(scope="module")
def report_and_data(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    data = fmnist_test_images(64)
    model = trained_cnn()
    report = evaluate(config(out, *OVERRIDES), model=model, dataset=data, data_info=INFO)
    return report, out, data, model


def test_every_section_and_file(report_and_data):
    report, out, _, _ = report_and_data
    for f in ("report.json", "report.md", "clean.csv", "whitebox.csv", "transfer.csv", "defenses.csv",
              "certified.csv", "autoattack.csv", "sanity.csv", "robust_accuracy.png", "transfer_heatmap.png",
              "certified_accuracy.png"):
        assert (out / f).is_file(), f
    assert report["transfer"]["status"] == "done"
    assert report["certified"]["status"] == "done"
    assert report["autoattack"]["status"] == "done"
    assert set(report["whitebox"]) == {"pgd", "fgsm"}
    assert "bitdepth" in report["defenses"]
    assert report["defenses"]["bitdepth"]["declared"]["bpda_used"] is True
    cells = report["transfer"]["result"]["cells"]
    assert {c["target"] for c in cells} == {"model", "small_cnn", "bitdepth"}
    assert {c["name"] for c in report["sanity"]["checks"]} >= {
        "robust_accuracy_monotone_in_eps", "unbounded_attack_reaches_zero", "whitebox_beats_transfer",
        "zero_input_gradients[model]", "gradient_attack_beats_random_noise[model]", "eot_for_randomised_models"}
    for c in report["sanity"]["checks"]:
        assert c["verdict"] in ("pass", "warn", "fail", "skipped") and "numbers" in c
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["clean"] == report["clean"]
    md = (out / "report.md").read_text()
    assert "Clean accuracy" in md and "Sanity checks" in md


def test_json_keys_are_documented(report_and_data):
    report, _, _, _ = report_and_data
    doc = (REPO / "docs" / "reports.md").read_text()
    documented = set(re.findall(r"`([a-z_0-9]+)`", doc))
    missing = [k for k in report if k not in documented]
    assert not missing, f"report.json keys not documented in docs/reports.md: {missing}"
    for section in ("clean", "model", "data", "run", "sanity"):
        sub = report[section]
        missing = [k for k in sub if k not in documented]
        assert not missing, f"{section}.* keys not documented: {missing}"


def test_numbers_match_direct_computation(report_and_data):
    report, _, data, model = report_and_data
    x, y = data.x, data.y
    with torch.no_grad():
        correct = int((model(x).argmax(1) == y).sum())
    assert report["clean"]["correct"] == correct and report["clean"]["total"] == 64
    lo, hi = clopper_pearson(correct, 64)
    assert report["clean"]["ci95"] == [round(lo, 6), round(hi, 6)]
    atk = build_attack("pgd", model, eps=0.1, steps=5, seed=0)
    with torch.no_grad():
        robust = int((model(atk(x, y)).argmax(1) == y).sum())
    point = next(p for p in report["whitebox"]["pgd"]["curve"] if p["eps"] == 0.1)
    assert point["correct"] == robust
    assert point["accuracy"] < report["clean"]["accuracy"]       # a trained model does lose accuracy


def test_rerun_identical_and_resume(report_and_data, tmp_path):
    report, out, data, model = report_and_data
    fresh = evaluate(config(tmp_path, *OVERRIDES), model=model, dataset=data, data_info=INFO)
    def strip(r):
        s = {k: v for k, v in r.items() if k not in ("run", "files", "settings")}
        return {**s, "settings": {k: v for k, v in r["settings"].items() if k != "out"}}

    assert json.dumps(strip(fresh), sort_keys=True) == json.dumps(strip(report), sort_keys=True)
    resumed = evaluate(config(out, *OVERRIDES), model=model, dataset=data, data_info=INFO)
    assert set(resumed["run"]["cached_sections"]) >= {"clean", "whitebox_pgd", "transfer", "probes"}
    assert json.dumps(strip(resumed), sort_keys=True) == json.dumps(strip(report), sort_keys=True)


def test_defense_figures_match_direct_computation(report_and_data):
    """Adaptive, transferred and per-image worst case on the defense, recomputed here; the transferred
    figure also equals the transfer section's cell for the same target."""
    import defenses

    report, _, data, model = report_and_data
    x, y = data.x, data.y
    d = report["defenses"]["bitdepth"]
    bit = defenses.build_defense("bitdepth", model, bits=3).eval()
    x_tr = build_attack("pgd", model, eps=0.1, steps=5, seed=0)(x, y)
    x_ad = build_attack("pgd", bit, eps=0.1, steps=5, seed=0)(x, y)
    with torch.no_grad():
        ok_tr = bit(x_tr).argmax(1) == y
        ok_ad = bit(x_ad).argmax(1) == y
    assert d["transfer_from_model"][0]["correct"] == int(ok_tr.sum())
    assert d["adaptive"][0]["correct"] == int(ok_ad.sum())
    assert d["worst_case"][0]["correct"] == int((ok_tr & ok_ad).sum())
    assert d["worst_case"][0]["correct"] <= min(d["adaptive"][0]["correct"], d["transfer_from_model"][0]["correct"])
    cell = next(c for c in report["transfer"]["result"]["cells"]
                if c["source"] == "model" and c["target"] == "bitdepth" and c["attack"] == "pgd")
    assert d["transfer_from_model"][0]["correct"] == cell["images"] - cell["fooled"]


def test_per_image_outcomes_match_direct_computation(report_and_data):
    """Each image's clean, white-box and AutoAttack outcome, recomputed here image by image; the CSV
    holds the same bits, and the counts are their sums."""
    import csv

    report, out, data, model = report_and_data
    x, y = data.x, data.y
    with torch.no_grad():
        clean = (model(x).argmax(1) == y).tolist()
        robust = (model(build_attack("pgd", model, eps=0.1, steps=5, seed=0)(x, y)).argmax(1) == y).tolist()
    bits = report["clean"]["per_image"]
    assert bits == "".join("1" if c else "0" for c in clean)
    point = next(p for p in report["whitebox"]["pgd"]["curve"] if p["eps"] == 0.1)
    assert point["per_image"] == "".join("1" if c else "0" for c in robust)
    assert all(p["per_image"].count("1") == p["correct"] and len(p["per_image"]) == 64
               for r in report["whitebox"].values() for p in r["curve"])
    aa = report["autoattack"]["result"]
    assert len(aa["per_image_robust"]) == 8 and aa["per_image_robust"].count("1") == aa["robust"]["correct"]
    assert all(c == "1" for c, a in zip(bits, aa["per_image_robust"]) if a == "1")   # robust implies clean
    with open(out / "per_image.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 64 and [int(r["index"]) for r in rows] == list(range(64))
    assert "".join(r["clean"] for r in rows) == bits
    assert "".join(r["pgd@0.1"] for r in rows) == point["per_image"]
    assert [r["autoattack"] for r in rows[8:]] == [""] * 56
