"""The study-level Aim run: one run per results directory carrying the report's main tables as ``aim.Text``
(markdown) and its headline numbers as params, so ``aim up`` shows the conclusions beside the trials' runs.

It is written only into an Aim repo that exists (the study tracked its trials there) and is replaced on every
``mmtune report``: the previous run's hash is kept in ``<results>/aim_report_run.txt`` and that run deleted.
Run name ``<study>: report``, experiment ``<study>``, tags ``study=<study>`` and ``kind=report``; texts are
named ``findings``, ``leaderboard`` (context ``{"metric": ...}``) and ``best_configuration``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmtune.atomic import atomic_write_text
from mmtune.results_files import REPORT_AIM_RUN_FILE

Texts = list[tuple[str, dict[str, str], str]]  # (name, context, markdown)


def _local_repo_missing(repo: str) -> bool:
    from aim import Repo

    from mmtune.tracking.aim import is_remote

    return not is_remote(repo) and not Repo.exists(str(Path(repo).expanduser().resolve()))


def _finite(params: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


def log_report_run(repo: str | None, study: str, root: Path, texts: Texts, params: Mapping[str, Any]) -> str | None:
    """Write (replace) the study's report run; returns its hash, or None without a usable Aim repo."""
    if not repo or _local_repo_missing(repo):
        return None
    from mmtune.tracking.aim import open_run, repo_location
    from mmtune.tracking.aim_objects import text

    record = root / REPORT_AIM_RUN_FILE
    if record.is_file():
        _delete(repo_location(repo), record.read_text(encoding="utf-8").strip())
    run = open_run(repo, study, run_name=f"{study}: report", tags={"study": study, "kind": "report"})
    try:
        for name, context, markdown in texts:
            run.track(text(markdown), name=name, context=context)
        run["report"] = _finite(params)
        run_hash = run.hash
    finally:
        run.close()
    atomic_write_text(record, run_hash + "\n")
    return run_hash


def _delete(repo: str, run_hash: str) -> None:
    if not run_hash:
        return
    from aim import Repo

    aim_repo = Repo.from_path(repo) if "://" not in repo else Repo(repo)
    try:
        aim_repo.delete_run(run_hash)
    except Exception:  # already gone, or never indexed: a new run replaces it either way
        pass
    finally:
        aim_repo.close()
