"""The ``mmtune`` command line.

Sub-commands live in one module each and import heavy libraries (torch, ray) only when they run, so
``mmtune --help`` stays fast. User mistakes (``UserError``) print one line and exit 2.
"""

from __future__ import annotations

import sys

import typer

from mmtune.cli import ablate as ablate_cli
from mmtune.cli import bench as bench_cli
from mmtune.cli import data as data_cli
from mmtune.cli import evaluate as evaluate_cli
from mmtune.cli import listing as listing_cli
from mmtune.cli import predict as predict_cli
from mmtune.cli import report as report_cli
from mmtune.cli import train as train_cli
from mmtune.cli import tune as tune_cli
from mmtune.errors import UserError

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
app.command("predict")(predict_cli.predict)
app.command("evaluate")(evaluate_cli.evaluate)


def find_user_error(exc: BaseException) -> UserError | None:
    """The ``UserError`` behind ``exc``: itself, a Ray task error's cause, or a chained cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, UserError):
            return current
        cause = getattr(current, "cause", None)  # ray.exceptions.RayTaskError
        if isinstance(cause, BaseException):
            current = cause
            continue
        current = current.__cause__ or current.__context__
    return None


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: typer handles usage errors (exit 2); ``UserError`` becomes one line + exit 2."""
    try:
        app(args=argv, prog_name="mmtune")
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        raise SystemExit(130) from None
    except Exception as exc:
        user_error = find_user_error(exc)
        if user_error is None:
            raise
        sys.stderr.write(f"error: {user_error}\n")
        raise SystemExit(user_error.exit_code) from None
