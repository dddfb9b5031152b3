"""``mmtune evaluate``: external validation of trained models on a prepared data set, written as one directory.

``<results>/<name>/`` (built beside, renamed into place when complete)::

    predictions.parquet   per-patient predictions (+ group); several RUNs with --ensemble: their mean
    metrics.json          {"<task>/<metric>": value} (auroc, ap, brier, ece, calibration_intercept, ...)
    metrics.csv           every estimate with its interval (task, part, metric, estimate, lo, hi, n, n_pos, ci)
    subgroups.csv         the same per hospital and per clinical.subgroups level
    evaluation.json       what was evaluated: runs, checkpoints, data, split, adapted features and tasks
    report.md / report.html / *.png

Several RUNs without ``--ensemble`` are evaluated one by one into ``<name>/<run>/``. The operating threshold is
chosen on each model's own validation predictions (pooled over the members of an ensemble), never on the data
being evaluated.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from mmtune.config.clinical import ClinicalConfig
from mmtune.errors import UserError
from mmtune.results_files import (
    EVALUATION_FILE,
    METRICS_FILE,
    METRICS_TABLE_FILE,
    PREDICTIONS_FILE,
    REPORT_HTML,
    REPORT_MARKDOWN,
    SUBGROUPS_FILE,
)


class EvaluateError(UserError):
    """Inputs ``mmtune evaluate`` cannot score."""


@dataclass(frozen=True)
class EvaluationPaths:
    out: Path
    metrics: dict[str, float]
    report: Path


def load_settings(path: str | Path | None) -> ClinicalConfig:
    """``clinical:`` of a YAML file (a search space, a study, or a file holding only that section)."""
    from mmtune.config.loading import load_yaml, validate

    if path is None:
        return ClinicalConfig()
    data = load_yaml(path)
    section = data.get("clinical", data) if isinstance(data, dict) else data
    return validate(ClinicalConfig, section or {}, str(path), ("clinical",) if "clinical" in data else ())


def evaluate(
    runs: list[str | Path],
    data: str | Path,
    *,
    name: str | None = None,
    results: str | Path = "results",
    ensemble: bool = False,
    split: str = "all",
    settings: ClinicalConfig | None = None,
) -> list[EvaluationPaths]:
    """Evaluate ``runs`` on ``data`` (see the module docstring); returns one entry per written directory."""
    from mmtune.analysis.clinical.subgroups import check_subgroups, patient_covariates
    from mmtune.atomic import atomic_directory
    from mmtune.data.format import read_manifest
    from mmtune.data.integrity import verify_prepared
    from mmtune.inference.runs import resolve_run

    settings = settings or ClinicalConfig()
    data_path = Path(data).expanduser().resolve()
    manifest = read_manifest(data_path)
    verify_prepared(data_path, manifest)
    covariates = patient_covariates(data_path)
    check_subgroups(settings, covariates, "evaluate")
    resolved = [resolve_run(r) for r in runs]  # every RUN is checked before anything is computed
    name = name or f"{manifest.name}_{resolved[0].label}" + ("_ensemble" if ensemble and len(runs) > 1 else "")
    out = Path(results).expanduser() / name
    groups = [resolved] if ensemble or len(resolved) == 1 else [[r] for r in resolved]
    written: list[EvaluationPaths] = []
    with atomic_directory(out, overwrite=True) as tmp:
        for members in groups:
            target = tmp if len(groups) == 1 else tmp / _unique(members[0].label, tmp)
            target.mkdir(exist_ok=True)
            metrics = _evaluate_one(members, data_path, manifest, covariates, split, settings, target)
            final = out if len(groups) == 1 else out / target.name
            written.append(EvaluationPaths(final, metrics, final / REPORT_MARKDOWN))
        _share(tmp)
    return written


def _unique(label: str, root: Path) -> str:
    candidate, i = label, 1
    while (root / candidate).exists():
        i += 1
        candidate = f"{label}_{i}"
    return candidate


def _evaluate_one(
    members: list[Any],
    data_path: Path,
    manifest: Any,
    covariates: pd.DataFrame,
    split: str,
    settings: ClinicalConfig,
    out: Path,
) -> dict[str, float]:
    from mmtune.analysis.clinical.model_card import model_card_blocks
    from mmtune.analysis.clinical.sections import analyse_clinical, clinical_blocks, clinical_images
    from mmtune.analysis.clinical.tables import flat_metrics
    from mmtune.analysis.html import Bullets, Heading, Paragraph, to_html, to_markdown
    from mmtune.analysis.task_metrics import TASKS_ATTR, detect_tasks
    from mmtune.inference.align import align
    from mmtune.inference.predict import ensemble, predict_aligned
    from mmtune.training.predictions import write_predictions

    specs = [run.spec() for run in members]
    frames, aligned = [], None
    for run, spec in zip(members, specs, strict=True):
        aligned = align(spec, data_path, split)
        frames.append(predict_aligned(run, spec, aligned, int((run.config.get("data") or {}).get("batch_size") or 32)))
    assert aligned is not None
    frame = ensemble(frames)
    if not aligned.labelled_tasks:
        model_tasks = ", ".join(t.name for t in specs[0].tasks)
        data_tasks = ", ".join(t.name for t in manifest.tasks)
        raise EvaluateError(
            f"{data_path}: labels none of the model's tasks (model: {model_tasks}; data: {data_tasks}); nothing to "
            "evaluate (`mmtune predict` scores unlabelled data)"
        )
    tasks = detect_tasks(list(frame.columns), dict(frame.dtypes), frame.attrs.get(TASKS_ATTR))
    tasks = {k: v for k, v in tasks.items() if k in aligned.labelled_tasks}
    validation = [v for v in (run.validation_predictions() for run in members) if v is not None]
    val_frame = pd.concat(validation, ignore_index=True) if validation else None
    val_source = "the model's own validation predictions" + (" (pooled over the ensemble)" if len(members) > 1 else "")
    split_words = "all patients" if split == "all" else f"the {split} split"
    evaluated = f"{split_words} of {manifest.name} ({len(frame)} patients)"
    result = analyse_clinical(
        frame,
        tasks,
        settings,
        evaluated=evaluated,
        validation=val_frame,
        validation_source=val_source,
        covariates=covariates,
    )
    metrics = flat_metrics(result.table)
    adaptations = []
    if aligned.missing_features:
        adaptations.append(
            f"Clinical features the model knows but {manifest.name} lacks (set missing, through the missing-value "
            f"indicators): {', '.join(aligned.missing_features)}."
        )
    if aligned.extra_features:
        adaptations.append(
            f"Clinical features of {manifest.name} the model never saw (ignored): {', '.join(aligned.extra_features)}."
        )
    if aligned.unlabelled_tasks:
        adaptations.append(
            f"Model tasks without labels in this data (predicted only): {', '.join(aligned.unlabelled_tasks)}."
        )
    if aligned.ignored_tasks:
        adaptations.append(f"Data tasks the model does not predict (ignored): {', '.join(aligned.ignored_tasks)}.")
    images = clinical_images(result)
    title = f"mmtune evaluate: {', '.join(r.label for r in members)} on {manifest.name}"
    blocks = [Heading(title, 1)]
    blocks.append(
        Paragraph(
            f"{'Ensemble of ' + str(len(members)) + ' models' if len(members) > 1 else 'Model'} "
            f"{', '.join(str(r.checkpoint) for r in members)} scored on {evaluated}."
        )
    )
    if adaptations:
        blocks += [Heading("Data adapted to the model"), Bullets(adaptations)]
    blocks += clinical_blocks(result, images)
    blocks += model_card_blocks(
        manifest=manifest,
        data_path=data_path,
        covariates=covariates,
        configs=[r.config for r in members],
        search=None,
        training_data=sorted({n for s in specs for n in s.data_names}),
        evaluated=evaluated,
        adaptations=adaptations,
    )
    write_predictions(out / PREDICTIONS_FILE, [frame])
    (out / METRICS_FILE).write_text(json.dumps(_finite(metrics), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    result.table.to_csv(out / METRICS_TABLE_FILE, index=False)
    result.subgroups.to_csv(out / SUBGROUPS_FILE, index=False)
    record = {
        "runs": [{"path": str(r.path), "checkpoint": str(r.checkpoint), "label": r.label} for r in members],
        "ensemble": len(members) > 1,
        "data": {"path": str(data_path), "name": manifest.name, "card_sha256": manifest.card_sha256},
        "split": split,
        "patients": len(frame),
        "missing_features": aligned.missing_features,
        "extra_features": aligned.extra_features,
        "unlabelled_tasks": aligned.unlabelled_tasks,
        "ignored_tasks": aligned.ignored_tasks,
        "thresholds": result.thresholds,
        "threshold_source": result.threshold_source,
        "settings": settings.model_dump(mode="json"),
    }
    (out / EVALUATION_FILE).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    for file_name, (png, _) in images.items():
        (out / file_name).write_bytes(png)
    (out / REPORT_MARKDOWN).write_text(to_markdown(blocks), encoding="utf-8")
    (out / REPORT_HTML).write_text(to_html(blocks, title, {k: v[0] for k, v in images.items()}), encoding="utf-8")
    return metrics


def _finite(metrics: dict[str, float]) -> dict[str, float | None]:
    import math

    return {k: (v if math.isfinite(v) else None) for k, v in metrics.items()}


def _share(root: Path) -> None:
    """``mkdtemp`` makes private files; results are meant to be read by others."""
    root.chmod(0o755)
    for path in root.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
