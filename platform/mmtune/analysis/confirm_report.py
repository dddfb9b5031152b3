"""The confirmation report: ``results/<study>_confirm/confirm/`` (``report.md``, ``report.html``, PNGs, the
tables as Parquet) and ``results/<study>_confirm/test_predictions.parquet`` (the fold-model ensembles' test
predictions). Written beside and renamed into place; the same results give the same bytes (fixed bootstrap
seeds, PNGs without run-dependent metadata). Test figures are labelled "held out, not used for selection"."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmtune.analysis.confirm import HELD_OUT, ConfirmAnalysis, analyse_confirm, metric_label, write_tables
from mmtune.analysis.findings import p_text
from mmtune.analysis.html import Block, Bullets, Heading, Image, Paragraph, Table, Warning, to_html, to_markdown
from mmtune.analysis.plots import PALETTE, png_bytes, roc_figure
from mmtune.analysis.task_metrics import detect_tasks, roc_panels
from mmtune.atomic import atomic_directory, atomic_write_bytes
from mmtune.results_files import CONFIRM_REPORT_DIR, CONFIRM_STUDY_FILE, TEST_PREDICTIONS_FILE


@dataclass(frozen=True)
class ConfirmReport:
    out: Path
    markdown: Path
    html: Path
    predictions: Path
    analysis: ConfirmAnalysis


def _f(value: Any, digits: int = 3) -> str:
    if value is None or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
        return "-"
    return f"{float(value):.{digits}f}"


def _p(value: Any) -> str:
    if value is None or not math.isfinite(float(value)):
        return "-"
    return "<0.001" if float(value) < 0.001 else f"{float(value):.3f}"


# ---------------------------------------------------------------------------------------------------- figures


def test_auroc_figure(result: ConfirmAnalysis) -> bytes:
    """Test AUROC with its 95 % CI per configuration (one panel per task)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    scores = result.test_scores
    tasks = list(dict.fromkeys(scores["task"]))
    n = max(1, len(tasks))
    labels = [result.labels.get(c, c) for c in result.order]
    left = 0.3 + 0.062 * max((len(x) for x in labels), default=10)
    width, height = left + 3.4 * n, 0.45 * len(result.order) + 1.3
    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    fig.subplots_adjust(left=left / width, right=0.97, bottom=0.9 / height, top=1 - 0.55 / height, wspace=0.15)
    fig.suptitle(f"Test AUROC with 95 % CI ({HELD_OUT})", fontsize=9)
    for i, task in enumerate(tasks):
        ax = fig.add_subplot(1, n, i + 1)
        part = scores[scores["task"] == task].set_index("config")
        for j, config in enumerate(result.order):
            if config not in part.index:
                continue
            row = part.loc[config]
            y = len(result.order) - 1 - j
            if math.isfinite(row["lo"]) and math.isfinite(row["hi"]):
                ax.plot([row["lo"], row["hi"]], [y, y], color=PALETTE[j % len(PALETTE)], lw=1.8)
            ax.plot([row["auroc"]], [y], "o", color=PALETTE[j % len(PALETTE)], ms=4)
        ax.axvline(0.5, color="0.7", lw=0.8, ls="--")
        ax.set_xlim(0, 1)
        ax.set_yticks(range(len(result.order)))
        ax.set_yticklabels(list(reversed(labels)) if i == 0 else [], fontsize=7)
        ax.set_title(f"{task} (n = {int(part['n'].max()) if len(part) else 0})", fontsize=8)
        ax.set_xlabel("AUROC", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
    return png_bytes(fig)


def test_roc_image(result: ConfirmAnalysis) -> bytes | None:
    """ROC curves of the fold-model ensembles on the test patients (one-vs-rest panels for multiclass tasks)."""
    preds = result.test_predictions
    if preds.empty:
        return None
    tasks = detect_tasks(list(preds.columns), dict(preds.dtypes), preds.attrs.get("mmtune_tasks"))
    panels: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for config in result.order:
        part = preds[preds["config"] == config]
        for task in tasks.values():
            for title, y, s in roc_panels(part, task):
                panels.setdefault(f"{title} ({HELD_OUT})", []).append((config, y, s))
    if not panels:
        return None
    return roc_figure(list(panels.items()))


# ---------------------------------------------------------------------------------------------------- document


def blocks(result: ConfirmAnalysis, images: dict[str, str]) -> list[Block]:
    data, meta = result.data, result.meta
    out: list[Block] = [Heading(f"mmtune confirm: {meta.get('study', data.name)}", 1)]
    out += [Warning(p) for p in data.problems]
    out.append(
        Paragraph(
            f"The top configurations of search `{meta.get('study')}` (ranked by the search's `{meta.get('metric')}` on "
            f"its validation patients) re-trained at the search's full budget as an ablation over "
            f"{data.replication_phrase()} (stratified k-fold of the non-test patients, the same folds and seeds for "
            f"every configuration), then each scored once on the held-out test split. Rerun or grow it with "
            f"`mmtune ablate {data.root / CONFIRM_STUDY_FILE} --results {data.root.parent} --resume`."
        )
    )
    out += [Heading("Findings"), Bullets(result.sentences)]

    out.append(Heading("Configurations"))
    rows = []
    board = result.board[result.board["metric"] == result.primary].set_index("config")
    for rank, config in enumerate(result.order, start=1):
        level = next((lv for lv in meta.get("levels", []) if lv["name"] == config), {})
        row = board.loc[config] if config in board.index else None
        rows.append(
            [
                str(rank),
                result.labels.get(config, config),
                str(level.get("role", "")),
                str(level.get("search_rank") or "-"),
                _f(level.get("search_value")),
                _f(row["mean"]) if row is not None else "-",
                f"[{_f(row['lo'])}, {_f(row['hi'])}]" if row is not None else "-",
                str(int(row["n_splits"])) if row is not None else "0",
            ]
        )
    out.append(
        Table(
            [
                "CV rank",
                "configuration",
                "role",
                "search rank",
                f"search {meta.get('metric')}",
                f"CV {metric_label(result.primary)}",
                "95 % CI",
                "splits",
            ],
            rows,
            (True, False, False, True, True, True, False, True),
        )
    )

    out.append(Heading("Cross-validation: the winner against each other configuration"))
    out.append(
        Paragraph(
            "Paired per split (fold x seed): winner minus the other configuration. Nadeau-Bengio corrected resampled "
            "t-test (primary; folds share training patients), Wilcoxon signed-rank beside it; Holm over every row."
        )
    )
    tests = result.cv_tests
    if len(tests):
        out.append(
            Table(
                ["metric", "a", "b", "mean a", "mean b", "a - b", "95 % CI", "p", "p (Holm)", "p (Wilcoxon)", "splits"],
                [
                    [
                        metric_label(r["metric"]),
                        r["a"],
                        r["b"],
                        _f(r["mean_a"]),
                        _f(r["mean_b"]),
                        _f(r["diff"]),
                        f"[{_f(r['lo'])}, {_f(r['hi'])}]",
                        _p(r["p"]),
                        _p(r["p_holm"]),
                        _p(r["p_wilcoxon"]),
                        str(int(r["n_splits"])),
                    ]
                    for _, r in tests.iterrows()
                ],
                (False, False, False, True, True, True, False, True, True, True, True),
            )
        )
    else:
        out.append(Paragraph("No pair of configurations shares a split with both finished."))

    out.append(Heading(f"Held-out test split ({HELD_OUT})"))
    out.append(
        Paragraph(
            "Each configuration is scored once on the test patients by its fold-model ensemble: the mean predicted "
            "probability of its cross-validation models (chosen over re-training on all non-test patients: the fold "
            "models exist already, they are the models whose CV performance is reported, and a re-fit would have no "
            "validation patients left to pick its epoch). AUROC 95 % CI: DeLong (binary), class-stratified bootstrap "
            "of the macro one-vs-rest AUROC (multiclass)."
        )
    )
    scores = result.test_scores
    if len(scores):
        out.append(
            Table(
                ["task", "configuration", "test AUROC", "95 % CI", "patients", "models", "CI method"],
                [
                    [
                        r["task"],
                        result.labels.get(r["config"], r["config"]),
                        _f(r["auroc"]),
                        f"[{_f(r['lo'])}, {_f(r['hi'])}]",
                        str(r["n"]),
                        str(r["models"]),
                        r["method"],
                    ]
                    for _, r in scores.iterrows()
                ],
                (False, False, True, False, True, True, False),
            )
        )
    test = result.test_tests
    if len(test):
        out.append(
            Paragraph("The winner against the runner-up and the baseline on the same test patients; Holm over rows.")
        )
        out.append(
            Table(
                ["task", "a", "b", "role of b", "AUROC a", "AUROC b", "a - b", "95 % CI", "test", "p", "p (Holm)"],
                [
                    [
                        r["task"],
                        r["a"],
                        r["b"],
                        r["role"],
                        _f(r["auc_a"]),
                        _f(r["auc_b"]),
                        _f(r["diff"]),
                        f"[{_f(r['lo'])}, {_f(r['hi'])}]",
                        r["method"],
                        _p(r["p"]),
                        _p(r["p_holm"]),
                    ]
                    for _, r in test.iterrows()
                ],
                (False, False, False, False, True, True, True, False, False, True, True),
            )
        )
    else:
        out.append(Paragraph(f"No test comparison: {p_text(float('nan'))} (fewer than two configurations scored)."))
    for name, caption in images.items():
        out.append(Image(name, caption))
    out.append(
        Paragraph(
            f"Full ablation report (effects against the baseline level, CD diagram, robustness): "
            f"`mmtune report {data.root}`."
        )
    )
    return out


def write_confirm_report(root: str | Path) -> ConfirmReport:
    """Analyse ``root`` (a confirmation results directory) and write its report and test predictions."""
    result = analyse_confirm(root)
    data_root = result.data.root
    buffer = io.BytesIO()
    result.test_predictions.to_parquet(buffer, index=False)
    predictions = atomic_write_bytes(data_root / TEST_PREDICTIONS_FILE, buffer.getvalue())
    out = data_root / CONFIRM_REPORT_DIR
    with atomic_directory(out, overwrite=True) as tmp:
        images: dict[str, str] = {}
        if len(result.test_scores):
            (tmp / "test_auroc.png").write_bytes(test_auroc_figure(result))
            images["test_auroc.png"] = f"Test AUROC with 95 % CI ({HELD_OUT})"
        roc = test_roc_image(result)
        if roc is not None:
            (tmp / "test_roc.png").write_bytes(roc)
            images["test_roc.png"] = f"ROC curves on the test patients ({HELD_OUT})"
        write_tables(result, tmp)
        document = blocks(result, images)
        (tmp / "report.md").write_text(to_markdown(document), encoding="utf-8")
        html = to_html(
            document, f"mmtune confirm: {result.meta.get('study')}", {n: (tmp / n).read_bytes() for n in images}
        )
        (tmp / "report.html").write_text(html, encoding="utf-8")
        tmp.chmod(0o755)
        for path in tmp.iterdir():
            path.chmod(0o644)
    return ConfirmReport(out, out / "report.md", out / "report.html", predictions, result)
