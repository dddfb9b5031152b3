"""Statistics for honest model comparisons: ROC/DeLong, bootstrap, paired split-level tests, Friedman/Nemenyi,
multiple-comparison corrections. See ``docs/statistics.md`` for which test answers which question.

Every function takes numpy arrays (or sequences), returns a frozen dataclass or named tuple, and raises
:class:`StatsInputError` (a ``ValueError`` and a ``UserError``) with a one-line message for unusable inputs.
"""

from mmtune.analysis.stats._validation import StatsInputError
from mmtune.analysis.stats.bootstrap import (
    BootstrapResult,
    PairedBootstrapResult,
    bootstrap_ci,
    paired_bootstrap_diff,
    resample_indices,
)
from mmtune.analysis.stats.correction import benjamini_hochberg, holm
from mmtune.analysis.stats.multi import (
    FriedmanResult,
    NemenyiResult,
    average_ranks,
    critical_difference,
    friedman_test,
    nemenyi_posthoc,
    nonsignificant_cliques,
    rank_within_blocks,
)
from mmtune.analysis.stats.paired import (
    CorrectedTTestResult,
    PairedEffectSize,
    WilcoxonResult,
    corrected_resampled_ttest,
    paired_effect_size,
    wilcoxon_signed_rank,
)
from mmtune.analysis.stats.roc import (
    AucCI,
    DeLongResult,
    MulticlassAuroc,
    auc_ci,
    auroc_multiclass,
    delong_test,
    delong_variance,
    roc_auc,
)

__all__ = [
    "AucCI",
    "BootstrapResult",
    "CorrectedTTestResult",
    "DeLongResult",
    "FriedmanResult",
    "MulticlassAuroc",
    "NemenyiResult",
    "PairedBootstrapResult",
    "PairedEffectSize",
    "StatsInputError",
    "WilcoxonResult",
    "auc_ci",
    "auroc_multiclass",
    "average_ranks",
    "benjamini_hochberg",
    "bootstrap_ci",
    "corrected_resampled_ttest",
    "critical_difference",
    "delong_test",
    "delong_variance",
    "friedman_test",
    "holm",
    "nemenyi_posthoc",
    "nonsignificant_cliques",
    "paired_bootstrap_diff",
    "paired_effect_size",
    "rank_within_blocks",
    "resample_indices",
    "roc_auc",
    "wilcoxon_signed_rank",
]
