"""Labels of an image folder that match the model: ImageNet's canonical class indices where the folder says so.

``scan_labelled_images`` tells four layouts apart and labels every image:

* ``wnid``: every sub-folder is a WordNet id (``n01440764`` ...). The label is the id's index in the
  canonical ImageNet-1k list shipped with this package (``imagenet_synsets.txt``: n01440764 = 0 tench
  ... n15075141 = 999 toilet tissue), so a partial tree (a few classes) keeps the true indices.
  ``num_classes`` is 1000; an id outside the list is an error naming it.
* ``index``: every sub-folder is a class index (``0022``, ``99``, ...); the label is ``int(name)``.
  ``num_classes`` is 1000 when every index is below 1000 (ImageNet), else the largest index + 1.
* ``csv``: a flat folder of images and a ``filename,label`` CSV (TransferAttack's format; header row
  optional, recognised by a non-integer label). The label is ``label - labels_offset`` (1 for 1-based
  files). Every image needs a row and every row an image. ``num_classes`` as for ``index``.
* ``class_names``: any other names: the sorted names are numbered 0 .. K-1 and ``num_classes`` is K
  (right only for a model trained on exactly these folders).

Folders of mixed kinds (some WordNet ids, some indices or names) are an error. ``check_num_classes``
compares a model's class count with the labels before anything runs.
"""
from __future__ import annotations

import csv
import functools
import importlib.resources
import itertools
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".ppm", ".webp", ".tif", ".tiff")
WNID = re.compile(r"n\d{8}")
INDEX = re.compile(r"\d+")
IMAGENET_CLASSES = 1000
LAYOUTS = ("wnid", "index", "csv", "class_names")


class LabelledImages(NamedTuple):
    """``(samples [(path, label)], class names, num_classes, layout)`` of an image folder."""

    samples: list[tuple[Path, int]]
    classes: list[str]
    num_classes: int
    layout: str


@functools.cache
def imagenet_synsets() -> tuple[str, ...]:
    """The 1000 ImageNet-1k WordNet ids in canonical index order (n01440764 = 0 ... n15075141 = 999)."""
    text = importlib.resources.files("tpa_lightning.data").joinpath("imagenet_synsets.txt").read_text()
    ids = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(ids) != IMAGENET_CLASSES or len(set(ids)) != IMAGENET_CLASSES:
        raise RuntimeError(f"imagenet_synsets.txt must hold 1000 distinct WordNet ids, holds {len(ids)}")
    return ids


@functools.cache
def imagenet_index() -> dict[str, int]:
    """WordNet id -> canonical ImageNet-1k class index."""
    return {w: i for i, w in enumerate(imagenet_synsets())}


def _images_in(folder: Path) -> list[Path]:
    return sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)


def _classes_for(num_classes: int) -> list[str]:
    return list(imagenet_synsets()) if num_classes == IMAGENET_CLASSES else [str(i) for i in range(num_classes)]


def _count_for(labels: Sequence[int]) -> int:
    top = max(labels)
    return IMAGENET_CLASSES if top < IMAGENET_CLASSES else top + 1


def _folder_kind(name: str) -> str:
    if WNID.fullmatch(name):
        return "wnid"
    if INDEX.fullmatch(name):
        return "index"
    return "class_names"


def scan_labelled_images(root: str | Path, labels_csv: str | Path | None = None,
                         labels_offset: int = 0) -> LabelledImages:
    """Every image under ``root`` with its label, per the layout (see the module docstring).

    Args:
        root: a class-per-folder tree, or with ``labels_csv`` a flat folder of images.
        labels_csv: a ``filename,label`` CSV; a relative path that does not exist is looked up in ``root``.
        labels_offset: subtracted from every CSV label (1 for 1-based files); only with ``labels_csv``.

    Raises:
        FileNotFoundError: no images, the CSV is missing, or a CSV row names a missing file.
        ValueError: mixed folder kinds, an unknown WordNet id, an image without a CSV row, a bad
            CSV row or a label below 0 after the offset.
    """
    r = Path(root)
    if not r.is_dir():
        raise FileNotFoundError(f"image folder {r} does not exist")
    if labels_csv is not None:
        return _scan_csv(r, Path(labels_csv), labels_offset)
    if labels_offset:
        raise ValueError(f"labels_offset={labels_offset} is read only with labels_csv")
    folders = sorted(d.name for d in r.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not folders:
        hint = " (a flat folder of images needs data.labels_csv)" if _images_in(r) else ""
        raise FileNotFoundError(f"no class sub-folders in {r}{hint}")
    kinds = {_folder_kind(f) for f in folders}
    if len(kinds) > 1:
        examples = ", ".join(f"{next(f for f in folders if _folder_kind(f) == k)} ({k})" for k in sorted(kinds))
        raise ValueError(f"class folders of {r} mix kinds: {examples}; use only WordNet ids, "
                         "only class indices or only names")
    kind = kinds.pop()
    if kind == "wnid":
        index = imagenet_index()
        unknown = [f for f in folders if f not in index]
        if unknown:
            raise ValueError(f"class folder '{unknown[0]}' of {r} is not one of the 1000 ImageNet-1k WordNet ids"
                             f" ({len(unknown)} unknown)")
        labels = {f: index[f] for f in folders}
    elif kind == "index":
        labels = {f: int(f) for f in folders}
        if len(set(labels.values())) != len(labels):
            dup = sorted(folders, key=lambda f: (labels[f], f))
            twin = next(a for a, b in itertools.pairwise(dup) if labels[a] == labels[b])
            raise ValueError(f"class folders of {r} name class {labels[twin]} twice (e.g. '{twin}')")
    else:
        labels = {f: i for i, f in enumerate(folders)}
    samples = [(p, labels[f]) for f in sorted(folders, key=lambda f: labels[f]) for p in _images_in(r / f)]
    if not samples:
        raise FileNotFoundError(f"no images in class sub-folders of {r}")
    if kind == "wnid":
        return LabelledImages(samples, list(imagenet_synsets()), IMAGENET_CLASSES, "wnid")
    if kind == "index":
        n = _count_for(list(labels.values()))
        return LabelledImages(samples, _classes_for(n), n, "index")
    return LabelledImages(samples, folders, len(folders), "class_names")


def _scan_csv(root: Path, labels_csv: Path, offset: int) -> LabelledImages:
    path = labels_csv if labels_csv.is_file() or labels_csv.is_absolute() else root / labels_csv
    if not path.is_file():
        raise FileNotFoundError(f"labels CSV {labels_csv} not found (also looked in {root})")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        rows = [row for row in csv.reader(fh) if row and any(c.strip() for c in row)]
    if not rows:
        raise ValueError(f"labels CSV {path} is empty")
    name_col, label_col, first = 0, 1, 0
    if len(rows[0]) < 2 or not _is_int(rows[0][1]):
        header = [c.strip().lower() for c in rows[0]]
        name_col = header.index("filename") if "filename" in header else 0
        label_col = header.index("label") if "label" in header else 1
        first = 1
    labels: dict[str, int] = {}
    for n, row in enumerate(rows[first:], start=first + 1):
        if len(row) <= max(name_col, label_col) or not _is_int(row[label_col]):
            raise ValueError(f"labels CSV {path} row {n}: expected filename,label (an integer), got {row}")
        name, label = row[name_col].strip(), int(row[label_col]) - offset
        if label < 0:
            raise ValueError(f"labels CSV {path} row {n}: label {row[label_col].strip()} - labels_offset {offset}"
                             f" is {label}, below 0 (labels_offset=1 is for 1-based files, 0 for 0-based)")
        if name in labels:
            raise ValueError(f"labels CSV {path} names '{name}' twice (row {n})")
        labels[name] = label
    if not labels:
        raise ValueError(f"labels CSV {path} has no rows")
    missing = [name for name in labels if not (root / name).is_file()]
    if missing:
        raise FileNotFoundError(f"labels CSV {path} names {len(missing)} file(s) missing from {root}, "
                                f"e.g. '{missing[0]}'")
    listed = {(root / name).resolve() for name in labels}
    unlisted = [p.name for p in _images_in(root) if p.resolve() not in listed]
    if unlisted:
        raise ValueError(f"{len(unlisted)} image(s) in {root} have no row in {path}, e.g. '{unlisted[0]}'")
    samples = [(root / name, label) for name, label in sorted(labels.items())]
    n_classes = _count_for(list(labels.values()))
    return LabelledImages(samples, _classes_for(n_classes), n_classes, "csv")


def _is_int(text: str) -> bool:
    return bool(re.fullmatch(r"[+-]?\d+", text.strip()))


def check_num_classes(model_classes: int, dataset_classes: int, max_label: int | None = None) -> None:
    """Raise a one-line ValueError when a model's class count does not fit the data's labels.

    The model must have exactly ``dataset_classes`` outputs, and the largest label (when known) must
    be below that count.
    """
    if model_classes != dataset_classes or (max_label is not None and max_label >= model_classes):
        top = "" if max_label is None else f", largest label {max_label}"
        hint = (" (1-based labels? set data.labels_offset=1)"
                if dataset_classes == model_classes + 1 or (max_label is not None and max_label == model_classes)
                else "")
        raise ValueError(f"the model has {model_classes} classes but the data's labels need {dataset_classes}"
                         f"{top}: they would be scored against the wrong classes{hint}")


def dataset_max_label(dataset: Any) -> int | None:
    """The largest label of a dataset (or ``Subset`` of one) holding a ``labels`` tensor; None if unknown."""
    indices = None
    while isinstance(dataset, torch.utils.data.Subset):
        idx = torch.as_tensor(list(dataset.indices), dtype=torch.int64)
        indices = idx if indices is None else idx[indices]
        dataset = dataset.dataset
    labels = getattr(dataset, "labels", None)
    if not isinstance(labels, torch.Tensor) or labels.numel() == 0:
        return None
    chosen = labels if indices is None else labels[indices]
    return int(chosen.max()) if chosen.numel() else None


def check_model_classes(model: nn.Module, info: Any, dataset: Any = None) -> None:
    """Run ``model`` once on a black image of ``info``'s shape and ``check_num_classes`` its logits.

    ``info`` is a ``DatasetInfo``; the RNG state is restored afterwards, so results do not move.
    """
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None and param.is_floating_point() else torch.float32
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            out = model(torch.zeros(1, info.in_chans, info.image_size, info.image_size, device=device, dtype=dtype))
    finally:
        model.train(was_training)
    check_num_classes(int(out.shape[-1]), int(info.num_classes), dataset_max_label(dataset))
