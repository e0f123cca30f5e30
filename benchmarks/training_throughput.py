"""Adversarial-training throughput against the bound implied by the attack's pass count.

    python -m benchmarks.training_throughput [--batches 8] [--batch-size 128] [--csv FILE]

Everything is measured in ONE run, on the same model (the default small CNN), batch size and real
Fashion-MNIST images:

- ``train_ips``: raw train-step throughput, images/s of forward + backward + AdamW step (train mode);
- ``pass_ips``:  raw attack-pass throughput, images/s of forward + backward w.r.t. the input only
  (eval mode, parameter grads off) -- what one attack iteration costs per image;
- ``r = train_ips / pass_ips``: cost of one attack pass relative to one train step;
- ``P``: forward+backward passes per image of the training attack (``attack_passes_per_image``);
- ``bound = train_ips / (1 + P * r)``: the best an epoch can do if it only runs the attack and the
  train step (for ``clean``, P = 0 and the bound is ``train_ips``);
- ``measured``: images/s of ``Trainer.fit`` on AdversarialTrainingModule over ``--batches``
  batches (first batch excluded: warm-up), Lightning, logging and metrics included;
- ``ratio = measured / bound`` (design target: >= 0.85).
"""
from __future__ import annotations

import argparse
import csv
import sys
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from tpa_lightning.attacks import attack_passes_per_image, model_eval_no_param_grad
from tpa_lightning.data.fashion_mnist import INFO, load_fashion_mnist
from tpa_lightning.training import AdversarialTrainingModule

ATTACK = {"name": "tpa", "eps": 0.1, "steps": 3, "copies": 2}     # the default run's attack


def _timed(fn, reps: int) -> float:
    fn()                                                          # warm-up
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    return (time.perf_counter() - t) / reps


def _module(objective: str) -> AdversarialTrainingModule:
    return AdversarialTrainingModule("small_cnn", num_classes=10, in_chans=1, mean=list(INFO.mean),
                                     std=list(INFO.std), objective=objective, attack=ATTACK,
                                     schedule="none", val_attack_batches=0)


class EpochTimer(L.Callback):
    def __init__(self) -> None:
        self.t0 = 0.0
        self.images = 0
        self.seconds = 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 1:
            self.t0 = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if batch_idx >= 1:
            self.images += batch[0].shape[0]
            self.seconds = time.perf_counter() - self.t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--csv", default=None)
    args = ap.parse_args(argv)
    b = args.batch_size
    x_all, y_all = load_fashion_mnist("data", train=True)
    n = b * args.batches
    x, y = x_all[:n].float() / 255.0, y_all[:n].long()
    xb, yb = x[:b], y[:b]

    ref = _module("clean")
    net = ref.model
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def train_step() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xb), yb).backward()
        opt.step()

    def attack_pass() -> None:
        with model_eval_no_param_grad(net):
            u = xb.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(F.cross_entropy(net(u), yb, reduction="sum"), u)

    train_ips = b / min(_timed(train_step, 10) for _ in range(3))
    pass_ips = b / min(_timed(attack_pass, 10) for _ in range(3))
    r = train_ips / pass_ips
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}, {args.batches} batches")
    print(f"raw train step {train_ips:.0f} img/s, raw attack pass {pass_ips:.0f} img/s, r = {r:.3f}")
    rows = []
    for objective in ("clean", "pgd_at", "tpa_at"):
        module = _module(objective)
        passes = 0.0 if objective == "clean" else attack_passes_per_image(module.training_attack())
        timer = EpochTimer()
        trainer = L.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                            callbacks=[timer])
        trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=b, shuffle=True))
        measured = timer.images / timer.seconds
        bound = train_ips / (1 + passes * r)
        rows.append({"objective": objective, "passes_per_image": passes, "train_ips": round(train_ips, 1),
                     "pass_ips": round(pass_ips, 1), "r": round(r, 4), "bound_ips": round(bound, 1),
                     "measured_ips": round(measured, 1), "ratio": round(measured / bound, 3)})
        print(f"{objective:8s} P={passes:5.1f} bound {bound:8.1f} img/s measured {measured:8.1f} img/s "
              f"ratio {measured / bound:.3f}")
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
