"""Names in a results directory (``results/<study>/``) that its writer (``mmtune.tuning.results``), the curve
trainable and its reader (``mmtune.analysis.results``, which must not import Ray) agree on."""

from __future__ import annotations

PREDICTIONS_FILE = "predictions.parquet"
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
