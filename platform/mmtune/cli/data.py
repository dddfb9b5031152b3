"""``mmtune data synth|prepare|inspect``."""

from __future__ import annotations

import typer

from mmtune.cli.data_inspect import inspect
from mmtune.cli.data_prepare import prepare
from mmtune.cli.data_synth import synth

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)
app.command("synth")(synth)
app.command("prepare")(prepare)
app.command("inspect")(inspect)
