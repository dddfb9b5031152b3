"""The study's ``metric`` must be one its trials report, checked before Ray starts.

Tune needs the metric in every result; a misspelt one used to start Ray, crash every trial after the first epoch
and leave an experiment that blocked the corrected rerun. The trials report ``train/loss``, ``train/<task>/loss``
and every validation key of ``mmtune.training.metrics.metric_keys`` for the run's tasks (``val/loss``,
``val/<task>/<metric>``, ``val/mean_auroc`` when a task is a classification; per data set too with several data
sets), so the list is derived from the tasks the data (or, before preparation, the card) declares.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from mmtune.config.loading import get_dotted
from mmtune.errors import ConfigError, UserError
from mmtune.tasks import TaskSpec


def reported_metrics(tasks: Sequence[TaskSpec], dataset_names: list[str] | None = None) -> list[str]:
    """Every metric key a trial with ``tasks`` reports each epoch (the keys Tune may select on)."""
    from mmtune.training.metrics import metric_keys

    train = ["train/loss", *(f"train/{t.name}/loss" for t in tasks)]
    return [*train, *metric_keys(list(tasks), "val", dataset_names)]


def run_tasks(base: dict[str, Any], manifest: Any = None) -> tuple[list[TaskSpec], list[str] | None]:
    """The run's task specs (and data-set names when it reads several): from the prepared data, else the card."""
    names = [t["name"] if isinstance(t, dict) else str(t) for t in base.get("tasks") or []]
    if manifest is not None:
        from mmtune.config.run import DataConfig
        from mmtune.data.multisource import resolve_data

        info = resolve_data(DataConfig.model_validate(base["data"]), names)
        return list(info.tasks), (info.source_names if info.multi_source else None)
    card = get_dotted(base, "data.card")
    if not card or not Path(card).is_file():
        return [], None  # no data known yet: the data checks say what is missing
    from mmtune.config.card import load_card

    try:
        specs = {s.name: s for s in load_card(Path(card)).task_specs}
    except UserError:
        return [], None  # a broken card: the data checks report it with the card's own message
    return [specs[n] for n in names if n in specs], None


def check_metric(metric: str, mode: str, known: Iterable[str], where: str, key: str = "metric") -> None:
    """``metric`` must be in ``known``; ``mode`` max or min. One line naming the file, the key and close matches."""
    if mode not in ("max", "min"):
        raise ConfigError(f"{where}: mode: expected max or min, got {mode!r}")
    known = list(known)
    if metric in known:
        return
    close = difflib.get_close_matches(metric, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(k for k in known if k.count("/") <= 2)
    raise ConfigError(f"{where}: {key}: {metric!r} is not a metric the trials report{hint} They report: {shown}")


def prepared_manifests(base: dict[str, Any]) -> Any:
    """The manifests of ``base``'s data when every source is prepared already, else None (checked later)."""
    from mmtune.data.format import read_manifest

    path = get_dotted(base, "data.path")
    sources = [s.get("path") if isinstance(s, dict) else s for s in path] if isinstance(path, list) else [path]
    if not sources or not all(isinstance(p, str) and (Path(p) / "manifest.json").is_file() for p in sources):
        return None
    try:
        manifests = [read_manifest(p) for p in sources]
    except UserError:
        return None  # an unreadable manifest: the data checks report it with their own message
    return manifests if isinstance(path, list) else manifests[0]


def check_study_metric(
    where: str, base: dict[str, Any], metric: str, mode: str, manifest: Any = None, metric_key: str = "metric"
) -> None:
    """The study's Tune metric and the base run's ``trainer.monitor`` are both reported by its trials (the data's
    tasks from ``manifest``, else from the prepared data when there are, else from the card)."""
    if manifest is None:
        manifest = prepared_manifests(base)
    tasks, names = run_tasks(base, manifest)
    if not tasks:  # tasks unknown here (no manifest, no card): the registry checks report the data problem
        return
    known = reported_metrics(tasks, names)
    check_metric(metric, mode, known, where, metric_key)
    monitor = get_dotted(base, "trainer.monitor")
    if isinstance(monitor, str) and monitor != metric:
        check_metric(monitor, str(get_dotted(base, "trainer.mode", "max")), known, where, "base.trainer.monitor")
