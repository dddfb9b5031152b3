"""Shared rich consoles: results to stdout, progress and warnings to stderr (so JSON on stdout stays clean)."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console()
err_console = Console(stderr=True)


def progress(transient: bool = False, disable: bool = False) -> Progress:
    """A progress bar with counts and ETA, drawn on stderr."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=transient,
        disable=disable,
    )


def warn(message: str) -> None:
    """One-line warning on stderr."""
    err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False, markup=True, soft_wrap=True)
