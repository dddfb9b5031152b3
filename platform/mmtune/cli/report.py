"""``mmtune report RESULTS_DIR``: tables with CIs and significance tests, plots, markdown + HTML."""

from __future__ import annotations

from pathlib import Path

import typer


def report(
    results_dir: Path = typer.Argument(..., help="results/<study> of `mmtune tune` or `mmtune ablate`"),
    out: Path = typer.Option(None, "--out", help="output directory (default: RESULTS_DIR/report)"),
) -> None:
    """Write report.md, a self-contained report.html and PNGs for a tuning or ablation results directory.

    Leaderboard with 95 % CIs and ranks, main effects and interactions (Nadeau-Bengio corrected t-test, Wilcoxon,
    Holm and BH), pooled out-of-fold DeLong, Friedman + Nemenyi CD diagram, ROC curves, per-split spread,
    missing-modality robustness, one sentence per finding and the Aim run hashes. Same results, same bytes.
    On a tuning study it opens with the search analysis (each searched dimension's best level and whether one
    validation split can tell it from the next) and writes factors.parquet and importance.parquet beside it.
    """
    from mmtune.analysis.report import write_report
    from mmtune.console import console, warn
    from mmtune.errors import UserError
    from mmtune.results_files import TRIALS_FILE
    from mmtune.study_lock import running_message

    running = running_message(results_dir)
    if running and not (results_dir / TRIALS_FILE).is_file():
        raise UserError(running)
    if running:  # a resumed study: its last finished run's results are there
        warn(f"{running}; this report covers the results its previous run wrote")
    paths = write_report(results_dir, out)
    if paths.search_sentences:
        console.print("What the search found:", highlight=False)
        for sentence in paths.search_sentences:
            console.print(f"- {sentence}", highlight=False, markup=False, soft_wrap=True)
    console.print(f"report: {paths.markdown}", highlight=False)
    console.print(f"report: {paths.html} (self-contained)", highlight=False)
    console.print(f"{len(paths.images)} figure(s) in {paths.out}", highlight=False)
