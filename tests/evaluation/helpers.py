"""Tiny real models and data for the evaluation tests: a small CNN trained for a few seconds on
real Fashion-MNIST images, and the test split's first images."""
from __future__ import annotations

import functools
from pathlib import Path

import torch
from torch import Tensor, nn

from tpa_lightning.config import load_config
from tpa_lightning.data import fashion_mnist
from tpa_lightning.data.fashion_mnist import load_fashion_mnist
from tpa_lightning.evaluation import TensorImages
from tpa_lightning.models import build_model

REPO = Path(__file__).resolve().parents[2]
INFO = fashion_mnist.INFO


@functools.lru_cache(maxsize=1)
def trained_cnn_state() -> dict[str, Tensor]:
    """A small CNN trained one pass over 3000 Fashion-MNIST training images (~80 % clean)."""
    torch.set_num_threads(1)
    x, y = load_fashion_mnist("data", train=True)
    g = torch.Generator().manual_seed(0)
    idx = torch.randperm(x.shape[0], generator=g)[:3000]
    x, y = x[idx].float() / 255, y[idx]
    torch.manual_seed(0)
    model = tiny_cnn()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(2):
        for s in range(0, 3000, 100):
            loss = nn.functional.cross_entropy(model(x[s:s + 100]), y[s:s + 100])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def tiny_cnn() -> nn.Module:
    return build_model("small_cnn", num_classes=10, in_chans=1, mean=list(INFO.mean), std=list(INFO.std))


def trained_cnn() -> nn.Module:
    model = tiny_cnn()
    model.load_state_dict(trained_cnn_state())
    return model.eval()


def fmnist_test_images(n: int) -> TensorImages:
    """The first ``n`` Fashion-MNIST test images."""
    x, y = load_fashion_mnist("data", train=False)
    return TensorImages(x[:n].float() / 255, y[:n], name=f"Fashion-MNIST test[:{n}]")


class Rounded(nn.Module):
    """Rounds its input to 8 levels before the model, without BPDA: input gradients are zero."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(torch.round(x * 7) / 7)


def config(out: Path, *overrides: str):
    base = [f"out={out}", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu", "threads=1",
            "data.batch_size=32",]
    return load_config("evaluate", base + list(overrides))
