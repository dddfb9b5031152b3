"""``mmtune report RESULTS_DIR``: the study's numbers with honest intervals and tests, as Markdown + HTML + PNG.

Works on tuning and ablation results. Every number is recomputed from the per-patient predictions
(``mmtune.analysis.results``), compared with ``mmtune.analysis.ablation_stats`` and put into words by
``mmtune.analysis.findings``. The output directory (default ``RESULTS_DIR/report``) holds ``report.md``,
``report.html`` (self-contained) and the PNGs; it is written beside and renamed into place, and the same results
give byte-identical files (no timestamps, fixed seeds, PNGs without run-dependent metadata).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmtune.analysis import ablation_stats as ab
from mmtune.analysis.delta_m import delta_m
from mmtune.analysis.findings import (
    ALPHA,
    effect_sentences,
    interval,
    num,
    p_text,
    rank_sentence,
    robustness_sentence,
    transfer_sentences,
)
from mmtune.analysis.html import (
    Block,
    Bullets,
    Code,
    Heading,
    Image,
    Link,
    Paragraph,
    Table,
    Warning,
    to_html,
    to_markdown,
)
from mmtune.analysis.results import StudyData, load_study_data, split_metrics
from mmtune.analysis.task_metrics import label_of, roc_panels
from mmtune.atomic import atomic_directory
from mmtune.tasks import CLASSIFICATION_KINDS

AIM_UI = "http://127.0.0.1:43800"
TOP_ROC = 3


@dataclass
class Analysis:
    """Every table of the report, computed once (the CLI's main table reuses it)."""

    data: StudyData
    splits: pd.DataFrame
    sizes: ab.Sizes | None
    board: pd.DataFrame
    effects: pd.DataFrame
    delong: pd.DataFrame
    ranks: list[ab.RankTest]
    robust: pd.DataFrame
    sentences: list[str] = field(default_factory=list)
    search: Any = None  # tuning studies: mmtune.analysis.search_summary.SearchAnalysis
    clinical: Any = None  # tuning studies: mmtune.analysis.clinical.study.StudyClinical (best configuration)
    delta_m: pd.DataFrame = field(default_factory=pd.DataFrame)  # Δm per multi-task cell (mmtune.analysis.delta_m)
    transfer: pd.DataFrame = field(default_factory=pd.DataFrame)  # per task: change vs single-task, negative transfer


def analyse(root: str | Path) -> Analysis:
    data = load_study_data(root)
    splits = split_metrics(data)
    sizes = ab.correction_sizes(data, splits[splits["dropped"] == ""] if len(splits) else splits)
    board = ab.leaderboard(data, splits, sizes)
    if data.kind == "ablation":
        effects = ab.effects(data, splits, sizes)
        delong = ab.pooled_delong(data, effects)
    else:
        effects = pd.DataFrame()
        delong = ab.tuning_delong(data, board) if len(board) else pd.DataFrame()
    ranks = ab.rank_tests(data, splits) if data.kind == "ablation" else []
    robust = ab.robustness(data, splits, sizes)
    result = Analysis(data, splits, sizes, board, effects, delong, ranks, robust)
    if data.kind == "ablation":
        result.delta_m, result.transfer = delta_m(data, splits, sizes)
    total = len(set(data.trials["split_id"])) if len(data.trials) else 0
    result.sentences = effect_sentences(effects, data.design, data.replication_phrase(), total)
    result.sentences += [rank_sentence(test) for test in ranks]
    if data.kind == "tuning" and len(delong):
        result.sentences += [_tuning_sentence(row) for _, row in delong.iterrows()]
    result.sentences += [robustness_sentence(row, data.replication_phrase()) for _, row in robust.iterrows()]
    result.sentences += transfer_sentences(result.delta_m, result.transfer, data.replication_phrase())
    if data.kind == "tuning":
        from mmtune.analysis.search_summary import analyse_search

        result.search = analyse_search(data.root)
        from mmtune.analysis.clinical.study import study_clinical

        result.clinical = study_clinical(data)
    return result


def _tuning_sentence(row: Any) -> str:
    verdict = "differs from" if row["p_holm"] < ALPHA else "is not distinguishable from"
    return (
        f"On the {int(row['n'])} shared validation patients, the best {row['task']} AUROC ({row['a']}, "
        f"{num(row['auc_a'])}) {verdict} {row['b']} ({num(row['auc_b'])}): difference {num(row['diff'], True)} "
        f"{interval(row['lo'], row['hi'], True)} (DeLong, {p_text(row['p_holm'])}, Holm)."
    )


# ---------------------------------------------------------------------------------------------------- tables


def _fmt(value: Any, signed: bool = False, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return num(float(value), signed, digits)


def _p(value: Any) -> str:
    """A p-value cell: three decimals, ``<0.001`` below that."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return "<0.001" if float(value) < 0.001 else f"{float(value):.3f}"


def _aim_links(hashes: list[str], limit: int = 6) -> list[Link | str]:
    links: list[Link | str] = [Link(h[:8], f"{AIM_UI}/runs/{h}") for h in hashes[:limit]]
    if len(hashes) > limit:
        links.append(f"+{len(hashes) - limit}")
    return links


def leaderboard_table(analysis: Analysis, metric: str) -> Table:
    board = analysis.board[analysis.board["metric"] == metric]
    rows = []
    for _, row in board.iterrows():
        links = _aim_links(list(row["aim"]))
        aim_cell: Any = " ".join(x.text if isinstance(x, Link) else x for x in links) or "-"
        if links and isinstance(links[0], Link):
            aim_cell = Link(aim_cell, links[0].href)
        rows.append(
            [
                str(int(row["rank"])),
                str(row["label"]),
                _fmt(row["mean"]),
                f"[{_fmt(row['lo'])}, {_fmt(row['hi'])}]",
                _fmt(row["sd"]),
                str(int(row["n_splits"])),
                _fmt(row["avg_rank"], digits=2),
                str(row["ci"]),
                aim_cell,
            ]
        )
    columns = ["rank", "configuration", "mean", "95 % CI", "sd", "splits", "avg rank", "CI over", "Aim runs"]
    return Table(columns, rows, numeric=[True, False, True, False, True, True, True, False, False])


def effects_table(analysis: Analysis, kind: str) -> Table | None:
    frame = analysis.effects[analysis.effects["kind"] == kind] if len(analysis.effects) else analysis.effects
    if frame.empty:
        return None
    rows = []
    for _, row in frame.iterrows():
        what = f"{row['factor']}: {row['level']} vs {row['baseline']}"
        if kind == "interaction":
            what += f" x ({row['other']})"
        rows.append(
            [
                what,
                label_of(str(row["metric"])),
                _fmt(row["diff"], signed=True),
                f"[{_fmt(row['lo'], True)}, {_fmt(row['hi'], True)}]",
                _p(row["p"]),
                _p(row["p_holm"]),
                _p(row["p_bh"]),
                _p(row["p_wilcoxon"]),
                _fmt(row["d_z"], digits=2),
                str(int(row["n_splits"])),
            ]
        )
    columns = [
        "comparison (a vs b)",
        "metric",
        "a - b",
        "95 % CI",
        "p (NB t)",
        "p Holm",
        "p BH",
        "p Wilcoxon",
        "d_z",
        "splits",
    ]
    return Table(columns, rows, numeric=[False, False, True, False, True, True, True, True, True, True])


def delong_table(analysis: Analysis) -> Table | None:
    frame = analysis.delong
    if frame.empty:
        return None
    rows = []
    for _, row in frame.iterrows():
        rows.append(
            [
                f"{row['a']} vs {row['b']}",
                str(row["task"]),
                "-" if int(row["seed"]) < 0 else str(int(row["seed"])),
                str(int(row["n"])),
                _fmt(row["auc_a"]),
                _fmt(row["auc_b"]),
                _fmt(row["diff"], True),
                f"[{_fmt(row['lo'], True)}, {_fmt(row['hi'], True)}]",
                _p(row["p"]),
                _p(row["p_holm"]) if "p_holm" in row else "-",
            ]
        )
    columns = ["a vs b", "task", "seed", "patients", "AUROC a", "AUROC b", "a - b", "95 % CI", "p", "p Holm"]
    return Table(columns, rows, numeric=[False, False, True, True, True, True, True, False, True, True])


def robustness_table(analysis: Analysis) -> Table | None:
    frame = analysis.robust
    if frame.empty:
        return None
    rows = [
        [
            str(r["config"]),
            f"without {r['dropped']}",
            label_of(str(r["metric"])),
            _fmt(r["full"]),
            _fmt(r["without"]),
            _fmt(r["change"], True),
            f"[{_fmt(r['lo'], True)}, {_fmt(r['hi'], True)}]",
            _p(r["p"]),
            str(int(r["n_splits"])),
        ]
        for _, r in frame.iterrows()
    ]
    columns = ["configuration", "test-time input", "metric", "full", "without", "change", "95 % CI", "p", "splits"]
    return Table(columns, rows, numeric=[False, False, False, True, True, True, False, True, True])


def delta_m_table(analysis: Analysis) -> Table | None:
    frame = analysis.delta_m
    if frame.empty:
        return None
    rows = [
        [
            str(r["config"]),
            str(r["baselines"]),
            _fmt(r["delta_m"], True, 2),
            f"[{_fmt(r['lo'], True, 2)}, {_fmt(r['hi'], True, 2)}]",
            f"[{_fmt(r['boot_lo'], True, 2)}, {_fmt(r['boot_hi'], True, 2)}]",
            _p(r["p"]),
            str(int(r["n_splits"])),
        ]
        for _, r in frame.iterrows()
    ]
    columns = ["multi-task cell", "single-task cells", "Δm (%)", "95 % CI (t)", "95 % CI (bootstrap)", "p", "splits"]
    return Table(columns, rows, numeric=[False, False, True, False, False, True, True])


def transfer_table(analysis: Analysis) -> Table | None:
    frame = analysis.transfer
    if frame.empty:
        return None
    rows = [
        [
            str(r["config"]),
            label_of(str(r["metric"])),
            str(r["baseline"]),
            _fmt(r["mtl"]),
            _fmt(r["single"]),
            _fmt(r["rel_change"], True, 2),
            f"[{_fmt(r['lo'], True)}, {_fmt(r['hi'], True)}]",
            _p(r["p"]),
            "yes" if r["negative_transfer"] else "no",
        ]
        for _, r in frame.iterrows()
    ]
    columns = [
        "multi-task cell",
        "metric",
        "single-task cell",
        "multi",
        "single",
        "change (%)",
        "diff 95 % CI",
        "p",
        "negative transfer",
    ]
    return Table(columns, rows, numeric=[False, False, False, True, True, True, False, True, False])


def missing_table(data: StudyData) -> Table | None:
    frame = data.missing
    if frame is None or frame.empty:
        return None
    rows = []
    for _, row in frame.sort_values(["state", "key"], kind="mergesort").iterrows():
        error = row.get("error")
        rows.append(
            [
                str(row["key"]),
                str(row["state"]),
                str(row["status"]),
                str(error) if isinstance(error, str) and error else "-",
            ]
        )
    return Table(["trial", "state", "Tune status", "error"], rows)


# ---------------------------------------------------------------------------------------------------- figures


def roc_images(analysis: Analysis) -> dict[str, tuple[bytes, str]]:
    """Per class task: ROC curves of the top configurations (pooled evaluation predictions of the first seed)."""
    from mmtune.analysis.plots import roc_figure

    data = analysis.data
    out: dict[str, tuple[bytes, str]] = {}
    seed = data.seeds[0] if data.seeds else None
    for name, task in data.tasks.items():
        if task.kind not in CLASSIFICATION_KINDS or f"{name}/auroc" not in data.metrics:
            continue
        board = analysis.board[analysis.board["metric"] == f"{name}/auroc"].sort_values("rank", kind="mergesort")
        curves: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        for config in board["config"].head(TOP_ROC):
            pooled = ab.pooled_predictions(data, str(config), seed if data.kind == "ablation" else None, task)
            if pooled is None:
                continue
            for title, y, score in roc_panels(pooled, task):
                curves.setdefault(title, []).append((data.config_labels.get(str(config), str(config)), y, score))
        if curves:
            png = roc_figure(list(curves.items()))
            where = "pooled out-of-fold predictions, seed " + str(seed) if data.kind == "ablation" else "validation"
            out[f"roc_{_slug(name)}.png"] = (
                png,
                f"ROC curves of the top {TOP_ROC} configurations for {name} ({where})",
            )
    return out


def spread_images(analysis: Analysis) -> dict[str, tuple[bytes, str]]:
    from mmtune.analysis.plots import spread_figure

    out: dict[str, tuple[bytes, str]] = {}
    for metric in analysis.data.metrics:
        table = ab.pivot(analysis.splits, metric)
        if table.empty or table.shape[0] < 2:
            continue
        values = {c: table[c].dropna().to_numpy() for c in analysis.data.configs if c in table.columns}
        png = spread_figure(f"{label_of(metric)} per split", values, label_of(metric))
        out[f"spread_{_slug(metric)}.png"] = (png, f"{label_of(metric)} of every split (fold x seed) per configuration")
    return out


def effects_image(analysis: Analysis) -> dict[str, tuple[bytes, str]]:
    from mmtune.analysis.plots import effects_figure

    frame = analysis.effects
    if frame.empty:
        return {}
    rows = []
    for _, row in frame.iterrows():
        label = f"{label_of(str(row['metric']))}: {row['factor']} {row['level']} vs {row['baseline']}"
        if row["kind"] == "interaction":
            label += f" x {row['other']}"
        rows.append((label, float(row["diff"]), float(row["lo"]), float(row["hi"]), bool(row["p_holm"] < ALPHA)))
    return {"effects.png": (effects_figure(rows, "Effects (paired across splits)"), "Effects with 95 % CIs")}


def cd_images(analysis: Analysis, tmp: Path) -> dict[str, tuple[bytes, str]]:
    from mmtune.analysis.cd_diagram import cd_diagram

    out: dict[str, tuple[bytes, str]] = {}
    for test in analysis.ranks:
        name = f"cd_{_slug(test.metric)}.png"
        path = cd_diagram(test.nemenyi.avg_ranks, test.nemenyi.cd, tmp / name, title=label_of(test.metric))
        out[name] = (path.read_bytes(), f"Critical-difference diagram, {label_of(test.metric)} (Nemenyi, alpha 0.05)")
    return out


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_")


# ---------------------------------------------------------------------------------------------------- document


def state_counts(data: StudyData) -> str:
    """``4 usable, 1 diverged, 2 errored`` (usable = complete with finite metrics; the other states when any)."""
    states = data.trials["state"].value_counts().to_dict() if "state" in data.trials else {}
    parts = [f"{len(data.usable)} usable"]
    parts += [f"{states[s]} {s}" for s in ("diverged", "errored", "unfinished", "missing") if states.get(s)]
    return ", ".join(parts)


def _summary(data: StudyData, analysis: Analysis) -> list[Block]:
    planned = len(data.trials)
    counts = state_counts(data)
    if data.kind == "ablation":
        factors = "; ".join(
            f"{f}: {', '.join(lv)} (baseline {data.baselines.get(f, lv[0])})" for f, lv in data.factors.items()
        )
        text = (
            f"Ablation study **{data.name}** ({data.design} design; factors {factors}): {len(data.configs)} "
            f"configurations x {data.replication_phrase()} ({data.scheme}); metrics from the `{data.eval_split}` "
            f"split of each trial; {planned} planned trials: {counts} (usable = complete, finite metrics)."
        )
    else:
        text = (
            f"Tuning study **{data.name}**: {planned} trials: {counts} (usable = complete, finite metrics); "
            "metrics from each trial's "
            f"`{data.eval_split}` predictions (one split: intervals are over patients)."
        )
    blocks: list[Block] = [Paragraph(text)]
    if analysis.sizes is not None:
        note = " (assumed from the number of folds)" if analysis.sizes.assumed else ""
        blocks.append(
            Paragraph(
                f"Split-level intervals and tests use the Nadeau-Bengio corrected resampled t-test with "
                f"n_train = {analysis.sizes.n_train:.1f} and n_eval = {analysis.sizes.n_eval:.1f} patients per "
                f"split{note}; p-values are Holm-adjusted over all {len(analysis.effects)} comparisons of the study "
                "(Benjamini-Hochberg beside them)."
            )
        )
    wall = sum(float(r.get("wall_s", 0) or 0) for r in data.runs)
    if wall:
        blocks.append(
            Paragraph(f"Wall time of the study's runs: {wall / 60:.1f} min ({len(data.runs)} invocation(s)).")
        )
    return blocks


def build_blocks(analysis: Analysis, images: dict[str, tuple[bytes, str]]) -> list[Block]:
    data = analysis.data
    blocks: list[Block] = [Heading(f"mmtune report: {data.name}", 1)]
    blocks += [Warning(p) for p in data.problems]
    if analysis.search is not None:
        from mmtune.analysis.search_summary import opening_blocks

        blocks += opening_blocks(analysis.search)
        blocks.append(Heading("Study"))
    blocks += _summary(data, analysis)

    blocks.append(Heading("Findings"))
    blocks.append(Bullets(analysis.sentences) if analysis.sentences else Paragraph("No comparison could be computed."))

    blocks.append(Heading("Leaderboard"))
    blocks.append(
        Paragraph(
            "Mean over splits (folds x seeds) with a 95 % interval (clipped to the metric's range); rank by mean "
            "(1 = best) and average rank over the splits all configurations share. With one split the interval is "
            "over patients."
        )
    )
    for metric in data.metrics:
        if len(analysis.board) and (analysis.board["metric"] == metric).any():
            blocks += [Heading(label_of(metric), 3), leaderboard_table(analysis, metric)]

    if data.kind == "ablation":
        blocks.append(Heading("Main effects and interactions"))
        blocks.append(
            Paragraph(
                "Each level against its factor's baseline, paired by split and averaged over the other factors' "
                "levels where both cells report the metric; interactions are difference-in-differences. Primary "
                "test: Nadeau-Bengio corrected t-test; Wilcoxon signed-rank beside it; d_z = mean / sd of the "
                "differences."
            )
        )
        for kind, title in (("main", "Main effects"), ("interaction", "Interactions")):
            table = effects_table(analysis, kind)
            if table is not None:
                blocks += [Heading(title, 3), table]
        if "effects.png" in images:
            blocks.append(Image("effects.png", images["effects.png"][1]))

    if data.kind == "ablation":
        blocks += _transfer_blocks(analysis)

    table = delong_table(analysis)
    if table is not None:
        title = "Pooled out-of-fold DeLong tests per seed" if data.kind == "ablation" else "DeLong tests (best vs next)"
        blocks += [
            Heading(title),
            Paragraph(
                "Patient-level paired ROC comparison of two configurations on the same patients (out-of-fold "
                "predictions pooled over the folds, or held-out groups, of one seed); it treats the trained models "
                "as fixed, so read it beside the split-level tests above. Holm over the rows of this table."
            ),
            table,
        ]

    if analysis.search is not None:
        from mmtune.analysis.search_summary import search_blocks

        blocks += search_blocks(analysis.search, images)

    blocks.append(Heading("Critical-difference diagrams (Friedman + Nemenyi)"))
    if analysis.ranks:
        for test in analysis.ranks:
            blocks.append(Paragraph(rank_sentence(test)))
            name = f"cd_{_slug(test.metric)}.png"
            if name in images:
                blocks.append(Image(name, images[name][1]))
    else:
        blocks.append(Paragraph("Needs >= 3 configurations sharing >= 2 complete splits of a metric; none here."))

    blocks.append(Heading("ROC curves"))
    rocs = [n for n in images if n.startswith("roc_")]
    blocks += [Image(n, images[n][1]) for n in rocs] or [Paragraph("No classification task with predictions.")]

    blocks.append(Heading("Per-split spread"))
    spreads = [n for n in images if n.startswith("spread_")]
    blocks += [Image(n, images[n][1]) for n in spreads] or [Paragraph("Needs >= 2 splits.")]

    blocks.append(Heading("Missing-modality robustness"))
    table = robustness_table(analysis)
    if table is not None:
        blocks += [
            Paragraph("Fusion models evaluated with clinical features removed at test time (zeroed, marked missing)."),
            table,
        ]
    else:
        blocks.append(
            Paragraph("No trial wrote predictions without a modality (no fusion model uses clinical features).")
        )

    blocks.append(Heading("Diverged, errored, unfinished and missing trials"))
    table = missing_table(data)
    if table is not None:
        blocks += [
            Paragraph(
                f"{len(data.missing)} planned trial(s) without usable results ({state_counts(data)}); a diverged "
                "trial's losses or scores became NaN or infinite, so none of its metrics count:"
            ),
            table,
        ]
    else:
        blocks.append(Paragraph("None: every planned trial finished with finite metrics and wrote its predictions."))

    if analysis.clinical is not None:
        blocks += analysis.clinical.blocks
    blocks += _aim_blocks(analysis)
    return blocks


def _transfer_blocks(analysis: Analysis) -> list[Block]:
    """Δm and negative transfer (only when the study has single-task cells to compare with)."""
    tasks = transfer_table(analysis)
    if tasks is None:
        return []
    blocks: list[Block] = [
        Heading("Multi-task gain (Δm) and negative transfer"),
        Paragraph(
            "Each multi-task cell against the single-task cell of each of its tasks (the closest in factor levels), "
            "paired by split. Δm = mean over tasks of the relative change of the task's metric, signed so that "
            "positive is better (Maninis et al. 2019; Vandenhende et al. 2021), in %; intervals over splits "
            "(Nadeau-Bengio t, and a percentile bootstrap). Negative transfer: the multi-task cell is worse on the "
            "task at p < 0.05 (corrected paired t-test of the difference)."
        ),
    ]
    table = delta_m_table(analysis)
    if table is not None:
        blocks.append(table)
    else:
        blocks.append(Paragraph("Δm needs a single-task cell for every task of a multi-task cell; none has all."))
    blocks.append(tasks)
    return blocks


def _aim_blocks(analysis: Analysis) -> list[Block]:
    data = analysis.data
    blocks: list[Block] = [Heading("Aim runs")]
    if data.aim_repo:
        blocks.append(Paragraph("Browse every trial's curves and parameters:"))
        blocks.append(Code(f"aim up --repo {data.aim_repo} --host 127.0.0.1"))
        if data.kind == "ablation":
            blocks.append(
                Paragraph(
                    f'In the Aim UI, one configuration\'s runs: `run.experiment == "{data.name}" and '
                    f'run.mmtune.cell == "<configuration>"` (runs are tagged study, cell, factor levels, fold, seed).'
                )
            )
    else:
        blocks.append(Paragraph("Aim tracking was off (tracking.aim_repo: null)."))
    rows = []
    for config, hashes in ab.aim_hashes(data).items():
        rows.append([data.config_labels.get(config, config), " ".join(hashes) or "-"])
    if rows:
        blocks.append(Table(["configuration", "Aim run hashes"], rows))
    return blocks


# ---------------------------------------------------------------------------------------------------- writing


@dataclass(frozen=True)
class ReportPaths:
    out: Path
    markdown: Path
    html: Path
    images: list[Path]
    search_sentences: list[str] = field(default_factory=list)  # tuning studies: what the search found


def write_report(root: str | Path, out: str | Path | None = None) -> ReportPaths:
    """Analyse ``root`` and write the report directory atomically (see the module docstring)."""
    analysis = analyse(root)
    out = Path(out) if out is not None else analysis.data.root / "report"
    with atomic_directory(out, overwrite=True) as tmp:
        images: dict[str, tuple[bytes, str]] = {}
        images.update(effects_image(analysis))
        images.update(cd_images(analysis, tmp))
        images.update(roc_images(analysis))
        images.update(spread_images(analysis))
        if analysis.search is not None:
            from mmtune.analysis.search_summary import search_images

            images.update(search_images(analysis.search))
        if analysis.clinical is not None:
            images.update(analysis.clinical.images)
        for name, (png, _) in images.items():
            (tmp / name).write_bytes(png)
        blocks = build_blocks(analysis, images)
        (tmp / "report.md").write_text(to_markdown(blocks), encoding="utf-8")
        html = to_html(blocks, f"mmtune report: {analysis.data.name}", {k: v[0] for k, v in images.items()})
        (tmp / "report.html").write_text(html, encoding="utf-8")
        tmp.chmod(0o755)  # mkdtemp / mkstemp create private files; a report is meant to be shared
        for path in tmp.iterdir():
            path.chmod(0o644)
    if analysis.search is not None:
        from mmtune.analysis.search_summary import write_search_files

        write_search_files(analysis.search, analysis.data.root)
    from mmtune.console import warn

    _log_aim_report(analysis, out)
    for problem in analysis.data.problems:
        warn(problem)
    sentences = analysis.search.sentences if analysis.search is not None else []
    return ReportPaths(out, out / "report.md", out / "report.html", sorted(out / n for n in images), sentences)


def _log_aim_report(analysis: Analysis, out: Path) -> None:
    """The study-level Aim run with the report's main tables (``mmtune.analysis.aim_report``); best effort."""
    from mmtune.analysis.aim_report import log_report_run
    from mmtune.console import warn

    data = analysis.data
    texts = [("findings", {}, to_markdown([Bullets(analysis.sentences)]) if analysis.sentences else "-")]
    for metric in data.metrics:
        table = leaderboard_table(analysis, metric)
        if table.rows:
            texts.append(("leaderboard", {"metric": metric}, to_markdown([Heading(label_of(metric), 3), table])))
    params: dict[str, Any] = {"kind": data.kind, "report": str(out / "report.md"), "trials": len(data.trials)}
    if analysis.clinical is not None:
        blocks = [b for b in analysis.clinical.blocks if not isinstance(b, Image)]
        texts.append(("best_configuration", {}, to_markdown(blocks)))
        params.update(best_trial=analysis.clinical.trial, best_split=analysis.clinical.evaluated_split)
        params.update({f"best/{k}": v for k, v in analysis.clinical.metrics.items()})
    try:
        log_report_run(data.aim_repo, data.name, data.root, texts, params)
    except Exception as exc:  # the report is written; Aim is a view of it
        warn(f"Aim report run not written ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")


def print_main_table(root: str | Path, console: Any) -> Analysis:
    """The main table (leaderboard of each metric + main effects, compact columns) and the findings."""
    from rich.table import Table as RichTable

    from mmtune.console import warn

    analysis = analyse(root)
    data = analysis.data
    for problem in data.problems:
        warn(problem)

    def show(table: Table, title: str, keep: tuple[str, ...]) -> None:
        index = [table.columns.index(c) for c in keep]
        rich = RichTable(title=title, title_justify="left")
        for i in index:
            rich.add_column(table.columns[i], justify="right" if table.numeric[i] else "left")
        for row in table.rows:
            rich.add_row(*(row[i].text if isinstance(row[i], Link) else str(row[i]) for i in index))
        console.print(rich)

    for metric in data.metrics:
        table = leaderboard_table(analysis, metric)
        if table.rows:
            title = f"{data.name}: {label_of(metric)} ({data.replication_phrase()})"
            show(table, title, ("rank", "configuration", "mean", "95 % CI", "splits"))
    main = effects_table(analysis, "main")
    if main is not None:
        keep = ("comparison (a vs b)", "metric", "a - b", "95 % CI", "p Holm", "p Wilcoxon", "splits")
        show(main, "main effects (paired across splits; Holm over the study)", keep)
    for sentence in analysis.sentences:
        console.print(f"- {sentence}", highlight=False, markup=False, soft_wrap=True)
    return analysis
