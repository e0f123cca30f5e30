"""Reading weight files safely: ``torch.load(weights_only=True)`` or safetensors, never plain pickle.

A checkpoint written by ``train.py`` carries, under :data:`MODEL_META_KEY`, what is needed to rebuild
its model (spec, classes, channels, normalisation, options); any other file is a plain state dict
and needs the architecture named (``arch=``).
"""
from __future__ import annotations

import pickle
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

#: Key of a Lightning checkpoint under which train.py stores how to rebuild the model.
MODEL_META_KEY = "tpa_lightning_model"

#: File endings taken as weight files by :func:`~tpa_lightning.models.build_model`.
CHECKPOINT_SUFFIXES = (".ckpt", ".pt", ".pth", ".bin", ".safetensors")


class CheckpointError(ValueError):
    """A weight file that is missing, corrupt, unsafe, or does not fit the model."""


def read_checkpoint(path: str | Path) -> Any:
    """The object stored in ``path``, loaded on the CPU without running any pickled code."""
    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"checkpoint not found: {p}")
    if p.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return load_file(str(p), device="cpu")
        except Exception as err:  # noqa: BLE001 - safetensors raises its own error types
            raise CheckpointError(f"checkpoint {p} is corrupt or not a safetensors file ({err})") from None
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = str(err)
        if "Unsupported global" in text or "GLOBAL" in text or _pickles_objects(p):
            raise CheckpointError(
                f"checkpoint {p} contains pickled objects other than weights; refusing to unpickle it "
                "(re-save it as a plain state dict or as safetensors)") from None
        raise CheckpointError(f"checkpoint {p} is corrupt or not a PyTorch file ({text.splitlines()[0]})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError) as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise CheckpointError(f"checkpoint {p} is corrupt or truncated ({first})") from None


def _pickles_objects(path: Path) -> bool:
    """Whether ``path`` is a well-formed plain pickle that builds objects (imports or calls), read
    opcode by opcode without executing anything."""
    import pickletools

    try:
        with open(path, "rb") as fh:
            ops = {op.name for op, _, _ in pickletools.genops(fh)}
    except Exception:  # noqa: BLE001 - any parse failure means a corrupt file
        return False
    return bool(ops & {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST", "OBJ", "NEWOBJ", "NEWOBJ_EX", "BUILD"})


def extract_state_dict(ckpt: Any) -> dict[str, Tensor]:
    """The tensors of a checkpoint: its ``state_dict`` (Lightning, RobustBench), ``model_state_dict``
    or ``model`` entry, or the checkpoint itself when it is a flat mapping of tensors."""
    if isinstance(ckpt, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            inner = ckpt.get(key)
            if isinstance(inner, Mapping) and inner and all(isinstance(v, Tensor) for v in inner.values()):
                return dict(inner)
        if ckpt and all(isinstance(v, Tensor) for v in ckpt.values()):
            return dict(ckpt)
    raise CheckpointError("the checkpoint holds no state dict (expected a mapping of parameter names to tensors, "
                          "or one under 'state_dict')")


def strip_prefixes(state: Mapping[str, Tensor], prefixes: Iterable[str]) -> dict[str, Tensor]:
    """``state`` with each of ``prefixes`` removed, repeatedly, from the start of every key."""
    prefixes = tuple(prefixes)
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for p in prefixes:
                if key.startswith(p):
                    key, changed = key[len(p):], True
        out[key] = value
    return out


def load_into(model: nn.Module, state: Mapping[str, Tensor], what: str) -> None:
    """Load ``state`` strictly into ``model``; a mismatch is a :class:`CheckpointError` naming ``what``."""
    try:
        missing, unexpected = model.load_state_dict(dict(state), strict=False)
    except RuntimeError as err:    # shape mismatches
        lines = [ln.strip() for ln in str(err).splitlines() if "size mismatch" in ln]
        raise CheckpointError(f"the weights do not fit {what}: {lines[0] if lines else err}") from None
    if missing or unexpected:
        raise CheckpointError(f"the weights do not fit {what}: missing keys {list(missing)[:4]}, "
                              f"unexpected keys {list(unexpected)[:4]}")
