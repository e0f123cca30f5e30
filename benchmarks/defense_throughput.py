"""Throughput of the defenses (not a test): FD and R&P images/s, randomized smoothing noise samples/s
against the raw forward throughput of the same base model at the same batch (target ratio >= 0.9).

    python -m benchmarks.defense_throughput [--batch 128] [--repeats 5] [--out docs/benchmarks/defenses.csv]

Every figure is the median over ``--repeats`` timed runs; smoothing and raw forwards are interleaved so
that both see the same machine load, and the ratio is taken per repeat (median reported).
"""
from __future__ import annotations

import argparse
import csv
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from defenses import FeatureDistillation, RandomResizePad, Smoothed
from tpa_lightning.models import build_model


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def median_rate(fn: Callable[[], object], items: int, repeats: int) -> float:
    fn()  # warm-up
    return statistics.median(items / timed(fn) for _ in range(repeats))


def main(argv: list[str] | None = None) -> list[dict[str, object]]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=128, help="model batch (rows per forward)")
    parser.add_argument("--chunks", type=int, default=2, help="smoothing: forwards per timed run")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="docs/benchmarks/defenses.csv")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    rows: list[dict[str, object]] = []

    def add(name: str, setting: str, value: float, unit: str) -> None:
        rows.append({"benchmark": name, "setting": setting, "value": round(value, 3), "unit": unit})
        print(f"{name:28s} {setting:44s} {value:12.3f} {unit}", flush=True)

    with torch.inference_mode():
        # --- preprocessors alone ---------------------------------------------------------------
        for size, n in ((32, 1024), (224, 32)):
            x = torch.rand(n, 3, size, size)
            add("fd", f"{n} images {size}x{size}", median_rate(lambda x=x: FeatureDistillation()(x), n,
                                                                  args.repeats), "images/s")
            rp = RandomResizePad(seed=0)
            add("rp", f"{n} images {size}x{size} (one draw each)",
                median_rate(lambda x=x, rp=rp: rp(x), n, args.repeats), "images/s")

        # --- smoothing against raw forward --------------------------------------------------------
        model = build_model("pretrained:autoattack_resnet18").eval()
        b, k = args.batch, args.chunks
        x_batch = torch.rand(b, 3, 32, 32)
        x_one = torch.rand(1, 3, 32, 32)
        smooth = Smoothed(model, sigma=0.25, num_classes=10, batch_size=b, seed=0)

        def raw() -> None:
            for _ in range(k):
                model(x_batch).argmax(1)

        def smoothed() -> None:
            smooth.sample_counts(x_one, b * k, batch_size=b)

        raw()
        smoothed()
        raw_rates, rs_rates, ratios = [], [], []
        for _ in range(args.repeats):
            r = b * k / timed(raw)
            s = b * k / timed(smoothed)
            raw_rates.append(r)
            rs_rates.append(s)
            ratios.append(s / r)
        setting = f"autoattack_resnet18 CIFAR-10, batch {b}"
        add("raw_forward", setting, statistics.median(raw_rates), "images/s")
        add("smoothing_sample_counts", setting, statistics.median(rs_rates), "noise samples/s")
        add("smoothing_ratio", setting + " (median of per-repeat ratios)", statistics.median(ratios),
            "ratio (target >= 0.9)")
        add("smoothing_ratio_min", setting, min(ratios), "ratio")

    meta = f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor() or platform.machine()}"
    print(meta)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["benchmark", "setting", "value", "unit"])
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {out}")
    return rows


if __name__ == "__main__":
    main()
