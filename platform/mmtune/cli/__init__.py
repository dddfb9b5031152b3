"""The ``mmtune`` command line.

Sub-commands live in one module each and import heavy libraries (torch, ray) only when they run, so
``mmtune --help`` stays fast. User mistakes (``UserError``) print one line and exit 2; environment errors (disk
full, permission denied, a corrupt Parquet file) one line naming the path and the cause (``mmtune.cli.failures``).
"""

from __future__ import annotations

import contextlib
import sys
import traceback

import typer

from mmtune.cli import ablate as ablate_cli
from mmtune.cli import bench as bench_cli
from mmtune.cli import confirm as confirm_cli
from mmtune.cli import data as data_cli
from mmtune.cli import evaluate as evaluate_cli
from mmtune.cli import listing as listing_cli
from mmtune.cli import predict as predict_cli
from mmtune.cli import report as report_cli
from mmtune.cli import train as train_cli
from mmtune.cli import tune as tune_cli
from mmtune.cli.failures import (
    TRACEBACK_ENV,
    describe,
    find_user_error,
    one_line_library_errors,
    wants_traceback,
)
from mmtune.cli.ray_auth import quiet_local_auth

app = typer.Typer(
    name="mmtune",
    help="Which CT + clinical model should you trust? Search, ablate and report with honest statistics.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(data_cli.app, name="data", help="Synthesize, prepare and inspect data sets.")
app.add_typer(bench_cli.app, name="bench", help="Benchmarks printing JSON with ratios against a baseline.")
app.command("list")(listing_cli.list_components)
app.command("train")(train_cli.train)
app.command("tune")(tune_cli.tune)
app.command("ablate")(ablate_cli.ablate)
app.command("report")(report_cli.report)
app.command("confirm")(confirm_cli.confirm)
app.command("predict")(predict_cli.predict)
app.command("evaluate")(evaluate_cli.evaluate)


@app.callback()
def _options(
    verbose: bool = typer.Option(
        False, "--verbose", help=f"Print the traceback of a failure (or set {TRACEBACK_ENV}=1)."
    ),
) -> None:
    """Options of every command (read by ``main``)."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: typer handles usage errors (exit 2); a ``UserError`` or an environment error
    (disk full, permission denied, corrupt Parquet) becomes one line + its exit code (``mmtune.cli.failures``)."""
    args = sys.argv[1:] if argv is None else list(argv)
    quiet_local_auth(args)
    quiet = contextlib.nullcontext() if wants_traceback(args) else one_line_library_errors()
    try:
        with quiet:
            code = _run(args)
    except Exception as exc:
        failure = describe(exc)
        if failure is None:
            raise
        if wants_traceback(args):
            traceback.print_exception(exc)
        sys.stderr.write(failure.message + "\n")
        raise SystemExit(failure.exit_code) from None
    raise SystemExit(code)


def _run(args: list[str]) -> int:
    """Run the app without click's standalone handling, so an ``EOFError`` (a truncated file, often a full disk)
    reaches ``describe`` instead of becoming a bare "Aborted."; usage errors keep typer's formatting (exit 2)."""
    from typer import rich_utils
    from typer._click.exceptions import ClickException

    from mmtune.cli.failures import Abort

    try:
        result = app(args=args, prog_name="mmtune", standalone_mode=False)
    except ClickException as exc:
        rich_utils.rich_format_error(exc)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C, or SIGTERM during a study (mmtune.tuning.interrupt): 128 + signal
        sys.stderr.write("interrupted\n")
        return int(getattr(exc, "exit_code", 130))
    except Abort as exc:
        if exc.__cause__ is not None:
            raise exc.__cause__ from None
        rich_utils.rich_abort_error()
        return 1
    return result if isinstance(result, int) else 0


__all__ = ["app", "find_user_error", "main"]
