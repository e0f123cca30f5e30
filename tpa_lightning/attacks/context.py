"""The model-mode context every attack runs in (after advertorch's ``ctx_noparamgrad_and_eval``)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


def unwrap_model(model: nn.Module) -> nn.Module:
    """Return the module under ``DistributedDataParallel`` / ``DataParallel`` wrappers (any depth)."""
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    while isinstance(model, (DistributedDataParallel, DataParallel)):
        model = model.module
    return model


@contextmanager
def model_eval_no_param_grad(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode with ``requires_grad=False`` on every parameter; restore both on exit.

    Yields the unwrapped module (DDP/DataParallel's ``.module``): attacks never run the DDP wrapper.
    Each submodule's ``training`` flag and each parameter's ``requires_grad`` are restored exactly
    as they were, also when the body raises. Parameter ``.grad`` tensors are never touched.
    """
    net = unwrap_model(model)
    modes = [(m, m.training) for m in net.modules()]
    flags = [(p, p.requires_grad) for p in net.parameters()]
    try:
        net.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield net
    finally:
        for m, training in modes:
            m.training = training
        for p, req in flags:
            p.requires_grad_(req)
