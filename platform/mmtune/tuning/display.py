"""Short labels and values for the trial tables (the live table, the summary, the dry run)."""

from __future__ import annotations

import math
from typing import Any

from rich.console import Console

from mmtune.trial_config import INACTIVE

LOG_WIDTH = 200  # width of tables written to files and pipes (rich would wrap them at 80 columns)


def table_console(base: Console) -> Console:
    """``base`` on a terminal; elsewhere a console on the same stream that does not wrap wide tables."""
    if base.is_terminal:
        return base
    return Console(file=base.file, width=max(base.width, LOG_WIDTH), highlight=False)


def short_value(value: Any) -> str:
    """Compact display of a searched value ("-" for an inactive conditional key)."""
    if value is None or value == INACTIVE or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def column_label(key: str) -> str:
    """``model.fusion.name`` -> ``fusion``, ``optim.lr`` -> ``lr``: short headers for searched keys."""
    parts = key.split(".")
    if len(parts) > 1 and parts[-1] == "name":
        return parts[-2]
    return parts[-1]
