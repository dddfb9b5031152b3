"""The clinical section of a tuning study's report: calibration, the operating point, net benefit, hospital /
subgroup tables and the model card of the *best configuration*.

The best configuration is the usable trial with the best value of the study's metric on validation, preferring
trials that finished their final evaluation (their predictions hold the test split). Its operating threshold is
chosen on its own validation predictions (the split the search selected on); the tables and figures are computed
on its test split, labelled *held out, not used for selection*. A study whose trials kept no test predictions is
reported on validation, labelled optimistic. The targets, threshold rule and subgroups come from the search
space's ``clinical:`` section as run (``space.yaml``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mmtune.analysis.html import Block, Heading, Paragraph
from mmtune.analysis.results import StudyData
from mmtune.config.clinical import ClinicalConfig
from mmtune.results_files import SPACE_FILE

IMAGE_PREFIX = "best_"
HELD_OUT = "held out, not used for selection"


@dataclass
class StudyClinical:
    """What the report adds: blocks (the section and the model card) and their PNGs."""

    trial: str
    blocks: list[Block]
    images: dict[str, tuple[bytes, str]]
    thresholds: dict[str, dict[str, float]]
    evaluated_split: str  # "test" | "val"
    metrics: dict[str, float]  # ``<task>/<metric>`` on the evaluated split (the keys of mmtune evaluate's metrics.json)
    table: pd.DataFrame  # every estimate with its interval (mmtune.analysis.clinical.tables.COLUMNS)


def study_settings(root: Path) -> tuple[ClinicalConfig, dict[str, Any]]:
    """``clinical:`` of the study's ``space.yaml`` (defaults without one), and the whole record."""
    from mmtune.analysis.search_data import read_space
    from mmtune.config.loading import validate

    path = root / SPACE_FILE
    record = read_space(root)
    section = record.get("clinical")
    if not section:
        return ClinicalConfig(), record
    return validate(ClinicalConfig, section, str(path), ("clinical",)), record


def best_trial(data: StudyData, metric: str | None, mode: str) -> tuple[str | None, bool]:
    """The best usable trial by ``best/<metric>`` (complete trials first) and whether it has test predictions."""
    usable = data.usable
    if usable.empty:
        return None, False
    column = f"best/{metric}" if metric and f"best/{metric}" in usable else None
    if column is None:
        column = next((c for c in usable.columns if str(c).startswith("best/")), None)
    complete = {t for t in usable["trial"] if _split_rows(data.predictions[str(t)], "test").shape[0]}
    pool = usable[usable["trial"].isin(complete)] if complete else usable
    if column is None:
        trial = str(pool.iloc[0]["trial"])
    else:
        values = pd.to_numeric(pool[column], errors="coerce")
        if values.dropna().empty:
            trial = str(pool.iloc[0]["trial"])
        else:
            trial = str(pool.loc[values.idxmax() if mode == "max" else values.idxmin(), "trial"])
    return trial, trial in complete


def _split_rows(frame: pd.DataFrame, split: str) -> pd.DataFrame:
    rows = frame[frame["split"] == split] if "split" in frame.columns else frame.iloc[0:0]
    if "modality_dropped" in rows.columns:
        rows = rows[rows["modality_dropped"].fillna("").astype(str) == ""]
    return rows


def _trial_config(root: Path, trial: str) -> dict[str, Any]:
    path = root / "trials" / trial / "config.yaml"
    if not path.is_file():
        return {}
    return yaml.safe_load(path.read_text(encoding="utf-8")) or {}


def _data_path(config: dict[str, Any]) -> Path | None:
    """The prepared data set a trial trained on, when it is one local directory that still exists."""
    data = config.get("data") or {}
    path = data.get("path") if isinstance(data, dict) else None
    if not isinstance(path, str):
        return None
    candidate = Path(path).expanduser()
    return candidate if (candidate / "manifest.json").is_file() else None


def study_clinical(data: StudyData) -> StudyClinical | None:
    """The section for a tuning study (None when no trial has classification predictions)."""
    from mmtune.analysis.clinical.model_card import model_card_blocks
    from mmtune.analysis.clinical.sections import analyse_clinical, clinical_blocks, clinical_images
    from mmtune.analysis.clinical.subgroups import check_subgroups, patient_covariates
    from mmtune.tasks import CLASSIFICATION_KINDS

    if data.kind != "tuning" or not any(t.kind in CLASSIFICATION_KINDS for t in data.tasks.values()):
        return None
    settings, record = study_settings(data.root)
    metric, mode = record.get("metric"), str(record.get("mode") or "max")
    trial, complete = best_trial(data, metric, mode)
    if trial is None:
        return None
    frame = data.predictions[trial]
    val, test = _split_rows(frame, "val"), _split_rows(frame, "test")
    evaluated_split = "test" if complete else "val"
    rows = test if complete else val
    label = data.config_labels.get(trial, trial)
    if complete:
        evaluated = f"the test split of trial {trial} ({len(rows)} patients; {HELD_OUT})"
    else:
        evaluated = (
            f"the validation split of trial {trial} ({len(rows)} patients; the split the search selected on, so "
            "these figures are optimistic: no trial kept test predictions)"
        )
    config = _trial_config(data.root, trial)
    data_path = _data_path(config)
    covariates = patient_covariates(data_path) if data_path is not None else None
    if covariates is not None:
        check_subgroups(settings, covariates, str(data.root / SPACE_FILE))
    result = analyse_clinical(
        rows,
        data.tasks,
        settings,
        evaluated=evaluated,
        validation=val,
        validation_source=f"trial {trial}'s validation predictions",
        covariates=covariates,
    )
    images = clinical_images(result, IMAGE_PREFIX)
    chosen = f" by {metric} ({mode})" if metric else ""
    blocks: list[Block] = [Heading("Best configuration: calibration and operating point")]
    blocks.append(
        Paragraph(
            f"The best configuration{chosen} on validation: {label}. Its operating threshold is fixed on its "
            f"validation predictions; every number and figure below is on {evaluated}."
        )
    )
    blocks += clinical_blocks(result, images, level=3)
    if data_path is not None:
        from mmtune.data.format import read_manifest

        searched = [str(c) for c in data.trials.columns if "." in str(c) and not str(c).startswith(("best/", "final/"))]
        search = (
            f"Selected as the best of {len(data.usable)} usable trials ({len(data.trials)} planned) of tuning study "
            f"{data.name}{chosen} on the validation split; searched: {', '.join(searched) or 'nothing'}."
        )
        manifest = read_manifest(data_path)
        blocks += model_card_blocks(
            manifest=manifest,
            data_path=data_path,
            covariates=covariates,
            configs=[config] if config else [],
            search=search,
            training_data=[manifest.name],
            evaluated=evaluated,
            adaptations=[],
        )
    else:
        blocks.append(Heading("Model card (TRIPOD+AI / CLAIM)"))
        blocks.append(Paragraph("The trial's prepared data set is not available here, so no model card is written."))
    from mmtune.analysis.clinical.tables import flat_metrics

    metrics = flat_metrics(result.table)
    return StudyClinical(trial, blocks, images, result.thresholds, evaluated_split, metrics, result.table)
