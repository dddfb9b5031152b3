"""A rich live table of the trials while a search runs (status, epoch, metric, best so far), on stderr.

It is a Tune ``Callback``, so it runs in the driver and sees every result as it arrives. On a terminal the table
redraws in place; elsewhere (CI logs, pipes) one line is printed per finished trial instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from mmtune.config.loading import get_dotted
from mmtune.console import err_console
from mmtune.trial_config import RUN_KEY
from mmtune.tuning.display import column_label, short_value

try:  # the callback base class is only needed when Ray Tune is used; keep this module importable without it
    from ray.tune.callback import Callback
except ImportError:  # pragma: no cover
    Callback = object  # type: ignore[assignment,misc]

MAX_ROWS = 24
STATUS_STYLE = {"RUNNING": "cyan", "TERMINATED": "green", "ERROR": "red", "PENDING": "dim", "PAUSED": "yellow"}


class LiveTrialTable(Callback):
    """Draws the trial table; keeps each trial's best metric (restored runs start from their last result)."""

    def __init__(self, study: str, metric: str, mode: str, searched: Sequence[str], max_t: int) -> None:
        self.study = study
        self.metric = metric
        self.mode = mode
        self.searched = list(searched)
        self.max_t = max_t
        self._best: dict[str, float] = {}
        self._live: Live | None = None
        self._trials: list[Any] = []
        self._last_draw = 0.0

    def __getstate__(self) -> dict[str, Any]:
        # Tune pickles callbacks with the experiment; the live display and trial objects stay behind.
        state = dict(self.__dict__)
        state["_live"] = None
        state["_trials"] = []
        return state

    # ------------------------------------------------------------------------------------------- Tune hooks
    def setup(self, **info: Any) -> None:
        if err_console.is_terminal:  # elsewhere one line per finished trial (``_event``) says what happened
            self._live = Live(self.render(), console=err_console, refresh_per_second=2, transient=True)
            self._live.start()

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._trials = trials
        if time.monotonic() - self._last_draw > 0.5:
            self._draw()

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict, **info: Any) -> None:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and not math.isnan(value):
            old = self._best.get(trial.trial_id)
            if old is None or (value > old if self.mode == "max" else value < old):
                self._best[trial.trial_id] = float(value)
        self._trials = trials

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._trials = trials
        self._event(trial, "finished")

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._trials = trials
        self._event(trial, "failed")

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._trials = trials
        self.close()

    # ------------------------------------------------------------------------------------------- drawing
    def close(self) -> None:
        if self._live is not None:
            self._live.update(self.render(), refresh=True)
            self._live.stop()
            self._live = None

    def _draw(self) -> None:
        self._last_draw = time.monotonic()
        if self._live is not None:
            self._live.update(self.render())

    def _event(self, trial: Any, what: str) -> None:
        if err_console.is_terminal:
            self._draw()
            return
        epochs = (trial.last_result or {}).get("training_iteration", 0)
        best = self._best.get(trial.trial_id)
        shown = "-" if best is None else f"{best:.4f}"
        err_console.print(
            f"trial {trial.trial_id} {what} after {epochs} epoch(s): best {self.metric} {shown}"
            f" (study best {self._study_best_text()})",
            highlight=False,
            soft_wrap=True,
        )

    def _study_best(self) -> tuple[str, float] | None:
        if not self._best:
            return None
        pick = max if self.mode == "max" else min
        trial_id = pick(self._best, key=lambda t: self._best[t])
        return trial_id, self._best[trial_id]

    def _study_best_text(self) -> str:
        best = self._study_best()
        return "-" if best is None else f"{best[1]:.4f} ({best[0]})"

    def render(self) -> Group:
        """The table for the trials seen so far."""
        table = Table(title=f"study {self.study}: {self.metric} ({self.mode})", title_justify="left", expand=False)
        for column in ("trial", "status", "epoch", self.metric, "best", *self.searched):
            table.add_column(column_label(column), no_wrap=True)
        sign = 1 if self.mode == "max" else -1

        def order(trial: Any) -> tuple[int, float]:
            running = 0 if trial.status == "RUNNING" else 1
            best = self._best.get(trial.trial_id, (trial.last_result or {}).get(self.metric))
            return running, -sign * best if isinstance(best, (int, float)) else math.inf

        trials = sorted(self._trials, key=order)
        for trial in trials[:MAX_ROWS]:
            result = trial.last_result or {}
            value = result.get(self.metric)
            best = self._best.get(trial.trial_id, value)
            table.add_row(
                trial.trial_id,
                Text(trial.status, style=STATUS_STYLE.get(trial.status, "")),
                f"{result.get('training_iteration', 0)}/{self.max_t}",
                "-" if not isinstance(value, (int, float)) else f"{value:.4f}",
                "-" if not isinstance(best, (int, float)) else f"{best:.4f}",
                *(short_value(get_dotted(trial.config.get(RUN_KEY) or {}, key)) for key in self.searched),
            )
        counts: dict[str, int] = {}
        for trial in self._trials:
            counts[trial.status] = counts.get(trial.status, 0) + 1
        summary = ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items())) or "starting"
        more = f" ({len(trials) - MAX_ROWS} more not shown)" if len(trials) > MAX_ROWS else ""
        footer = Text(f"{summary}{more}; best so far: {self._study_best_text()}", style="bold")
        return Group(table, footer)
