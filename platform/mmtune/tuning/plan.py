"""What the study lifecycle (``mmtune.tuning.driver.run_study``) needs from a study, whatever explores it.

``mmtune tune`` (a search space: ``SearchPlan`` below) and ``mmtune ablate`` (a study's cells x splits:
``mmtune.tuning.ablation.Study``) both implement ``StudyPlan``; the driver owns everything they share (refusing a
second start, data plan and preparation, Ray, resources, the Aim repo, building / restoring / fitting the Tuner,
the trial fields), and asks the plan only for what differs: data-dependent checks, files written before the fit,
how Tune explores (``TuneSpec``), the start line and the results.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mmtune.config.search import ResourcesConfig, SearchDataConfig
    from mmtune.tuning.candidates import CandidateReport
    from mmtune.tuning.data import DataPlan
    from mmtune.tuning.resources import TrialResources
    from mmtune.tuning.results import StudyPaths, StudyResults
    from mmtune.tuning.space import SearchSpace


class StudyFile(Protocol):
    """The settings a search-space file and an ablation study file share (``SearchSpaceConfig``, ``StudyConfig``)."""

    resources: ResourcesConfig
    data: SearchDataConfig | None
    max_failures: int


@dataclass(frozen=True)
class TuneSpec:
    """How Tune explores a study: what the ``Tuner`` gets beside the trainable, the callbacks and the storage."""

    param_space: dict[str, Any]
    scheduler: Any
    search_alg: Any | None
    num_samples: int
    max_concurrent_trials: int | None
    keep_checkpoints: int


class StudyPlan(Protocol):
    """A study as the lifecycle sees it: a name, a resolved base run config, a metric, and the steps that differ."""

    path: Path  # the study's file (error messages)
    name: str  # results/<name>/
    config: StudyFile
    base: dict[str, Any]  # the resolved base run config (absolute paths); ``plan_data`` may fill in data.path
    metric: str
    mode: str
    max_t: int
    restart_hint: str  # what the refusal of a second start suggests

    @property
    def searched(self) -> list[str]:
        """Run-config keys that tell trials apart: the live table's columns, ``mmtune.searched`` in trials."""
        ...

    def check_with_data(self, manifest: Any) -> list[str]:
        """Data-dependent checks (raise on an error); returns warnings. Called once, before Ray when it can be."""
        ...

    def check_resume(self, paths: StudyPaths) -> None:
        """``--resume``, before Ray: refuse a change that alters what the finished trials mean (one line)."""
        ...

    def before_fit(self, paths: StudyPaths, manifest: Any, resume: bool) -> None:
        """Files written (or checked on ``resume``) before trials are submitted."""
        ...

    def grow_experiment(self, paths: StudyPaths) -> str | None:
        """On ``--resume`` after ``before_fit``: the new experiment's name when the study grew (new trials only)."""
        ...

    def tune_spec(self, paths: StudyPaths, fields: dict[str, Any], max_concurrent: int) -> TuneSpec:
        """Tune's param space (``fields`` are the trial fields beside ``run``), scheduler and search algorithm."""
        ...

    def start_line(self, resources: TrialResources, paths: StudyPaths) -> str:
        """The line printed when trials are about to start."""
        ...

    def write_results(self, paths: StudyPaths, *, resume: bool, started_at: float) -> StudyResults:
        """``results/<name>/`` from the experiment on disk (``started_at``: ``time.time()`` when the run began)."""
        ...


# ---------------------------------------------------------------------------------------------------- search


class SearchPlan:
    """A search space as a ``StudyPlan``: samplers over the base, an ASHA / HyperBand / FIFO scheduler, random /
    grid / Optuna search, candidates checked against the registries (invalid combinations are warnings)."""

    restart_hint = "pass --resume to continue it or --name to start another"

    def __init__(self, space: SearchSpace) -> None:
        self.space = space
        self.path = space.path
        self.name = space.name
        self.config = space.config
        self.base = space.base
        self.metric = space.metric
        self.mode = space.mode
        self.max_t = space.max_t
        self.added = 0  # on --resume with a larger num_samples: samples per grid point added as a new experiment

    @property
    def searched(self) -> list[str]:
        return list(self.space.entries)

    def check_with_data(self, manifest: Any) -> list[str]:
        from mmtune.tuning.candidates import check_candidates

        report = check_candidates(self.space, manifest)
        if not report.invalid:
            return []
        example = report.first_invalid[1] if report.first_invalid else "?"
        return [
            f"{report.invalid} of {report.checked} combinations are invalid and will fail if sampled (e.g. {example})"
        ]

    def check_resume(self, paths: StudyPaths) -> None:
        """The search as run (``space.yaml``) and now may differ only in ``num_samples``, and only upwards: the
        base, the space, the metric, the scheduler and the search algorithm define the finished trials."""
        import yaml

        from mmtune.errors import ConfigError
        from mmtune.tuning.growth import refuse_changes
        from mmtune.tuning.results import space_record

        if not paths.space_file.is_file():
            return
        before = yaml.safe_load(paths.space_file.read_text(encoding="utf-8")) or {}
        now = yaml.safe_load(space_record(self.space)) or {}
        keys = ("base", "space", "metric", "mode", "scheduler", "search")
        refuse_changes({k: before.get(k) for k in keys}, {k: now.get(k) for k in keys}, str(self.path))
        ran, wanted = int(before.get("num_samples") or 1), self.config.num_samples
        if wanted < ran:
            raise ConfigError(
                f"{self.path}: num_samples {wanted} is below the {ran} the study ran with; --resume only adds trials"
            )
        self.added = wanted - ran

    def grow_experiment(self, paths: StudyPaths) -> str | None:
        from mmtune.tuning.growth import next_experiment

        return next_experiment(paths.root) if self.added else None

    def before_fit(self, paths: StudyPaths, manifest: Any, resume: bool) -> None:
        if self.added:  # the grown search as planned, so an interrupted growth resumes (not grows again)
            from mmtune.atomic import atomic_write_text
            from mmtune.tuning.results import space_record

            atomic_write_text(paths.space_file, space_record(self.space))
        from mmtune.tuning.growth import next_experiment

        seed = self._seed(next_experiment(paths.root) if self.added else None)
        if seed is not None:
            import numpy as np

            # Conditional keys are drawn by ``tune.sample_from`` with NumPy's global generator: seed it too.
            np.random.seed(seed)

    def _seed(self, experiment: str | None) -> int | None:
        """The search seed of an experiment: a growth (``tune-N``) draws new samples, not the first ones again."""
        seed = self.config.search.seed
        index = int(experiment.rsplit("-", 1)[1]) if experiment and "-" in experiment else 1
        return None if seed is None else seed + 1000 * (index - 1)

    def tune_spec(self, paths: StudyPaths, fields: dict[str, Any], max_concurrent: int) -> TuneSpec:
        from mmtune.tuning.schedulers import build_scheduler
        from mmtune.tuning.searchers import param_space, search_algorithm

        cfg = self.config
        space = self.space
        if self.added:  # a new experiment: new samples, seeded apart from the finished ones
            space = copy.copy(space)
            seed = self._seed(paths.tune_dir.name)
            space.config = cfg.model_copy(update={"search": cfg.search.model_copy(update={"seed": seed})})
        return TuneSpec(
            param_space=param_space(space, fields),
            scheduler=build_scheduler(cfg.scheduler, self.max_t, paths.early_stops),
            search_alg=search_algorithm(space, max_concurrent),
            num_samples=self.added or cfg.num_samples,
            max_concurrent_trials=max_concurrent if cfg.search.name == "optuna" else None,
            keep_checkpoints=cfg.keep_checkpoints,
        )

    def start_line(self, resources: TrialResources, paths: StudyPaths) -> str:
        return (
            f"study {self.name}: up to {resources.max_concurrent} trial(s) at once, "
            f"{resources.cpus_per_trial:g} CPU / {resources.gpus_per_trial:g} GPU each; Tune state in {paths.tune_dir}"
        )

    def write_results(self, paths: StudyPaths, *, resume: bool, started_at: float) -> StudyResults:
        from mmtune.tuning.results import space_record, write_results

        return write_results(self, paths, self.searched, space_record(self.space))


def as_plan(study: StudyPlan | SearchSpace) -> StudyPlan:
    """A ``SearchSpace`` becomes its ``SearchPlan``; a plan stays as it is."""
    from mmtune.tuning.space import SearchSpace

    return SearchPlan(study) if isinstance(study, SearchSpace) else study


def validate_study(space: SearchSpace) -> tuple[DataPlan, CandidateReport | None]:
    """``mmtune tune --dry-run``'s checks (no cluster): the data plan, then every combination against the
    registries (with the data's manifest when the data are prepared)."""
    from mmtune.tuning.candidates import check_candidates
    from mmtune.tuning.data import plan_data

    plan = plan_data(space)
    report = check_candidates(space, plan.manifest) if plan.ready else None
    return plan, report
