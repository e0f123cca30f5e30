"""Training: the LightningModule for (adversarial) training and the train.py job."""
from .module import AdversarialTrainingModule
from .objectives import OBJECTIVES

__all__ = ["OBJECTIVES", "AdversarialTrainingModule"]
