"""Callbacks for any Lightning project whose module's ``forward`` returns logits:
``RobustAccuracyCallback`` (robust accuracy under an attack) and ``TransferCallback`` (transfer
success rates on other models), both measured during validation and exact under DDP, and
``RobustCollapseStop`` (ends adversarial training when validation robust accuracy collapses)."""
from .base import AttackCallback, split_batch
from .collapse_stop import RobustCollapseStop
from .metrics import CountedAccuracy, TransferRate
from .robust_accuracy import RobustAccuracyCallback
from .transfer import TransferCallback

__all__ = ["AttackCallback", "CountedAccuracy", "RobustAccuracyCallback", "RobustCollapseStop", "TransferCallback", "TransferRate",
           "split_batch"]
