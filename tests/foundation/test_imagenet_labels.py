"""Image-folder labels that match the model: every layout of ``data.name=image_folder``.

The issue this guards against: the 20 ImageNet images of foolbox 3.3.4, in folders named by their
ImageNet index (0022, 0099, ..., 0990), used to be labelled 0..18 by sorted position with
``num_classes`` 19, so a 1000-class pretrained model was scored against the wrong classes.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tpa_lightning import cli
from tpa_lightning.config import ConfigError, load_config
from tpa_lightning.data import DatasetInfo, RobustDataModule
from tpa_lightning.data.image_folder import ImageFolderDataset
from tpa_lightning.data.imagenet_labels import (
    check_model_classes,
    check_num_classes,
    dataset_max_label,
    imagenet_synsets,
    scan_labelled_images,
)
from tpa_lightning.data.samples import foolbox_data_dir


def _png(path: Path, value: int = 100, size: int = 12) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def _foolbox_imagenet() -> list[tuple[Path, int]]:
    files = sorted(p for p in foolbox_data_dir().iterdir() if p.name.startswith("imagenet_"))
    assert len(files) == 20
    return [(p, int(p.stem.split("_")[-1])) for p in files]   # imagenet_<n>_<label>.jpg


def _index_tree(root: Path) -> dict[str, int]:
    """The 20 foolbox images in folders named by their 4-digit ImageNet index; file name -> label."""
    truth = {}
    for p, label in _foolbox_imagenet():
        dest = root / f"{label:04d}" / p.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(p, dest)
        truth[p.name] = label
    return truth


def test_the_shipped_synset_list_is_imagenet_1k_in_index_order() -> None:
    ids = imagenet_synsets()
    assert len(ids) == 1000 == len(set(ids))
    assert ids[0] == "n01440764" and ids[999] == "n15075141"    # tench, toilet tissue
    assert ids[243] == "n02108422"                              # bull mastiff (foolbox's imagenet_00_243)
    assert list(ids) == sorted(ids)                             # the canonical order is the sorted one


def test_index_named_folders_keep_the_true_imagenet_labels(tmp_path: Path) -> None:
    truth = _index_tree(tmp_path)
    found = scan_labelled_images(tmp_path)
    assert found.layout == "index" and found.num_classes == 1000 and found.classes == list(imagenet_synsets())
    assert {p.name: y for p, y in found.samples} == truth
    # what sorted-position numbering gave before: 19 classes, labels 0..18, almost all wrong
    folders = sorted({f"{y:04d}" for y in truth.values()})
    old = {name: folders.index(f"{y:04d}") for name, y in truth.items()}
    assert len(folders) == 19 and max(old.values()) == 18
    assert sum(old[n] != truth[n] for n in truth) >= 19
    # the datamodule reports the 1000 classes a pretrained ImageNet model has
    dm = RobustDataModule("image_folder", root=str(tmp_path), image_size=32, batch_size=20)
    dm.setup("test")
    assert dm.info.num_classes == 1000 and "index" in dm.source
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (20, 3, 32, 32) and sorted(y.tolist()) == sorted(truth.values())


def test_unpadded_index_folders_and_indices_beyond_1000(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "7" / "x.png")
    _png(tmp_path / "a" / "12" / "x.png")
    found = scan_labelled_images(tmp_path / "a")
    assert sorted(y for _, y in found.samples) == [7, 12] and found.num_classes == 1000
    _png(tmp_path / "b" / "1500" / "x.png")
    found = scan_labelled_images(tmp_path / "b")
    assert found.num_classes == 1501 and found.classes[1500] == "1500"
    _png(tmp_path / "c" / "7" / "x.png")
    _png(tmp_path / "c" / "007" / "x.png")
    with pytest.raises(ValueError, match="name class 7 twice"):
        scan_labelled_images(tmp_path / "c")


@pytest.mark.parametrize("wnids", [["n01440764", "n15075141", "n02108422"], ["n01443537"]])
def test_wordnet_id_folders_map_through_the_canonical_list(tmp_path: Path, wnids: list[str]) -> None:
    for i, w in enumerate(wnids):
        _png(tmp_path / "val" / w / f"img{i}.JPEG")
    dm = RobustDataModule("image_folder", root=str(tmp_path), image_size=8, batch_size=4)
    dm.setup("test")
    ds = dm.test_set.dataset    # type: ignore[union-attr]
    assert isinstance(ds, ImageFolderDataset) and ds.layout == "wnid"
    got = {p.parent.name: y for p, y in ds.samples}
    assert got == {w: imagenet_synsets().index(w) for w in wnids}
    assert got.get("n01440764", 0) == 0 and got.get("n15075141", 999) == 999 and got.get("n02108422", 243) == 243
    assert dm.info.num_classes == 1000 and dm.info.classes[999] == "n15075141"


def test_unknown_wordnet_id_and_mixed_folders_are_errors(tmp_path: Path) -> None:
    _png(tmp_path / "a" / "n01440764" / "x.png")
    _png(tmp_path / "a" / "n99999999" / "x.png")
    with pytest.raises(ValueError, match="'n99999999'.*not one of the 1000 ImageNet-1k"):
        scan_labelled_images(tmp_path / "a")
    _png(tmp_path / "b" / "n01440764" / "x.png")
    _png(tmp_path / "b" / "0022" / "x.png")
    with pytest.raises(ValueError, match="mix kinds: 0022 \\(index\\), n01440764 \\(wnid\\)"):
        scan_labelled_images(tmp_path / "b")
    _png(tmp_path / "c" / "cat" / "x.png")
    _png(tmp_path / "c" / "3" / "x.png")
    with pytest.raises(ValueError, match="mix kinds"):
        scan_labelled_images(tmp_path / "c")


def test_class_name_folders_keep_the_sorted_numbering(tmp_path: Path) -> None:
    for c in ("dog", "cat", "emu"):
        _png(tmp_path / c / "x.png")
    found = scan_labelled_images(tmp_path)
    assert found.layout == "class_names" and found.num_classes == 3 and found.classes == ["cat", "dog", "emu"]
    assert {p.parent.name: y for p, y in found.samples} == {"cat": 0, "dog": 1, "emu": 2}


def _flat_with_csv(root: Path, offset: int, header: bool = True) -> dict[str, int]:
    truth = {}
    lines = ["filename,label"] if header else []
    for p, label in _foolbox_imagenet():
        shutil.copyfile(p, root / p.name)
        truth[p.name] = label
        lines.append(f"{p.name},{label + offset}")
    (root / "labels.csv").write_text("\n".join(lines) + "\n")
    return truth


@pytest.mark.parametrize("offset,header", [(1, True), (0, True), (0, False)])
def test_flat_folder_with_a_labels_csv(tmp_path: Path, offset: int, header: bool) -> None:
    images = tmp_path / "images"
    images.mkdir()
    truth = _flat_with_csv(images, offset, header)
    csv_path = tmp_path / "labels.csv"
    (images / "labels.csv").rename(csv_path)
    dm = RobustDataModule("image_folder", root=str(images), labels_csv=str(csv_path), labels_offset=offset,
                          image_size=16, batch_size=20)
    dm.setup("test")
    ds = dm.test_set.dataset    # type: ignore[union-attr]
    assert ds.layout == "csv" and dm.info.num_classes == 1000
    assert {p.name: y for p, y in ds.samples} == truth
    assert dm.val_set is dm.test_set and dm.train_set is None


def test_csv_relative_to_the_folder_and_its_errors(tmp_path: Path) -> None:
    truth = _flat_with_csv(tmp_path, 1)
    found = scan_labelled_images(tmp_path, "labels.csv", 1)     # looked up in the folder; the CSV is no image
    assert {p.name: y for p, y in found.samples} == truth
    text = (tmp_path / "labels.csv").read_text()
    (tmp_path / "labels.csv").write_text(text.replace("imagenet_00_243.jpg,244", "imagenet_00_243.jpg,0"))
    with pytest.raises(ValueError, match=r"row 2: label 0 - labels_offset 1 is -1, below 0"):
        scan_labelled_images(tmp_path, "labels.csv", 1)          # a 0-based file read as 1-based
    scan_labelled_images(tmp_path, "labels.csv", 0)
    with pytest.raises(FileNotFoundError, match="labels CSV nope.csv not found"):
        scan_labelled_images(tmp_path, "nope.csv")
    # a row whose file is missing, and an image without a row, are errors naming the file
    (tmp_path / "labels.csv").write_text(text + "ghost.png,5\n")
    with pytest.raises(FileNotFoundError, match="'ghost.png'"):
        scan_labelled_images(tmp_path, "labels.csv", 1)
    (tmp_path / "labels.csv").write_text(text)
    _png(tmp_path / "extra.png")
    with pytest.raises(ValueError, match="1 image\\(s\\) in .* have no row .*'extra.png'"):
        scan_labelled_images(tmp_path, "labels.csv", 1)
    (tmp_path / "extra.png").unlink()
    (tmp_path / "labels.csv").write_text(text + "imagenet_00_243.jpg,3\n")
    with pytest.raises(ValueError, match="names 'imagenet_00_243.jpg' twice"):
        scan_labelled_images(tmp_path, "labels.csv", 1)
    (tmp_path / "labels.csv").write_text("filename,label\nimagenet_00_243.jpg,dog\n")
    with pytest.raises(ValueError, match="row 2: expected filename,label"):
        scan_labelled_images(tmp_path, "labels.csv")


def test_a_flat_folder_without_csv_says_what_it_needs(tmp_path: Path) -> None:
    _png(tmp_path / "x.png")
    with pytest.raises(FileNotFoundError, match="needs data.labels_csv"):
        RobustDataModule("image_folder", root=str(tmp_path)).setup("test")


def test_datamodule_and_config_accept_the_keys_only_for_image_folder(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="for image_folder only"):
        RobustDataModule("fashion_mnist", labels_csv="x.csv")
    with pytest.raises(ValueError, match="labels_offset must be >= 0 and needs data.labels_csv"):
        RobustDataModule("image_folder", labels_offset=1)
    for kind in ("train", "evaluate"):
        cfg = load_config(kind, ["data.name=image_folder", "data.labels_csv=l.csv", "data.labels_offset=1"])
        assert cfg.data.labels_csv == "l.csv" and cfg.data.labels_offset == 1
        for key, value in (("labels_csv", "l.csv"), ("labels_offset", "1")):
            with pytest.raises(ConfigError, match=f"data.{key}: read only for data.name=image_folder, not fashion_mnist"):
                load_config(kind, [f"data.{key}={value}"])
    with pytest.raises(ConfigError, match="data.labels_offset: must be >= 0 and needs data.labels_csv"):
        load_config("evaluate", ["data.name=image_folder", "data.labels_offset=1"])
    with pytest.raises(SystemExit) as exit_info:          # what evaluate.py does with it: exit 2, one line
        cli.parse("evaluate", ["data.labels_csv=l.csv"])
    assert exit_info.value.code == 2
    lines = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: data.labels_csv")


def test_datamodule_from_passes_the_keys_through(tmp_path: Path) -> None:
    from tpa_lightning.job_setup import datamodule_from

    truth = _flat_with_csv(tmp_path, 1)
    cfg = load_config("evaluate", ["data.name=image_folder", f"data.root={tmp_path}", "data.labels_csv=labels.csv",
                                   "data.labels_offset=1", "data.image_size=16"])
    dm = datamodule_from(cfg)
    dm.setup("test")
    assert dm.labels_csv == "labels.csv" and dm.labels_offset == 1
    assert sorted(int(y) for _, y in dm.test_set) == sorted(truth.values())     # type: ignore[union-attr]


def test_check_num_classes() -> None:
    check_num_classes(1000, 1000, 999)
    check_num_classes(10, 10, None)
    with pytest.raises(ValueError, match="the model has 1000 classes but the data's labels need 19"):
        check_num_classes(1000, 19, 18)
    with pytest.raises(ValueError, match="1000 classes but .* need 1001, largest label 1000.*labels_offset=1"):
        check_num_classes(1000, 1001, 1000)
    with pytest.raises(ValueError, match="largest label 12"):
        check_num_classes(10, 10, 12)


def test_check_model_classes_runs_the_model_once(tmp_path: Path) -> None:
    _index_tree(tmp_path)
    ds = ImageFolderDataset(tmp_path, image_size=8)
    sub = torch.utils.data.Subset(ds, [0, 1, 2])
    assert dataset_max_label(ds) == 990 and dataset_max_label(sub) == int(ds.labels[:3].max())
    info = DatasetInfo("image_folder", ds.num_classes, 3, 8, (0.5,) * 3, (0.5,) * 3)
    ten = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 10)).train()
    with pytest.raises(ValueError, match="the model has 10 classes but the data's labels need 1000"):
        check_model_classes(ten, info, sub)
    assert ten.training                                   # its mode is left as it was
    thousand = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(3 * 8 * 8, 1000))
    state = torch.get_rng_state()
    check_model_classes(thousand, info, ds)
    assert torch.equal(state, torch.get_rng_state())


def test_evaluate_stops_before_anything_runs_on_a_class_count_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from tpa_lightning.evaluation import evaluate_job as eval_run

    _index_tree(tmp_path / "data")
    built: list[str] = []

    def ten_classes(spec: str, cfg: object, info: DatasetInfo) -> nn.Module:
        built.append(spec)
        return nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 10)).eval()

    monkeypatch.setattr(eval_run, "_build", ten_classes)
    monkeypatch.setattr(eval_run, "make_trainer", lambda *a, **k: pytest.fail("evaluation ran"))
    with pytest.raises(SystemExit) as exit_info:
        cli.evaluate_main(["data.name=image_folder", f"data.root={tmp_path / 'data'}", "data.image_size=16",
                           "model.name=robustbench:some_model", f"out={tmp_path / 'out'}", "resume=false"])
    assert exit_info.value.code == 2 and built == ["robustbench:some_model"]
    err = capsys.readouterr().err.strip()
    assert err == ("error: the model has 10 classes but the data's labels need 1000, largest label 990: "
                   "they would be scored against the wrong classes")
