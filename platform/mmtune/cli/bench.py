"""``mmtune bench ...``: each prints one JSON object with ratios against a baseline measured in the same run."""

from __future__ import annotations

import typer

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
