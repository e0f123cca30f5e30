"""Data: datasets as [0, 1] NCHW float images; ``RobustDataModule`` for Lightning."""
from .arrays import ArrayImageDataset, DatasetInfo
from .datamodule import DATASETS, RobustDataModule, deterministic_subset
from .errors import DatasetNotFoundError
from .samples import foolbox_samples

__all__ = ["DATASETS", "ArrayImageDataset", "DatasetInfo", "DatasetNotFoundError", "RobustDataModule",
           "deterministic_subset", "foolbox_samples"]
