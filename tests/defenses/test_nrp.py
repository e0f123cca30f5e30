"""NRP: official parameter names, checkpoints, dynamic inference, and training a purifier here."""
from __future__ import annotations

import pytest
import torch
from defense_test_models import ConstantClassifier

import defenses
from defenses import NRP, NRPDefense, load_purifier, save_purifier
from defenses.nrp import dynamic_inference_input

OFFICIAL_KEYS = [
    "conv_first.weight", "conv_first.bias", "trunk_conv.weight", "trunk_conv.bias",
    "RRDB_trunk.0.RDB1.conv1.weight", "RRDB_trunk.22.RDB3.conv5.weight", "RRDB_trunk.22.RDB3.conv5.bias",
    "RRDB_trunk.11.RDB2.conv3.bias",
]


def test_official_state_dict_names_load(tmp_path) -> None:
    net = NRP(3, 3, 64, 23, 32)
    state = net.state_dict()
    for key in OFFICIAL_KEYS:
        assert key in state
    assert "RRDB_trunk.23.RDB1.conv1.weight" not in state
    assert state["RRDB_trunk.22.RDB3.conv5.weight"].shape == (64, 64 + 4 * 32, 3, 3)
    assert state["trunk_conv.weight"].shape == (3, 64, 3, 3)
    assert len(state) == 2 + 23 * 3 * 5 * 2 + 2
    path = tmp_path / "NRP.pth"
    torch.save(state, path)                       # a flat state dict, as the released NRP.pth
    defended = defenses.build_defense("nrp", ConstantClassifier(), weights=path)
    loaded = defended.preprocessors[0].purifier
    assert loaded.config == {"in_nc": 3, "out_nc": 3, "nf": 64, "nb": 23, "gc": 32}
    for k, v in loaded.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_save_purifier_roundtrip(tmp_path) -> None:
    net = NRP(3, 3, nf=8, nb=2, gc=4)
    path = save_purifier(net, tmp_path / "p.pt")
    defended = defenses.build_defense("nrp", ConstantClassifier(), weights=path, dynamic=False)
    x = torch.rand(2, 3, 16, 16)
    torch.testing.assert_close(defended.preprocess(x), net(x).clamp(0, 1))
    with pytest.raises(ValueError, match="does not match the checkpoint"):
        defenses.build_defense("nrp", ConstantClassifier(), weights=path, nb=5)


def test_dynamic_inference() -> None:
    x = torch.rand(4, 3, 16, 16)
    xm = dynamic_inference_input(x, 0.05, 16 / 255, torch.Generator().manual_seed(0))
    assert (xm - x).abs().max() <= 16 / 255 + 1e-6 and xm.min() >= 0 and xm.max() <= 1
    assert (xm - x).abs().max() > 0
    d = NRPDefense(NRP(nf=8, nb=1, gc=4), seed=0)
    assert d.random and d.gradient == "exact" and d.eot_samples == 10
    assert not torch.equal(d(x), d(x))                                        # new draw per call
    static = NRPDefense(NRP(nf=8, nb=1, gc=4), dynamic=False)
    assert not static.random and static.eot_samples == 1
    torch.testing.assert_close(static(x), static(x))


def test_nrp_needs_weights() -> None:
    with pytest.raises(ValueError, match="needs trained purifier weights"):
        defenses.build_defense("nrp", ConstantClassifier())


def test_trained_purifier_lowers_feature_loss(cifar_samples, tmp_path) -> None:
    from defenses.nrp_training import PurifierTrainingModule, train_purifier

    x, _ = cifar_samples
    x = x[:8, :, :16, :16].contiguous()          # tiny real data: 8 crops of real CIFAR-10 images
    module = PurifierTrainingModule(nb=1, nf=8, gc=8, lr=5e-3, ssp_steps=2, seed=0)
    x_adv = module.ssp(x)
    assert (x_adv - x).abs().max() <= 16 / 255 + 1e-6
    with torch.no_grad():
        before = module.losses(x, x_adv)
    train_purifier(x, steps=20, batch_size=8, module=module)
    with torch.no_grad():
        after = module.losses(x, x_adv)
    assert after["feature_loss"] < 0.5 * before["feature_loss"]
    assert len(module.history) == 20
    path = save_purifier(module, tmp_path / "trained.pt")
    d = defenses.build_defense("nrp", ConstantClassifier(), weights=path, dynamic=False)
    assert d.preprocessors[0].purifier.config["nb"] == 1


def test_classifier_features(autoattack_resnet18) -> None:
    from defenses.nrp_training import classifier_features

    names = [n for n, _ in autoattack_resnet18.named_modules() if n]
    layer = next(n for n in names if n.endswith("layer1"))
    feats = classifier_features(autoattack_resnet18, layer)
    out = feats(torch.rand(2, 3, 32, 32))
    assert out.dim() == 4 and out.shape[0] == 2
    with pytest.raises(ValueError, match="not a submodule"):
        classifier_features(autoattack_resnet18, "nope")


@pytest.mark.slow
def test_lightning_training_and_checkpoint(cifar_samples, tmp_path) -> None:
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from defenses.nrp_training import PurifierTrainingModule

    x, y = cifar_samples
    loader = DataLoader(TensorDataset(x[:8], y[:8]), batch_size=4)
    module = PurifierTrainingModule(nb=1, nf=8, gc=4, ssp_steps=1)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=1,
                        default_root_dir=tmp_path)
    trainer.fit(module, loader, loader)
    assert "val/feature_loss" in trainer.callback_metrics
    ckpt = tmp_path / "purifier.ckpt"
    trainer.save_checkpoint(ckpt)
    net = load_purifier(ckpt)                      # Lightning checkpoint, weights_only=True
    for k, v in module.purifier.state_dict().items():
        assert torch.equal(v, net.state_dict()[k])
