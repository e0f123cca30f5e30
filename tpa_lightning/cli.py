"""Command-line plumbing shared by train.py and evaluate.py: arguments, config, one-line errors."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from omegaconf import DictConfig, OmegaConf

from .config import ConfigError, load_config
from .evaluation.evaluate_job import evaluate
from .training.train_job import train

#: Errors a user can cause (bad config, missing file or data): one line on stderr, exit status 2.
USER_ERRORS: tuple[type[BaseException], ...] = (ConfigError, FileNotFoundError, ValueError)


def fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse(kind: str, argv: Sequence[str] | None) -> tuple[DictConfig, bool]:
    parser = argparse.ArgumentParser(
        prog=f"{kind}.py",
        description=f"tpa-lightning {kind}: omegaconf key=value overrides on top of configs/{kind}.yaml",
    )
    parser.add_argument("--config", help="a YAML file merged over the defaults")
    parser.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="key=value (dot notation), or group=name for a file "
                        "in configs/<group>/ (groups: data, model, attack, defense, experiment)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(kind, list(args.overrides), args.config)
    except ConfigError as err:
        fail(str(err))
    return cfg, bool(args.print_config)


def run_job(kind: str, argv: Sequence[str] | None, job: Callable[[DictConfig], object]) -> int:
    """Parse ``argv`` as a ``kind`` config and run ``job`` on it; a user error ends with one line, exit 2."""
    cfg, print_only = parse(kind, argv)
    if print_only:
        print(OmegaConf.to_yaml(cfg), end="")
        return 0
    try:
        job(cfg)
    except USER_ERRORS as err:
        text = str(err).strip().splitlines()
        fail(text[0] if text else type(err).__name__)
    return 0


def _train(cfg: DictConfig) -> object:
    return train(cfg)


def _evaluate(cfg: DictConfig) -> object:
    return evaluate(cfg)


def train_main(argv: Sequence[str] | None = None) -> int:
    return run_job("train", argv, _train)


def evaluate_main(argv: Sequence[str] | None = None) -> int:
    return run_job("evaluate", argv, _evaluate)
