"""The evaluation as a Lightning test loop: each process sees its own chunks of the test set, every
section adds to its counters, and the counters are summed over processes at the end."""
from __future__ import annotations

import time
from typing import Any

import lightning as L
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from .dataset import Indexed
from .sampler import ChunkBatchSampler
from .section import Batch, Context, Section


class EvaluationLoop(L.LightningModule):
    """``trainer.test(EvaluationLoop(...))`` runs ``sections`` over ``dataset``; afterwards
    ``totals[section.name][counter]`` holds the counts over all images of all processes."""

    def __init__(self, sections: list[Section], models: dict[str, nn.Module], dataset: Any, batch_size: int,
                 seed: int = 0, precision: str = "32", num_workers: int = 0, threads: int | None = None) -> None:
        super().__init__()
        self.sections = sections
        self.nets = nn.ModuleDict(models)       # registered so Lightning moves them to the device
        self.dataset = Indexed(dataset)
        self.chunk_size = int(batch_size)
        self.seed, self.precision, self.num_workers, self.threads = seed, precision, num_workers, threads
        self.partial: dict[str, dict[str, Tensor]] = {}
        self.totals: dict[str, dict[str, Tensor]] = {}
        self.images_seen = 0
        self.seconds: dict[str, float] = {}
        self._reset()

    def _reset(self) -> None:
        self.partial = {s.name: {k: torch.zeros(shape, dtype=torch.float64) for k, shape in s.counters().items()}
                        for s in self.sections}
        self.images_seen = 0

    def test_dataloader(self) -> DataLoader[Any]:
        rank = self.trainer.global_rank if self._trainer is not None else 0
        world = self.trainer.world_size if self._trainer is not None else 1
        sampler = ChunkBatchSampler(len(self.dataset), self.chunk_size, rank, world)
        return DataLoader(self.dataset, batch_sampler=sampler, num_workers=self.num_workers)

    def on_test_epoch_start(self) -> None:
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self._reset()

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y, idx = batch
        b = Batch(x=x, y=y, idx=idx.cpu(), chunk=int(idx[0]) // self.chunk_size)
        ctx = Context(models=dict(self.nets.items()), seed=self.seed, precision=self.precision)
        for s in self.sections:
            t0 = time.perf_counter()
            result = s.step(ctx, b)
            self.seconds[s.name] = self.seconds.get(s.name, 0.0) + time.perf_counter() - t0
            for key, value in result.items():
                self.partial[s.name][key] += value.detach().to("cpu", torch.float64).view(self.partial[s.name][key].shape)
        self.images_seen += int(x.shape[0])

    def on_test_epoch_end(self) -> None:
        order = [(s, k) for s in self.partial for k in self.partial[s]]
        flat = torch.cat([self.partial[s][k].flatten() for s, k in order] +
                         [torch.tensor([float(self.images_seen)], dtype=torch.float64)])
        flat = self.trainer.strategy.reduce(flat.to(self.device), reduce_op="sum").cpu()
        out: dict[str, dict[str, Tensor]] = {}
        pos = 0
        for s, k in order:
            t = self.partial[s][k]
            out.setdefault(s, {})[k] = flat[pos:pos + t.numel()].view(t.shape).round()
            pos += t.numel()
        self.totals = out
        self.images_total = int(flat[-1].item())
