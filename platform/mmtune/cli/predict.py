"""``mmtune predict RUN``: per-patient predictions of a trained model on a prepared data set."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def predict(
    run: Annotated[
        Path, typer.Argument(help="`mmtune train` run dir, trial dir (results/<study>/trials/<trial>) or checkpoint")
    ],
    data: Annotated[
        Path | None, typer.Option("--data", help="prepared data set (default: the run's training data)")
    ] = None,
    split: Annotated[str, typer.Option("--split", help="test | val | train | all")] = "test",
    out: Annotated[
        Path | None, typer.Option("--out", help="Parquet file (default: predictions/<run>_<data>_<split>.parquet)")
    ] = None,
) -> None:
    """Write per-patient predictions (the `predictions.parquet` format, plus `group`) of RUN on a data set."""
    from mmtune.console import console, warn
    from mmtune.inference.align import SPLIT_CHOICES, AlignmentError
    from mmtune.inference.predict import predict as run_predict
    from mmtune.training.predictions import write_predictions

    if split not in SPLIT_CHOICES:
        raise AlignmentError(f"--split: expected one of {', '.join(SPLIT_CHOICES)}, got {split!r}")
    frame, aligned, runs = run_predict([run], data, split)
    target = out or Path("predictions") / f"{runs[0].label}_{aligned.manifest.name}_{split}.parquet"
    if aligned.missing_features:
        warn(f"clinical features missing in the data (set missing): {', '.join(aligned.missing_features)}")
    if aligned.extra_features:
        warn(f"clinical features the model never saw (ignored): {', '.join(aligned.extra_features)}")
    write_predictions(target, [frame])
    console.print(f"{len(frame)} patients -> {target}", highlight=False)
