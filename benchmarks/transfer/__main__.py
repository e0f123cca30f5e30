"""``python -m benchmarks.transfer [--quick] ...``: the transferability benchmark on CIFAR-10 (JPEG copy).

    python -m benchmarks.transfer --quick          # the short version, docs/results/quick/
    python -m benchmarks.transfer                  # hours; resumes after a kill, and in a later session
                                                   # from the committed docs/results/raw; docs/results/
    python -m benchmarks.transfer --report-only    # rewrite the report from the cache, compute nothing
    python -m benchmarks.transfer --skip-train --threads 1 --worker &   # two processes, one core each,
    python -m benchmarks.transfer --skip-train --threads 1 --worker     # sharing the units; then --report-only
    python -m benchmarks.transfer --skip-train --units 'resnet18_aa-tpa-*'  # one long unit on its own

Trains the zoo (benchmarks/transfer/train_zoo.py) and the NRP purifier where missing, crafts every
adversarial set (cached per chunk under --cache), evaluates it on every target (cached), and writes
README.md, CSV, PNG and run.json to --out after every finished unit.
"""
from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from .settings import FULL, PARTS, QUICK, Settings
from .zoo import DEFAULT_ROOT, QUICK_ROOT, ZooTrainingError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"python -m benchmarks.transfer: error: {message}\n")
        raise SystemExit(2)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = _Parser(prog="python -m benchmarks.transfer", description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="the short version (reduced; see its README)")
    p.add_argument("--out", type=Path, default=None, help="report folder (docs/results or docs/results/quick)")
    p.add_argument("--root", type=Path, default=None,
                   help=f"zoo checkpoints ({DEFAULT_ROOT} or {QUICK_ROOT} with --quick)")
    p.add_argument("--cache", type=Path, default=None,
                   help="resume cache (outputs/transfer/full/cache or outputs/transfer/quick/cache)")
    p.add_argument("--raw", type=Path, default=None,
                   help="where the numbers of every finished unit are kept (per-image predictions, flatness, "
                        "crafting times): docs/results/raw, committed, for the full run; the cache folder "
                        "with --quick")
    p.add_argument("--images", type=int, default=None, help="number of test images (full: 1000, quick: 40)")
    p.add_argument("--skip-train", action="store_true",
                   help="do not train missing zoo models or the purifier; pick them up when another process "
                        "finishes them")
    p.add_argument("--only", type=str, default=None,
                   help=f"compute only these parts (comma-separated: {','.join(PARTS)}); the report still "
                        "shows every finished part")
    p.add_argument("--report-only", action="store_true", help="rewrite the report from the cache only")
    p.add_argument("--shard", type=str, default=None,
                   help="I/N: make only the I-th of N interleaved shares of the units (0 <= I < N) and write no "
                        "report, so that N processes with --threads 1 share the cores; then --report-only")
    p.add_argument("--worker", action="store_true",
                   help="one of several processes started side by side (--threads 1 each): take the units as "
                        "they come, skipping any another process holds (see claims.py), and write no report; "
                        "then --report-only")
    p.add_argument("--units", type=str, default=None,
                   help="comma-separated unit-name patterns (shell-style, e.g. 'resnet18_aa-tpa-*'): make only "
                        "the matching units; a pattern starting with '!' skips what it matches (e.g. a long unit "
                        "another process makes); combines with --shard")
    p.add_argument("--seed", type=int, default=None, help="base seed (default 0)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    a = p.parse_args(argv)
    if a.images is not None and not 1 <= a.images <= 10_000:
        p.error(f"--images must be in [1, 10000], got {a.images}")
    if a.threads < 1:
        p.error(f"--threads must be >= 1, got {a.threads}")
    if a.shard is not None:
        try:
            i, n = (int(v) for v in a.shard.split("/"))
        except ValueError:
            p.error(f"--shard must be I/N with integers, got {a.shard!r}")
        if not 0 <= i < n:
            p.error(f"--shard I/N needs 0 <= I < N, got {a.shard}")
        if a.report_only:
            p.error("--shard and --report-only exclude each other")
        a.shard = (i, n)
    if a.worker and a.report_only:
        p.error("--worker and --report-only exclude each other")
    if a.units is not None:
        pats = [x.strip() for x in a.units.split(",") if x.strip()]
        if not pats or any(x in ("!", "") for x in pats):
            p.error(f"--units needs unit-name patterns, got {a.units!r}")
        if a.report_only:
            p.error("--units and --report-only exclude each other (the report always shows every unit)")
        a.units = pats
    if a.only is not None:
        parts = [x.strip() for x in a.only.split(",") if x.strip()]
        bad = [x for x in parts if x not in PARTS]
        if bad or not parts:
            p.error(f"--only: unknown part(s) {','.join(bad) or '(none given)'}; allowed: {','.join(PARTS)}")
        a.only = set(parts)
    return a


def settings_from(a: argparse.Namespace) -> Settings:
    s = QUICK if a.quick else FULL
    if a.images is not None:
        s = s.replace(images=a.images, ablation_images=min(s.ablation_images, a.images))
    if a.seed is not None:
        s = s.replace(seed=a.seed)
    return s


def _expected_failure(err: Exception) -> bool:
    """Failures that end with one line and status 2 (anything else is a bug and keeps its traceback)."""
    return isinstance(err, (FileNotFoundError, ValueError, ImportError, ZooTrainingError))


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    import torch

    from tpa_lightning.evaluation.provenance import versions

    from . import report, runner

    torch.set_num_threads(a.threads)
    s = settings_from(a)
    sub = "quick" if s.quick else "full"
    out = a.out or (Path("docs/results/quick") if s.quick else Path("docs/results"))
    root = a.root or (QUICK_ROOT if s.quick else DEFAULT_ROOT)
    cache = a.cache or Path("outputs/transfer") / sub / "cache"
    raw = a.raw or (cache if s.quick else out / "raw")
    started = time.time()
    cmd = "python -m benchmarks.transfer " + " ".join(shlex.quote(x) for x in (sys.argv[1:] if argv is None else argv))
    meta: dict[str, Any] = {"commands": [cmd.strip()], "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                            "versions": versions(), "out": str(out), "cache": str(cache), "raw": str(raw),
                            "zoo_root": str(root), "invocations": report.invocations(raw),
                            "notes": report.run_notes(raw)}
    current: dict[str, Any] = {"command": cmd.strip(), "started": meta["started"], "wall_seconds": 0.0,
                               "finished": None, "pid": os.getpid(), "threads": a.threads, "units_made": 0,
                               "machine": platform.machine()}
    if a.units is not None:
        every = runner.work_list(s, a.only or set(PARTS))
        if not runner.select_units(every, a.units):
            sys.stderr.write(f"python -m benchmarks.transfer: error: --units: no unit of this run matches "
                             f"{','.join(a.units)} (names look like {every[0][1].name})\n")
            return 2
    computing = not a.report_only
    if computing:
        meta["invocations"].append(current)
        report.record_invocation(raw, current)
    last = [0.0]
    # a run of some units or parts writes no report of its own: the report always shows everything finished
    partial = a.worker or a.shard is not None or a.units is not None or a.only is not None

    def progress(state: runner.RunState, force: bool = False) -> None:
        if not force and time.time() - last[0] < 60:
            return
        meta["wall_seconds"] = current["wall_seconds"] = time.time() - started
        current["units_made"] = state.made
        if computing:
            report.record_invocation(raw, current)
        if not partial:
            report.write(state, out, meta)
        last[0] = time.time()

    try:
        state = runner.run_benchmark(s, cache, root, parts=a.only if computing else None, train=not a.skip_train,
                           compute=computing, on_progress=progress, raw=raw, shard=a.shard, units=a.units,
                           worker=a.worker)
    except Exception as err:
        if not _expected_failure(err):
            raise
        sys.stderr.write(f"python -m benchmarks.transfer: error: {err}\n")
        return 2
    meta["wall_seconds"] = current["wall_seconds"] = time.time() - started
    meta["finished"] = current["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    current["units_made"] = state.made
    if computing:
        report.record_invocation(raw, current)
    if a.worker or a.shard is not None or a.units is not None:
        who = f"shard {a.shard[0]}/{a.shard[1]}" if a.shard else "selected units" if a.units else "worker"
        runner.log(f"{who} done: {state.made} units made, {len(state.pending)} of its units pending; "
                   f"assemble the report with --report-only; wall {meta['wall_seconds']:.0f} s")
        return 0
    if a.only is not None and computing:
        state = runner.run_benchmark(s, cache, root, parts=None, train=False, compute=False, raw=raw)
    readme = report.write(state, out, meta)
    runner.log(f"report: {readme} ({len(state.results)} units finished, {len(state.pending)} pending); "
               f"wall {meta['wall_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
