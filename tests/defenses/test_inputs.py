"""Bad input: clear ValueErrors that say what was expected."""
from __future__ import annotations

import pytest
import torch
from defense_test_models import ConstantClassifier

import defenses
from defenses import FeatureDistillation, RandomResizePad, Smoothed, certified_accuracy


@pytest.fixture
def model() -> torch.nn.Module:
    return ConstantClassifier()


@pytest.mark.parametrize("name", ["fd", "jpeg", "bitdepth", "rp"])
def test_images_checked(name: str, model) -> None:
    d = defenses.build_defense(name, model)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        d(torch.rand(2, 3, 16, 16) * 2)
    with pytest.raises(ValueError, match="4-D NCHW"):
        d(torch.rand(3, 16, 16))
    with pytest.raises(ValueError, match="NaN"):
        d(torch.full((1, 3, 8, 8), float("nan")))


def test_smoothing_arguments(model) -> None:
    with pytest.raises(ValueError, match="sigma must be > 0"):
        Smoothed(model, sigma=0.0)
    with pytest.raises(ValueError, match="sigma must be > 0"):
        defenses.build_defense("rs", model, sigma=-1)
    smooth = Smoothed(model, sigma=0.25)
    x = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match="n0 must be an integer >= 1"):
        smooth.certify(x, n0=0, n=10)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        smooth.certify(x, n0=10, n=0)
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        smooth.predict(x, n=0)
    for alpha in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
            smooth.certify(x, n0=10, n=10, alpha=alpha)
        with pytest.raises(ValueError, match=r"alpha must be in \(0, 1\)"):
            smooth.predict(x, n=10, alpha=alpha)
    with pytest.raises(ValueError, match=r"values in \[0, 1\]"):
        smooth.certify(x - 1, n0=10, n=10)
    with pytest.raises(ValueError, match="4-D NCHW"):
        smooth.predict(x[0], n=10)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        smooth.predict(x, n=10, batch_size=0)


def test_registry_errors(model) -> None:
    assert set(defenses.DEFENSES) == {"rp", "fd", "jpeg", "bitdepth", "nrp", "rs"}
    with pytest.raises(ValueError, match="unknown defense 'nope'"):
        defenses.build_defense("nope", model)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['qualty'\]"):
        defenses.build_defense("jpeg", model, qualty=50)
    with pytest.raises(ValueError, match="quality must be an integer in"):
        defenses.build_defense("jpeg", model, quality=101)
    with pytest.raises(ValueError, match="bits must be an integer >= 1"):
        defenses.build_defense("bitdepth", model, bits=0)
    with pytest.raises(ValueError, match="grad_mode must be one of"):
        defenses.build_defense("fd", model, grad_mode="magic")
    with pytest.raises(ValueError, match="draws must be an integer >= 1"):
        defenses.build_defense("rp", model, draws=0)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        defenses.build_defense("fd", "resnet")
    with pytest.raises(ValueError, match="flip_p must be a probability"):
        RandomResizePad(flip_p=2.0)
    with pytest.raises(ValueError, match="q_low must be > 0"):
        FeatureDistillation(q_low=0)


def test_certified_accuracy_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        certified_accuracy([0.1], [1, 2], [1, 2], [0.0])
    with pytest.raises(ValueError, match="radii >= 0"):
        certified_accuracy([0.1], [1], [1], [-1.0])


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = "import sys, defenses; print('lightning' in sys.modules, 'pytorch_lightning' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
