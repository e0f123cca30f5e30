"""Models: ``build_model(spec, ...)`` for every classifier the toolkit uses; all take [0, 1] input."""
from .build import ARCHITECTURES, KNOWN_SPECS, build_model
from .checkpoint import MODEL_META_KEY, CheckpointError
from .normalized import NormalizedClassifier
from .pretrained import PRETRAINED

__all__ = ["ARCHITECTURES", "KNOWN_SPECS", "MODEL_META_KEY", "PRETRAINED", "CheckpointError",
           "NormalizedClassifier", "build_model"]
