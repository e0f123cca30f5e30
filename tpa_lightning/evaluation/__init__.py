"""Evaluation: clean / white-box / transfer / defended / certified accuracy, AutoAttack, sanity checks,
and the report (``report.json`` model card, ``report.md``, CSV tables, PNG plots).

``evaluate(cfg)`` is the job of ``python evaluate.py``; the rest is public for reuse.
"""
from .cache import SectionCache, settings_key
from .dataset import Indexed, TensorImages, fingerprint
from .evaluate_job import evaluate, resolve_model_spec
from .probes import noise_correct, zero_gradient
from .sampler import ChunkBatchSampler, chunks
from .sanity import run_checks
from .stats import clopper_pearson, proportion

__all__ = [
    "ChunkBatchSampler", "Indexed", "SectionCache", "TensorImages", "chunks", "clopper_pearson", "evaluate",
    "fingerprint", "noise_correct", "proportion", "resolve_model_spec", "run_checks", "settings_key",
    "zero_gradient",
]
