"""What a tuning study's search found, per searched dimension: computed once, put into sentences, report blocks,
figures and two Parquet files (``factors.parquet``, ``importance.parquet`` in ``results/<study>/``).

The sentences open the report (and are printed by ``mmtune report`` / at the end of ``mmtune tune``): the best
level of each dimension and whether one validation split can tell it from the next level. Every trial of a study
was scored on the same validation patients, so a level's interval is over the other dimensions' sampled values and
the trials' training noise, not over patients; a difference this split cannot resolve is what ``mmtune confirm``
re-tests on fresh splits.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from mmtune.analysis.findings import num, p_text
from mmtune.analysis.html import Block, Bullets, Heading, Image, Paragraph, Table
from mmtune.analysis.search_data import CATEGORICAL, SearchInputs, load_search_inputs
from mmtune.analysis.search_factors import (
    Comparison,
    compare_best,
    factors,
    slopes,
    values_at,
)
from mmtune.analysis.search_importance import METHODS, importance, ranked
from mmtune.atomic import atomic_write_bytes
from mmtune.results_files import FACTORS_FILE, IMPORTANCE_FILE

CONFIRM = "run `mmtune confirm`"
METHOD_NAMES = {"fanova": "fANOVA", "ped_anova": "PED-ANOVA"}


@dataclass
class SearchAnalysis:
    inputs: SearchInputs
    budget: int | None
    factors: pd.DataFrame
    slopes: pd.DataFrame
    importance: pd.DataFrame
    importance_reason: str | None
    comparisons: list[Comparison]
    sentences: list[str] = field(default_factory=list)

    @property
    def scores(self) -> pd.Series:
        return values_at(self.inputs, self.budget)


def analyse_search(root: str | Path) -> SearchAnalysis | None:
    """The search analysis of a tuning results directory (None where it has no trials or metric)."""
    inputs = load_search_inputs(root)
    if inputs is None:
        return None
    table, budget = factors(inputs)
    scores = values_at(inputs, budget)
    imp, reason = importance(inputs, scores) if len(scores) else (pd.DataFrame(), "no usable trial")
    if imp.empty:
        from mmtune.analysis.search_importance import IMPORTANCE_COLUMNS

        imp = pd.DataFrame(columns=IMPORTANCE_COLUMNS)
    result = SearchAnalysis(inputs, budget, table, slopes(inputs, budget), imp, reason, compare_best(inputs, table))
    result.sentences = search_sentences(result)
    return result


# ---------------------------------------------------------------------------------------------------- sentences


def _budget_phrase(analysis: SearchAnalysis) -> str:
    inputs = analysis.inputs
    if analysis.budget is None:
        return "each at its best reported value (no per-epoch metrics: budgets differ between trials)"
    rungs = f"; {inputs.rungs.describe()}" if inputs.rungs is not None else ""
    return f"each scored at epoch {analysis.budget}, the largest epoch every usable trial reached{rungs}"


def _level_sentence(analysis: SearchAnalysis, c: Comparison) -> str:
    inputs = analysis.inputs
    row = analysis.factors[
        (analysis.factors["dimension"] == c.dimension)
        & analysis.factors["common"]
        & (analysis.factors["level"] == c.best)
    ].iloc[0]
    dimension = next(d for d in inputs.dimensions if d.key == c.dimension)
    what = "level" if dimension.kind == CATEGORICAL else "bin"
    ci = f" [{num(row['ci_lo'], digits=3)}, {num(row['ci_hi'], digits=3)}]" if math.isfinite(row["ci_lo"]) else ""
    head = (
        f"{inputs.name_of(c.dimension)}: best {what} `{c.best}` ({inputs.metric} {num(c.best_mean, digits=3)}{ci}, "
        f"{c.n_best} trial{'s' if c.n_best != 1 else ''})"
    )
    if c.runner_up is None and dimension.kind != CATEGORICAL:
        return f"{head}; too few trials with it active to split into bins: nothing to compare it with."
    if c.runner_up is None:
        return f"{head}; the only {what} with usable trials: nothing to compare it with."
    head += f" vs `{c.runner_up}` ({num(c.next_mean, digits=3)}, {c.n_next} trial{'s' if c.n_next != 1 else ''}): "
    head += f"difference {num(c.diff, True, 3)}"
    if not math.isfinite(c.p):
        verdict = f"too few trials per {what} to test; cannot tell them apart on one validation split; {CONFIRM}."
    elif c.separable:
        verdict = (
            f"Welch {p_text(c.p)}: ahead on this one validation split (the split that also picked it); "
            f"{CONFIRM} to check on fresh splits."
        )
    else:
        verdict = f"Welch {p_text(c.p)}: cannot tell apart on one validation split; {CONFIRM}."
    slope = analysis.slopes[analysis.slopes["dimension"] == c.dimension]
    if len(slope):
        s = slope.iloc[0]
        verdict += (
            f" Trend: {num(s['slope'], True, 3)} per {s['per']} [{num(s['ci_lo'], True, 3)}, "
            f"{num(s['ci_hi'], True, 3)}] (OLS, {p_text(s['p'])})."
        )
    return f"{head}, {verdict}{_survivors_phrase(analysis, c.dimension)}"


def _survivors_phrase(analysis: SearchAnalysis, key: str) -> str:
    """Where the scheduler let trials run on: the best level among those that reached the last epoch."""
    part = analysis.factors[
        (analysis.factors["dimension"] == key) & ~analysis.factors["common"] & (analysis.factors["n_trials"] > 0)
    ]
    if part.empty:
        return ""
    ranked_levels = part.sort_values(
        ["mean", "order"], ascending=[not analysis.inputs.better_is_higher, True], kind="mergesort"
    )
    top = ranked_levels.iloc[0]
    n = int(part["n_trials"].sum())
    return (
        f" Among the {n} trial{'s' if n != 1 else ''} that ran to epoch {int(top['budget'])} (survivors, not a fair comparison): best "
        f"`{top['level']}` ({num(top['mean'], digits=3)}, {int(top['n_trials'])} trial{'s' if top['n_trials'] != 1 else ''})."
    )


def search_sentences(analysis: SearchAnalysis) -> list[str]:
    inputs = analysis.inputs
    n = len(analysis.scores)
    out = [
        f"Search analysis of `{inputs.metric}` ({inputs.mode}) over {n} usable of {inputs.total} trials, "
        f"{_budget_phrase(analysis)}; each level is averaged over the other dimensions' sampled values."
    ]
    if inputs.excluded:
        parts = ", ".join(f"{k} {v}" for k, v in inputs.excluded.items())
        out.append(f"Excluded from the search analysis: {parts}.")
    compared = {c.dimension: c for c in analysis.comparisons}
    for dimension in inputs.dimensions:
        c = compared.get(dimension.key)
        if c is None:
            out.append(f"{inputs.name_of(dimension.key)}: no usable trial had it active; nothing to compare.")
            continue
        out.append(_level_sentence(analysis, c))
    if analysis.importance_reason is not None:
        out.append(f"Importance of the dimensions not estimated: {analysis.importance_reason}.")
    else:
        for method in METHODS:
            order = ranked(analysis.importance, method)
            if not order:
                continue
            part = analysis.importance[analysis.importance["method"] == method].set_index("dimension")
            listed = ", ".join(f"{inputs.name_of(k)} {part.at[k, 'importance']:.2f}" for k in order)
            out.append(f"Importance ({METHOD_NAMES[method]}, Optuna): {listed}.")
    return out


# ---------------------------------------------------------------------------------------------------- files


def _parquet(frame: pd.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    return buffer.getvalue()


def write_search_files(analysis: SearchAnalysis, root: str | Path) -> tuple[Path, Path]:
    """``factors.parquet`` and ``importance.parquet`` beside ``trials.parquet``, each written atomically."""
    root = Path(root)
    factors_path = atomic_write_bytes(root / FACTORS_FILE, _parquet(analysis.factors))
    importance_path = atomic_write_bytes(root / IMPORTANCE_FILE, _parquet(analysis.importance))
    for path in (factors_path, importance_path):
        path.chmod(0o644)
    return factors_path, importance_path


# ---------------------------------------------------------------------------------------------------- report


def search_images(analysis: SearchAnalysis) -> dict[str, tuple[bytes, str]]:
    from mmtune.analysis import search_plots as plots

    inputs = analysis.inputs
    scores = analysis.scores
    if not len(scores) or not inputs.dimensions:
        return {}
    out = {
        "search_levels.png": (
            plots.levels_figure(inputs, analysis.factors),
            "Each searched dimension's levels: mean and 95 % CI",
        ),
        "search_parallel.png": (plots.parallel_figure(inputs, scores), "Parallel coordinates of the trials"),
        "search_curves.png": (
            plots.curves_figure(inputs, inputs.rungs.milestones if inputs.rungs else ()),
            "Learning curves per dimension with the scheduler's rungs and stopping points",
        ),
    }
    pair = interaction_pair(analysis)
    if pair is not None:
        a, b = pair
        out["search_interaction.png"] = (
            plots.interaction_figure(inputs, scores, a, b),
            f"Interaction of {a.key} x {b.key}: mean metric per level pair",
        )
    return out


def interaction_pair(analysis: SearchAnalysis) -> tuple | None:
    """The two most important categorical dimensions with >= 2 levels (declared order where no importance)."""
    inputs = analysis.inputs
    counts = analysis.factors[analysis.factors["common"] & (analysis.factors["n_trials"] > 0)]
    eligible = [d for d in inputs.dimensions if d.kind == CATEGORICAL and (counts["dimension"] == d.key).sum() >= 2]
    order = ranked(analysis.importance) if len(analysis.importance) else []
    eligible.sort(key=lambda d: order.index(d.key) if d.key in order else len(order))
    return (eligible[0], eligible[1]) if len(eligible) >= 2 else None


def _cell(value: float, digits: int = 3) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.{digits}f}"


def search_blocks(analysis: SearchAnalysis, images: dict[str, tuple[bytes, str]]) -> list[Block]:
    """The report's "Search analysis" section (the sentences themselves open the report)."""
    inputs = analysis.inputs
    blocks: list[Block] = [
        Heading("Search analysis"),
        Paragraph(
            "Fair comparison across budgets: every usable trial is scored at the **common budget**, the largest "
            "epoch every usable trial reached, with the metric it reported then (what the scheduler compared at "
            "its rungs); the rows at the last epoch keep only the trials the scheduler let run (survivors). A "
            "level's 95 % interval is a t-interval over its trials, which differ in the other dimensions too; "
            "continuous dimensions are binned at quantiles (log10 for log-uniform ones) and get an OLS slope. "
            "Best vs next level: Welch's t-test. Errored, unfinished and diverged trials are left out. Written to "
            f"`{FACTORS_FILE}` and `{IMPORTANCE_FILE}`."
        ),
    ]
    rows = []
    for _, r in analysis.factors.iterrows():
        rows.append(
            [
                str(r["dimension"]),
                str(r["level"]),
                "all trials" if r["common"] else "survivors",
                str(int(r["budget"])) if r["budget"] >= 0 else "best",
                str(int(r["n_trials"])),
                _cell(r["mean"]),
                f"[{_cell(r['ci_lo'])}, {_cell(r['ci_hi'])}]",
            ]
        )
    blocks += [
        Heading("Levels", 3),
        Table(
            ["dimension", "level", "trials scored", "epoch", "n", "mean", "95 % CI"],
            rows,
            numeric=[False, False, False, True, True, True, False],
        ),
    ]
    if len(analysis.slopes):
        blocks += [
            Heading("Continuous dimensions (OLS slope)", 3),
            Table(
                ["dimension", "per", "slope", "95 % CI", "p", "n"],
                [
                    [
                        str(s["dimension"]),
                        str(s["per"]),
                        _cell(s["slope"]),
                        f"[{_cell(s['ci_lo'])}, {_cell(s['ci_hi'])}]",
                        p_text(s["p"]).replace("p = ", "").replace("p ", ""),
                        str(int(s["n_trials"])),
                    ]
                    for _, s in analysis.slopes.iterrows()
                ],
                numeric=[False, False, True, False, True, True],
            ),
        ]
    blocks.append(Heading("Importance", 3))
    if analysis.importance_reason is not None:
        blocks.append(Paragraph(f"Not estimated: {analysis.importance_reason}."))
    else:
        blocks.append(
            Paragraph(
                "Optuna's fANOVA (random-forest functional ANOVA, seed 0) and PED-ANOVA (which dimensions separate "
                "the top 10 % of trials) on the metric at the common budget; each method's importances sum to 1."
            )
        )
    imp_rows = [
        [
            str(r["dimension"]),
            METHOD_NAMES.get(str(r["method"]), str(r["method"])),
            _cell(r["importance"]),
            str(r["note"]) or "-",
        ]
        for _, r in analysis.importance.iterrows()
    ]
    if imp_rows:
        blocks.append(Table(["dimension", "method", "importance", "note"], imp_rows, numeric=[False, False, True]))
    for name, title in (
        ("search_levels.png", None),
        ("search_interaction.png", "Interaction of the two most important categorical dimensions"),
        ("search_parallel.png", None),
        ("search_curves.png", None),
    ):
        if name in images:
            if title:
                blocks.append(Heading(title, 3))
            blocks.append(Image(name, images[name][1]))
    if "search_interaction.png" not in images:
        blocks.append(Paragraph("No interaction heatmap: fewer than two categorical dimensions with two used levels."))
    if inputs.rungs is None:
        blocks.append(Paragraph("The study has no `space.yaml` (written before it existed): rungs not shown."))
    return blocks


def opening_blocks(analysis: SearchAnalysis) -> list[Block]:
    return [Heading("What the search found"), Bullets(analysis.sentences)]
