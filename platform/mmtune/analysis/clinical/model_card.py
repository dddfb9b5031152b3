"""The report's model-card section: the TRIPOD+AI (Collins et al., BMJ 2024) and CLAIM (Mongan et al., 2020; 2024
update) items mmtune can fill from what it knows, and the ones it cannot, marked "to be completed by the authors".

What mmtune knows: the prepared data's manifest (card and source hashes, files, when it was written, dropped
patients and why, splits, groups, label counts), the clinical features and how often each is missing, the run
config(s) (model, loss weighting, optimiser, epochs), the search that chose them, and the evaluation results.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtune.analysis.html import Block, Bullets, Heading, Paragraph, Table
from mmtune.data.format import Manifest

AUTHORS = "to be completed by the authors"


def _written(data_path: Path | None) -> str:
    if data_path is None or not (data_path / "manifest.json").is_file():
        return "unknown"
    stamp = (data_path / "manifest.json").stat().st_mtime
    return dt.datetime.fromtimestamp(stamp, dt.UTC).strftime("%Y-%m-%d")


def _reason(text: str) -> str:
    """A drop reason without the patient-specific parts, so reasons can be counted."""
    import re

    text = re.sub(r"'[^']*'", "'...'", text)
    return re.sub(r"\d+", "N", text)


def data_sources(manifest: Manifest, data_path: Path | None, role: str) -> list[str]:
    return [
        f"{role}: prepared data set **{manifest.name}** ({data_path or 'path unknown'}), written {_written(data_path)} "
        f"by mmtune {manifest.mmtune_version or '?'}; card sha256 {manifest.card_sha256[:12] or '?'}, raw source "
        f"sha256 {manifest.source_sha256[:12] or '?'} ({manifest.source_files} files, layout "
        f"{manifest.source_layout or '?'}).",
    ]


def exclusions(manifest: Manifest) -> Table | Paragraph:
    counts = Counter(_reason(d.reason) for d in manifest.dropped)
    included = f"{manifest.n_patients} patients included"
    if not counts:
        return Paragraph(f"{included}; none excluded by the card's rules.")
    rows = [[reason, str(n)] for reason, n in counts.most_common()]
    rows.append([f"included: {included}", str(manifest.n_patients)])
    return Table(["exclusion reason (card rules and unreadable files)", "patients"], rows, numeric=[False, True])


def missing_table(manifest: Manifest, covariates: pd.DataFrame | None) -> Table | Paragraph:
    features = manifest.clinical.features
    if not features:
        return Paragraph("No clinical features.")
    rows = []
    for i, name in enumerate(features):
        if covariates is not None and name in covariates.columns:
            values = pd.to_numeric(covariates[name], errors="coerce").to_numpy(dtype=float)
            share = float(np.mean(~np.isfinite(values))) if values.size else float("nan")
            where = "all patients"
        else:
            rates = manifest.clinical.missing_rate
            share = float(rates[i]) if i < len(rates) else float("nan")
            where = "training split"
        rows.append([name, f"{share:.1%}", where])
    return Table(["clinical feature", "missing", "over"], rows, numeric=[False, True, False])


def splits_table(manifest: Manifest) -> Table:
    s = manifest.split
    rows = [[split, str(n)] for split, n in manifest.split_sizes.items()]
    rows.append(
        [
            f"method {s.method}, {s.k_folds} folds, test fraction {s.test_fraction:g}, stratified by "
            f"{s.stratify_by or '-'}, seed {s.seed}",
            "",
        ]
    )
    return Table(["split", "patients"], rows, numeric=[False, True])


def outcome_table(manifest: Manifest) -> Table:
    rows = []
    for task in manifest.tasks:
        counts = {}
        for split_counts in manifest.counts.values():
            for key, n in (split_counts.get(task.name) or {}).items():
                counts[key] = counts.get(key, 0) + int(n)
        text = ", ".join(f"{k} {v}" for k, v in counts.items())
        rows.append([task.name, task.kind.value, ", ".join(task.classes) or "-", text or "-"])
    return Table(["task", "kind", "classes / labels", "patients (all splits)"], rows)


def model_lines(config: dict[str, Any], search: str | None) -> list[str]:
    model = config.get("model") or {}
    backbone = model.get("backbone") or {}
    fusion = model.get("fusion") or {}
    weighting = config.get("weighting") or {}
    optim = config.get("optim") or {}
    trainer = config.get("trainer") or {}
    tasks = [t["name"] if isinstance(t, dict) else str(t) for t in config.get("tasks") or []]
    lines = [
        f"Tasks: {', '.join(tasks)}; image backbone {backbone.get('name', '?')} "
        f"{backbone.get('params') or ''}; fusion {fusion.get('name', '?')}; task-loss weighting "
        f"{weighting.get('name', '?')} {weighting.get('params') or ''}.",
        f"Optimiser {optim.get('name', '?')} (lr {optim.get('lr', '?')}, weight decay "
        f"{optim.get('weight_decay', '?')}), up to {trainer.get('max_epochs', '?')} epochs, best epoch by "
        f"{trainer.get('monitor', '?')}; seed {trainer.get('seed', '?')}.",
    ]
    if search:
        lines.append(search)
    return lines


UNKNOWN_ITEMS = [
    "Title, abstract and intended use: the clinical question, the target population and where in the care pathway "
    "the model would be used (TRIPOD+AI 1-3; CLAIM 1-4)",
    "Study design and dates: data collection period, setting, recruitment and eligibility of the source cohorts "
    "(TRIPOD+AI 5-6; CLAIM 5-8)",
    "Reference standard: how labels were obtained, by whom, blinding and inter-reader agreement (TRIPOD+AI 7; "
    "CLAIM 14-18)",
    "Sample size justification (TRIPOD+AI 9; CLAIM 19)",
    "Handling of missing data beyond mmtune's missing indicators, and its rationale (TRIPOD+AI 10)",
    "Fairness: which groups were considered and why (TRIPOD+AI 14); hospital and subgroup tables are in the report when defined",
    "Ethics approval, consent, patient and public involvement, funding, conflicts of interest (TRIPOD+AI 4, 24-27)",
    "Interpretation, limitations, clinical implications and the path to deployment (TRIPOD+AI 22-23; CLAIM 39-41)",
    "Code, model and data availability statements (TRIPOD+AI 18; CLAIM 42-44)",
]


def model_card_blocks(
    *,
    manifest: Manifest,
    data_path: Path | None,
    covariates: pd.DataFrame | None,
    configs: list[dict[str, Any]],
    search: str | None,
    training_data: list[str],
    evaluated: str,
    adaptations: list[str],
    level: int = 2,
) -> list[Block]:
    """The model-card section (see the module docstring); results sections are referred to, not repeated."""
    blocks: list[Block] = [Heading("Model card (TRIPOD+AI / CLAIM)", level)]
    blocks.append(
        Paragraph(
            "Items mmtune fills from the data manifest, the run configuration and the results; the others are "
            f"marked *{AUTHORS}*."
        )
    )
    sub = level + 1
    blocks.append(Heading("Data sources", sub))
    trained_on = ", ".join(training_data) or "unknown"
    blocks.append(Bullets([*data_sources(manifest, data_path, "Evaluated on"), f"Model trained on: {trained_on}."]))
    blocks.append(Heading("Participants: inclusion and exclusion", sub))
    blocks.append(exclusions(manifest))
    if manifest.groups:
        groups = ", ".join(f"{g} {n}" for g, n in manifest.groups.items())
        blocks.append(Paragraph(f"Patients per hospital / centre: {groups}."))
    blocks.append(Heading("Outcomes (labels)", sub))
    blocks.append(outcome_table(manifest))
    blocks.append(Heading("Predictors and missing data", sub))
    blocks.append(
        Paragraph(
            "Clinical features are standardised with the training split's statistics; a missing value is set to 0 "
            "and flagged by a missing-value indicator the model sees."
        )
    )
    blocks.append(missing_table(manifest, covariates))
    if adaptations:
        blocks.append(Bullets(adaptations))
    blocks.append(Heading("Splits", sub))
    blocks.append(splits_table(manifest))
    blocks.append(Heading("Model and its selection", sub))
    if configs:
        lines = model_lines(configs[0], search)
        if len(configs) > 1:
            lines.append(f"Ensemble: the mean predicted probability of {len(configs)} models.")
        blocks.append(Bullets(lines))
    blocks.append(Heading("Performance", sub))
    blocks.append(
        Paragraph(
            f"Discrimination, calibration, the operating point, net benefit and hospital / subgroup results on "
            f"{evaluated}: see the sections above, each with its intervals."
        )
    )
    blocks.append(Heading(f"Items {AUTHORS}", sub))
    blocks.append(Bullets([f"{item}: *{AUTHORS}*." for item in UNKNOWN_ITEMS]))
    return blocks
