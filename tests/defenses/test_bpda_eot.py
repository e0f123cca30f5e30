"""BPDA (identity backward), the differentiable FD approximation, EOT declarations and draws."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from defense_test_models import ConstantClassifier, RecordingClassifier

import defenses
from defenses import (
    NRP,
    BitDepthReduction,
    Defended,
    FeatureDistillation,
    JPEGCompression,
    NRPDefense,
    RandomResizePad,
)


@pytest.mark.parametrize("name", ["fd", "jpeg", "bitdepth"])
def test_bpda_gradient_is_identity(name: str, autoattack_resnet18, cifar_samples) -> None:
    x, y = cifar_samples
    x, y = x[:4], y[:4]
    defended = defenses.build_defense(name, autoattack_resnet18)
    assert defended.gradient == "bpda" and defended.eot_samples == 1 and not defended.random

    xg = x.clone().requires_grad_(True)
    (g_def,) = torch.autograd.grad(F.cross_entropy(defended(xg), y), xg)

    with torch.no_grad():
        z = defended.preprocess(x)
    assert not torch.equal(z, x)                                # the defense changes the input
    zg = z.clone().requires_grad_(True)
    (g_id,) = torch.autograd.grad(F.cross_entropy(autoattack_resnet18(zg), y), zg)
    assert g_def.abs().sum() > 0
    torch.testing.assert_close(g_def, g_id, rtol=0, atol=0)


def test_bpda_value_is_exact_defense_output() -> None:
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    fd = FeatureDistillation()
    torch.testing.assert_close(fd(x), fd.transform(x.detach()), rtol=0, atol=0)


def test_fd_approx_gradient() -> None:
    fd = FeatureDistillation()
    fd.grad_mode = "approx"
    x = torch.rand(2, 3, 16, 16, requires_grad=True)
    (g,) = torch.autograd.grad((fd(x) * torch.linspace(0, 1, 16)).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0
    fd.grad_mode = "bpda"
    (g_bpda,) = torch.autograd.grad((fd(x) * torch.linspace(0, 1, 16)).sum(), x)
    assert not torch.allclose(g, g_bpda)


def test_grad_mode_none_shows_masking() -> None:
    d = Defended(ConstantClassifier(), JPEGCompression(), grad_mode="none")
    x = torch.rand(1, 3, 16, 16, requires_grad=True)
    out = d.preprocess(x)
    assert not out.requires_grad                 # the codec has no gradient at all


def test_grad_mode_bpda_on_exact_preprocessor() -> None:
    d = Defended(ConstantClassifier(), NRPDefense(NRP(nf=8, nb=1, gc=4), dynamic=False)).set_grad_mode("bpda")
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    (g,) = torch.autograd.grad(d.preprocess(x).sum(), x)
    torch.testing.assert_close(g, torch.ones_like(x))


def test_eot_declarations() -> None:
    model = ConstantClassifier()
    assert defenses.build_defense("fd", model).eot_samples == 1
    assert defenses.build_defense("rp", model).eot_samples == 10
    assert defenses.build_defense("rp", model, eot_samples=20).eot_samples == 20
    nrp = NRPDefense(NRP(nf=8, nb=1, gc=4), eot_samples=7)
    chain = Defended(model, [BitDepthReduction(), nrp, FeatureDistillation()])
    assert chain.eot_samples == 7 and chain.random and chain.gradient == "bpda"
    assert getattr(defenses.build_defense("rs", model), "eot_samples", 1) == 8
    desc = chain.describe()
    assert desc["preprocessors"] == ["bitdepth", "nrp", "fd"] and desc["eot_samples"] == 7


def test_draws_are_batched_and_averaged() -> None:
    rec = RecordingClassifier(torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(),
                                                  torch.nn.Linear(48, 10)))
    d = Defended(rec, RandomResizePad(seed=0), draws=6, max_batch=8)
    x = torch.rand(3, 3, 32, 32)
    out = d(x)
    assert sum(t.shape[0] for t in rec.inputs) == 18 and max(t.shape[0] for t in rec.inputs) <= 8
    rows = torch.cat(rec.inputs)
    expected = rec.model(rows).softmax(1).view(3, 6, 10).mean(1).log()
    torch.testing.assert_close(out, expected)
    # repeated rows of one image get different draws
    assert not torch.equal(rows[0], rows[1])


def test_deterministic_draws_equal_plain_log_softmax() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 16 * 16, 10))
    d = Defended(model, FeatureDistillation(), draws=4)
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(d(x), F.log_softmax(model(FeatureDistillation()(x)), 1), atol=1e-5, rtol=1e-5)


def test_chain_by_name() -> None:
    d = defenses.build_defense("jpeg+fd", ConstantClassifier())
    assert [p.name for p in d.preprocessors] == ["jpeg", "fd"]
    assert d(torch.rand(2, 3, 16, 16)).shape == (2, 10)


def test_batch_equals_single_images_jpeg_bitdepth() -> None:
    x = torch.rand(4, 3, 16, 16)
    for p in (JPEGCompression(quality=50), BitDepthReduction(3)):
        torch.testing.assert_close(p(x), torch.cat([p(x[i:i + 1]) for i in range(4)]), rtol=0, atol=0)
    out = BitDepthReduction(4)(x)
    assert set((out * 15).round().unique().tolist()) <= set(range(16))
    torch.testing.assert_close(out * 15, (out * 15).round(), rtol=0, atol=1e-5)


def test_random_chain_reproducible_at_fixed_max_batch() -> None:
    # documented contract: same seed and same max_batch give the same output; the draws follow the
    # chunking, so another max_batch gives other draws (the reason the benchmark keeps it fixed)
    model = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(4), torch.nn.Flatten(), torch.nn.Linear(48, 10))
    x = torch.rand(5, 3, 32, 32)

    def run(max_batch: int) -> torch.Tensor:
        return Defended(model, RandomResizePad(seed=3), draws=6, max_batch=max_batch)(x)

    torch.testing.assert_close(run(8), run(8), rtol=0, atol=0)
    assert not torch.allclose(run(8), run(30))
