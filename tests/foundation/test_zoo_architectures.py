"""The CIFAR-scale architectures of the model zoo: shapes, batch consistency, learning, bad arguments."""
from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F

from tpa_lightning.models import ARCHITECTURES, build_model

#: small versions of every zoo architecture (fast on a CPU)
SMALL: dict[str, dict[str, Any]] = {
    "cifar_resnet18": {"width": 8},
    "cifar_vgg": {"width": 8},
    "cifar_mobilenet": {"width": 8, "head_channels": 64, "stem_stride": 2},
    "cifar_densenet": {"width": 4, "blocks": (2, 2)},
    "cifar_convnext": {"width": 8, "depths": (1, 1, 1, 1)},
    "cifar_vit": {"width": 32, "depth": 2, "heads": 2},
}


def test_every_zoo_architecture_is_registered() -> None:
    assert set(SMALL) <= set(ARCHITECTURES)


@pytest.mark.parametrize("name", sorted(SMALL))
@pytest.mark.parametrize("chans", [3, 1])
def test_logits_shape_for_32x32_images(name: str, chans: int) -> None:
    model = build_model(name, num_classes=7, in_chans=chans, mean=[0.5] * chans, std=[0.25] * chans,
                        **SMALL[name]).eval()
    with torch.no_grad():
        out = model(torch.rand(3, chans, 32, 32))
    assert out.shape == (3, 7)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", sorted(SMALL))
def test_eval_batch_equals_each_image_alone(name: str, cifar_samples) -> None:
    x = cifar_samples[0][:6]
    model = build_model(name, **SMALL[name]).eval()
    with torch.no_grad():
        batch = model(x)
        alone = torch.cat([model(x[i:i + 1]) for i in range(x.shape[0])])
    assert torch.allclose(batch, alone, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_a_few_steps_lower_the_training_loss(name: str, cifar_samples) -> None:
    x, y = cifar_samples
    model = build_model(name, mean=[0.49, 0.48, 0.45], std=[0.25, 0.24, 0.26], **SMALL[name]).train()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0] - 0.2, losses


@pytest.mark.parametrize("name,kwargs", [
    ("cifar_vgg", {"width": 0}), ("cifar_vgg", {"blocks": (1,) * 6}), ("cifar_vgg", {"blocks": (1, 0)}),
    ("cifar_mobilenet", {"width": 0}), ("cifar_mobilenet", {"stem_stride": 3}),
    ("cifar_mobilenet", {"head_channels": 0}),
    ("cifar_densenet", {"width": 0}), ("cifar_densenet", {"blocks": ()}),
    ("cifar_densenet", {"compression": 0.0}),
    ("cifar_convnext", {"width": 0}), ("cifar_convnext", {"depths": (1, 1, 1, 1, 1)}),
    ("cifar_convnext", {"layer_scale_init": 0.0}),
    ("cifar_vit", {"width": 0}), ("cifar_vit", {"width": 30, "heads": 4}), ("cifar_vit", {"patch_size": 5}),
    ("cifar_vit", {"pool": "max"}), ("cifar_vit", {"depth": 0}),
])
def test_bad_constructor_arguments_raise_value_error(name: str, kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=name):
        ARCHITECTURES[name](**kwargs)
    with pytest.raises(ValueError):
        ARCHITECTURES[name](num_classes=0)


def test_vit_rejects_an_image_size_it_was_not_built_for() -> None:
    model = build_model("cifar_vit", **SMALL["cifar_vit"])
    with pytest.raises(ValueError, match="32x32"):
        model(torch.rand(1, 3, 28, 28))
