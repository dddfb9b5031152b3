"""``mmtune bench search``: ASHA's compute against full-budget training of the same configs, and trial start
overhead (``--overhead``). Prints one JSON object."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer


def bench_search(
    space: Annotated[
        Path | None,
        typer.Option(help="search space whose configs are compared (default: the repo's bench_search.yaml)"),
    ] = None,
    trainable: Annotated[str, typer.Option(help="real (run_trial) or curve (learning-curve trainable)")] = "real",
    overhead: Annotated[bool, typer.Option("--overhead", help="measure trial start overhead instead")] = False,
    tolerance: Annotated[float, typer.Option(help="how close to the grid's best metric ASHA must get")] = 0.01,
    trials: Annotated[int, typer.Option(help="--overhead: trials per path")] = 4,
    epochs: Annotated[
        int,
        typer.Option(
            min=1, help="--overhead: epochs per trial (a trial is the time its successor's warm workers have to load)"
        ),
    ] = 3,
    set_: Annotated[list[str] | None, typer.Option("--set", help="override a key of the space file")] = None,
) -> None:
    """Benchmark ASHA's compute against running every config to full budget (prints one JSON object)."""
    from mmtune.bench.search import BENCH_SPACE, asha_vs_grid, trial_start_overhead
    from mmtune.errors import UserError

    space = space or BENCH_SPACE  # the repo's file, so the benchmark runs from any directory
    if trainable not in ("real", "curve"):
        raise UserError(f"--trainable {trainable!r}: expected real or curve")
    if overhead:
        report = trial_start_overhead(space, trials=trials, epochs=epochs, overrides=set_ or [])
    else:
        report = asha_vs_grid(space, trainable=trainable, tolerance=tolerance, overrides=set_ or [])
    print(json.dumps(report, sort_keys=True))
