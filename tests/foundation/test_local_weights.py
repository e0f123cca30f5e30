"""timm:/torchvision: models with weights from a local file (model.weights): random weights saved to
tmp_path, nothing downloaded; the model normalises with the network's own mean/std inside."""
from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from tpa_lightning.models import CheckpointError, NormalizedClassifier, build_model
from tpa_lightning.models.normalized import PretrainedClassifier, check_input_size

REPO = Path(__file__).resolve().parents[2]
IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _touch(path: str) -> None:
    Path(path).touch()


class Stowaway:
    """Not a tensor: unpickling it would create the file ``marker`` (it must never happen)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return _touch, (str(self.marker),)


def _timm(name: str, **kwargs: object) -> nn.Module:
    import timm

    torch.manual_seed(0)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


def _torchvision(name: str, **kwargs: object) -> nn.Module:
    import torchvision

    torch.manual_seed(0)
    return torchvision.models.get_model(name, weights=None, **kwargs).eval()


def _save(state: dict[str, torch.Tensor], path: Path) -> Path:
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    else:
        torch.save(state, path)
    return path


def _by_hand(net: nn.Module, x: torch.Tensor, mean: object, std: object) -> torch.Tensor:
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    with torch.no_grad():
        out: torch.Tensor = net((x - m) / s)
    return out


@pytest.mark.parametrize("suffix,prefix,nest", [(".pth", "", False), (".safetensors", "", False),
                                                (".pt", "module.", True), (".bin", "model.", False),
                                                (".safetensors", "module.", False)])
def test_timm_weights_reproduce_the_original_logits(tmp_path: Path, suffix: str, prefix: str, nest: bool) -> None:
    from timm.models import get_pretrained_cfg

    orig = _timm("test_efficientnet", num_classes=7)
    state = {f"{prefix}{k}": v for k, v in orig.state_dict().items()}
    path = _save({"state_dict": state} if nest else state, tmp_path / f"w{suffix}")  # type: ignore[dict-item]
    model = build_model("timm:test_efficientnet", weights=str(path))        # classes read from the file
    assert isinstance(model, PretrainedClassifier) and not model.training
    cfg = get_pretrained_cfg("test_efficientnet")
    assert cfg is not None
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        got = model(x)
    assert got.shape == (2, 7)
    assert torch.equal(got, _by_hand(orig, x, cfg.mean, cfg.std))
    assert model.input_size == tuple(cfg.input_size) and model.interpolation == cfg.interpolation


def test_timm_mean_std_are_the_pretrained_cfg_not_the_dataset_or_imagenet(tmp_path: Path) -> None:
    from timm.models import get_pretrained_cfg

    orig = _timm("test_vit", img_size=64, num_classes=5)
    path = _save(orig.state_dict(), tmp_path / "vit.safetensors")
    model = build_model("timm:test_vit", weights=path, num_classes=5, in_chans=3, img_size=64,
                        mean=[0.1, 0.1, 0.1], std=[0.9, 0.9, 0.9])            # the dataset's: ignored
    cfg = get_pretrained_cfg("test_vit")
    assert cfg is not None and tuple(cfg.mean) != IMAGENET[0]                 # (0.5, 0.5, 0.5)
    assert isinstance(model, PretrainedClassifier)
    d = model.describe()
    assert d["mean"] == pytest.approx(list(cfg.mean)) and d["std"] == pytest.approx(list(cfg.std))
    assert d["input_size"] == [3, 64, 64] and d["interpolation"] == cfg.interpolation
    assert d["spec"] == "timm:test_vit" and d["weights"] == str(path)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), _by_hand(orig, x, cfg.mean, cfg.std))


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_weights_reproduce_the_original_logits(tmp_path: Path, suffix: str) -> None:
    orig = _torchvision("mobilenet_v3_small", num_classes=6)
    path = _save({f"module.{k}": v for k, v in orig.state_dict().items()}, tmp_path / f"tv{suffix}")
    model = build_model("torchvision:mobilenet_v3_small", weights=path, num_classes=6)
    assert isinstance(model, PretrainedClassifier)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), _by_hand(orig, x, *IMAGENET))
    assert model.describe()["mean"] == pytest.approx(list(IMAGENET[0]))
    assert model.input_size == (3, 224, 224) and model.interpolation == "bilinear"


def test_a_file_of_our_own_wrapper_loads_back(tmp_path: Path) -> None:
    orig = _timm("test_efficientnet", num_classes=4)
    first = build_model("timm:test_efficientnet", weights=_save(orig.state_dict(), tmp_path / "a.pth"))
    again = build_model("timm:test_efficientnet", weights=_save(first.state_dict(), tmp_path / "b.pth"))
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(first(x), again(x))


def test_without_weights_timm_and_torchvision_are_random_with_the_given_normalisation() -> None:
    for spec in ("timm:test_efficientnet", "torchvision:mobilenet_v3_small"):
        model = build_model(spec, num_classes=3, in_chans=3, mean=[0.5] * 3, std=[0.25] * 3)
        assert type(model) is NormalizedClassifier
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 3)


def test_mismatching_files_name_the_keys(tmp_path: Path) -> None:
    orig = _timm("test_efficientnet", num_classes=7)
    state = orig.state_dict()
    missing = dict(state)
    missing.pop("conv_stem.weight")
    with pytest.raises(ValueError, match=r"missing keys \['conv_stem.weight'\]"):
        build_model("timm:test_efficientnet", weights=_save(missing, tmp_path / "m.pth"))
    extra = {**state, "surplus.weight": torch.zeros(2)}
    with pytest.raises(ValueError, match=r"unexpected keys \['surplus.weight'\]"):
        build_model("timm:test_efficientnet", weights=_save(extra, tmp_path / "u.safetensors"))
    with pytest.raises(ValueError, match="classifier.weight"):                  # 7 classes, 10 asked for
        build_model("timm:test_efficientnet", weights=_save(state, tmp_path / "c.pth"), num_classes=10)
    with pytest.raises(ValueError, match="missing keys"):                        # another architecture
        build_model("torchvision:resnet18", weights=tmp_path / "c.pth", num_classes=7)
    with pytest.raises(CheckpointError, match="not found"):
        build_model("timm:test_efficientnet", weights=tmp_path / "absent.pth")


def test_unknown_names_and_other_specs_with_weights_are_errors(tmp_path: Path) -> None:
    path = _save({"w": torch.zeros(1)}, tmp_path / "w.pth")
    with pytest.raises(ValueError, match="timm:no_such_net"):
        build_model("timm:no_such_net", weights=path)
    with pytest.raises(ValueError, match="torchvision:no_such_net"):
        build_model("torchvision:no_such_net", weights=path)
    with pytest.raises(ValueError, match="torchvision:no_such_net"):
        build_model("torchvision:no_such_net")
    with pytest.raises(ValueError, match="small_cnn"):
        build_model("small_cnn", weights=path)
    with pytest.raises(ValueError, match="3-channel"):
        build_model("timm:test_efficientnet", weights=path, in_chans=1)


def test_pickled_objects_are_refused_not_run(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pth"
    torch.save({"conv_stem.weight": torch.zeros(1), "payload": Stowaway(marker)}, path)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        build_model("timm:test_efficientnet", weights=path)
    plain = tmp_path / "evil.pkl.pt"
    with open(plain, "wb") as fh:
        pickle.dump({"x": Stowaway(marker)}, fh)
    with pytest.raises(CheckpointError, match="refusing to unpickle"):
        build_model("torchvision:mobilenet_v3_small", weights=plain)
    assert not marker.exists()
    with open(plain, "rb") as fh:                 # the payload is real: plain pickle would run it
        pickle.load(fh)                           # trusted here: the test wrote it
    assert marker.exists()


def test_input_size_is_checked_not_resized(tmp_path: Path) -> None:
    orig = _timm("test_efficientnet")
    model = build_model("timm:test_efficientnet", weights=_save(orig.state_dict(), tmp_path / "w.pth"))
    check_input_size(model, 160)                                       # test_efficientnet: 160x160
    with pytest.raises(ValueError, match=r"expects 160x160.*data.image_size=160"):
        check_input_size(model, 64)
    check_input_size(nn.Linear(2, 2), 64)                              # no input_size: nothing to check
    with torch.no_grad():                                              # the model itself does not resize
        assert model(torch.rand(1, 3, 64, 64)).shape == (1, 1000)


def test_robustbench_imagenet_models_record_their_preprocessing() -> None:
    from tpa_lightning.models.robustbench_adapter import imagenet_preprocessing

    rb = imagenet_preprocessing("Salman2020Do_R18", "Linf")
    assert rb["input_size"] == (3, 224, 224) and rb["preprocessing"] == "Res256Crop224"
    assert imagenet_preprocessing("Singh2023Revisiting_ConvNeXt-T-ConvStem", "Linf")["interpolation"] == "bicubic"
    assert imagenet_preprocessing("Wong2020Fast", "Linf")["input_size"] == (3, 288, 288)
    xcit = imagenet_preprocessing("Debenedetti2022Light_XCiT-S12", "Linf")      # a timm-registered model
    assert xcit["input_size"] == (3, 224, 224) and str(xcit["preprocessing"]).startswith("timm:")


def test_config_takes_model_weights() -> None:
    from tpa_lightning.config import load_config

    cfg = load_config("evaluate", ["model.name=timm:resnet18", "model.weights=/x"])
    assert cfg.model.name == "timm:resnet18" and cfg.model.weights == "/x"
    assert load_config("evaluate", []).model.weights is None


def test_train_py_rejects_model_weights() -> None:
    res = subprocess.run([sys.executable, "train.py", "model.name=timm:resnet18", "model.weights=/x"],
                         cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 2 and "model.weights" in res.stderr and "Traceback" not in res.stderr


def test_evaluate_resolves_model_weights_as_the_checkpoint(tmp_path: Path) -> None:
    from tpa_lightning.config import load_config
    from tpa_lightning.evaluation.evaluate_job import resolve_model_spec

    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"stand-in: resolve only checks that the file exists")
    cfg = load_config("evaluate", ["model.name=timm:resnet18", f"model.weights={weights}"])
    assert resolve_model_spec(cfg) == ("timm:resnet18", str(weights))
    missing = load_config("evaluate", ["model.name=timm:resnet18", f"model.weights={tmp_path / 'none.pt'}"])
    with pytest.raises(FileNotFoundError, match="model.weights"):
        resolve_model_spec(missing)
