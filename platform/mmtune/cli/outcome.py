"""How ``mmtune tune`` and ``mmtune ablate`` end: the exit code says whether the study's answer can be trusted.

* 0: every trial finished with finite metrics;
* 3: the study ran but some trial failed (Tune ERROR), diverged (NaN / inf losses or scores) or did not finish;
* 128 + signal: stopped by SIGINT (130) or SIGTERM (143); Tune's state is saved and ``--resume`` continues it;
* 2: a user mistake found before anything ran (``mmtune.errors.UserError``).

It prints how many trials are affected, where their logs are and the command that resumes the study.
"""

from __future__ import annotations

from typing import Any

import typer

from mmtune.console import err_console

EXIT_TRIALS_FAILED = 3


def problems_line(name: str, outcome: Any) -> str | None:
    """``study x: 1 of 8 trials failed, 2 diverged, ...; logs: ...`` or None when every trial is usable."""
    total = len(outcome.frame)
    parts = [
        f"{n} of {total} trials {what}"
        for n, what in (
            (outcome.errored, "failed"),
            (outcome.diverged, "diverged"),
            (outcome.unfinished, "did not finish"),
        )
        if n
    ]
    if not parts and total:
        return None
    counts = ", ".join(parts) if parts else "no trial ran"
    tune_dir = outcome.paths.tune_dir
    return (
        f"study {name}: {counts}; logs: {tune_dir} (<trial>/error.txt for a failed trial); "
        f"trials: {outcome.paths.trials_parquet}"
    )


def finish(name: str, outcome: Any, resume_command: str, stop: Any = None) -> None:
    """Print the problems and the resume hint; raise ``typer.Exit`` with the code above (nothing when all is well)."""
    signum = getattr(stop, "signum", None)
    line = problems_line(name, outcome)
    if line:
        err_console.print(line, highlight=False, soft_wrap=True)
    if signum is not None or not outcome.complete:
        why = f"stopped by {stop.name}; " if signum is not None else ""
        err_console.print(
            f"study {name}: {why}Tune's state is saved; continue it with: {resume_command}",
            highlight=False,
            soft_wrap=True,
        )
    if signum is not None:
        raise typer.Exit(128 + signum)
    if line:
        raise typer.Exit(EXIT_TRIALS_FAILED)
