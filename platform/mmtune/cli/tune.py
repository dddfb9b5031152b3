"""``mmtune tune SPACE.yaml``: a joint ASHA search over fusion x weighting x backbone on Ray Tune."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import typer

from mmtune.config.loading import parse_overrides


def tune(
    space_file: Path = typer.Argument(..., help="search-space YAML (see search_spaces/quickstart.yaml)"),
    set_: list[str] = typer.Option(None, "--set", help="override a key of the space file: k=v (repeatable)"),
    address: str = typer.Option(
        "local", help="local (start Ray here), auto (the cluster on this node), ray://HOST:PORT"
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="continue an interrupted study, or add trials with a larger --set num_samples=N; finished trials are kept",
    ),
    name: str = typer.Option(None, help="study name (default: the space file's `name`, else its file name)"),
    results: Path = typer.Option(Path("results"), help="results root; the study writes results/<name>/"),
    dry_run: bool = typer.Option(False, "--dry-run", help="validate, print the space size and sample configs; no Ray"),
    verbose: bool = typer.Option(False, "--verbose", help="show the trials' own logs"),
    num_cpus: int = typer.Option(None, help="CPUs of the local Ray (default: all)"),
    report: bool = typer.Option(True, "--report/--no-report", help="write `mmtune report` of the finished study"),
    confirm: int = typer.Option(
        None, "--confirm", help="then `mmtune confirm` the K best configurations (defaults: 5 folds x 2 seeds)"
    ),
    trainable: str = typer.Option(None, hidden=True, help="module:function trial function (tests, benchmarks)"),
    trial_option: list[str] = typer.Option(None, hidden=True, help="k=v into the trials' `mmtune` metadata"),
) -> None:
    """Run a search space on Ray Tune: ASHA stops weak trials; results, best config and Aim runs at the end."""
    from mmtune.tuning.space import load_search_space

    if confirm is not None and confirm < 1:
        from mmtune.errors import UserError

        raise UserError(f"--confirm {confirm}: must be at least 1 (the number of configurations to confirm)")
    space = load_search_space(space_file, set_ or [], name=name)
    if dry_run:
        _dry_run(space)
        return
    from mmtune.tuning.driver import load_trial_fn, run_study
    from mmtune.tuning.results import print_summary

    trial_fn = load_trial_fn(trainable) if trainable else None
    outcome = run_study(
        space,
        results_dir=results,
        address=address,
        resume=resume,
        trial_fn=trial_fn,
        meta=parse_overrides(trial_option or []),
        verbose=verbose,
        num_cpus=num_cpus,
    )
    print_summary(outcome, list(space.entries))
    stop = getattr(outcome, "stop", None)
    if report and getattr(stop, "signum", None) is None and len(outcome.usable):
        from mmtune.cli.report import report as write_report_command

        write_report_command(outcome.paths.root, None)
    from mmtune.cli.outcome import finish

    again = f"mmtune tune {space_file} --resume" + (f" --name {name}" if name else "")
    finish(space.name, outcome, again + (f" --results {results}" if results != Path("results") else ""), stop)
    if confirm is not None:  # the search finished (finish() raised otherwise): confirm its top K
        from mmtune.cli.confirm import run_plan
        from mmtune.tuning.confirm import SUFFIX, plan_confirm
        from mmtune.tuning.results import StudyPaths

        again_confirm = resume and StudyPaths(outcome.paths.root.parent / f"{space.name}{SUFFIX}").has_experiment()
        plan = plan_confirm(outcome.paths.root, top=confirm, resume=again_confirm)
        run_plan(
            plan,
            address=address,
            resume=again_confirm,
            trainable=trainable,
            trial_option=trial_option,
            verbose=verbose,
            num_cpus=num_cpus,
        )


def _dry_run(space: Any, samples: int = 3) -> None:
    """Validate without Ray and show what would run."""
    from rich.table import Table

    from mmtune.console import console
    from mmtune.tuning.candidates import CandidateReport, check_candidates
    from mmtune.tuning.combinations import sample_assignment, trial_count
    from mmtune.tuning.display import column_label, short_value, table_console
    from mmtune.tuning.plan import validate_study

    plan, report = validate_study(space)
    checked_note = ""
    if report is None:  # data not prepared yet: registries and pydantic only
        report = check_candidates(space, None)
        checked_note = " (data not prepared yet: checked without its manifest)"
    assert isinstance(report, CandidateReport)
    cfg = space.config
    table = Table(title=f"search space {space.name} ({space.path})", title_justify="left")
    for column in ("key", "sampler", "values", "when"):
        table.add_column(column)
    for key in space.order:
        entry = space.entries[key]
        when = ", ".join(f"{k} in {v}" for k, v in entry.conditions().items())
        table.add_row(key, entry.kind, ", ".join(short_value(v) for v in entry.values), when or "-")
    out = table_console(console)
    out.print(table)
    grid_points = trial_count(space) // cfg.num_samples
    out.print(
        f"expanded space: {trial_count(space)} trials (grid points {grid_points} x num_samples {cfg.num_samples}); "
        f"{report.total} combinations of the discrete values and range bounds, {report.valid} of {report.checked} "
        f"checked valid{checked_note}",
        highlight=False,
    )
    out.print(
        f"search {cfg.search.name}, scheduler {cfg.scheduler.name} (max_t {space.max_t}, grace_period "
        f"{cfg.scheduler.grace_period}, reduction_factor {cfg.scheduler.reduction_factor:g}), "
        f"metric {space.metric} ({space.mode})",
        highlight=False,
    )
    res = cfg.resources
    out.print(
        f"per trial: {res.workers} worker(s) x {res.cpus_per_worker:g} CPU / {res.gpus_per_worker:g} GPU "
        f"({'inline' if res.runs_inline else 'Ray Train TorchTrainer'}); data: {plan.describe}",
        highlight=False,
    )
    rng = random.Random(cfg.search.seed or 0)
    sample_table = Table(title=f"{samples} sample configs", title_justify="left")
    sample_table.add_column("#")
    for key in space.order:
        sample_table.add_column(column_label(key), no_wrap=True)
    for i in range(samples):
        drawn = sample_assignment(space, rng)
        sample_table.add_row(str(i + 1), *(short_value(drawn.get(key)) for key in space.order))
    out.print(sample_table)
