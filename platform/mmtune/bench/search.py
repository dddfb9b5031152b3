"""``mmtune bench search``: what ASHA saves, and what starting a trial costs.

**ASHA vs full budget.** The same grid of configs runs twice in one Ray session: once under ASHA, once with every
config trained to the full budget (FIFO). The grid's best metric is the target; ASHA's results are replayed in
the order they arrived, counting trial-epochs, until ASHA has seen a config within ``tolerance`` (0.01) of that
target. ``fraction_of_compute`` = those trial-epochs / the grid's trial-epochs (goal <= 0.25). Trials are seeded
and deterministic, so a config's curve is the same in both runs.

**Trial start overhead** (trial scheduled -> first training step; goal <= 2 s), with its parts (``parts``:
Tune scheduling, trial set-up, worker-group start, process-group set-up, imports, dataset set-up, model set-up,
first step; the trial stamps each phase's end, see ``STARTUP_PHASES``). Trials run one at a time, so the
next trial is scheduled the moment the previous one completes; the overhead of trial k is its first training step
minus trial k-1's completion (driver clock). The first step is ``first_step_at`` when the trial function reports
it; otherwise it is estimated as the first result's arrival minus the trial's median later epoch time (both
on the driver's clock). Measured for the inline path and the Ray Train ``TorchTrainer`` path.
"""

from __future__ import annotations

import itertools
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mmtune.training.warm_workers import WARM_STAMP
from mmtune.tuning.space import load_search_space

REPO = Path(__file__).resolve().parents[3]
BENCH_SPACE = REPO / "search_spaces" / "bench_search.yaml"
GOAL_FRACTION = 0.25
GOAL_OVERHEAD_S = 2.0

try:
    from ray.tune.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[assignment,misc]


class TrialClock(Callback):
    """Driver-side arrival time of every result and completion of every trial."""

    def __init__(self, metric: str) -> None:
        self.metric = metric
        self.results: list[dict[str, Any]] = []
        self.completed: dict[str, float] = {}
        self.started: dict[str, float] = {}

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.started.setdefault(trial.trial_id, time.time())

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self.results.append(
            {
                "at": time.time(),
                "trial": trial.trial_id,
                "epoch": int(result.get("training_iteration", 0)),
                "value": result.get(self.metric),
                "first_step_at": result.get("first_step_at") or result.get("startup/first_step_at"),
                "startup": {k.split("/", 1)[1]: float(v) for k, v in result.items() if k.startswith("startup/")},
                "epoch_s": result.get("time_this_iter_s"),
            }
        )

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.completed[trial.trial_id] = time.time()


def _trial_fn(name: str) -> Callable[[dict[str, Any]], Any] | None:
    if name == "curve":
        from mmtune.tuning.curve import curve_trial

        return curve_trial
    return None  # the driver's default: mmtune.training.trial.run_trial


def _repo_relative(space_path: Path, overrides: list[str]) -> list[str]:
    """The shipped space names its data relative to the repository: anchor them there, so the benchmark runs
    from any directory (a user's own space keeps its paths)."""
    if Path(space_path).resolve() != BENCH_SPACE.resolve():
        return overrides
    anchored = [
        f"data.card={REPO / 'datasets' / 'synthetic.yaml'}",
        f"data.path={REPO / 'data' / 'synthetic_prepared'}",
    ]
    return [*anchored, *overrides]


def _run(space_path: Path, folder: Path, name: str, trainable: str, overrides: list[str]) -> tuple[Any, TrialClock]:
    from mmtune.tuning.driver import run_study

    overrides = _repo_relative(space_path, overrides)

    space = load_search_space(space_path, overrides, name=name)
    clock = TrialClock(space.metric)
    meta = {"curve.aim": False} if trainable == "curve" else None
    results = run_study(
        space, results_dir=folder, trial_fn=_trial_fn(trainable), meta=meta, live=False, callbacks=[clock]
    )
    return results, clock


def asha_vs_grid(
    space_path: Path = BENCH_SPACE,
    *,
    trainable: str = "real",
    tolerance: float = 0.01,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Run the space's grid under ASHA and to full budget; JSON-ready comparison (see the module docstring)."""
    extra = ["search.name=grid", *(overrides or [])]
    with tempfile.TemporaryDirectory(prefix="mmtune-bench-search-") as tmp:
        folder = Path(tmp)
        started = time.monotonic()
        asha, asha_clock = _run(space_path, folder, "asha", trainable, extra)
        asha_wall = time.monotonic() - started
        started = time.monotonic()
        grid, _ = _run(space_path, folder, "full_budget", trainable, [*extra, "scheduler.name=fifo"])
        grid_wall = time.monotonic() - started
    metric, mode = asha.metric, asha.mode
    best_col = f"best/{metric}"
    sign = 1.0 if mode == "max" else -1.0
    grid_epochs = int(grid.frame["epochs"].sum())
    grid_best = float(grid.frame[best_col].max() if mode == "max" else grid.frame[best_col].min())
    target = grid_best - sign * tolerance
    best_so_far, needed = None, None
    for seen, result in enumerate(sorted(asha_clock.results, key=lambda r: r["at"]), start=1):
        value = result["value"]
        if isinstance(value, (int, float)) and (best_so_far is None or sign * value > sign * best_so_far):
            best_so_far = float(value)
        if needed is None and best_so_far is not None and sign * best_so_far >= sign * target:
            needed = seen
    asha_epochs = int(asha.frame["epochs"].sum())
    searched = [c for c in grid.frame.columns if "." in c and not c.startswith(("best/", "final/"))]
    best_row = grid.frame.loc[grid.frame[best_col].idxmax() if mode == "max" else grid.frame[best_col].idxmin()]
    asha_row = asha.frame.loc[asha.frame[best_col].idxmax() if mode == "max" else asha.frame[best_col].idxmin()]
    return {
        "bench": "search",
        "trainable": "mmtune.training.trial.run_trial" if trainable == "real" else "mmtune.tuning.curve.curve_trial",
        "space": str(space_path),
        "metric": metric,
        "configs": len(grid.frame),
        "max_t": int(grid.frame["epochs"].max()),
        "tolerance": tolerance,
        "grid": {
            "trial_epochs": grid_epochs,
            "best": round(grid_best, 4),
            "best_config": {k: _plain(best_row[k]) for k in searched},
            "wall_s": round(grid_wall, 1),
        },
        "asha": {
            "trial_epochs": asha_epochs,
            "stopped_early": int(asha.frame["stopped_early"].sum()),
            "best": None if best_so_far is None else round(best_so_far, 4),
            "best_config": {k: _plain(asha_row[k]) for k in searched},
            "trial_epochs_to_reach_target": needed,
            "wall_s": round(asha_wall, 1),
        },
        "fraction_of_compute": None if needed is None else round(needed / grid_epochs, 4),
        "fraction_of_compute_whole_asha_run": round(asha_epochs / grid_epochs, 4),
        "wall_ratio": round(asha_wall / grid_wall, 4) if grid_wall else None,
        "goal_fraction": GOAL_FRACTION,
        "meets_goal": needed is not None and needed / grid_epochs <= GOAL_FRACTION,
    }


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def trial_start_overhead(
    space_path: Path = BENCH_SPACE, *, trials: int = 4, epochs: int = 3, overrides: list[str] | None = None
) -> dict[str, Any]:
    """Overhead per path: inline (one worker in the trial) and ray_train (a one-worker ``TorchTrainer``)."""
    common = [
        "search.name=random",
        f"num_samples={trials}",
        "scheduler.name=fifo",
        f"scheduler.max_t={epochs}",
        "resources.max_concurrent=1",
        *(overrides or []),
    ]
    paths = {
        "inline": ["resources.workers=1", "resources.inline=true"],
        "ray_train": ["resources.workers=1", "resources.inline=false"],
        "tune_only_curve": ["resources.workers=1", "resources.inline=true"],
    }
    out: dict[str, Any] = {
        "bench": "search-overhead",
        "goal_s": GOAL_OVERHEAD_S,
        "trials_per_path": trials,
        "epochs_per_trial": epochs,
    }
    with tempfile.TemporaryDirectory(prefix="mmtune-bench-overhead-") as tmp:
        for path_name, settings in paths.items():
            trainable = "curve" if path_name == "tune_only_curve" else "real"
            results, clock = _run(space_path, Path(tmp), path_name, trainable, [*common, *settings])
            out[path_name] = _overheads(clock, results)
    measured = [out[p]["median_s"] for p in ("inline", "ray_train") if out[p]["median_s"] is not None]
    out["meets_goal"] = {p: out[p]["median_s"] is not None and out[p]["median_s"] <= GOAL_OVERHEAD_S for p in paths}
    out["ray_train_minus_inline_s"] = round(measured[1] - measured[0], 3) if len(measured) == 2 else None
    return out


def _overheads(clock: TrialClock, results: Any) -> dict[str, Any]:
    """Scheduled (previous trial completed) -> first training step, per trial after the first."""
    by_trial: dict[str, list[dict[str, Any]]] = {}
    for result in clock.results:
        by_trial.setdefault(result["trial"], []).append(result)
    order = sorted(by_trial, key=lambda t: by_trial[t][0]["at"])
    values: list[float] = []
    parts: dict[str, list[float]] = {}
    methods: set[str] = set()
    for previous, trial in itertools.pairwise(order):
        scheduled = clock.completed.get(previous)
        rows = sorted(by_trial[trial], key=lambda r: r["epoch"])
        if scheduled is None or not rows:
            continue
        if rows[0]["first_step_at"]:
            first_step = float(rows[0]["first_step_at"])
            methods.add("first_step_at reported by the trial")
        else:
            later = [r["epoch_s"] for r in rows[1:] if r["epoch_s"]]
            epoch_s = statistics.median(later) if later else 0.0
            first_step = rows[0]["at"] - epoch_s
            methods.add("first result arrival minus median epoch time")
        values.append(first_step - scheduled)
        for name, seconds in startup_parts(scheduled, rows[0]["startup"]).items():
            parts.setdefault(name, []).append(seconds)
    errors = int((results.frame["status"] == "ERROR").sum())
    return {
        "median_s": round(statistics.median(values), 3) if values else None,
        "per_trial_s": [round(v, 3) for v in values],
        "parts": {name: round(statistics.median(v), 3) for name, v in parts.items()},
        "method": sorted(methods),
        "warm_worker_trials": sum(1 for r in clock.results if r["epoch"] == 1 and r["startup"].get(WARM_STAMP)),
        "worker_preload_wait_s": [
            round(r["startup"]["worker_preload_wait_s"], 2)
            for r in clock.results
            if r["epoch"] == 1 and "worker_preload_wait_s" in r["startup"]
        ],
        "failed_trials": errors,
        "study_wall_s": round(results.fit_seconds or 0.0, 1),
    }


# the trial's start-up phases in order: (part name, stamp that ends it); a part runs from the previous stamp
STARTUP_PHASES = (
    ("tune_scheduling", "trial_started_at"),  # previous trial done -> trial function entered
    ("trial_setup", "trainer_fit_at"),  # config, data checks, node cache (Ray Train only)
    ("worker_group_start", "worker_process_created_at"),  # TorchTrainer.fit -> worker process exists
    ("process_group_setup", "loop_entered_at"),  # Ray Train worker init + torch.distributed process group
    ("imports", "imports_done_at"),  # Lightning, Ray Train Lightning, mmtune training modules in the worker
    ("dataset_setup", "data_ready_at"),  # resolve data, loaders (Ray Data shard or node cache)
    ("model_setup", "model_ready_at"),  # model, checkpoint restore, Aim logger
    ("first_step", "first_step_at"),  # Lightning fit start -> first training batch
)


def startup_parts(scheduled: float, stamps: dict[str, float]) -> dict[str, float]:
    """Seconds of each start-up phase whose end the trial stamped (``TrialReporter(startup=...)``)."""
    out: dict[str, float] = {}
    previous = scheduled
    for name, stamp in STARTUP_PHASES:
        if stamp in stamps:
            out[name] = stamps[stamp] - previous
            previous = stamps[stamp]
    return out
