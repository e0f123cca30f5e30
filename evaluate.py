"""Robustness report: ``python evaluate.py [--config FILE] [--print-config] [key=value ...]``."""
import sys

from tpa_lightning.cli import evaluate_main

if __name__ == "__main__":
    sys.exit(evaluate_main())
