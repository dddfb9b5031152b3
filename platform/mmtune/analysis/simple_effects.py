"""Simple effects of a factorial ablation: one factor's effect *within* each level of another (paired by split).

``mmtune report`` gives a factor's main effect averaged over the other factors and the interaction contrasts. A
backbone sweep asks a different question too: "does multi-dataset multi-task training help *this* backbone?". For
each level of ``within`` (a backbone) this compares each level of ``factor`` with its baseline on the same splits
(fold x seed, or held-out centre x seed), with the statistics the report uses (Nadeau-Bengio corrected resampled
t-test for CV splits, Wilcoxon signed-rank, Cohen's d_z) and Holm / Benjamini-Hochberg over all simple effects.

    python -m mmtune.analysis.simple_effects results/mdmt --factor training --within backbone
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from mmtune.analysis import ablation_stats as ab
from mmtune.analysis import stats
from mmtune.analysis.results import ResultsError, load_study_data, split_metrics

COLUMNS = ["metric", "within", "level", "baseline", "diff", "lo", "hi", "p", "p_wilcoxon", "d_z", "n_splits"]


def simple_effects(root: str | Path, factor: str, within: str, metrics: list[str] | None = None) -> pd.DataFrame:
    """One row per metric x level of ``within`` x non-baseline level of ``factor`` (``diff`` = level - baseline)."""
    data = load_study_data(root)
    for name in (factor, within):
        if name not in data.factors:
            known = ", ".join(data.factors) or "(none)"
            raise ResultsError(f"{root}: no factor {name!r} in the study; factors: {known}")
    if factor == within:
        raise ResultsError(f"{root}: --factor and --within must be two different factors")
    splits = split_metrics(data, metrics)
    full = splits[splits["dropped"] == ""] if len(splits) else splits
    sizes = ab.correction_sizes(data, full)
    levels = ab.cell_levels(data)
    base = data.baselines.get(factor, data.factors[factor][0])
    rows = []
    for metric in metrics or data.metrics:
        table = ab.pivot(splits, metric)
        if table.empty:
            continue
        for stratum in data.factors[within]:
            for level in data.factors[factor]:
                if level == base:
                    continue
                pairs = [
                    (a, b) for a, b in ab._matching(levels, factor, level, base) if levels[a].get(within) == stratum
                ]
                diffs = ab._paired_diffs(table, pairs)
                if diffs.empty:
                    continue
                row = ab._row("simple", metric, factor, level, base, f"{within}={stratum}", diffs, sizes, pairs)
                rows.append({**{k: row[k] for k in COLUMNS if k in row}, "within": stratum})
    frame = pd.DataFrame(rows, columns=COLUMNS)
    if len(frame):
        frame["p_holm"] = stats.holm(frame["p"].to_numpy(dtype=float))
        frame["p_bh"] = stats.benjamini_hochberg(frame["p"].to_numpy(dtype=float))
    return frame


def markdown(frame: pd.DataFrame, factor: str, within: str) -> str:
    """The simple effects as a markdown table (what docs/designs.md shows)."""
    lines = [
        f"| metric | {within} | {factor}: a vs b | a - b | 95 % CI | p (corrected t) | p Holm | p Wilcoxon | splits |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in frame.iterrows():
        lines.append(
            f"| {r['metric']} | {r['within']} | {r['level']} vs {r['baseline']} | {r['diff']:+.3f} | "
            f"[{r['lo']:+.3f}, {r['hi']:+.3f}] | {r['p']:.3f} | {r['p_holm']:.3f} | {r['p_wilcoxon']:.3f} | "
            f"{int(r['n_splits'])} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", help="an ablation results directory (results/<study>)")
    parser.add_argument("--factor", required=True, help="the factor whose effect is estimated (e.g. training)")
    parser.add_argument("--within", required=True, help="the factor whose levels split the data (e.g. backbone)")
    parser.add_argument("--metric", action="append", help="`<task>/<metric>` (default: the study's metrics)")
    args = parser.parse_args(argv)
    try:
        frame = simple_effects(args.results, args.factor, args.within, args.metric)
    except ResultsError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(markdown(frame, args.factor, args.within))


if __name__ == "__main__":
    main()
