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
