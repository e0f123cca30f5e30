"""Adversarial-training throughput against the bound implied by the attack's pass count.

    python -m benchmarks.training_throughput [--batches 8] [--batch-size 128] [--repeats 3] [--csv FILE]

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
- ``ratio = measured / bound`` (design target: >= 0.85); raw figures are re-measured right before
  each epoch, and the median ratio over ``--repeats`` rounds is reported with its min and max.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from benchmarks.csv_rows import write_rows
from tpa_lightning.attacks import attack_passes_per_image, model_eval_no_param_grad
from tpa_lightning.data.fashion_mnist import INFO, load_fashion_mnist
from tpa_lightning.training import AdversarialTrainingModule

OBJECTIVES = ("clean", "pgd_at", "tpa_at")
ATTACK = {"name": "tpa", "eps": 0.1, "steps": 2, "copies": 2, "max_batch": 128}  # the default run's attack
#: the training attack of each objective: tpa_at the default run's, pgd_at PGD at its budget and steps
ATTACK_OF = {"clean": {}, "pgd_at": {"eps": 0.1, "steps": 2, "max_batch": 128}, "tpa_at": ATTACK}


#: default device of the timing helpers
CPU = torch.device("cpu")


def _timed(fn, reps: int, device: torch.device = CPU) -> float:
    fn()                                                          # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    t = time.perf_counter()
    for _ in range(reps):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return (time.perf_counter() - t) / reps


def _module(objective: str) -> AdversarialTrainingModule:
    return AdversarialTrainingModule("small_cnn", num_classes=10, in_chans=1, mean=list(INFO.mean),
                                     std=list(INFO.std), objective=objective, attack=ATTACK_OF[objective],
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
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)     # the step's kernels are done before timing
        if batch_idx >= 1:
            self.images += batch[0].shape[0]
            self.seconds = time.perf_counter() - self.t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--csv", default=None)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cpu", help="cpu (default) or cuda: raw steps and Trainer.fit run there")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    accelerator = "gpu" if device.type == "cuda" else "cpu"
    b = args.batch_size
    x_all, y_all = load_fashion_mnist("data", train=True)
    n = b * args.batches
    x, y = x_all[:n].float() / 255.0, y_all[:n].long()
    xb, yb = x[:b].to(device), y[:b].to(device)

    ref = _module("clean")
    net = ref.model.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)

    def train_step() -> None:
        net.train()
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(net(xb), yb).backward()
        opt.step()

    def attack_pass() -> None:
        with model_eval_no_param_grad(net):
            u = xb.clone().requires_grad_(True)
            (_grad,) = torch.autograd.grad(F.cross_entropy(net(u), yb, reduction="sum"), u)

    def raw() -> tuple[float, float]:
        """Median-of-3 raw train-step and attack-pass throughput, measured now."""
        t_train = statistics.median(_timed(train_step, 10, device) for _ in range(3))
        t_pass = statistics.median(_timed(attack_pass, 10, device) for _ in range(3))
        return b / t_train, b / t_pass

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {b}, {args.batches} batches, "
          f"{args.repeats} repeats")
    samples: dict[str, list[dict[str, float]]] = {o: [] for o in OBJECTIVES}
    for rep in range(args.repeats):
        for objective in OBJECTIVES:
            train_ips, pass_ips = raw()          # raw figures right before each epoch: same conditions
            r = train_ips / pass_ips
            module = _module(objective)
            passes = 0.0 if objective == "clean" else attack_passes_per_image(module.training_attack())
            timer = EpochTimer()
            trainer = L.Trainer(max_epochs=1, accelerator=accelerator, devices=1, logger=False,
                                enable_checkpointing=False, enable_progress_bar=False,
                                enable_model_summary=False, limit_val_batches=0, callbacks=[timer])
            trainer.fit(module, DataLoader(TensorDataset(x, y), batch_size=b, shuffle=True))
            measured = timer.images / timer.seconds
            bound = train_ips / (1 + passes * r)
            samples[objective].append({"passes": passes, "train_ips": train_ips, "pass_ips": pass_ips, "r": r,
                                       "bound": bound, "measured": measured, "ratio": measured / bound})
            print(f"repeat {rep}: {objective:8s} P={passes:5.1f} bound {bound:8.1f} img/s "
                  f"measured {measured:8.1f} img/s ratio {measured / bound:.3f}")
    rows = []
    for objective, runs in samples.items():
        med = {k: statistics.median(run[k] for run in runs) for k in runs[0]}
        rows.append({"objective": objective, "passes_per_image": med["passes"],
                     "train_ips": round(med["train_ips"], 1), "pass_ips": round(med["pass_ips"], 1),
                     "r": round(med["r"], 4), "bound_ips": round(med["bound"], 1),
                     "measured_ips": round(med["measured"], 1), "ratio_median": round(med["ratio"], 3),
                     "ratio_min": round(min(run["ratio"] for run in runs), 3),
                     "ratio_max": round(max(run["ratio"] for run in runs), 3), "repeats": len(runs)})
        print(f"median {objective:8s} ratio {med['ratio']:.3f} (min {rows[-1]['ratio_min']}, "
              f"max {rows[-1]['ratio_max']})")
    if args.csv:
        write_rows(args.csv, rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
