"""Randomized smoothing: CERTIFY and PREDICT against scipy computed independently."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from defense_test_models import ConstantClassifier, RandomClassifier, RecordingClassifier, ScriptedClassifier
from scipy.stats import beta, binomtest, norm

import defenses
from defenses import Smoothed, certified_accuracy, lower_confidence_bound


def test_constant_classifier_radius() -> None:
    sigma, n, alpha = 0.5, 1000, 0.001
    model = ConstantClassifier(cls=3)
    smooth = defenses.build_defense("rs", model, sigma=sigma, seed=0)
    x = torch.rand(5, 3, 8, 8)
    classes, radii = smooth.certify(x, n0=20, n=n, alpha=alpha, batch_size=256)
    assert classes.tolist() == [3] * 5
    # nA = n: the Clopper-Pearson lower bound has the closed form alpha ** (1 / n)
    p_a = alpha ** (1.0 / n)
    assert abs(p_a - beta.ppf(alpha, n, 1)) < 1e-12
    torch.testing.assert_close(radii, torch.full((5,), sigma * norm.ppf(p_a), dtype=torch.float64))
    assert model.rows_seen >= 5 * (20 + n)


def test_random_classifier_abstains() -> None:
    smooth = Smoothed(RandomClassifier(num_classes=10), sigma=0.25, seed=0)
    x = torch.rand(4, 3, 8, 8)
    classes, radii = smooth.certify(x, n0=50, n=500, alpha=0.001)
    assert classes.tolist() == [-1] * 4 and radii.tolist() == [0.0] * 4
    assert smooth.predict(x, n=500, alpha=0.001).tolist() == [-1] * 4


@pytest.mark.parametrize(("n_a", "n_b", "alpha"), [(60, 40, 0.1), (60, 40, 0.01), (70, 30, 0.001),
                                                   (55, 45, 0.5), (100, 0, 0.001), (9, 1, 0.05)])
def test_predict_abstain_rule_matches_binomtest(n_a: int, n_b: int, alpha: float) -> None:
    n = n_a + n_b + 7
    model = ScriptedClassifier(n_a, n_b, period=n)
    smooth = Smoothed(model, sigma=0.25, num_classes=10, seed=0)
    out = smooth.predict(torch.rand(3, 3, 4, 4), n=n, alpha=alpha, batch_size=64)
    counts_top2 = sorted([n_a, n_b, *[0] * 8], reverse=True)[:2]
    expected = -1 if binomtest(counts_top2[0], sum(counts_top2), 0.5).pvalue > alpha else 0
    assert out.tolist() == [expected] * 3


def test_lower_confidence_bound_matches_scipy() -> None:
    n = 1000
    n_a = np.array([0, 1, 480, 500, 900, 1000])
    got = lower_confidence_bound(n_a, n, 0.001)
    for k, v in zip(n_a, got, strict=True):
        assert v == (0.0 if k == 0 else pytest.approx(beta.ppf(0.001, k, n - k + 1), abs=1e-12))


def test_certify_with_scripted_counts() -> None:
    n0, n, alpha, sigma = 10, 200, 0.01, 0.25
    # every block of 210 rows (n0 + n for one image): the first 150 are class 0, 50 class 1, rest others
    model = ScriptedClassifier(150, 50, period=n0 + n)
    smooth = Smoothed(model, sigma=sigma, num_classes=10, seed=0)
    classes, radii = smooth.certify(torch.rand(1, 3, 4, 4), n0=n0, n=n, alpha=alpha, batch_size=n0 + n)
    # guess pass: rows 0..9 -> class 0; count pass: rows 10..209 -> 140 class 0
    n_a = 140
    p_a = beta.ppf(alpha, n_a, n - n_a + 1)
    assert classes.tolist() == [0]
    assert radii.item() == pytest.approx(sigma * norm.ppf(p_a), abs=1e-9)


def test_noise_added_in_pixel_space_without_clamping() -> None:
    rec = RecordingClassifier(ConstantClassifier())
    smooth = Smoothed(rec, sigma=0.5, seed=0)
    x = torch.zeros(2, 3, 16, 16)
    smooth.sample_counts(x, 100, batch_size=50)
    seen = torch.cat(rec.inputs)
    assert seen.shape[0] == 200
    assert seen.min() < -1.0 and seen.max() > 1.0               # not clamped to [0, 1]
    assert abs(seen.std().item() - 0.5) < 0.01 and abs(seen.mean().item()) < 0.01
    assert all(t.shape[0] <= 50 for t in rec.inputs)            # chunked by batch_size


def test_seed_repeatable() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(48, 10))
    x = torch.rand(3, 3, 4, 4)
    a = Smoothed(model, sigma=0.5, seed=3).sample_counts(x, 300)
    b = Smoothed(model, sigma=0.5, seed=3).sample_counts(x, 300)
    assert torch.equal(a, b) and a.sum().item() == 900


def test_forward_soft_vote_and_declarations() -> None:
    rec = RecordingClassifier(ConstantClassifier(cls=2))
    smooth = Smoothed(rec, sigma=0.25, forward_samples=16, eot_samples=4, seed=0)
    assert smooth.random and smooth.gradient == "exact" and smooth.eot_samples == 4
    out = smooth(torch.rand(3, 3, 8, 8))
    assert out.shape == (3, 10) and out.argmax(1).tolist() == [2, 2, 2]
    assert sum(t.shape[0] for t in rec.inputs) == 3 * 16
    torch.testing.assert_close(out.exp().sum(1), torch.ones(3))
    hard = Smoothed(ConstantClassifier(cls=2), sigma=0.25, forward_samples=8, vote="hard", seed=0)
    torch.testing.assert_close(hard(torch.rand(2, 3, 8, 8)).exp()[:, 2], torch.ones(2))


def test_forward_gradient_flows(autoattack_resnet18) -> None:
    smooth = Smoothed(autoattack_resnet18, sigma=0.25, forward_samples=2, seed=0)
    x = torch.rand(1, 3, 32, 32, requires_grad=True)
    (g,) = torch.autograd.grad(smooth(x).sum(), x)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_certified_accuracy_curve() -> None:
    radii = torch.tensor([0.0, 0.3, 0.6, 1.0, 0.8])
    classes = torch.tensor([-1, 1, 2, 3, 0])
    labels = torch.tensor([0, 1, 2, 3, 4])
    acc = certified_accuracy(radii, classes, labels, [0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    np.testing.assert_allclose(acc, [0.6, 0.6, 0.4, 0.2, 0.2, 0.0])


@pytest.mark.slow
def test_real_model_certifies_real_images(autoattack_resnet18, cifar_samples) -> None:
    x, _y = cifar_samples
    smooth = Smoothed(autoattack_resnet18, sigma=0.12, seed=0)
    classes, radii = smooth.certify(x[:4], n0=8, n=32, alpha=0.001, batch_size=128)
    assert classes.shape == (4,) and radii.shape == (4,)
    assert bool(((classes == -1) == (radii == 0)).all())
