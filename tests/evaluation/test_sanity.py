"""Gradient masking and missing EOT are flagged; a plain trained model passes."""
from __future__ import annotations

from tpa_lightning.evaluation import evaluate, zero_gradient

from .helpers import INFO, Rounded, config, fmnist_test_images, trained_cnn

FAST = ("eps=[0,0.1,0.2]", "attacks=[{name: pgd, eps: 0.2, steps: 5, copies: null}]", "transfer.enabled=false",
        "certify.enabled=false", "sanity.unbounded_steps=10", "sanity.noise_draws=4")


def _verdicts(report):
    return {c["name"]: c["verdict"] for c in report["sanity"]["checks"]}


def test_plain_model_is_not_flagged(tmp_path):
    report = evaluate(config(tmp_path, *FAST, "defenses=[]"), model=trained_cnn(), dataset=fmnist_test_images(48),
                      data_info=INFO)
    v = _verdicts(report)
    assert report["sanity"]["verdict"] == "pass", report["sanity"]["failed"]
    assert v["zero_input_gradients[model]"] == "pass"
    assert v["unbounded_attack_reaches_zero"] == "pass"
    assert v["gradient_attack_beats_random_noise[model]"] == "pass"


def test_masked_model_is_flagged(tmp_path):
    data = fmnist_test_images(48)
    masked = Rounded(trained_cnn())
    assert bool(zero_gradient(masked, data.x, data.y).all())
    report = evaluate(config(tmp_path, *FAST, "defenses=[]"), model=masked, dataset=data, data_info=INFO)
    v = _verdicts(report)
    assert report["sanity"]["verdict"] == "fail"
    assert v["zero_input_gradients[model]"] == "fail"
    assert v["unbounded_attack_reaches_zero"] == "fail"
    assert report["probes"]["zero_gradient"]["fraction"] == 1.0


def test_defense_without_bpda_or_eot_is_flagged(tmp_path):
    defs = ("defenses=[{name: bitdepth, options: {bits: 3}, bpda: false}, "
            "{name: bitdepth, options: {bits: 3}}, "
            "{name: rs, options: {sigma: 0.1, forward_samples: 4}, eot_samples: 1}]")
    report = evaluate(config(tmp_path, *FAST, defs), model=trained_cnn(), dataset=fmnist_test_images(32), data_info=INFO)
    v = _verdicts(report)
    assert v["zero_input_gradients[bitdepth#0]"] == "fail"      # no BPDA: gradients masked
    assert v["zero_input_gradients[bitdepth#1]"] == "pass"      # BPDA as declared
    assert v["eot_for_randomised_models"] == "fail"             # rs attacked with eot_samples=1


def test_adaptive_weaker_than_transfer_fails_unless_worst_case_is_reported() -> None:
    from tpa_lightning.evaluation.sanity import adaptive_beats_transfer

    def report(adaptive_acc: float, with_worst_case: bool) -> dict:
        d = {"adaptive": [{"attack": "pgd", "accuracy": adaptive_acc}]}
        if with_worst_case:
            d["worst_case"] = [{"attack": "pgd", "accuracy": min(adaptive_acc, 0.44)}]
        cells = [{"source": "model", "target": "bitdepth", "attack": "pgd", "asr_all": 0.56}]
        return {"transfer": {"result": {"cells": cells}}, "defenses": {"bitdepth": d}}

    assert adaptive_beats_transfer(report(0.476, False), 0.02)["verdict"] == "fail"
    assert adaptive_beats_transfer(report(0.476, True), 0.02)["verdict"] == "warn"
    assert adaptive_beats_transfer(report(0.45, True), 0.02)["verdict"] == "pass"      # within tolerance
    assert adaptive_beats_transfer(report(0.30, False), 0.02)["verdict"] == "pass"
