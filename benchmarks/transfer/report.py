"""``<out>/README.md`` + CSVs + PNGs + ``run.json`` from a :class:`RunState` (finished or partial)."""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

from . import ablation, plots, seeds, summary, tables
from . import paper as paper_mod
from . import timing as timing_mod
from .flatness import FOOLS_SURROGATE, fooling_correlation, rank_correlation
from .runner import TWIN_SLOWER, RunState
from .settings import ATTACK_TITLES, NOTES
from .stats import rate
from .tables import pct

DATASET = "CIFAR-10 (JPEG copy)"


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def flatness_entries(state: RunState, surrogate: str, eps: float) -> list[dict[str, Any]]:
    bb = tuple(t.name for t in state.targets if t.kind == "normal" and t.name != surrogate)
    out = []
    for r in state.results:
        u = r.unit
        if r.group != "main" or u.surrogate != surrogate or abs(u.eps - eps) > 1e-12 or u.overrides:
            continue
        out.append({"surrogate": surrogate, "eps_255": round(eps * 255, 3), "attack": u.label,
                    "flatness": r.flat_mean, "flat_sem": r.flat_sem, "mean_asr": tables.mean_rate(r, bb),
                    "whitebox_asr": r.evals[surrogate]["all"]["rate"] if surrogate in r.evals else None,
                    "flat_images": r.flat_images, "fooled_images": r.fooled(bb), "n_black_box": len(bb),
                    "whitebox_images": r.hits.get(surrogate)})
    return out


def _per_image_correlation(full: list[dict[str, Any]], fooling_only: bool = False) -> dict[str, Any] | None:
    """Rank correlation, all attacks pooled, between each adversarial image's gradient norm and the share
    of black-box targets it fools; with ``fooling_only``, over the images that fool the surrogate only.
    None with fewer than 3 images."""
    img_f: list[float] = []
    img_s: list[float] = []
    for e in full:
        if not (e["flat_images"] and e["fooled_images"] and e["n_black_box"]):
            continue
        keep = e["whitebox_images"] if fooling_only else [1] * len(e["flat_images"])
        if not keep:
            continue
        for f, k, wb in zip(e["flat_images"], e["fooled_images"], keep, strict=True):
            if wb:
                img_f.append(f)
                img_s.append(k / e["n_black_box"])
    return rank_correlation(img_f, img_s) if len(img_f) >= 3 else None


def _controlled_text(full: list[dict[str, Any]], ok: list[dict[str, Any]], c: dict[str, Any]) -> str:
    """The correlation again among what fools the surrogate only (``ok, c = fooling_correlation(full)``): an example
    the surrogate still classifies correctly sits at low loss, where gradients are small, so failed
    attacks look flat."""
    t = (f"Control for success on the surrogate (a set the surrogate still classifies correctly sits at low "
         f"loss, where gradients are small, so a failed attack looks flat): among the {len(ok)} attacks that fool "
         f"the surrogate on at least {100 * FOOLS_SURROGATE:.0f} % of the images, ")
    if c["rho"] is None:
        t += "too few for a rank correlation."
    else:
        t += (f"rho = {c['rho']:+.2f} (p = {c['p']:.2g}), and {c['discordant']} of {c['pairs']} pairs have the flatter "
              "set transferring worse.")
    ci = _per_image_correlation(full, fooling_only=True)
    if ci is not None and ci["rho"] is not None:
        t += (f" Per image, among the {ci['n']} adversarial images that fool the surrogate (all attacks pooled): "
              f"rho = {ci['rho']:+.2f} (p = {ci['p']:.2g}).")
    return t


def flatness_section(state: RunState, out: Path, figures: list[str]) -> tuple[str, list[dict[str, Any]],
                                                                               dict[tuple[str, float], dict[str, int]]]:
    s = state.settings
    md = []
    csv_rows: list[dict[str, Any]] = []
    ranks: dict[tuple[str, float], dict[str, int]] = {}
    for sur in s.surrogates:
        for eps in sorted(s.eps_for(sur), reverse=True):
            ent = [e for e in flatness_entries(state, sur, eps) if e["flatness"] is not None]
            if not ent:
                continue
            order = sorted(ent, key=lambda e: e["flatness"])
            ranks[(sur, eps)] = {e["attack"]: i + 1 for i, e in enumerate(order)}
            md.append(f"\n#### Surrogate `{sur}`, eps = {eps * 255:.0f}/255\n")
            md.append("| attack | flatness: mean grad norm (+- s.e.) | flatness rank (1 = flattest) | "
                      "white-box ASR (%) | mean black-box ASR (%) |")
            md.append("|---|---|---|---|---|")
            for e in order:
                md.append(f"| {ATTACK_TITLES[e['attack']]} | {e['flatness']:.4g} (+- {e['flat_sem']:.2g}) | "
                          f"{ranks[(sur, eps)][e['attack']]} | {pct(e['whitebox_asr'])} | {pct(e['mean_asr'])} |")
                csv_rows.append({k: v for k, v in e.items() if k not in ("flat_images", "fooled_images",
                                                                          "whitebox_images")}
                                | {"rank": ranks[(sur, eps)][e["attack"]]})
            full = [e for e in ent if e["mean_asr"] is not None]
            c = rank_correlation([e["flatness"] for e in full], [e["mean_asr"] for e in full])
            ci = _per_image_correlation(full)
            md.append("")
            md.append(_correlation_text(c, ci, len(full)))
            md.append("")
            fooling, cf = fooling_correlation(full)
            md.append(_controlled_text(full, fooling, cf))
            fig = f"flatness_{sur}_eps{round(eps * 255)}.png"
            rho, rho_f = ("n/a" if x["rho"] is None else f"{x['rho']:+.2f}" for x in (c, cf))
            if plots.flatness_plot(full, f"Flatness vs transfer, surrogate {sur}, eps {eps * 255:.0f}/255, "
                                   f"{DATASET}\nSpearman rho over all {len(full)} attacks = {rho}; over the "
                                   f"{len(fooling)} that fool the surrogate (filled) = {rho_f}", out / fig,
                                   fools_at=FOOLS_SURROGATE):
                md.append(f"\n![{fig}]({fig})")
                figures.append(fig)
    return "\n".join(md), csv_rows, ranks


def _correlation_text(c: dict[str, Any], ci: dict[str, Any] | None, n: int) -> str:
    if c["rho"] is None:
        return f"(rank correlation needs at least 3 finished attacks; {n} so far)"
    t = (f"Spearman rank correlation over the {c['n']} attacks between the gradient norm (lower = flatter) and "
         f"the mean black-box ASR: rho = {c['rho']:+.2f} (p = {c['p']:.2g}). A NEGATIVE rho would mean flatter "
         f"sets transfer better. Of the {c['pairs']} pairs of attacks that differ in both, {c['discordant']} "
         "have the flatter set transferring WORSE")
    t += " - so flatter is not always more transferable here." if c["discordant"] else \
        " - no pair contradicts 'flatter transfers better' here."
    if ci is not None and ci["rho"] is not None:
        t += (f" Per image (all attacks pooled, {ci['n']} adversarial images): rho between an image's gradient "
              f"norm and the share of black-box targets it fools = {ci['rho']:+.2f} (p = {ci['p']:.2g}).")
    return t


def clean_table(state: RunState) -> str:
    y = state.images.y
    lines = ["| target | kind | clean accuracy on these images (95 % Wilson) | abstained |", "|---|---|---|---|"]
    for t in state.targets:
        pred = state.clean[t.name]
        r = rate(int((pred == y).sum()), int(y.numel()))
        abst = int((pred < 0).sum())
        lines.append(f"| {t.title} [`{t.name}`] | {t.kind} | {pct(r['rate'])} ({pct(r['lo'])}-{pct(r['hi'])}) | "
                     f"{abst if t.name.startswith('rs@') else '-'} |")
    return "\n".join(lines)


def invocation_path(raw: Path, record: dict[str, Any]) -> Path:
    stamp = str(record["started"]).replace(" ", "T").replace(":", "")
    return Path(raw) / "invocations" / f"{stamp}-{record['pid']}.json"


def record_invocation(raw: Path, record: dict[str, Any]) -> None:
    """Write (or update) the record of a computing invocation beside the numbers it made, so that
    the report lists every invocation, in any session, that filled this store."""
    path = invocation_path(raw, record)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record, indent=1, default=str))
    tmp.replace(path)


def invocations(raw: Path) -> list[dict[str, Any]]:
    """Every invocation recorded in ``raw``, oldest first."""
    out = []
    for p in sorted((Path(raw) / "invocations").glob("*.json")):
        try:
            rec = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return sorted(out, key=lambda r: str(r.get("started")))


def timing_section(state: RunState) -> str:
    """The one-run crafting cost of every attack (benchmarks/transfer/timing.py), or how to measure it."""
    s = state.settings
    head = (f"\n## Crafting cost of each attack, measured in one run\n\nThe tables' crafting times come from "
            "several invocations, some with other work on the machine. Here every attack crafts the same "
            f"{s.timing_images} images on `{s.timing_surrogate}` at eps = {s.timing_eps * 255:.0f}/255, T = "
            f"{s.steps}, in one process, one after the other, in {timing_mod.ROUNDS} rounds (forward order, then "
            "reverse); the faster round counts. Compare costs here.\n")
    t = state.timing
    if t is None:
        return head + ("\nPending: measured at the end of an unsharded run, or alone with "
                       "`python -m benchmarks.transfer --only timing` (it needs the machine to itself).")
    ref = timing_mod.REFERENCE
    load = "" if t.get("load_avg") is None else f", load average {t['load_avg']:.2f} at the end"
    lines = [f"Measured {t['measured']}, {t['threads']} torch thread(s), {t['machine']}{load}.\n",
             (f"| attack | passes per image | seconds for {t['n']} images | images/s | ms per pass per image | "
              f"cost relative to {ATTACK_TITLES[ref]} | CPU share |"),
             "|---|---|---|---|---|---|---|"]
    for r in t["rows"]:
        rel = "-" if r["relative"] is None else f"{r['relative']:.1f}x"
        share = "-" if r["cpu_share"] is None else f"{100 * r['cpu_share']:.0f} %"
        lines.append(f"| {ATTACK_TITLES.get(r['attack'], r['attack'])} | {r['passes_per_image']:g} | "
                     f"{r['seconds']:.1f} | {r['images_per_s']:.2f} | {r['ms_per_pass']:.2f} | {rel} | {share} |")
    low = [ATTACK_TITLES.get(r["attack"], r["attack"]) for r in t["rows"]
           if r["cpu_share"] is not None and r["cpu_share"] < 0.85]
    note = ("\nCPU share: CPU time the process got over wall time x threads; below 85 % the attack waited for "
            "a core and its time is inflated" + (f" (here: {', '.join(low)})." if low else " (none here).")
            + f" Not given (-) for a run under {1000 * timing_mod.MIN_SHARE_SECONDS:.0f} ms, too short to say.")
    return head + "\n" + "\n".join(lines) + "\n" + note


def write(state: RunState, out: Path, meta: dict[str, Any]) -> Path:
    """Write (or rewrite) the whole report; returns the README path."""
    out.mkdir(parents=True, exist_ok=True)
    s = state.settings
    figures: list[str] = []
    md: list[str] = []
    done, pending = len(state.results), len(state.pending)
    status = "complete" if pending == 0 else f"PARTIAL: {done} units finished, {pending} pending"
    title = "Transferability benchmark" + (" (quick version)" if s.quick else "")
    md.append(f"# {title}: {DATASET}\n")
    md.append(f"Status: **{status}** (report written {time.strftime('%Y-%m-%d %H:%M:%S')}). All numbers on "
              f"{DATASET}, {state.images.y.numel()} test images, seed {s.seed}. Generated by "
              "`benchmarks/transfer`; do not edit by hand.\n")
    brief_at = len(md)
    md.append("## How this was made\n")
    regen = "python -m benchmarks.transfer" + (" --quick" if s.quick else "")
    md.append(f"Everything here is regenerated by `{regen}` (it resumes: finished parts are read back, not "
              "recomputed). This report was written by:\n")
    md.append("```\n" + "\n".join(meta.get("commands", [])) + "\n```\n")
    inv = meta.get("invocations") or []
    if inv:
        md.append("Invocations that computed these numbers (a resumed run continues where the previous one "
                  "stopped; shards run side by side, one thread each):\n")
        md += [f"- `{i.get('command')}` started {i.get('started')}, wall {float(i.get('wall_seconds') or 0):.0f} s, "
               f"{i.get('threads', '?')} thread(s), {i.get('units_made', '?')} units finished"
               + ("" if i.get("finished") else " (stopped or still running)") for i in inv]
        md.append("")
    md.append(f"- Wall time of this invocation so far: {meta.get('wall_seconds', 0):.0f} s (zoo "
              f"{state.timings.get('zoo_seconds', 0):.0f} s, purifier {state.timings.get('purifier_seconds', 0):.0f} s, "
              f"units {state.timings.get('units_seconds', 0):.0f} s). Crafting times in the tables are as measured "
              "when each chunk was made (a resumed run keeps them); on a 2-core CPU, times depend on what else "
              "runs, so compare them within one invocation only.")
    sets = {r.unit.name: r for r in state.results}
    loaded = sorted(n for n, r in sets.items() if r.contended)
    if loaded:
        md.append(f"- {len(loaded)} of the {len(sets)} finished sets were crafted while other work competed for the "
                  "cores (the crafting process got less than 85 % of its threads' time, or, where CPU time was not "
                  f"recorded, the set took over {TWIN_SLOWER:g}x as long per image-pass as the same attack at the "
                  "other budget, or the load average exceeded 2.5): their times, marked `*` in the tables, are "
                  "inflated: " + ", ".join(f"`{n}`" for n in loaded[:20]) + (" ..." if len(loaded) > 20 else "") + ".")
    total = sum(r.seconds for r in state.results)
    md.append(f"- Crafting time summed over the {len(state.results)} finished units (as measured when made, "
              f"including earlier invocations): {total:.0f} s.")
    md.append(f"- Package versions: {', '.join(f'{k} {v}' for k, v in meta.get('versions', {}).items() if v)}.")
    md.append(f"- Machine: {platform.machine()}, {os.cpu_count()} cores, no GPU; torch threads per invocation as "
              "listed above.")
    md.append(f"- Images: {state.images.rule}; source {state.images.source}.")
    md.append(f"- Seeds: attacks seed={s.seed} (re-seeded per chunk: batch-independent draws), target classes "
              f"seed={s.seed + 1}, flatness noise seed={s.seed + 3}, randomised defenses seed={s.seed + 7}.")
    if s.quick:
        md.append("\n**Reduced for the quick version** (the full version runs without these reductions):\n")
        md += [f"- {r}" for r in s.reductions]
    elif s.reductions:
        md.append("\n**Scope** (what the full version leaves out, and why):\n")
        md += [f"- {r}" for r in s.reductions]
    if state.missing:
        md.append(f"\n**Not available in this run** (their columns are absent): {', '.join(state.missing)}.")
    md.append("\n**Limits of what this measures:**\n")
    studied = [r["attack"] for r in seeds.rows(state) if len(r["by_seed"]) > 1]
    seed_note = ("" if not studied else " (the seed study re-crafts " + ", ".join(ATTACK_TITLES[a] for a in studied)
                 + " with other seeds: section 'Seed study')")
    md += [(f"- One seed ({s.seed}) for the attacks' random draws in the tables{seed_note} and one training run "
            f"per zoo model: the tables' intervals and paired tests cover the sampling of the "
            f"{state.images.y.numel()} images, not the variation between seeds or between retrained targets."),
           (f"- {DATASET}: 32x32 images, decoded from a JPEG copy of the test set, and small models (trained "
            "here, plus the shipped ResNet-18; clean accuracies in the target table), against the paper's "
            "ImageNet models; TPA's pixel-unit hyperparameters (b, k) are kept as released, not retuned for "
            "32x32 inputs (the ablation sweeps them)."),
           (f"- T = {s.steps} iterations for every attack (the paper: 20; Table 3 in the paper: 300 with a logit "
            "loss); transfer only: no attack adapts to a defense."),
           ("- R&P and NRP are random: each column is one sample of their draws (seed 7). The draws depend "
            "on how many rows go through the defense at once (128 now; evaluations made before 2026-12-02 "
            "01:58 used larger chunks, and which of the stored ones did is not recorded), so a rerun from "
            "scratch can differ by a few images: rerunning the quick version changed 2 of its 168 cells, "
            "R&P's, by one image of 40.")]
    md.append("\n## Definitions\n")
    md.append("- ASR (attack success rate), the paper's definition: share of ALL images whose adversarial version "
              "the target does not classify as the true class. Second tables: the same among the images the "
              "target classified correctly before the attack. Targeted: share classified as the target class.")
    md.append("- Intervals: 95 % Wilson score intervals of each proportion (`lo-hi` in brackets).")
    md.append(f"- Randomized smoothing: `PREDICT` of Cohen et al. with sigma = {s.rs_sigma}, n = {s.rs_n}, "
              f"alpha = {s.rs_alpha}; an abstention is not the true class, so it counts as a SUCCESS of an "
              "untargeted attack (clean abstentions are listed in the target table).")
    md.append(f"- Input-transformation defenses (R&P, FD, JPEG, NRP) sit in front of `{s.defense_base}`; the "
              "undefended column is shown beside them. NRP: a purifier trained here by `train.py task=purifier` "
              f"({' '.join(s.purifier_overrides)}), dynamic inference on. Transfer setting: the examples are "
              "crafted on the surrogate only (no adaptive attack on the defenses).")
    md.append(f"- Flatness: mean over {s.flat_samples} draws u ~ U(-r, r) per pixel, r = {s.flat_radius:g} x eps, of "
              "||grad_u CE(f(x_adv + u), y)||_2 on the surrogate (the quantity TPA's penalty targets); lower = "
              "flatter.")
    md.append("- Attack settings: " + " ".join(NOTES))
    md.append(f"- Time: wall seconds to craft the {state.images.y.numel()} images on the surrogate ('craft s') and "
              "images per second; `*` marks a time inflated by other work on the machine (see above). To compare "
              "the attacks' costs, use the one-run measurement (section 'Crafting cost of each attack').")
    md.append("\n## Targets\n")
    md.append(clean_table(state))
    weak = tables.weak_columns(state, tuple(t.name for t in state.targets))
    if weak:
        md.append(f"\n**{len(weak)} target(s) at or below {100 * tables.WEAK_ACCURACY:.0f} % clean accuracy** "
                  f"({', '.join(weak)}): near chance (10 %), so their success rates mostly measure the target, "
                  "not the attack.")
    if (out / "zoo.md").is_file():
        md.append("\nThe zoo's own card (training commands, times, accuracies): [zoo.md](zoo.md).")

    specs = tables.table_specs(state)
    flat_md, flat_rows, ranks = flatness_section(state, out, figures)
    brief = summary.section(state, flat_rows)
    if brief:
        md.insert(brief_at, brief)
    for which_table in ("table1", "table2", "table3", "table5"):
        group = [sp for sp in specs if sp.table == which_table]
        if not group or not any(tables.rows_of(state, sp) for sp in group):
            continue
        md.append(f"\n## {tables.TABLE_TITLES[which_table]}\n")
        for sp in group:
            rows = tables.rows_of(state, sp)
            if not rows:
                continue
            md.append(f"\n### Surrogate `{sp.surrogate}`, eps = {sp.eps * 255:.0f}/255 ({DATASET})\n")
            md.append(("Targeted success" if sp.targeted else "ASR") + " over all images, % (95 % Wilson):\n")
            md.append(tables.markdown(state, sp, "all"))
            md.append("\nAmong the images each target classified correctly before the attack, %:\n")
            md.append(tables.markdown(state, sp, "correct"))
            md.append("\n" + tables.analysis(state, sp, None if sp.targeted else ranks.get((sp.surrogate, sp.eps))))
            fig = f"{sp.slug}.png"
            if plots.heatmap(state, sp, out / fig):
                md.append(f"\n![{fig}]({fig})")
                figures.append(fig)

    md.append(paper_mod.section(state))
    md.append(timing_section(state))

    ab_rows = ablation.points(state)
    if any(r["done"] for r in ab_rows):
        md.append(f"\n## Ablation (Figure 5 analogue): TPA hyperparameters, surrogate `{s.ablation_surrogate}`, "
                  f"eps = {s.ablation_eps * 255:.0f}/255, {s.ablation_images} images ({DATASET})\n")
        md.append("Each sweep varies one hyperparameter from TPA's defaults (official mode: N = 10, b = 0.112, "
                  "k = 0.0113, mix = 0.8; paper mode: lambda = 5), T = 10 unless T is swept.\n")
        md.append(ablation.markdown(state, ab_rows))
        md.append("\n" + ablation.analysis(state, ab_rows))
        if plots.ablation_plot(state, ab_rows, out / "ablation.png"):
            md.append("\n![ablation.png](ablation.png)")
            figures.append("ablation.png")
        by_unit = {r["unit"]: r for r in ab_rows if r["done"] and r["attack"].startswith("tpa")
                   and r.get("flatness") is not None and r.get("mean_asr") is not None}
        tpa_pts = list(by_unit.values())   # the default setting appears in several sweeps: count it once
        if len(tpa_pts) >= 3:
            c = rank_correlation([r["flatness"] for r in tpa_pts], [r["mean_asr"] for r in tpa_pts])
            if c["rho"] is not None:
                md.append(f"\nOver the {c['n']} TPA settings of the ablation, Spearman rho between gradient norm "
                          f"and mean black-box ASR = {c['rho']:+.2f} (p = {c['p']:.2g}); {c['discordant']} of "
                          f"{c['pairs']} pairs have the flatter setting transferring worse.")

    md.append(seeds.section(state))

    if flat_md:
        md.append("\n## Flatness against transferability (the paper's central question)\n")
        md.append("Is a flatter adversarial example (smaller gradient norm of the surrogate's loss around it) "
                  "more transferable? Measured per attack on the untargeted sets:\n")
        md.append(flat_md)

    if state.pending:
        md.append(f"\n## Pending units ({len(state.pending)})\n")
        md.append(", ".join(f"`{p}`" for p in state.pending[:60]) + (" ..." if len(state.pending) > 60 else ""))

    md.append("\n## Files\n")
    md.append("- `results.csv`: one row per (adversarial set, target): counts, rates, Wilson intervals, both "
              "definitions, crafting time, flatness.\n- `ablation.csv`, `flatness.csv`: the ablation points and "
              "the flatness table.\n- `run.json`: settings, commands, versions, model fingerprints, timings, "
              "finished and pending units.\n- `raw/` (full version): the numbers behind every table, one JSON file "
              "per finished piece, named by a sha256 of everything that produced it: `eval/` the class each target "
              "gave each adversarial (and clean) image, `flat/` each image's gradient norm, `crafted/` crafting "
              "times, `timing/` the one-run crafting cost. A later run reads them instead of recrafting "
              "(`python -m benchmarks.transfer --report-only` "
              "rebuilds this page from them alone, given the zoo's committed weights).\n- PNG: " + ", ".join(f"`{f}`" for f in figures))
    write_csv(out / "results.csv", tables.csv_rows(state))
    write_csv(out / "ablation.csv", ab_rows)
    write_csv(out / "flatness.csv", flat_rows)
    run = {"dataset": DATASET, "status": status, **meta, "settings": _jsonable(dataclasses.asdict(s)),
           "models": {n: {"spec": state.specs.get(n), **state.ids[n]} for n in state.ids},
           "purifier": state.purifier, "missing": state.missing, "timings": state.timings,
           "one_run_timing": state.timing,
           "images": state.images.identity(),
           "finished": [{"unit": r.unit.name, "group": r.group, "key": r.key[:16], "craft_seconds": r.seconds}
                        for r in state.results], "pending": state.pending}
    (out / "run.json").write_text(json.dumps(run, indent=1, default=str))
    readme = out / "README.md"
    readme.write_text("\n".join(md) + "\n")
    return readme


def _jsonable(v: Any) -> Any:
    return json.loads(json.dumps(v, default=str))
