"""The one-run crafting cost of the transfer benchmark (benchmarks/transfer/timing.py)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from benchmarks.transfer import timing as timing_mod
from benchmarks.transfer.images import Images
from benchmarks.transfer.store import Store
from tpa_lightning.attacks import Attack, build_attack

Tiny = Callable[[int], nn.Module]


@pytest.fixture
def images(cifar_samples: tuple[Tensor, Tensor]) -> Images:
    x, y = cifar_samples
    return Images(x[:4], y[:4], torch.arange(4), "foolbox cifar10 samples", "first 4")


class _Recorded:
    """An attack whose calls are logged (label, number of images)."""

    def __init__(self, atk: Attack, label: str, calls: list[tuple[str, int]]) -> None:
        self.atk, self.label, self.calls = atk, label, calls

    def __call__(self, x: Tensor, y: Tensor, **k: Any) -> Tensor:
        self.calls.append((self.label, x.shape[0]))
        return self.atk(x, y, **k)

    def passes_per_image(self) -> float:
        return self.atk.passes_per_image()


class _Recorder:
    """An attack factory that records which attacks it built and, in order, every call they got."""

    def __init__(self) -> None:
        self.built: list[str] = []
        self.calls: list[tuple[str, int]] = []

    def __call__(self, name: str, model: nn.Module, **kw: Any) -> _Recorded:
        label = f"{name}/{kw.get('mode', '')}" if name == "tpa" else name
        self.built.append(label)
        return _Recorded(build_attack(name, model, **kw), label, self.calls)


def test_every_attack_timed_in_alternating_rounds(images: Images, tiny: Tiny) -> None:
    rec = _Recorder()
    out = timing_mod.measure(tiny(0), ["fgsm", "mi", "tpa"], images, 8 / 255, 3, 0, 64, factory=rec)  # type: ignore[arg-type]
    assert [r["attack"] for r in out["rows"]] == ["fgsm", "mi", "tpa"]
    # one warm-up call of the first attack on 2 images, then forward and reverse rounds on all 4
    assert rec.calls == [("fgsm", 2), ("fgsm", 4), ("mi", 4), ("tpa/official", 4),
                         ("tpa/official", 4), ("mi", 4), ("fgsm", 4)]
    rows = {r["attack"]: r for r in out["rows"]}
    # passes per image by hand: FGSM one, MI one per step, TPA T * (1 + 2N) with N = 10 copies
    assert [rows[a]["passes_per_image"] for a in ("fgsm", "mi", "tpa")] == [1.0, 3.0, 3.0 * 21]
    assert rows["mi"]["relative"] == 1.0
    for r in out["rows"]:
        assert r["seconds"] > 0 and r["images_per_s"] == pytest.approx(4 / r["seconds"])
        assert r["ms_per_pass"] == pytest.approx(1000 * r["seconds"] / (4 * r["passes_per_image"]))
        assert r["relative"] == pytest.approx(r["seconds"] / rows["mi"]["seconds"])
        # the share is given exactly for runs long enough to say (timed here: sub-ms on a tiny model)
        assert (r["cpu_share"] is None) == (r["seconds"] < timing_mod.MIN_SHARE_SECONDS)
        assert r["cpu_share"] is None or r["cpu_share"] > 0
    assert out["n"] == 4 and out["threads"] == torch.get_num_threads()
    assert rows["tpa"]["seconds"] > rows["fgsm"]["seconds"]      # 63 passes against 1


def test_cpu_share_by_hand() -> None:
    assert timing_mod.cpu_share(2.0, 3.0, 2) == pytest.approx(0.75)       # 3 CPU-s over 2 s x 2 threads
    assert timing_mod.cpu_share(0.1, 0.1, 1) == pytest.approx(1.0)
    short = timing_mod.MIN_SHARE_SECONDS / 2
    assert timing_mod.cpu_share(short, 5 * short, 1) is None               # too short: no share, whatever it read
    with pytest.raises(ValueError, match="threads"):
        timing_mod.cpu_share(1.0, 1.0, 0)


def test_timing_is_stored_and_not_measured_twice(tmp_path: Path, images: Images, tiny: Tiny) -> None:
    store = Store(tmp_path / "cache", tmp_path / "raw")
    args = ("sur", {"id": 1}, tiny(0), ["fgsm", "mi"], images, 8 / 255, 2, 0, 64)
    assert timing_mod.timing(store, *args, compute=False) is None      # nothing stored, nothing measured
    rec = _Recorder()
    first = timing_mod.timing(store, *args, compute=True, factory=rec)  # type: ignore[arg-type]
    assert first is not None and rec.calls
    assert list((tmp_path / "raw" / "timing").glob("*.json"))         # with the committed numbers
    again = _Recorder()
    assert timing_mod.timing(store, *args, compute=True, factory=again) == first  # type: ignore[arg-type]
    assert again.calls == [] and again.built == []
    # other images are another measurement
    other = Images(images.x[:2], images.y[:2], images.index[:2], images.source, "first 2")
    assert timing_mod.timing(store, "sur", {"id": 1}, tiny(0), ["fgsm", "mi"], other, 8 / 255, 2, 0, 64,
                             compute=False) is None


def test_timing_rejects_empty_input(images: Images, tiny: Tiny) -> None:
    with pytest.raises(ValueError, match="no attacks"):
        timing_mod.measure(tiny(0), [], images, 8 / 255, 2, 0, 64)
    empty = Images(images.x[:0], images.y[:0], images.index[:0], images.source, "none")
    with pytest.raises(ValueError, match="no images"):
        timing_mod.measure(tiny(0), ["mi"], empty, 8 / 255, 2, 0, 64)


def test_report_section_shows_the_rows_or_how_to_measure(images: Images, tiny: Tiny) -> None:
    from types import SimpleNamespace

    from benchmarks.transfer.report import timing_section
    from benchmarks.transfer.settings import QUICK

    state = SimpleNamespace(settings=QUICK, timing=None)
    assert "--only timing" in timing_section(state)  # type: ignore[arg-type]
    state.timing = timing_mod.measure(tiny(0), ["fgsm", "mi"], images, 8 / 255, 2, 0, 64)
    text = timing_section(state)  # type: ignore[arg-type]
    assert "| FGSM | 1 |" in text and "| MI-FGSM | 2 |" in text and "| 1.0x |" in text
    # a share too short to say shows as "-", one below 85 % is named as waiting for a core
    state.timing["rows"][0]["cpu_share"], state.timing["rows"][1]["cpu_share"] = None, 0.5
    text = timing_section(state)  # type: ignore[arg-type]
    assert "| - |" in text and "| 50 % |" in text and "(here: MI-FGSM)" in text
