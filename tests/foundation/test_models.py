"""build_model for every spec, safe checkpoint loading, and the real pretrained weights."""
from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from tpa_lightning.models import CheckpointError, NormalizedClassifier, build_model
from tpa_lightning.models.checkpoint import MODEL_META_KEY


@pytest.mark.parametrize("spec,chans,size", [("small_cnn", 1, 28), ("cifar_resnet18", 3, 32),
                                             ("timm:resnet18", 3, 32), ("timm:vit_tiny_patch16_224", 1, 32)])
def test_architectures_take_unit_range_images(spec: str, chans: int, size: int) -> None:
    kwargs = {"img_size": size} if "vit" in spec else {}
    model = build_model(spec, num_classes=7, in_chans=chans, mean=[0.5] * chans, std=[0.25] * chans, **kwargs)
    out = model(torch.rand(2, chans, size, size))
    assert out.shape == (2, 7)
    assert isinstance(model, NormalizedClassifier)


def test_normalisation_lives_inside_the_model() -> None:
    model = build_model("small_cnn", 10, 1, mean=[0.3], std=[0.2])
    x = torch.rand(3, 1, 28, 28)
    assert torch.allclose(model(x), model.net((x - 0.3) / 0.2), atol=1e-6)


def test_pretrained_autoattack_resnet18_classifies_the_foolbox_images(cifar_samples, autoattack_resnet18) -> None:
    x, y = cifar_samples
    with torch.no_grad():
        correct = int((autoattack_resnet18(x).argmax(1) == y).sum())
    assert correct >= 19


def test_unknown_specs_list_what_is_known() -> None:
    with pytest.raises(ValueError, match="small_cnn"):
        build_model("resnet9000")
    with pytest.raises(ValueError, match="not a timm architecture"):
        build_model("timm:not_a_model")
    with pytest.raises(ValueError, match="unknown pretrained"):
        build_model("pretrained:imagenet_magic")


def test_robustbench_model_from_a_local_model_dir(tmp_path: Path) -> None:
    from tpa_lightning.models.robustbench_adapter import import_robustbench

    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel

    reference = model_dicts[BenchmarkDataset.cifar_10][ThreatModel.Linf]["Ding2020MMA"]["model"]()
    folder = tmp_path / "cifar10" / "Linf"
    folder.mkdir(parents=True)
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}},
               folder / "Ding2020MMA.pt")
    model = build_model("robustbench:Ding2020MMA@cifar10/Linf", model_dir=tmp_path)
    for (k, v), (k2, v2) in zip(model.state_dict().items(), reference.state_dict().items()):
        assert k == k2 and torch.equal(v, v2)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), reference.eval()(x), atol=1e-5)


def test_robustbench_missing_weights_say_where_to_put_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "cifar10" / "Linf" / "Ding2020MMA.pt")):
        build_model("robustbench:Ding2020MMA", model_dir=tmp_path)
    with pytest.raises(ValueError, match="not in RobustBench"):
        build_model("robustbench:NoSuchModel2099", model_dir=tmp_path)


def test_train_py_style_checkpoint_rebuilds_itself(tmp_path: Path) -> None:
    model = build_model("small_cnn", 10, 1, mean=[0.28], std=[0.35])
    meta = {"spec": "small_cnn", "num_classes": 10, "in_chans": 1, "mean": [0.28], "std": [0.35], "kwargs": {}}
    path = tmp_path / "run.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                MODEL_META_KEY: meta, "epoch": 3}, path)
    loaded = build_model(str(path))
    x = torch.rand(4, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))


def test_plain_state_dict_needs_arch_and_safetensors_load(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    net = build_model("cifar_resnet18", 10, 3).net
    pt = tmp_path / "plain.pt"
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, pt)
    with pytest.raises(CheckpointError, match="arch="):
        build_model(str(pt))
    loaded = build_model(str(pt), arch="cifar_resnet18")
    st = tmp_path / "plain.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(st))
    loaded2 = build_model(str(st), arch="cifar_resnet18")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        ref = net.eval()(x)
        assert torch.allclose(loaded(x), ref, atol=1e-6) and torch.allclose(loaded2(x), ref, atol=1e-6)


def test_missing_corrupt_and_malicious_checkpoints_give_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        build_model(str(tmp_path / "absent.ckpt"))
    corrupt = tmp_path / "corrupt.ckpt"
    corrupt.write_bytes(b"\x80\x04not really a checkpoint" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        build_model(str(corrupt))
    truncated = tmp_path / "truncated.pt"
    torch.save(build_model("small_cnn", 10, 1).state_dict(), truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    with pytest.raises(CheckpointError, match="corrupt"):
        build_model(str(truncated), arch="small_cnn")

    class Payload:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("this must never run",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as fh:
        pickle.dump({"state_dict": Payload()}, fh)
    with pytest.raises(CheckpointError, match="pickled objects other than weights"):
        build_model(str(evil), arch="small_cnn")


def test_wrong_weights_for_the_architecture(tmp_path: Path) -> None:
    path = tmp_path / "w.pt"
    torch.save(nn.Linear(3, 2).state_dict(), path)
    with pytest.raises(CheckpointError, match="do not fit"):
        build_model(str(path), arch="small_cnn", in_chans=1)
