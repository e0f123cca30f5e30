"""The report's opening summary ("In brief"): per table analogue the leading attack and where TPA
stands, the count of the comparison with the paper, and the flatness correlations. Every figure is
derived from the same results as the sections below it; nothing here is typed in by hand."""
from __future__ import annotations

from typing import Any

from . import history, paper, seeds
from .flatness import fooling_correlation, rank_correlation
from .results import RunState
from .settings import ATTACK_TITLES, TPA_LABELS
from .tables import TABLE_TITLES, TableSpec, mean_rate, paired_against, rows_of, table_specs


def standing(state: RunState, spec: TableSpec) -> dict[str, Any] | None:
    """For ``spec``'s table: the attacks ranked by mean success over its black-box columns, TPA's
    (official mode) rank, and TPA minus the best baseline, paired over the images (fractions); None
    without a TPA row or a baseline."""
    rows = rows_of(state, spec)
    means = {a: m for a, r in rows.items() if (m := mean_rate(r, spec.black_box)) is not None}
    baselines = [a for a in means if a not in TPA_LABELS]
    if "tpa" not in means or not baselines:
        return None
    order = sorted(means, key=lambda a: -means[a])
    best = max(baselines, key=lambda a: means[a])
    return {"order": order, "means": means, "rank": order.index("tpa") + 1, "best_baseline": best,
            "paired": paired_against(rows, "tpa", best, spec.black_box)}


def _table_row(spec: TableSpec, st: dict[str, Any]) -> str:
    lead = st["order"][0]
    diff = st["paired"]
    m = st["means"]
    gap = (f"{100 * (m['tpa'] - m[st['best_baseline']]):+.1f}" if diff is None
           else f"{100 * diff['diff']:+.1f} (p = {diff['p']:.2g})")
    return (f"| {spec.table[-1]} | `{spec.surrogate}`, {spec.eps * 255:.0f}/255 | {len(spec.black_box)} | "
            f"{ATTACK_TITLES[lead]} {100 * m[lead]:.1f} | {100 * m['tpa']:.1f}, {st['rank']} of {len(m)} | "
            f"{ATTACK_TITLES[st['best_baseline']]}: {gap} |")


def _flatness_lines(flat_rows: list[dict[str, Any]]) -> list[str]:
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for r in flat_rows:
        if r.get("flatness") is not None and r.get("mean_asr") is not None:
            groups.setdefault((r["surrogate"], r["eps_255"]), []).append(r)
    out = []
    for (sur, eps), rows in groups.items():
        c = rank_correlation([r["flatness"] for r in rows], [r["mean_asr"] for r in rows])
        _, cf = fooling_correlation(rows)
        if c["rho"] is None:
            continue
        text = (f"- `{sur}`, {eps:g}/255: over the {c['n']} attacks rho = {c['rho']:+.2f} (p = {c['p']:.2g}); "
                f"in {c['discordant']} of {c['pairs']} pairs the flatter set transfers worse")
        if cf["rho"] is not None:
            text += (f"; over the {cf['n']} that fool the surrogate rho = {cf['rho']:+.2f} (p = {cf['p']:.2g})")
        out.append(text + ".")
    return out


def history_lines(state: RunState, specs: list[tuple[TableSpec, dict[str, Any]]]) -> list[str]:
    """The old-against-new table (:mod:`.history`) of the full run; nothing for ``--quick`` or without
    the frozen undertrained results."""
    if state.settings.quick or not history.UNDERTRAINED_CSV.is_file():
        return []
    old = history.csv_standings(history.read_csv(history.UNDERTRAINED_CSV))
    new = {}
    for sp, st in specs:
        m, paired = st["means"], st["paired"]
        new[(sp.table, sp.surrogate, round(sp.eps * 255, 4))] = {
            "means": m, "order": st["order"], "rank": st["rank"], "lead": st["order"][0],
            "best_baseline": st["best_baseline"], "gap": m["tpa"] - m[st["best_baseline"]] if paired is None
            else paired["diff"], "p": None if paired is None else paired["p"]}
    table = history.comparison_markdown(old, new)
    if table is None:
        return []
    return [("\nAgainst the run on the undertrained zoo (2-4 epochs, 51-68 % clean; frozen in "
             "[undertrained/](undertrained/README.md)): the same tables, old and new. The verdict now is from the "
             "paired test at 5 % (tie: not significant); then, from the sign of the gap.\n"), table]


def section(state: RunState, flat_rows: list[dict[str, Any]]) -> str:
    """Markdown "In brief" section; empty when no table has a TPA row yet."""
    surs = list(state.settings.surrogates)
    order = sorted(table_specs(state), key=lambda sp: (sp.table, surs.index(sp.surrogate) if sp.surrogate in surs
                                                       else len(surs), -sp.eps))
    specs = [(sp, st) for sp in order if (st := standing(state, sp)) is not None]
    if not specs:
        return ""
    md = ["## In brief\n"]
    if state.settings.quick:
        md.append(f"**Quick version: {state.images.y.numel()} images and a weakly trained zoo, a check of the "
                  "pipeline, not evidence** (see 'Reduced for the quick version' below; the full version's report "
                  "is docs/results/README.md).\n")
    md += [("Mean success over each table's black-box columns (%); TPA is the official mode at its defaults. The "
            "last column is TPA minus the best baseline, in points, paired over the same images (t-test p). "
            "Intervals, per-target numbers and each table's reasons are in the sections below.\n"),
           ("| table | surrogate, eps | black-box columns | leading attack | TPA: mean, rank | TPA minus best "
            "baseline |"),
           "|---|---|---|---|---|---|"]
    titles = {sp.table: TABLE_TITLES[sp.table] for sp, _ in specs}
    md += [_table_row(sp, st) for sp, st in specs]
    md.append("\nTables: " + "; ".join(f"{t[-1]} = {title}" for t, title in sorted(titles.items())) + ".")
    md += history_lines(state, specs)
    t = paper.tally(paper.comparisons(state))
    if t["done"]:
        md.append(f"\nAgainst the paper (which reports TPA ahead of every baseline it ran): of {t['done']} "
                  f"comparisons with the same baselines, TPA leads significantly in {t['lead']}, trails "
                  f"significantly in {t['behind']} and ties in {t['tied']} (section 'Against the paper's claims').")
    spread = [r for r in seeds.rows(state) if r["sd"] is not None]
    if spread:
        md.append("\nSeed study (the attacks' own random draws; section 'Seed study'): mean black-box success over "
                  "attack seeds, s.d. between seeds: " + "; ".join(
                      f"{ATTACK_TITLES[r['attack']]} {100 * r['mean']:.1f} (s.d. {100 * r['sd']:.2f} over "
                      f"{len(r['by_seed'])} seeds)" for r in spread) + ".")
    flat = _flatness_lines(flat_rows)
    if flat:
        md.append("\nFlatness (mean gradient norm around the adversarial examples, lower = flatter) against "
                  "mean black-box success, Spearman rho over attacks (NEGATIVE would mean flatter sets transfer "
                  "better):\n")
        md += flat
    return "\n".join(md) + "\n"
