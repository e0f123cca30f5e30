"""Every dataset path of RobustDataModule, on files the tests write themselves and on the real copies."""
from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tpa_lightning.data import DatasetNotFoundError, RobustDataModule, foolbox_samples
from tpa_lightning.data.cifar10 import CLASSES, REPO_ROOT, load_cifar10
from tpa_lightning.data.idx import read_idx

SHARED_JPEG = REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg"


def _write_idx(path: Path, arr: np.ndarray) -> None:
    code = 0x08
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    with gzip.open(path, "wb") as fh:
        fh.write(header + arr.astype(np.uint8).tobytes())


def _fake_fmnist(root: Path, n_train: int = 40, n_test: int = 12) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28)),
        "train-labels-idx1-ubyte": rng.integers(0, 10, (n_train,)),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28)),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, (n_test,)),
    }
    for name, arr in arrays.items():
        _write_idx(folder / f"{name}.gz", arr)
    return arrays


def test_fashion_mnist_from_idx_files_written_here(tmp_path: Path) -> None:
    arrays = _fake_fmnist(tmp_path)
    dm = RobustDataModule("fashion_mnist", root=str(tmp_path), val_size=10, batch_size=8)
    dm.setup()
    assert len(dm.train_set) == 30 and len(dm.val_set) == 10 and len(dm.test_set) == 12
    # the test split keeps every image; compare as sets of (image bytes, label)
    expected = {(arrays["t10k-images-idx3-ubyte"][i].astype(np.uint8).tobytes(),
                 int(arrays["t10k-labels-idx1-ubyte"][i])) for i in range(12)}
    got = set()
    for x, y in dm.test_dataloader():
        assert x.dtype == torch.float32 and x.shape[1:] == (1, 28, 28)
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        for img, lbl in zip(x, y):
            got.add(((img[0] * 255).round().to(torch.uint8).numpy().tobytes(), int(lbl)))
    assert got == expected


def test_train_val_split_is_fixed_disjoint_and_limits_are_deterministic(tmp_path: Path) -> None:
    _fake_fmnist(tmp_path, n_train=50)
    a = RobustDataModule("fashion_mnist", root=str(tmp_path), val_size=10, limit_train=15)
    b = RobustDataModule("fashion_mnist", root=str(tmp_path), val_size=10, limit_train=15)
    a.setup(), b.setup()
    assert torch.equal(a.train_set.images, b.train_set.images)
    assert len(a.train_set) == 15
    train_bytes = {bytes(t.numpy().tobytes()) for t in a.train_set.images}
    val_bytes = {bytes(t.numpy().tobytes()) for t in a.val_set.images}
    assert not train_bytes & val_bytes


def test_idx_reader_rejects_a_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, 8, 1]) + struct.pack(">I", 100) + b"\x00" * 10)
    with pytest.raises(ValueError, match="expected 100 bytes"):
        read_idx(path)


def test_real_fashion_mnist_from_debian_package() -> None:
    if not Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("dataset-fashion-mnist is not installed (scripts/setup.sh installs it)")
    dm = RobustDataModule("fashion_mnist", root="/nonexistent", limit_test=10_000)
    dm.setup("test")
    assert len(dm.test_set) == 10_000
    assert torch.bincount(dm.test_set.labels).tolist() == [1000] * 10
    # foolbox ships the first 20 official Fashion-MNIST test images: they must be among ours, exactly
    fx, fy = foolbox_samples("fashionMNIST")
    ours = {(t.numpy().tobytes(), int(lbl)) for t, lbl in zip(dm.test_set.images, dm.test_set.labels)}
    for img, lbl in zip(fx, fy):
        assert ((img * 255).round().to(torch.uint8).numpy().tobytes(), int(lbl)) in ours


def test_missing_dataset_names_paths_and_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tpa_lightning.data.fashion_mnist.DEBIAN_DIR", tmp_path / "nope")
    dm = RobustDataModule("fashion_mnist", root=str(tmp_path / "empty"))
    with pytest.raises(DatasetNotFoundError, match="apt-get install -y dataset-fashion-mnist") as info:
        dm.setup()
    assert str(tmp_path / "empty") in str(info.value)
    monkeypatch.setattr("tpa_lightning.data.cifar10.REPO_ROOT", tmp_path / "repo" / "x")
    monkeypatch.delenv("TPA_CIFAR10_JPEG", raising=False)
    with pytest.raises(DatasetNotFoundError, match="cifar-10-batches-py"):
        load_cifar10(tmp_path / "empty", train=False)


def _cifar_like(n_per_class: int = 2) -> tuple[np.ndarray, np.ndarray]:
    x, _ = foolbox_samples("cifar10")
    imgs = (x * 255).round().to(torch.uint8).numpy()
    reps = [imgs[i % 20] for i in range(10 * n_per_class)]
    labels = np.repeat(np.arange(10), n_per_class)
    return np.stack(reps), labels


def test_cifar10_class_per_folder_tree(tmp_path: Path) -> None:
    imgs, labels = _cifar_like()
    for i, (img, lbl) in enumerate(zip(imgs, labels)):
        folder = tmp_path / "cifar10" / "test" / CLASSES[lbl]
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img.transpose(1, 2, 0)).save(folder / f"{i:04d}.png")
    x, y, source = load_cifar10(tmp_path, train=False)
    assert "class-per-folder" in source
    assert torch.equal(y, torch.from_numpy(labels))
    assert torch.equal(x, torch.from_numpy(imgs))  # PNG is lossless


def test_cifar10_torchvision_python_batches_and_unsafe_pickle_refused(tmp_path: Path) -> None:
    imgs, labels = _cifar_like()
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": imgs.reshape(len(imgs), -1), "labels": labels.tolist()}, fh)
    x, y, _ = load_cifar10(tmp_path, train=False)
    assert torch.equal(x, torch.from_numpy(imgs)) and torch.equal(y, torch.from_numpy(labels))

    class Evil:
        def __reduce__(self):  # type: ignore[no-untyped-def]
            return (print, ("owned",))

    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": Evil(), "labels": []}, fh)
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        load_cifar10(tmp_path, train=False)


def test_cifar10_jpeg_tar_written_here(tmp_path: Path) -> None:
    imgs, labels = _cifar_like(n_per_class=1)
    tar_dir = tmp_path / "jpeg"
    tar_dir.mkdir()
    with tarfile.open(tar_dir / "test.tar.gz", "w:gz") as tar:
        for img, lbl in zip(imgs, labels):
            path = tmp_path / f"{lbl}.jpg"
            Image.fromarray(img.transpose(1, 2, 0)).save(path, quality=95)
            tar.add(path, arcname=f"test/{CLASSES[lbl]}/0000.jpg")
    x, y, source = load_cifar10(tmp_path / "none", train=False, jpeg_dir=tar_dir, cache_dir=tmp_path / "cache")
    assert "JPEG copy" in source and torch.equal(y, torch.arange(10))
    assert (x.float() - torch.from_numpy(imgs).float()).abs().mean() < 4.0  # JPEG q95: small error
    again = load_cifar10(tmp_path / "none", train=False, jpeg_dir=tar_dir, cache_dir=tmp_path / "cache")
    assert torch.equal(again[0], x) and list((tmp_path / "cache").glob("*.npz"))


@pytest.mark.skipif(not (SHARED_JPEG / "test.tar.gz").is_file(), reason="shared CIFAR-10 JPEG copy absent")
def test_real_cifar10_jpeg_copy_matches_foolbox_exact_images() -> None:
    x, y, _ = load_cifar10("/nonexistent", train=False)
    assert x.shape == (10_000, 3, 32, 32) and torch.bincount(y).tolist() == [1000] * 10
    # foolbox's 4th image (index 3) is the first airplane of the official test batch: airplane/0000.jpg
    fx, fy = foolbox_samples("cifar10")
    assert int(fy[3]) == 0
    diff = (x[0].float() / 255 - fx[3]).abs().mean()
    assert diff < 10 / 255  # README: JPEG recompression changes pixels by 4.5 to 8/255 on average
    other = (x[1].float() / 255 - fx[3]).abs().mean()
    assert other > 2 * diff


def test_image_folder_resizes_and_crops(tmp_path: Path) -> None:
    for c in ("a", "b"):
        (tmp_path / "val" / c).mkdir(parents=True)
        Image.fromarray(np.full((50, 80, 3), 200 if c == "a" else 20, np.uint8)).save(tmp_path / "val" / c / "x.png")
    dm = RobustDataModule("image_folder", root=str(tmp_path), image_size=32, batch_size=2)
    dm.setup("test")
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (2, 3, 32, 32) and sorted(y.tolist()) == [0, 1]
    assert dm.info.num_classes == 2


def test_bad_datamodule_arguments() -> None:
    with pytest.raises(ValueError, match="unknown dataset"):
        RobustDataModule("mnist3")
    with pytest.raises(ValueError, match="limit_train must be >= 1"):
        RobustDataModule("fashion_mnist", limit_train=0)


def test_foolbox_imagenet_samples_of_two_sizes_need_an_image_size() -> None:
    """The ImageNet set mixes 512x512 files with one 1024x683: without image_size a clear ValueError
    (not torch.stack's), with it the image_folder resize and centre crop, checked against PIL here."""
    from tpa_lightning.data.samples import foolbox_data_dir

    with pytest.raises(ValueError, match="image_size"):
        foolbox_samples("imagenet", 20)
    x, y = foolbox_samples("imagenet", 11, image_size=224)
    assert x.shape == (11, 3, 224, 224) and x.dtype == torch.float32 and y.tolist()[:2] == [243, 559]
    wide = sorted(p for p in foolbox_data_dir().iterdir() if p.name.startswith("imagenet_"))[10]
    img = Image.open(wide).convert("RGB")                       # 1024x683 -> shorter side 256, crop 224
    img = img.resize((round(1024 * 256 / 683), 256), Image.Resampling.BILINEAR)
    left, top = (img.size[0] - 224) // 2, (256 - 224) // 2
    ref = np.asarray(img.crop((left, top, left + 224, top + 224)), dtype=np.float32).transpose(2, 0, 1) / 255
    assert torch.equal(x[10], torch.from_numpy(ref.copy()))
    same = foolbox_samples("imagenet", 10)                      # the first ten agree: their own size
    assert same[0].shape == (10, 3, 512, 512)
