"""``max_batch="auto"``: the chunk-size rules, the out-of-memory back-off, and that no result depends
on the chunk (attacks, ``Defended`` with deterministic preprocessors, randomized smoothing)."""
from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import defenses
from defenses import BitDepthReduction, Defended, FeatureDistillation, Smoothed
from tpa_lightning import chunking
from tpa_lightning.attacks import TPA, Attack, build_attack
from tpa_lightning.chunking import CPU_ROWS, ChunkSize, check_max_batch, chunked, rows_per_chunk

from .helpers import tiny_batch, tiny_model

OOM = torch.cuda.OutOfMemoryError


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny workloads: one intra-op thread (the conftest restores the count)."""
    torch.set_num_threads(1)
    yield


class Recorder(nn.Module):
    """Wraps a model, records the rows of each call, and raises OOM above ``limit`` rows."""

    def __init__(self, model: nn.Module, limit: int | None = None) -> None:
        super().__init__()
        self.model = model
        self.limit = limit
        self.sizes: list[int] = []
        self.failed: list[int] = []

    def forward(self, x: Tensor) -> Tensor:
        if self.limit is not None and x.shape[0] > self.limit:
            self.failed.append(x.shape[0])
            raise OOM(f"fake: {x.shape[0]} rows > {self.limit}")
        self.sizes.append(x.shape[0])
        return self.model(x)


# ------------------------------------------------------------------ the rules
def test_oom_error_constructible_on_cpu() -> None:
    assert isinstance(OOM("x"), RuntimeError)
    assert issubclass(OOM, chunking.OutOfMemoryError)


@pytest.mark.parametrize(("value", "expected"), [("auto", "auto"), (1, 1), (64, 64), (64.0, 64),
                                                 (np.int64(7), 7), (10**6, 10**6)])
def test_check_max_batch_accepts(value: object, expected: object) -> None:
    got = check_max_batch("max_batch", value)
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize("value", [0, -1, True, False, "64", "AUTO", "", None, 1.5, 0.0, [64]])
def test_check_max_batch_rejects(value: object) -> None:
    with pytest.raises(ValueError, match=r"my_option must be an integer >= 1 or 'auto'"):
        check_max_batch("my_option", value)


def test_rows_per_chunk() -> None:
    assert CPU_ROWS == 64
    assert rows_per_chunk("auto", "cpu", 1000) == 64
    assert rows_per_chunk("auto", torch.device("cpu"), 10) == 10
    assert rows_per_chunk("auto", "cpu", 1000, cpu_rows=128) == 128
    assert rows_per_chunk(5, "cpu", 1000) == 5
    assert rows_per_chunk(5000, "cpu", 100) == 100
    # an accelerator: everything at once (no GPU needed to ask)
    assert rows_per_chunk("auto", "cuda", 5000) == 5000
    assert rows_per_chunk("auto", torch.device("cuda", 1), 7) == 7
    assert rows_per_chunk(32, "cuda", 5000) == 32
    assert rows_per_chunk("auto", "cpu", 0) == 1
    with pytest.raises(ValueError, match="max_batch must be"):
        rows_per_chunk(0, "cpu", 10)


# ------------------------------------------------------------------ the back-off
def fake(threshold: int, calls: list[tuple[int, int]], done: list[tuple[int, int]],
         error: type[BaseException] = OOM):
    """A chunk function that runs out of memory above ``threshold`` rows."""

    def fn(start: int, stop: int) -> None:
        calls.append((start, stop))
        if stop - start > threshold:
            raise error(f"{stop - start} rows")
        done.append((start, stop))

    return fn


def covers_in_order(done: list[tuple[int, int]], total: int) -> bool:
    return [a for a, _ in done] == [0] + [b for _, b in done[:-1]] and done[-1][1] == total


@pytest.mark.parametrize(("device", "first"), [("cuda", 100), ("cpu", 64)])
def test_back_off_halves_until_it_fits_and_remembers(device: str, first: int) -> None:
    calls: list[tuple[int, int]] = []
    done: list[tuple[int, int]] = []
    sizes = ChunkSize("auto")
    sizes.run(fake(13, calls, done), 100, device)
    assert calls[0] == (0, first)                       # started from the rule's size
    assert all(b - a <= 13 for a, b in done)
    assert covers_in_order(done, 100)                   # every row once, in order
    working = sizes.limits[str(torch.device(device))]
    assert working <= 13 and sizes.rows(device, 100) == working
    # the next call starts from the remembered size: no failure
    calls2: list[tuple[int, int]] = []
    done2: list[tuple[int, int]] = []
    sizes.run(fake(13, calls2, done2), 100, device)
    assert calls2 == done2 and covers_in_order(done2, 100) and calls2[0] == (0, working)


def test_back_off_exact_sequence() -> None:
    calls: list[tuple[int, int]] = []
    done: list[tuple[int, int]] = []
    chunked(fake(30, calls, done), 100, "auto", "cuda")
    assert calls[:3] == [(0, 100), (0, 50), (0, 25)]
    assert done == [(0, 25), (25, 50), (50, 75), (75, 100)]


def test_back_off_odd_total() -> None:
    # 13 -> 6 -> 3 rows; the last chunk is shorter (1 row)
    calls: list[tuple[int, int]] = []
    done: list[tuple[int, int]] = []
    chunked(fake(5, calls, done), 13, "auto", "cuda")
    assert done == [(0, 3), (3, 6), (6, 9), (9, 12), (12, 13)]


def test_back_off_reraises_at_one_row() -> None:
    calls: list[tuple[int, int]] = []
    done: list[tuple[int, int]] = []
    with pytest.raises(OOM):
        chunked(fake(0, calls, done), 100, "auto", "cuda")
    assert done == [] and [b - a for a, b in calls] == [100, 50, 25, 12, 6, 3, 1]


def test_int_max_batch_never_backs_off() -> None:
    calls: list[tuple[int, int]] = []
    done: list[tuple[int, int]] = []
    with pytest.raises(OOM):
        chunked(fake(10, calls, done), 100, 20, "cuda")
    assert calls == [(0, 20)]


def test_other_errors_are_not_retried() -> None:
    calls: list[tuple[int, int]] = []
    with pytest.raises(ValueError):
        chunked(fake(10, calls, [], error=ValueError), 100, "auto", "cuda")
    assert calls == [(0, 100)]


def test_custom_oom_error_type() -> None:
    class FakeOOM(Exception):
        pass

    calls: list[tuple[int, int]] = []
    done: list[tuple[int, int]] = []
    chunked(fake(10, calls, done, error=FakeOOM), 40, "auto", "cuda", oom_error=FakeOOM)
    assert all(b - a <= 10 for a, b in done) and covers_in_order(done, 40)


def test_nothing_to_do() -> None:
    calls: list[tuple[int, int]] = []
    chunked(fake(10, calls, []), 0, "auto", "cpu")
    assert calls == []


# ------------------------------------------------------------------ attacks
def test_attack_default_is_auto() -> None:
    m = tiny_model()
    atk = TPA(m)
    assert atk.max_batch == "auto" and "max_batch='auto'" in repr(atk)
    assert build_attack("pgd", m).max_batch == "auto"
    assert atk.replace(steps=2).max_batch == "auto"
    assert TPA(m, max_batch=64).max_batch == 64 and "max_batch=64" in repr(TPA(m, max_batch=64))
    with pytest.raises(ValueError, match="max_batch must be an integer >= 1 or 'auto'"):
        build_attack("tpa", m, max_batch="big")


@pytest.mark.parametrize("eot", [1, 3])
def test_input_grad_independent_of_chunk(eot: int) -> None:
    model = tiny_model()
    x = torch.rand(150, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(150) % 10

    def grad(max_batch: int | str) -> Tensor:
        atk = Attack(model, max_batch=max_batch, eot_samples=eot)
        return atk.input_grad(x, labels)

    auto = grad("auto")       # 64-row chunks here (a CPU): several chunks, and a short last one
    torch.testing.assert_close(auto, grad(1), atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(auto, grad(1000), atol=1e-6, rtol=1e-5)


def test_input_grad_backs_off_on_oom() -> None:
    # a model that "runs out of memory" above 16 rows: "auto" halves 64 -> 32 -> 16, same gradients
    rec = Recorder(tiny_model(), limit=16)
    x = torch.rand(100, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    labels = torch.arange(100) % 10
    atk = Attack(rec, max_batch="auto")
    g = atk.input_grad(x, labels)
    assert rec.failed == [64, 32] and max(rec.sizes) == 16 and sum(rec.sizes) == 100
    assert atk._chunks.limits == {"cpu": 16}
    torch.testing.assert_close(g, Attack(tiny_model(), max_batch=1).input_grad(x, labels), atol=1e-6, rtol=1e-5)
    with pytest.raises(OOM):                # an int is a promise: no back-off
        Attack(rec, max_batch=32).input_grad(x, labels)


def test_tpa_default_equals_explicit_chunks() -> None:
    model = tiny_model()
    x = tiny_batch(3)
    y = model(x).argmax(1)
    default = TPA(model, steps=2, copies=30, seed=5)(x, y)     # 3 * 31 = 93 stacked rows > 64
    torch.testing.assert_close(default, TPA(model, steps=2, copies=30, seed=5, max_batch=1)(x, y),
                               atol=1e-5, rtol=0)
    torch.testing.assert_close(default, TPA(model, steps=2, copies=30, seed=5, max_batch=1000)(x, y),
                               atol=1e-5, rtol=0)


# ------------------------------------------------------------------ defenses
def small_classifier() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(nn.AdaptiveAvgPool2d(4), nn.Flatten(), nn.Linear(48, 10)).eval()


def test_defended_default_auto_equals_unchunked() -> None:
    model = small_classifier()
    x = torch.rand(20, 3, 16, 16)
    for pre in (FeatureDistillation(), BitDepthReduction(4)):
        rec = Recorder(model)
        d = Defended(rec, pre, draws=4)                 # 80 rows: 64 + 16 on a CPU
        assert d.max_batch == "auto"
        out = d(x)
        assert rec.sizes == [64, 16]
        torch.testing.assert_close(out, Defended(model, pre, draws=4, max_batch=None)(x), atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(out, Defended(model, pre, draws=4, max_batch=3)(x), atol=1e-6, rtol=1e-5)
    assert defenses.build_defense("fd", model).max_batch == "auto"
    assert defenses.build_defense("fd", model, max_batch=None).max_batch is None
    with pytest.raises(ValueError, match="max_batch must be an integer >= 1 or 'auto'"):
        Defended(model, FeatureDistillation(), max_batch=0)


def test_defended_backs_off_on_oom() -> None:
    model = small_classifier()
    rec = Recorder(model, limit=20)
    x = torch.rand(10, 3, 16, 16)
    out = Defended(rec, FeatureDistillation(), draws=8)(x)       # 80 rows: 64 fails, then 32, 16
    assert rec.failed == [64, 32] and max(rec.sizes) == 16 and sum(rec.sizes) == 80
    torch.testing.assert_close(out, Defended(model, FeatureDistillation(), draws=8, max_batch=None)(x),
                               atol=1e-6, rtol=1e-5)


def test_smoothing_default_auto_and_noise_independent_of_chunk(monkeypatch: pytest.MonkeyPatch) -> None:
    from defenses import smoothing

    monkeypatch.setattr(smoothing, "NOISE_BLOCK", 100)    # many noise blocks, cut across chunks
    model = nn.Sequential(nn.Flatten(), nn.Linear(75, 10)).eval()
    x = torch.rand(3, 3, 5, 5)                            # 75 values per row (not a multiple of 16)
    rec = Recorder(model)
    smooth = Smoothed(rec, sigma=0.5, seed=3, forward_samples=700)
    assert smooth.batch_size == "auto" and smoothing.CPU_ROWS == 1000
    counts = smooth.sample_counts(x, 700)
    assert max(rec.sizes) == 1000 and sum(rec.sizes) == 2100    # 1000-row chunks on a CPU
    logits = smooth(x)
    for bs in (1, 7, 64, 2100, 5000):
        other = Smoothed(model, sigma=0.5, seed=3, batch_size=bs, forward_samples=700)
        assert torch.equal(other.sample_counts(x, 700), counts), bs
        torch.testing.assert_close(other(x), logits, atol=1e-6, rtol=1e-5)
        assert torch.equal(Smoothed(model, sigma=0.5, seed=3).sample_counts(x, 700, batch_size=bs), counts)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1 or 'auto'"):
        Smoothed(model, batch_size=0)


def test_smoothing_backs_off_on_oom_with_the_same_noise() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(48, 10)).eval()
    x = torch.rand(2, 3, 4, 4)
    rec = Recorder(model, limit=100)
    counts = Smoothed(rec, sigma=0.5, seed=1).sample_counts(x, 300)   # 600 rows: 600, 300, 150 fail
    assert rec.failed == [600, 300, 150] and max(rec.sizes) == 75
    assert torch.equal(counts, Smoothed(model, sigma=0.5, seed=1, batch_size=600).sample_counts(x, 300))
