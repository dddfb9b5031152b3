"""The clinical part of a report: compute once (``analyse_clinical``), then figures and document blocks.

Used by ``mmtune evaluate`` (external validation) and by ``mmtune report`` for a tuning study's best
configuration. Tables show every estimate with its interval and how it was made; subgroups too small for an
interval are listed with ``too small``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mmtune.analysis.clinical.subgroups import subgroup_tables
from mmtune.analysis.clinical.tables import COLUMNS, MACRO, choose_thresholds, components, task_table
from mmtune.analysis.html import Block, Heading, Image, Paragraph, Table
from mmtune.analysis.task_metrics import TaskColumns
from mmtune.config.clinical import ClinicalConfig
from mmtune.tasks import CLASSIFICATION_KINDS


@dataclass
class ClinicalResult:
    """Overall and subgroup tables of one evaluated set of predictions, with what the numbers rest on."""

    settings: ClinicalConfig
    evaluated: str  # what the rows are, in words ("test split of synthetic", ...)
    table: pd.DataFrame
    subgroups: pd.DataFrame
    thresholds: dict[str, dict[str, float]]
    threshold_source: str
    tasks: dict[str, TaskColumns]
    frame: pd.DataFrame
    notes: list[str] = field(default_factory=list)


def analyse_clinical(
    frame: pd.DataFrame,
    tasks: dict[str, TaskColumns],
    settings: ClinicalConfig,
    *,
    evaluated: str,
    validation: pd.DataFrame | None,
    validation_source: str,
    covariates: pd.DataFrame | None = None,
) -> ClinicalResult:
    """Tables of ``frame`` (one row per patient); thresholds are chosen on ``validation`` when given."""
    tasks = {k: t for k, t in tasks.items() if t.kind in CLASSIFICATION_KINDS}
    thresholds: dict[str, dict[str, float]] = {}
    notes: list[str] = []
    if validation is not None and len(validation):
        for name, task in tasks.items():
            if all(c in validation.columns for c in task.labels + task.scores):
                thresholds[name] = choose_thresholds(task, validation, settings)
        source = f"{validation_source} ({len(validation)} patients; {settings.threshold_label})"
    else:
        source = "none"
        notes.append(
            "No validation predictions: no operating threshold was fixed, so sensitivity, specificity, PPV and NPV "
            "at an operating point are not reported."
        )
    parts = [task_table(task, frame, settings, thresholds.get(name)) for name, task in tasks.items()]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=COLUMNS)
    if covariates is None and "group" in frame.columns:
        covariates = frame[["patient_id", "group"]].drop_duplicates("patient_id")
    subgroups = (
        subgroup_tables(frame.drop(columns=["group"], errors="ignore"), tasks, covariates, settings, thresholds)
        if covariates is not None
        else pd.DataFrame()
    )
    return ClinicalResult(settings, evaluated, table, subgroups, thresholds, source, tasks, frame, notes)


# ---------------------------------------------------------------------------------------------------- cells


def _num(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(float(value)) else f"{float(value):.{digits}f}"


def _cell(row: pd.Series) -> str:
    """``0.812 [0.731, 0.893]``, or the estimate alone when there is no interval."""
    text = _num(row["estimate"])
    if math.isfinite(row["lo"]) and math.isfinite(row["hi"]):
        text += f" [{_num(row['lo'])}, {_num(row['hi'])}]"
    return text


def _part_label(task: str, part: str) -> str:
    if part == "":
        return task
    if part == MACRO:
        return f"{task} (macro)"
    return f"{task}: {part} vs rest"


def _lookup(table: pd.DataFrame) -> dict[tuple[str, str, str], pd.Series]:
    return {(r["task"], r["part"], r["metric"]): r for _, r in table.iterrows()}


def _parts(table: pd.DataFrame) -> list[tuple[str, str]]:
    seen: list[tuple[str, str]] = []
    for _, r in table.iterrows():
        key = (r["task"], r["part"])
        if key not in seen:
            seen.append(key)
    return seen


DISCRIMINATION = [
    ("auroc", "AUROC"),
    ("ap", "AP"),
    ("brier", "Brier"),
    ("ece", "ECE"),
    ("calibration_intercept", "cal. intercept"),
    ("calibration_slope", "cal. slope"),
]
OPERATING = [
    ("threshold", "threshold"),
    ("sensitivity", "sensitivity"),
    ("specificity", "specificity"),
    ("ppv", "PPV"),
    ("npv", "NPV"),
]


def discrimination_table(result: ClinicalResult) -> Table:
    rows = []
    look = _lookup(result.table)
    for task, part in _parts(result.table):
        first = look.get((task, part, "auroc"))
        n = "-" if first is None else str(int(first["n"]))
        prev = look.get((task, part, "prevalence"))
        cells = [_part_label(task, part), n, "-" if prev is None else _num(prev["estimate"])]
        cells += ["-" if look.get((task, part, m)) is None else _cell(look[(task, part, m)]) for m, _ in DISCRIMINATION]
        rows.append(cells)
    columns = ["task", "n", "prevalence", *(label for _, label in DISCRIMINATION)]
    return Table(columns, rows, numeric=[False] + [True] * (len(columns) - 1))


def operating_table(result: ClinicalResult) -> Table | None:
    look = _lookup(result.table)
    s = result.settings
    fixed = [(f"sensitivity_at_specificity_{t:g}", f"sens. at spec. {t:g}") for t in s.specificity_targets]
    fixed += [(f"specificity_at_sensitivity_{t:g}", f"spec. at sens. {t:g}") for t in s.sensitivity_targets]
    metrics = [*OPERATING, *fixed] if result.thresholds else fixed
    rows = []
    for task, part in _parts(result.table):
        if part == MACRO:
            continue
        cells = [_part_label(task, part)]
        cells += ["-" if look.get((task, part, m)) is None else _cell(look[(task, part, m)]) for m, _ in metrics]
        rows.append(cells)
    if not rows:
        return None
    columns = ["task", *(label for _, label in metrics)]
    return Table(columns, rows, numeric=[False] + [True] * len(metrics))


def net_benefit_table(result: ClinicalResult) -> Table | None:
    pts = result.settings.net_benefit_at
    rows = []
    look = _lookup(result.table)
    for task, part in _parts(result.table):
        if part == MACRO:
            continue
        prev = look.get((task, part, "prevalence"))
        cells = [_part_label(task, part)]
        for pt in pts:
            row = look.get((task, part, f"net_benefit_{pt:g}"))
            all_ = "-"
            if prev is not None and math.isfinite(prev["estimate"]):
                p = float(prev["estimate"])
                all_ = _num(p - (1 - p) * pt / (1 - pt))
            cells.append(("-" if row is None else _cell(row)) + f" (all {all_})")
        rows.append(cells)
    if not rows:
        return None
    return Table(["task", *(f"net benefit at {pt:g}" for pt in pts)], rows, numeric=[False] + [True] * len(pts))


def subgroup_table(result: ClinicalResult) -> Table | None:
    frame = result.subgroups
    if frame is None or frame.empty:
        return None
    metrics = [("auroc", "AUROC"), ("brier", "Brier"), ("calibration_slope", "cal. slope")]
    if result.thresholds:
        metrics += [("sensitivity", "sensitivity"), ("specificity", "specificity"), ("ppv", "PPV"), ("npv", "NPV")]
    rows = []
    for (variable, level, task, part), rows_ in frame.groupby(
        ["variable", "level", "task", "part"], sort=False, dropna=False
    ):
        if part == MACRO:
            continue
        look = {r["metric"]: r for _, r in rows_.iterrows()}
        prev = look.get("prevalence")
        n = int(prev["n"]) if prev is not None else 0
        small = any(r["ci"] == "too small" for r in look.values())
        cells = [
            str(variable),
            str(level),
            _part_label(str(task), str(part)),
            str(n),
            "-" if prev is None else _num(prev["estimate"]),
        ]
        cells += ["-" if m not in look else _cell(look[m]) for m, _ in metrics]
        cells.append("too small for intervals" if small else "")
        rows.append(cells)
    columns = ["variable", "level", "task", "n", "prevalence", *(label for _, label in metrics), "note"]
    return Table(columns, rows, numeric=[False, False, False, True, True] + [True] * len(metrics) + [False])


# ---------------------------------------------------------------------------------------------------- figures


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


def clinical_images(result: ClinicalResult, prefix: str = "") -> dict[str, tuple[bytes, str]]:
    """ROC + PR, calibration and decision-curve PNGs per classification task."""
    from mmtune.analysis.clinical.plots import calibration_figure, decision_figure, roc_pr_figure

    out: dict[str, tuple[bytes, str]] = {}
    bins = result.settings.ece_bins
    for name, task in result.tasks.items():
        curves = []
        operating: dict[str, tuple[float, float]] = {}
        look = _lookup(result.table)
        for comp in components(result.frame, task):
            keep = comp.y >= 0
            label = comp.part or name
            curves.append((label, comp.y[keep], comp.p[keep]))
            sens, spec = look.get((name, comp.part, "sensitivity")), look.get((name, comp.part, "specificity"))
            if sens is not None and spec is not None:
                operating[label] = (1.0 - float(spec["estimate"]), float(sens["estimate"]))
        if not any(np.unique(y).size == 2 for _, y, _ in curves):
            continue
        slug = prefix + _slug(name)
        where = result.evaluated
        dot = "; dots: the operating point fixed on validation" if operating else ""
        out[f"roc_pr_{slug}.png"] = (
            roc_pr_figure(name, curves, operating),
            f"ROC and PR curves, {name} ({where}{dot})",
        )
        out[f"calibration_{slug}.png"] = (
            calibration_figure(name, curves, bins),
            f"Reliability diagram, {name} ({where}; {bins} equal-width bins, marker size ~ patients)",
        )
        out[f"decision_{slug}.png"] = (decision_figure(name, curves), f"Decision curve, {name} ({where})")
    return out


# ---------------------------------------------------------------------------------------------------- blocks


def clinical_blocks(result: ClinicalResult, images: dict[str, tuple[bytes, str]], level: int = 2) -> list[Block]:
    s = result.settings
    blocks: list[Block] = [Heading("Discrimination and calibration", level)]
    blocks.append(
        Paragraph(
            f"On {result.evaluated}. AUROC with a DeLong interval; every other interval is a {s.n_boot}-resample "
            f"patient bootstrap (stratified by the label), {s.level:.0%} level. ECE over {s.ece_bins} equal-width "
            "bins. Calibration intercept: a in logit P(y) = a + logit(p) (0 ideal; < 0: risks over-estimated); "
            "slope: b in logit P(y) = a + b logit(p) (1 ideal; < 1: predictions too extreme). Multi-class tasks: "
            "each class one-vs-rest, and the macro mean."
        )
    )
    blocks.append(discrimination_table(result))
    blocks.append(Heading("Operating point", level))
    blocks.append(
        Paragraph(
            f"Threshold fixed on {result.threshold_source}, applied unchanged here (a prediction >= threshold is "
            "positive). Sensitivity at fixed specificity and specificity at fixed sensitivity are read off this "
            "set's ROC curve."
        )
    )
    blocks += [Paragraph(n) for n in result.notes]
    table = operating_table(result)
    if table is not None:
        blocks.append(table)
    for name in [n for n in images if n.startswith("roc_pr_")]:
        blocks.append(Image(name, images[name][1]))
    for name in [n for n in images if n.startswith("calibration_")]:
        blocks.append(Image(name, images[name][1]))
    blocks.append(Heading("Decision-curve analysis", level))
    blocks.append(
        Paragraph(
            "Net benefit = TP/n - FP/n x pt/(1-pt) of treating patients whose predicted risk is >= pt, beside "
            "treating all (in brackets) and treating none (0); the model helps only where it beats both."
        )
    )
    table = net_benefit_table(result)
    if table is not None:
        blocks.append(table)
    for name in [n for n in images if n.startswith("decision_")]:
        blocks.append(Image(name, images[name][1]))
    blocks.append(Heading("Hospitals and subgroups", level))
    table = subgroup_table(result)
    if table is None:
        blocks.append(Paragraph("No hospital column with more than one hospital and no subgroups defined."))
    else:
        blocks.append(
            Paragraph(
                f"Each hospital (the card's group) and each subgroup of clinical.subgroups; the operating threshold "
                f"is the overall one. Levels with fewer than {s.min_subgroup} patients or fewer than 2 patients of "
                "a class are shown without intervals."
            )
        )
        blocks.append(table)
    return blocks
