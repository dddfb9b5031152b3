"""``mmtune bench ...``: each prints one JSON object with ratios against a baseline measured in the same run."""

from __future__ import annotations

import os

import typer

from mmtune.cli.bench_concurrent import bench_concurrent
from mmtune.cli.bench_data import bench_data
from mmtune.cli.bench_prepare import bench_prepare
from mmtune.cli.bench_scale import bench_scale
from mmtune.cli.bench_search import bench_search
from mmtune.cli.bench_train import bench_train

app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False)


@app.callback()
def quiet_tune_output() -> None:
    """Benchmarks print one JSON object on stdout: keep Ray Tune's experiment boxes off it."""
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")


app.command("prepare")(bench_prepare)
app.command("train")(bench_train)
app.command("search")(bench_search)
app.command("data")(bench_data)
app.command("concurrent")(bench_concurrent)
app.command("scale")(bench_scale)
