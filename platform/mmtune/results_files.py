"""Names in a results directory (``results/<study>/``) and a run directory that their writers
(``mmtune.training``, ``mmtune.tuning.results``, ``mmtune.tuning.ablation``, the curve trainable) and their reader
(``mmtune.analysis.results``, which must not import Ray) agree on. Each name is defined here only."""

from __future__ import annotations

PREDICTIONS_FILE = "predictions.parquet"  # a run's / trial's per-patient predictions
METRICS_FILE = "metrics.json"  # a run's / trial's final metrics
TRIALS_FILE = "trials.parquet"  # a results directory's one row per trial
CELLS_FILE = "cells.parquet"  # an ablation study's cells (factor levels per cell)
STUDY_FILE = "study.yaml"  # an ablation study's file as run (after --set)
SPACE_FILE = "space.yaml"  # a tuning study's search space as run (after --set; base resolved)
PROGRESS_FILE = "progress.parquet"  # a tuning study's per-epoch metrics: trial, epoch, metric, value
FACTORS_FILE = "factors.parquet"  # search analysis: each searched dimension's levels with 95 % CIs
IMPORTANCE_FILE = "importance.parquet"  # search analysis: importance of each searched dimension
TRIAL_COLUMNS = (
    "trial",
    "status",
    "epochs",
    "stopped_early",
    "best_epoch",
    "aim_hash",
    "trial_dir",
    "predictions",
    "error",
)

# ``mmtune evaluate`` (``results/<name>/``): predictions (PREDICTIONS_FILE), flat metrics, the tidy tables with
# intervals, what was evaluated, and the report.
METRICS_FILE = "metrics.json"
METRICS_TABLE_FILE = "metrics.csv"
SUBGROUPS_FILE = "subgroups.csv"
EVALUATION_FILE = "evaluation.json"
REPORT_MARKDOWN = "report.md"
REPORT_HTML = "report.html"

# ``mmtune report``: the hash of the study-level Aim run carrying the report's tables (replaced on every report)
REPORT_AIM_RUN_FILE = "aim_report_run.txt"

# ``mmtune confirm`` (``results/<study>_confirm/``, an ablation results directory plus these): what was confirmed
# (source study, ranks, baseline, primary metric), the generated study file (rerunnable with ``mmtune ablate``),
# the fold-model ensembles' held-out test predictions, and the confirmation report's directory.
CONFIRM_FILE = "confirm.json"
CONFIRM_STUDY_FILE = "confirm_study.yaml"
TEST_PREDICTIONS_FILE = "test_predictions.parquet"
CONFIRM_REPORT_DIR = "confirm"
