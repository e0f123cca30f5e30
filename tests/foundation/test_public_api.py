"""The public names of design.md import from where the documentation says."""
from __future__ import annotations

import subprocess
import sys


def test_top_level_names_are_the_real_classes() -> None:
    import tpa_lightning
    from tpa_lightning import AdversarialTrainingModule, RobustDataModule, build_attack, build_model
    from tpa_lightning.attacks import build_attack as attacks_build
    from tpa_lightning.data.datamodule import RobustDataModule as dm
    from tpa_lightning.models.build import build_model as models_build
    from tpa_lightning.training.module import AdversarialTrainingModule as module

    assert AdversarialTrainingModule is module and RobustDataModule is dm
    assert build_model is models_build and build_attack is attacks_build
    assert set(tpa_lightning.__all__) >= {"AdversarialTrainingModule", "RobustDataModule", "__version__"}


def test_unknown_attribute_is_an_attribute_error() -> None:
    import tpa_lightning

    try:
        tpa_lightning.no_such_name  # noqa: B018
    except AttributeError as err:
        assert "no_such_name" in str(err)
    else:
        raise AssertionError("expected AttributeError")


def test_bare_import_does_not_load_lightning() -> None:
    code = "import sys, tpa_lightning; print('lightning' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
