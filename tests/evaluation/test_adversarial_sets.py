"""Saved adversarial sets keep their perturbation: the lossless PNG / .npz round trip, the budget after
8-bit rounding, JPEG refused, and scoring a saved set on another model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor, nn

from tpa_lightning.attacks import build_attack
from tpa_lightning.evaluation.adversarial_sets import (
    budget_levels,
    evaluate_saved_set,
    load_adversarial_set,
    quantize,
    save_adversarial_set,
)

EPS = 8 / 255


def _crafted(n: int = 6, channels: int = 3, size: int = 10, eps: float = EPS) -> tuple[Tensor, Tensor, Tensor]:
    """Clean images not on the 8-bit grid and a perturbation that hits the budget's edge."""
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(n, channels, size, size, generator=g)
    delta = (torch.rand(clean.shape, generator=g) * 2 - 1) * eps * 1.3      # some pixels beyond eps
    adv = (clean + delta.clamp(-eps, eps) + 1e-4 * torch.randn(clean.shape, generator=g)).clamp(0, 1)
    return adv, clean, torch.arange(n) % 10


@pytest.mark.parametrize("target,channels", [("set", 3), ("set.npz", 3), ("gray", 1), ("gray.npz", 1)])
def test_round_trip_is_exact_and_within_eps(tmp_path: Path, target: str, channels: int) -> None:
    adv, clean, y = _crafted(channels=channels)
    meta = save_adversarial_set(tmp_path / target, adv, clean, y, EPS, meta={"attack": "pgd", "steps": 10})
    adv_u8, clean_u8 = quantize(adv, clean, EPS)
    x, labels, loaded_meta = load_adversarial_set(tmp_path / target)
    assert x.dtype == torch.float32 and x.shape == adv.shape
    assert np.array_equal(np.round(x.numpy() * 255).astype(np.uint8), adv_u8)   # exactly what was saved
    assert torch.equal(labels, y)
    clean_levels = torch.from_numpy(clean_u8.astype(np.float32))
    linf = (x * 255 - clean_levels).abs().max().item()
    assert linf <= budget_levels(EPS) == 8 == meta["linf_levels"]                # the budget holds
    assert (x - clean_levels / 255).abs().max().item() <= EPS + 1e-6
    assert (x - adv).abs().max().item() <= 0.5 / 255 + EPS * 0.3 + 1e-4 + 1e-6   # close to the float set
    assert loaded_meta["user"] == {"attack": "pgd", "steps": 10} and loaded_meta["eps"] == EPS
    assert loaded_meta["count"] == 6 and loaded_meta["shape"] == [channels, 10, 10]


def test_eps_levels_absorb_float_error_and_clean_from_8_bit_files_is_exact() -> None:
    assert [budget_levels(e) for e in (8 / 255, 16 / 255, 4 / 255, 0.03, 0.0, 1.0)] == [8, 16, 4, 7, 0, 255]
    clean = torch.randint(0, 256, (2, 3, 5, 5)).float() / 255               # an 8-bit dataset
    adv = (clean + EPS).clamp(0, 1)
    adv_u8, clean_u8 = quantize(adv, clean, EPS)
    assert np.array_equal(clean_u8, np.round(clean.numpy() * 255).astype(np.uint8))
    assert (torch.from_numpy(adv_u8).float() / 255 - clean).abs().max().item() <= EPS + 1e-7
    assert np.array_equal(adv_u8, np.round(adv.numpy() * 255).astype(np.uint8))   # nothing clipped needlessly


def test_png_folder_layout(tmp_path: Path) -> None:
    adv, clean, y = _crafted(n=3)
    save_adversarial_set(tmp_path / "set", adv, clean, y, EPS)
    files = sorted(p.name for p in (tmp_path / "set").iterdir())
    assert files == ["00000.png", "00001.png", "00002.png", "labels.csv", "meta.json"]
    assert (tmp_path / "set" / "labels.csv").read_text().splitlines() == [
        "filename,label", "00000.png,0", "00001.png,1", "00002.png,2"]
    assert Image.open(tmp_path / "set" / "00000.png").mode == "RGB"
    assert json.loads((tmp_path / "set" / "meta.json").read_text())["format"] == "png"


@pytest.mark.parametrize("target,fmt", [("adv.jpg", None), ("adv.JPEG", None), ("adv", "jpeg"), ("adv.npz", "jpg")])
def test_jpeg_is_refused(tmp_path: Path, target: str, fmt: str | None) -> None:
    adv, clean, y = _crafted(n=2)
    with pytest.raises(ValueError, match="refused: lossy compression .*destroys adversarial perturbations"):
        save_adversarial_set(tmp_path / target, adv, clean, y, EPS, format=fmt)
    assert not list(tmp_path.iterdir())


def test_bad_arguments_and_tampering(tmp_path: Path) -> None:
    adv, clean, y = _crafted(n=2)
    with pytest.raises(ValueError, match="not .bmp"):
        save_adversarial_set(tmp_path / "a.bmp", adv, clean, y, EPS)
    with pytest.raises(ValueError, match="2 images but 3 labels"):
        save_adversarial_set(tmp_path / "a.npz", adv, clean, torch.arange(3), EPS)
    with pytest.raises(ValueError, match="PNG stores 1 or 3 channels"):
        save_adversarial_set(tmp_path / "a", adv[:, :2], clean[:, :2], y, EPS)
    save_adversarial_set(tmp_path / "a", adv, clean, y, EPS)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        save_adversarial_set(tmp_path / "a", adv, clean, y, EPS)
    save_adversarial_set(tmp_path / "a", adv, clean, y, EPS, overwrite=True)
    # a PNG re-encoded through JPEG no longer holds the saved perturbation: loading says so
    img = Image.open(tmp_path / "a" / "00001.png")
    img.save(tmp_path / "a" / "tmp.jpg", quality=90)
    Image.open(tmp_path / "a" / "tmp.jpg").save(tmp_path / "a" / "00001.png")
    with pytest.raises(ValueError, match="sha256 mismatch"):
        load_adversarial_set(tmp_path / "a")


def test_npz_needs_no_pickle(tmp_path: Path) -> None:
    adv, clean, y = _crafted(n=2)
    save_adversarial_set(tmp_path / "s.npz", adv, clean, y, EPS)
    with np.load(tmp_path / "s.npz", allow_pickle=False) as z:
        assert sorted(z.files) == ["labels", "meta", "x_adv"] and z["x_adv"].dtype == np.uint8


def test_saved_set_scored_on_another_model(tmp_path: Path, cifar_samples: tuple[Tensor, Tensor],
                                           autoattack_resnet18: nn.Module) -> None:
    x, y = cifar_samples
    x, y = x[:8], y[:8]
    adv = build_attack("fgsm", autoattack_resnet18, eps=EPS)(x, y)
    for target in ("fgsm", "fgsm.npz"):
        save_adversarial_set(tmp_path / target, adv, x, y, EPS, meta={"attack": "fgsm"})
        loaded, labels, _ = load_adversarial_set(tmp_path / target)
        # foolbox's images are 8-bit PNGs: the saved set is within eps of them exactly
        assert (loaded - x).abs().max().item() <= EPS + 1e-6
        torch.manual_seed(1)
        other = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 30 * 30, 10)).train()
        with torch.no_grad():
            direct = (other.eval()(loaded).argmax(1) == labels).float().mean().item()
        other.train()
        assert evaluate_saved_set(tmp_path / target, other, batch_size=3) == pytest.approx(direct)
        assert other.training                                   # its mode is restored
        on_source = evaluate_saved_set(tmp_path / target, autoattack_resnet18)
        with torch.no_grad():
            clean_acc = (autoattack_resnet18(x).argmax(1) == y).float().mean().item()
        assert on_source < clean_acc                            # the saved perturbation still fools the source
