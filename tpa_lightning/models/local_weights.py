"""Weights of a timm or torchvision network read from a local file, never unpickled.

``.pt``/``.pth``/``.bin``/``.ckpt`` files are read with ``torch.load(weights_only=True,
map_location="cpu")`` and ``.safetensors`` files with safetensors (see
:func:`~.checkpoint.read_checkpoint`); a file that pickles objects other than tensors is refused
with a :class:`~.checkpoint.CheckpointError`, nothing in it is run. The state dict may sit under
``state_dict``, ``model_state_dict`` or ``model``, and its keys may carry the prefixes of
``DataParallel`` (``module.``), ``torch.compile`` (``_orig_mod.``), a Lightning module (``model.``)
or :class:`~.normalized.NormalizedClassifier` (``net.``). Loading is strict: a key that is missing
or left over, or a tensor of another shape, is an error that names it.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from torch import Tensor, nn

from .checkpoint import CheckpointError, extract_state_dict, load_into, read_checkpoint, strip_prefixes

#: Prefixes taken off the keys of a weight file when the keys do not fit as they are.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")
MODULE_PREFIXES = ("model.", "net.")


def read_state_dict(path: str | Path) -> dict[str, Tensor]:
    """The tensors of the weight file ``path`` (a plain or nested state dict, or safetensors).

    Raises:
        CheckpointError: the file is missing, corrupt, pickles objects, or holds no state dict.
    """
    p = Path(path)
    try:
        return extract_state_dict(read_checkpoint(p))
    except CheckpointError as err:
        if str(p) in str(err):
            raise
        raise CheckpointError(f"weight file {p}: {err}") from None


def _candidates(state: Mapping[str, Tensor]) -> list[dict[str, Tensor]]:
    """``state`` as it is, without wrapper prefixes, and without wrapper and module prefixes."""
    out = [dict(state)]
    for prefixes in (WRAPPER_PREFIXES, WRAPPER_PREFIXES + MODULE_PREFIXES):
        stripped = strip_prefixes(state, prefixes)
        if len(stripped) == len(state) and all(stripped.keys() != c.keys() for c in out):
            out.append(stripped)
    return out


def match_state_dict(model: nn.Module, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """The version of ``state`` (prefixes stripped or not) whose keys are those of ``model``; if none
    fits, the one closest to it (the caller's strict load then names what is missing)."""
    want = set(model.state_dict().keys())
    candidates = _candidates(state)
    for cand in candidates:
        if set(cand) == want:
            return cand
    return max(candidates, key=lambda c: len(want & set(c)))


def _describe_mismatch(model: nn.Module, state: Mapping[str, Tensor]) -> str:
    want = list(model.state_dict().keys())
    missing = [k for k in want if k not in state]
    unexpected = [k for k in state if k not in set(want)]
    parts = []
    if missing:
        parts.append(f"missing keys {missing[:4]}{f' (and {len(missing) - 4} more)' if len(missing) > 4 else ''}")
    if unexpected:
        parts.append(f"unexpected keys {unexpected[:4]}"
                     f"{f' (and {len(unexpected) - 4} more)' if len(unexpected) > 4 else ''}")
    return ", ".join(parts)


def load_weights(model: nn.Module, path: str | Path, what: str, outer: nn.Module | None = None,
                 state: Mapping[str, Tensor] | None = None) -> None:
    """Load the weight file ``path`` strictly into ``model``.

    Args:
        model: the network the weights are for (e.g. the timm model).
        path: the weight file.
        what: how errors name the model (e.g. ``"timm:resnet50"``).
        outer: a wrapper of ``model`` (the :class:`~.normalized.NormalizedClassifier`); a file holding
            exactly the wrapper's state dict (``net.*``, ``mean``, ``std``) is loaded into it.
        state: the file's tensors if already read (:func:`read_state_dict`); ``path`` then only names it.

    Raises:
        CheckpointError (a ValueError): the file cannot be read safely, or its keys or shapes do not
            fit ``model``; the message names the first missing and unexpected keys.
    """
    if state is None:
        state = read_state_dict(path)
    if outer is not None:
        for cand in _candidates(state):
            if set(cand) == set(outer.state_dict().keys()):
                load_into(outer, cand, f"{what} (weights {path})")
                return
    best = match_state_dict(model, state)
    if set(best) != set(model.state_dict().keys()):
        raise CheckpointError(f"the weights in {path} do not fit {what}: {_describe_mismatch(model, best)}")
    load_into(model, best, f"{what} (weights {path})")
