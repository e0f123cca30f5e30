"""Attack throughput against the physical bound, fp32 and bf16, and peak memory against max_batch.

    python -m benchmarks.attack_throughput --model pretrained:autoattack_resnet18 --batch 16

Bound of an attack = raw forward+backward images/s of the same model at the same batch (input
gradient only, parameters frozen, eval mode) divided by the attack's passes per image. Every
measurement is repeated ``--repeats`` times, interleaved (raw, attack, raw, attack ...), and the
median is reported, so the ratios are taken within one run on the same (noisy) machine.

``authors-loop`` is this file's own RE-IMPLEMENTATION OF THE LOOP STRUCTURE of the authors'
released TPA code (fmy266/TPA, ``TAEFEP``): 1 + 2N sequential forward+backward passes of batch B
per iteration, with parameter gradients ON (``loss.backward()``), same formulas as official mode.
It is not their code; it reproduces the cost structure only.

Defaults: TPA is also built exactly as a user would, ``TPA(model, steps=..., copies=..., seed=0)``
with no ``max_batch`` (so ``"auto"``: 64-row chunks on a CPU, see ``tpa_lightning.chunking``), at
fp32 and, where the CPU has bf16, with ``precision="bf16"``. Its rows (kind ``default``) give the
ratio to the bound and the speed-up over ``authors-loop`` (fp32), next to the explicit
``--max-batch`` rows. With ``--max-batch auto`` (the default) the explicit TPA rows would repeat
the default rows, so they are skipped; pass an int (e.g. ``--max-batch 1024``) to compare.

Peak memory: each ``max_batch`` value runs one TPA iteration in a fresh subprocess and reports
the peak resident set (``VmHWM``; includes the Python/torch baseline).
"""
from __future__ import annotations

import argparse
import csv
import json
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tpa_lightning.attacks import TPA, Attack, attack_passes_per_image, build_attack
from tpa_lightning.chunking import AUTO, check_max_batch, rows_per_chunk
from tpa_lightning.models import build_model

#: default device of the timing helpers
CPU = torch.device("cpu")

def bf16_support() -> tuple[bool, str]:
    """Whether this CPU has bf16 instructions, and how that was decided."""
    cap = torch.backends.cpu.get_cpu_capability()
    flags = ""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        pass
    found = [f for f in ("avx512_bf16", "amx_bf16") if f in flags]
    return bool(found), f"torch cpu capability {cap}; cpu flags: {', '.join(found) or 'no avx512_bf16/amx_bf16'}"


def max_batch_arg(value: str) -> int | str:
    """``--max-batch``: ``auto`` or an integer >= 1."""
    try:
        return check_max_batch("--max-batch", int(value) if value.isdigit() else value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work (a no-op on the CPU), so wall-clock timings are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device = CPU) -> float:
    synchronize(device)
    t0 = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - t0


def raw_pass(model: nn.Module, x: Tensor, y: Tensor, dtype: torch.dtype | None) -> Callable[[], object]:
    """One forward+backward w.r.t. the input only (parameters frozen by the caller, eval mode)."""

    def run() -> object:
        u = x.clone().requires_grad_(True)
        kind = x.device.type
        ctx = torch.autocast(kind, dtype=dtype) if dtype is not None else torch.autocast(kind, enabled=False)
        with ctx:
            out = model(u)
        loss = F.cross_entropy(out.float(), y, reduction="sum")
        return torch.autograd.grad(loss, u)[0]

    return run


def authors_loop(model: nn.Module, x: Tensor, y: Tensor, steps: int, copies: int, eps: float = 16 / 255,
                 step_size: float = 1.6 / 255, b: float = 0.112, k: float = 0.0113, mix: float = 0.8,
                 momentum: float = 0.9) -> Tensor:
    """Re-implementation of the released code's LOOP STRUCTURE (not its code): 1 + 2N sequential
    passes of batch B per iteration, each with ``loss.backward()`` so parameter grads are computed."""

    def grad(u: Tensor) -> Tensor:
        u = u.detach().clone().requires_grad_(True)
        model.zero_grad()
        loss = F.cross_entropy(model(u), y)
        loss.backward()
        assert u.grad is not None
        return u.grad.detach()

    delta = torch.rand_like(x) * 0.0011
    buf: Tensor | None = None
    for _ in range(steps):
        d0 = grad(x + delta)
        acc = torch.zeros_like(x)
        for _ in range(copies):
            z = x + delta + (torch.rand_like(x) * 2 - 1) * b
            w = z - k * grad(z).sign()
            acc += grad(w)
        d = (1 - mix) * d0 + mix * acc / copies
        buf = d.sign() if buf is None else momentum * buf + d.sign()
        delta = (delta + step_size * buf).clamp(-eps, eps)
    return (x + delta).clamp(0, 1)


def peak_rss_mib() -> float:
    """Peak resident set of this process in MiB: VmHWM (reset by exec, unlike ru_maxrss, which
    Linux carries over from the parent across fork+exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def memory_probe(args: argparse.Namespace) -> None:
    """Child process: one TPA iteration at the given max_batch; print peak RSS (MiB) as JSON."""
    torch.set_num_threads(args.threads)
    model = build_model(args.model).eval()
    x = torch.rand(args.batch, *args.shape)
    y = torch.zeros(args.batch, dtype=torch.long)
    with torch.no_grad():
        model(x[:1])
    base = peak_rss_mib()
    build_attack("tpa", model, steps=1, copies=args.copies, max_batch=args.probe_max_batch, seed=0)(x, y)
    peak = peak_rss_mib()
    print(json.dumps({"max_batch": args.probe_max_batch, "peak_mib": peak, "before_attack_mib": base}))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="pretrained:autoattack_resnet18")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--shape", type=int, nargs=3, default=[3, 32, 32], metavar=("C", "H", "W"))
    p.add_argument("--steps", type=int, default=1, help="attack iterations per timed call")
    p.add_argument("--copies", type=int, default=10, help="TPA N (and VT/PGN/SSA/BSR/MEF/SIA/DeCowA copies)")
    p.add_argument("--attacks", default="tpa,pgd", help="comma-separated registry names")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--max-batch", type=max_batch_arg, default=AUTO,
                   help="rows per chunk of the explicit attack rows: an int or 'auto' (default)")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--no-bf16", action="store_true")
    p.add_argument("--no-authors", action="store_true")
    p.add_argument("--no-defaults", action="store_true", help="skip TPA built with its default max_batch")
    p.add_argument("--memory", default="16:10,64:10,176:10,64:20",
                   help="max_batch:copies pairs of the memory probe, comma-separated ('' = skip)")
    p.add_argument("--out", default="docs/benchmarks/attack_throughput.csv")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda[:i]: where the model, the images "
                   "and the attacks run (the memory probe is CPU-only: pass --memory '' on a GPU)")
    p.add_argument("--probe-max-batch", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.probe_max_batch:
        memory_probe(args)
        return

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    model = build_model(args.model).eval().to(device)
    for q in model.parameters():
        q.requires_grad_(False)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, *args.shape, generator=g).to(device)
    with torch.no_grad():
        y = model(x).argmax(1)
    if device.type == "cuda":
        has_bf16, how = torch.cuda.is_bf16_supported(), f"cuda device {torch.cuda.get_device_name(device)}"
    else:
        has_bf16, how = bf16_support()
    precisions = ["32"] + (["bf16"] if has_bf16 and not args.no_bf16 else [])
    print(f"model {args.model}, batch {args.batch}, steps {args.steps}, copies {args.copies}, "
          f"threads {args.threads}, torch {torch.__version__}; bf16: {has_bf16} ({how})", flush=True)

    names = [a for a in args.attacks.split(",") if a]
    attacks: dict[tuple[str, str], Attack] = {}
    for name in names:
        if name == "tpa" and args.max_batch == AUTO and not args.no_defaults:
            continue                     # the same configuration as the default rows below
        for prec in precisions:
            opts: dict[str, object] = {"steps": args.steps, "seed": 0, "max_batch": args.max_batch, "precision": prec}
            if name in ("tpa", "vt", "pgn", "ssa", "bsr", "mef", "sia", "decowa"):
                opts["copies"] = args.copies
            if name == "rap":
                opts["late_start"] = 0
            attacks[(name, prec)] = build_attack(name, model, **opts)
    # TPA exactly as a user builds it: no max_batch argument (the default, "auto")
    defaults: dict[str, Attack] = {}
    if not args.no_defaults:
        for prec in precisions:
            if prec == "32":
                defaults[prec] = TPA(model, steps=args.steps, copies=args.copies, seed=0)
            else:
                defaults[prec] = TPA(model, steps=args.steps, copies=args.copies, seed=0, precision=prec)
    stacked = args.batch * (args.copies + 1)
    default_note = (f"TPA built with no max_batch (default {AUTO!r}: "
                    f"{rows_per_chunk(AUTO, x.device, stacked)} rows per chunk on {x.device.type}, "
                    f"stacked batch {stacked})")
    raw_fns = {prec: raw_pass(model, x, y, torch.bfloat16 if prec == "bf16" else None) for prec in precisions}
    for fn in raw_fns.values():  # warm-up
        fn()
    for atk in [*attacks.values(), *defaults.values()]:
        atk(x, y)

    raw_t: dict[str, list[float]] = {prec: [] for prec in precisions}
    atk_t: dict[tuple[str, str], list[float]] = {key: [] for key in attacks}
    default_t: dict[str, list[float]] = {prec: [] for prec in defaults}
    authors_t: list[float] = []
    timed_calls = [(key, key[1], atk, atk_t[key]) for key, atk in attacks.items()]
    timed_calls += [(("tpa", prec), prec, atk, default_t[prec]) for prec, atk in defaults.items()]
    for rep in range(args.repeats):
        for _key, prec, atk, samples in timed_calls:
            # the raw pass is timed right next to each attack call (same precision), so both see
            # the same machine load; the bound uses the median of all raw samples of that precision
            raw_fns[prec]()
            raw_t[prec].append(timed(raw_fns[prec], device))
            samples.append(timed(lambda a=atk: a(x, y), device))  # type: ignore[misc]
        if not args.no_authors and "tpa" in names:
            for q in model.parameters():
                q.requires_grad_(True)
            authors_t.append(timed(lambda: authors_loop(model, x, y, args.steps, args.copies), device))
            model.zero_grad(set_to_none=True)
            for q in model.parameters():
                q.requires_grad_(False)
        print(f"  repeat {rep + 1}/{args.repeats} done", flush=True)

    rows: list[dict[str, object]] = []
    raw_ips = {prec: args.batch / statistics.median(v) for prec, v in raw_t.items()}
    authors_ips = args.batch / statistics.median(authors_t) if authors_t else None

    def over_authors(name: str, ips: float) -> object:
        return "" if authors_ips is None or name != "tpa" else round(ips / authors_ips, 3)

    for prec in precisions:
        rows.append({"kind": "raw_fwd_bwd", "attack": "-", "precision": prec, "passes_per_image": 1,
                     "images_per_s": round(raw_ips[prec], 3), "bound_images_per_s": round(raw_ips[prec], 3),
                     "ratio_to_bound": 1.0, "ratio_to_fp32_bound": "", "speedup_over_authors_loop": "",
                     "note": f"batch {args.batch}"})
    measured = [("attack", name, prec, attacks[(name, prec)], times, f"max_batch {args.max_batch}")
                for (name, prec), times in atk_t.items()]
    measured += [("default", "tpa", prec, defaults[prec], times, default_note) for prec, times in default_t.items()]
    for kind, name, prec, atk, times, note in measured:
        passes = attack_passes_per_image(atk)
        ips = args.batch / statistics.median(times)
        bound = raw_ips[prec] / passes
        rows.append({"kind": kind, "attack": name, "precision": prec, "passes_per_image": passes,
                     "images_per_s": round(ips, 4), "bound_images_per_s": round(bound, 4),
                     "ratio_to_bound": round(ips / bound, 3),
                     "ratio_to_fp32_bound": round(ips / (raw_ips["32"] / passes), 3),
                     "speedup_over_authors_loop": over_authors(name, ips), "note": note})
    if authors_ips is not None:
        passes = args.steps * (1 + 2 * args.copies)
        ours_t = default_t.get("32") or atk_t.get(("tpa", "32"))
        note = ""
        if ours_t:
            ours = args.batch / statistics.median(ours_t)
            which = "default" if default_t.get("32") else f"max_batch {args.max_batch}"
            note = f"toolkit tpa fp32 ({which}) speed-up over it: {ours / authors_ips:.2f}x"
        rows.append({"kind": "authors_loop_reimplementation", "attack": "tpa", "precision": "32",
                     "passes_per_image": passes, "images_per_s": round(authors_ips, 4),
                     "bound_images_per_s": round(raw_ips["32"] / passes, 4),
                     "ratio_to_bound": round(authors_ips / (raw_ips["32"] / passes), 3), "ratio_to_fp32_bound": "",
                     "speedup_over_authors_loop": 1.0, "note": note})

    pairs = [tuple(int(t) for t in v.split(":")) for v in args.memory.split(",") if v]
    for mb, n in pairs:
        cmd = [sys.executable, "-m", "benchmarks.attack_throughput", "--model", args.model, "--batch",
               str(args.batch), "--copies", str(n), "--threads", str(args.threads),
               "--shape", *map(str, args.shape), "--probe-max-batch", str(mb)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
        info = json.loads(out)
        rows.append({"kind": "memory", "attack": "tpa", "precision": "32", "passes_per_image": 1 + 2 * n,
                     "images_per_s": "", "bound_images_per_s": "", "ratio_to_bound": "", "ratio_to_fp32_bound": "",
                     "speedup_over_authors_loop": "",
                     "note": (f"max_batch {mb}, N {n} (stacked batch B*(N+1) = {args.batch * (n + 1)}): "
                              f"peak RSS {info['peak_mib']:.0f} MiB, before attack "
                              f"{info['before_attack_mib']:.0f} MiB")})

    fields = ["kind", "attack", "precision", "passes_per_image", "images_per_s", "bound_images_per_s",
              "ratio_to_bound", "ratio_to_fp32_bound", "speedup_over_authors_loop", "note"]
    out_path = Path(args.out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with out_path.open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    for r in rows:
        print(", ".join(f"{k}={r[k]}" for k in fields if r[k] != ""))
    print_table(rows)
    print(f"wrote {out_path}")


def print_table(rows: list[dict[str, object]]) -> None:
    """The attack rows as a table: explicit ``--max-batch`` rows next to the defaults."""
    head = ("kind", "attack", "precision", "images/s", "ratio_to_bound", "ratio_to_fp32_bound", "x authors_loop")
    keys = ("kind", "attack", "precision", "images_per_s", "ratio_to_bound", "ratio_to_fp32_bound",
            "speedup_over_authors_loop")
    body = [[str(r[k]) for k in keys] for r in rows if r["kind"] in ("attack", "default",
                                                                      "authors_loop_reimplementation")]
    if not body:
        return
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    print()
    for line in [list(head), *body]:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)))


if __name__ == "__main__":
    main()
