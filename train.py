"""Adversarial training: ``python train.py [--config FILE] [--print-config] [key=value ...]``."""
import sys

from tpa_lightning.cli import train_main

if __name__ == "__main__":
    sys.exit(train_main())
