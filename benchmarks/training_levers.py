"""What each fast-training lever buys on this machine: the zoo's CIFAR models, one run, ratios.

    python -m benchmarks.training_levers [--models resnet18,vgg] [--batch-size 128] [--steps 8]
        [--repeats 3] [--fit-batches 30] [--csv FILE]

Measured in ONE run, rounds in alternating order, medians reported (the machine is shared and
noisy, so only ratios within the run are compared):

- ``step``: images/s of a raw train step (forward + backward + SGD step, train mode) of each model
  at ``--batch-size`` under each precision/memory-format lever: ``fp32``, ``bf16`` (CPU autocast),
  ``fp32+cl`` and ``bf16+cl`` (weights and batch in channels-last memory format);
  ``speedup`` = images/s over the same model's fp32 images/s;
- ``fit``: images/s of ``Trainer.fit`` of :class:`AdversarialTrainingModule` (objective clean,
  the zoo recipe's label smoothing) on CIFAR-10 batches for ``fp32`` and the zoo's setting
  ``bf16-mixed`` + channels-last, with and without the EMA of weights
  (``EMAWeightAveraging``), and ``fit / step`` of the same setting: what Lightning, the metrics and
  EMA cost on top of the raw step;
- ``loader``: images/s of the training DataLoader alone (random crop + flip, with and without
  cutout 16), to show the data pipeline is not the bottleneck.

The zoo configs (configs/experiment/zoo_*.yaml) choose per model the lever measured fastest here.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch.utils.data import DataLoader

from benchmarks.csv_rows import write_rows
from tpa_lightning.data.arrays import ArrayImageDataset
from tpa_lightning.data.cifar10 import INFO, load_cifar10
from tpa_lightning.models import build_model
from tpa_lightning.training import AdversarialTrainingModule

#: name -> (build_model spec, kwargs): the zoo's architectures (configs/experiment/zoo_<name>.yaml).
MODELS: dict[str, tuple[str, dict[str, object]]] = {
    "resnet18": ("cifar_resnet18", {"width": 16}),
    "vgg": ("cifar_vgg", {"width": 32}),
    "mobilenet": ("cifar_mobilenet", {"width": 24, "head_channels": 640, "stem_stride": 2}),
    "densenet": ("cifar_densenet", {"width": 12, "blocks": [6, 6, 6], "stem_stride": 2}),
    "convnext": ("cifar_convnext", {"width": 32, "depths": [1, 1, 3, 1]}),
    "vit": ("cifar_vit", {"width": 128, "depth": 4, "heads": 4, "patch_size": 4, "mlp_ratio": 2.0, "pool": "cls"}),
}
LEVERS = ("fp32", "bf16", "fp32+cl", "bf16+cl")


def _step_fn(name: str, lever: str, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    spec, kwargs = MODELS[name]
    torch.manual_seed(0)
    model = build_model(spec, num_classes=10, in_chans=3, mean=list(INFO.mean), std=list(INFO.std), **kwargs)
    if lever.endswith("+cl"):
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    use_bf16 = lever.startswith("bf16")
    model.train()

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_bf16):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return step


def _ips(fn: Callable[[], None], images: int, steps: int) -> float:
    fn()                                                  # warm-up (oneDNN primitive creation)
    fn()
    t = time.perf_counter()
    for _ in range(steps):
        fn()
    return images * steps / (time.perf_counter() - t)


class _Timer(L.Callback):
    """Images/s of the training batches after the first (warm-up)."""

    def __init__(self) -> None:
        self.images, self.t0, self.seconds = 0, 0.0, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 1:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= 1:
            self.images += batch[0].shape[0]
            self.seconds = time.perf_counter() - self.t0


def _fit_ips(name: str, bf16_cl: bool, ema: bool, data: ArrayImageDataset, batch: int, batches: int) -> float:
    spec, kwargs = MODELS[name]
    torch.manual_seed(0)
    module = AdversarialTrainingModule(spec, num_classes=10, in_chans=3, mean=list(INFO.mean), std=list(INFO.std),
                                       model_kwargs=kwargs, objective="clean", optimizer="sgd", lr=0.05,
                                       schedule="onecycle", label_smoothing=0.1, channels_last=bf16_cl,
                                       precision="bf16-mixed" if bf16_cl else "32")
    timer = _Timer()
    callbacks: list[L.Callback] = [timer] + ([EMAWeightAveraging(decay=0.999)] if ema else [])
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                        limit_train_batches=batches, precision="bf16-mixed" if bf16_cl else "32-true",
                        callbacks=callbacks)
    trainer.fit(module, DataLoader(data, batch_size=batch, shuffle=True))
    return timer.images / timer.seconds


def _loader_ips(data: ArrayImageDataset, batch: int, batches: int) -> float:
    loader = iter(DataLoader(data, batch_size=batch, shuffle=True))
    next(loader)
    t = time.perf_counter()
    for _ in range(batches):
        next(loader)
    return batch * batches / (time.perf_counter() - t)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet18", help=f"comma-separated, of {', '.join(MODELS)}")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--steps", type=int, default=8, help="timed raw train steps per measurement")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--fit-batches", type=int, default=30, help="training batches per Trainer.fit measurement")
    ap.add_argument("--csv", default=None)
    args = ap.parse_args(argv)
    names = [n for n in args.models.split(",") if n]
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        print(f"error: --models: unknown model '{unknown[0]}'; known: {', '.join(MODELS)}", file=sys.stderr)
        return 2
    b = args.batch_size
    images, labels, source = load_cifar10("data", train=True)
    n = b * (args.fit_batches + 1)
    x = images[:b].float() / 255
    y = labels[:b].long()
    plain = ArrayImageDataset(images[:n], labels[:n], augment=True, pad=4, flip=True)
    cut = ArrayImageDataset(images[:n], labels[:n], augment=True, pad=4, flip=True, cutout=16)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}, data {source}")
    samples: dict[tuple[str, str, str], list[float]] = {}
    for rep in range(args.repeats):
        order = list(LEVERS) if rep % 2 == 0 else list(reversed(LEVERS))
        for name in names:
            for lever in order:
                ips = _ips(_step_fn(name, lever, x, y), b, args.steps)
                samples.setdefault(("step", name, lever), []).append(ips)
            for bf16_cl, ema in ((False, False), (True, False), (True, True)):
                lever = ("bf16+cl" if bf16_cl else "fp32") + ("+ema" if ema else "")
                ips = _fit_ips(name, bf16_cl, ema, plain, b, args.fit_batches)
                samples.setdefault(("fit", name, lever), []).append(ips)
        for label, data in (("crop+flip", plain), ("crop+flip+cutout16", cut)):
            samples.setdefault(("loader", "-", label), []).append(_loader_ips(data, b, args.fit_batches))
        print(f"round {rep + 1} of {args.repeats} done", flush=True)
    rows = []
    for (kind, name, lever), values in samples.items():
        med = statistics.median(values)
        base = samples.get(("step", name, "fp32"))
        step_same = samples.get(("step", name, lever.replace("+ema", "")))
        rows.append({"kind": kind, "model": name, "lever": lever, "images_per_s": round(med, 1),
                     "min": round(min(values), 1), "max": round(max(values), 1),
                     "speedup_over_fp32_step": round(med / statistics.median(base), 3) if base else "",
                     "fit_over_step": (round(med / statistics.median(step_same), 3)
                                       if kind == "fit" and step_same else ""),
                     "batch": b, "threads": torch.get_num_threads(), "repeats": len(values)})
    for r in rows:
        print(f"{r['kind']:6s} {r['model']:9s} {r['lever']:20s} {r['images_per_s']:8.1f} img/s "
              f"x{r['speedup_over_fp32_step'] or '-'} fit/step {r['fit_over_step'] or '-'}")
    if args.csv:
        write_rows(args.csv, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
