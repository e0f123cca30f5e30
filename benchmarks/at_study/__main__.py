"""``python -m benchmarks.at_study [--evaluate] [--threads N] [--out DIR]``: see the package docstring."""
from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from . import __doc__ as PACKAGE_DOC
from .collect import facts_of
from .evaluations import REPO, STUDY_MODELS, run_evaluations
from .report import write_study


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.at_study", description=(PACKAGE_DOC or "").split("\n\n")[0])
    p.add_argument("--evaluate", action="store_true",
                   help="first run evaluate.py for every exported model that has no committed report")
    p.add_argument("--work", default="outputs/at_eval", help="evaluate.py's folders (default outputs/at_eval)")
    p.add_argument("--threads", type=int, default=None, help="torch threads of each evaluate.py run")
    p.add_argument("--models", default=",".join(STUDY_MODELS), help="comma-separated (default: all four)")
    p.add_argument("--out", default=str(REPO / "docs" / "results" / "at_study"), help="report folder")
    a = p.parse_args(argv)
    names = tuple(n.strip() for n in a.models.split(",") if n.strip())
    unknown = [n for n in names if n not in STUDY_MODELS]
    if unknown:
        print(f"error: --models: unknown {', '.join(unknown)}; known: {', '.join(STUDY_MODELS)}", file=sys.stderr)
        return 2
    if a.evaluate:
        run_evaluations(names, Path(a.work), a.threads)
    for f in write_study([facts_of(n) for n in names], Path(a.out)):
        print(f"[at_study] wrote {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
