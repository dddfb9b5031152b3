"""Lightning callbacks that make a training run a Ray Tune trial: report every epoch with a checkpoint, and keep
the trial's artefacts in its directory current *before* reporting.

ASHA may stop a trial right after any report (its thread is then abandoned), so whenever an epoch is the best so
far its validation predictions, ``metrics.json`` and ``best.ckpt`` are written before the report. Evaluating the
best weights on the test set (and without each modality) costs extra passes, so it happens once, in the trial's
last epoch (``trainer.max_epochs``, which the driver sets to the scheduler's ``max_t``, or an early-stopping
epoch) and *before* that epoch's report: Tune stops a trial that reaches ``max_t`` at that report, so code after
it (Lightning's ``on_fit_end``) may never run (DESIGN.md). ``metrics.json`` then says ``complete: true``; a trial
the scheduler stopped early keeps its best val artefacts (``complete: false``).
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Checkpoint

from mmtune.results_files import METRICS_FILE, PREDICTIONS_FILE
from mmtune.training.artifacts import write_metrics_json
from mmtune.training.divergence import DIVERGED_KEY, REASON_KEY, diverged_report, non_finite, worst
from mmtune.training.predictions import without_modality, write_predictions

CHECKPOINT_NAME = "checkpoint.ckpt"
AIM_HASH_NAME = "aim_hash.txt"
BEST_CHECKPOINT_NAME = "best.ckpt"

Reporter = Callable[[dict[str, Any], Any], None]


def is_better(value: float, best: float | None, mode: str) -> bool:
    """``value`` beats ``best`` (NaN never beats a number; anything beats nothing)."""
    if best is None:
        return True
    if math.isnan(value):
        return False
    if math.isnan(best):
        return True
    return value > best if mode == "max" else value < best


class TrialReporter(Checkpoint):
    """At every train-epoch end: update the trial's artefacts when the epoch is the best, save a checkpoint and
    report ``metrics`` (+ ``epoch``, ``aim_hash``) with it through ``report`` (``ray.tune.report`` inline or
    ``ray.train.report`` on Ray Train workers).

    A ``Checkpoint`` callback to Lightning, so its ``on_train_epoch_end`` runs after the module's (where the
    epoch's training means are logged); the Trainer needs ``enable_checkpointing=True`` (no other default one is
    added then)."""

    def __init__(
        self,
        trial_dir: str | Path,
        report: Reporter,
        *,
        monitor: str,
        mode: str,
        test_batches: Iterable[Mapping[str, Any]] | None = None,
        aim_hash: Callable[[], str | None] = lambda: None,
        checkpoint_factory: Callable[[str], Any] | None = None,
        extra: Mapping[str, Any] | None = None,
        fault: Mapping[str, Any] | None = None,
        startup: Mapping[str, float] | None = None,
        targets: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        # metric -> mode of every key a scheduler or the study selects on (Tune's metric beside ``monitor``): a
        # diverged epoch reports each at its worst
        self.targets = {monitor: mode, **dict(targets or {})}
        self.diverged: str | None = None
        # wall-clock stamps of the trial's start-up phases (``bench search --overhead`` breaks the start into them);
        # the first training step is stamped here and all go out with this process's first report
        self.startup = {f"startup/{k}": float(v) for k, v in (startup or {}).items()}
        self._startup_sent = False
        self.trial_dir = Path(trial_dir)
        self.report = report
        self.monitor = monitor
        self.mode = mode
        self.test_batches = test_batches
        self.aim_hash = aim_hash
        self.checkpoint_factory = checkpoint_factory
        self.extra = dict(extra or {})
        self.fault = dict(fault or {})
        self._last_end: tuple[float, float] | None = None
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.best_metrics: dict[str, float] = {}
        self.finalised = False

    # ---- state restored with a Lightning checkpoint (resume keeps the best so far) ------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch, "best_metrics": dict(self.best_metrics)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")
        self.best_epoch = state_dict.get("best_epoch")
        self.best_metrics = dict(state_dict.get("best_metrics") or {})

    # ---- per epoch ----------------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: Any) -> None:
        if self._last_end is None:
            self._last_end = (time.perf_counter(), time.process_time())

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if self.startup and "startup/first_step_at" not in self.startup:
            self.startup["startup/first_step_at"] = time.time()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        # epoch_wall_s / epoch_cpu_s: from the previous epoch's report to this epoch's end (training + validation);
        # Tune's time_this_iter_s adds this epoch's artefacts, checkpoint and report
        wall0, cpu0 = self._last_end or (time.perf_counter(), time.process_time())
        timing = {"epoch_wall_s": time.perf_counter() - wall0, "epoch_cpu_s": time.process_time() - cpu0}
        epoch = trainer.current_epoch + 1
        metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
        metrics.update(getattr(pl_module, "epoch_metrics", {}))
        aim_hash = self.aim_hash()
        bad = non_finite(metrics, getattr(pl_module, "last_predictions", {}).get("val"))
        if bad:
            self._diverge(trainer, metrics, bad, timing, epoch, aim_hash)
            return
        value = metrics.get(self.monitor, float("nan"))
        improved = is_better(value, self.best, self.mode)
        if improved:
            self.best, self.best_epoch = value, epoch
            self.best_metrics = {k: v for k, v in metrics.items() if k.startswith("val/")}
            if trainer.is_global_zero:  # the val predictions of this epoch are at hand: keep them
                write_predictions(self.trial_dir / PREDICTIONS_FILE, [pl_module.last_predictions.get("val")])
        if trainer.is_global_zero:
            self._write_metrics(epoch, aim_hash)
        report = dict(metrics)
        report.update(timing)
        report.update(epoch=epoch, best_epoch=self.best_epoch or epoch, aim_hash=aim_hash or "")
        report.update({DIVERGED_KEY: False, REASON_KEY: ""})
        report[f"best/{self.monitor}"] = self.best if self.best is not None else float("nan")
        if self.startup and not self._startup_sent:
            report.update(self.startup)
            self._startup_sent = True
        last = self._is_last_epoch(trainer, epoch)
        self._report_with_checkpoint(
            trainer,
            report,
            aim_hash,
            keep_as_best=improved,
            before_report=(lambda: self.final_evaluation(trainer, pl_module, epoch)) if last else None,
        )
        self._last_end = (time.perf_counter(), time.process_time())
        if self.fault and trainer.is_global_zero:
            maybe_fault(self.fault, epoch)

    def _diverge(
        self,
        trainer: pl.Trainer,
        metrics: dict[str, float],
        bad: list[str],
        timing: dict[str, float],
        epoch: int,
        aim_hash: str | None,
    ) -> None:
        """A non-finite loss or score: report the worst value for every target, no checkpoint, and stop the
        trial (no final evaluation: its best epoch came before it diverged, and it is not a usable result)."""
        report = diverged_report(metrics, bad, self.targets)
        report.update(timing)
        report.update(epoch=epoch, best_epoch=self.best_epoch or epoch, aim_hash=aim_hash or "")
        report[f"best/{self.monitor}"] = worst(self.mode)
        self.diverged = str(report[REASON_KEY])
        self.finalised = True
        trainer.should_stop = True
        if trainer.is_global_zero:
            self._write_metrics(epoch, aim_hash)
        self.report(report, None)

    @staticmethod
    def _is_last_epoch(trainer: pl.Trainer, epoch: int) -> bool:
        """The trial's final epoch: its budget (``max_epochs`` = the scheduler's ``max_t``) or early stopping."""
        max_epochs = trainer.max_epochs
        return bool(trainer.should_stop) or (max_epochs is not None and max_epochs > 0 and epoch >= max_epochs)

    def on_fit_end(self, trainer: pl.Trainer, pl_module: Any) -> None:
        """Fallback for a fit that ended without a last-epoch report (e.g. ``max_steps``): evaluate then."""
        if not self.finalised:
            self.final_evaluation(trainer, pl_module, trainer.current_epoch)

    def final_evaluation(self, trainer: pl.Trainer, pl_module: Any, epochs: int) -> None:
        """Evaluate the best epoch's weights on val and test, with and without each modality, and write the final
        predictions and ``metrics.json`` (``complete: true``). Rank 0 only; the module keeps the best weights."""
        self.finalised = True
        best = self.trial_dir / BEST_CHECKPOINT_NAME
        if not trainer.is_global_zero or not best.is_file():
            return
        import torch

        state = torch.load(best, map_location=pl_module.device, weights_only=True)
        pl_module.load_state_dict(state["state_dict"])
        loaders = {"val": trainer.val_dataloaders, "test": self.test_batches}
        metrics: dict[str, float] = {}
        frames = []
        for split, batches in loaders.items():
            if batches is not None:
                values, frame = pl_module.evaluate(batches, split)
                metrics.update(values)
                frames.append(frame)
        robust, robust_frames = without_modality(pl_module, loaders)
        metrics.update(robust)
        write_predictions(self.trial_dir / PREDICTIONS_FILE, frames + robust_frames)
        from mmtune.training.aim_figures import aim_run_of, track_final

        track_final(aim_run_of(trainer.loggers), frames, trainer.val_dataloaders)
        self.best_metrics = metrics
        self._write_metrics(epochs, self.aim_hash(), final=True)

    def _write_metrics(self, epochs: int, aim_hash: str | None, final: bool = False) -> None:
        write_metrics_json(
            self.trial_dir / METRICS_FILE,
            self.best_metrics,
            epochs=epochs,
            best_epoch=self.best_epoch,
            aim_hash=aim_hash,
            monitor=self.monitor,
            extra={**self.extra, "complete": final and not self.diverged, DIVERGED_KEY: self.diverged or False},
        )

    def _report_with_checkpoint(
        self,
        trainer: pl.Trainer,
        metrics: dict[str, Any],
        aim_hash: str | None,
        keep_as_best: bool,
        before_report: Callable[[], None] | None = None,
    ) -> None:
        tmp = Path(tempfile.mkdtemp(prefix="mmtune-ckpt-"))
        try:
            trainer.save_checkpoint(str(tmp / CHECKPOINT_NAME), weights_only=False)  # collective under DDP
            checkpoint = None
            if trainer.is_global_zero:
                (tmp / AIM_HASH_NAME).write_text(aim_hash or "", encoding="utf-8")
                if keep_as_best:
                    _atomic_copy(tmp / CHECKPOINT_NAME, self.trial_dir / BEST_CHECKPOINT_NAME)
                if self.checkpoint_factory is not None:
                    checkpoint = self.checkpoint_factory(str(tmp))
            if before_report is not None:  # after best.ckpt is current, before Tune may stop the trial
                before_report()
            self.report(metrics, checkpoint)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _atomic_copy(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    part = dst.with_name(f".{dst.name}.part")
    shutil.copyfile(src, part)
    part.replace(dst)


def maybe_fault(fault: Mapping[str, Any], epoch: int) -> None:
    """Test-only fault injection (``mmtune.fault = {kill_at_epoch, marker}``): SIGKILL this process once, right
    after the checkpoint of ``kill_at_epoch`` was reported; the marker file makes it happen only once."""
    import os
    import signal

    if int(fault.get("kill_at_epoch", -1)) != epoch:
        return
    try:
        fd = os.open(fault["marker"], os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return
    os.write(fd, f"{os.getpid()} epoch {epoch}\n".encode())
    os.close(fd)
    time.sleep(0.5)  # let the report reach the driver before the process dies
    os.kill(os.getpid(), signal.SIGKILL)


def restore_checkpoint(checkpoint: Any) -> tuple[str | None, str | None]:
    """Copy a reported Ray checkpoint to a local temp dir: (Lightning checkpoint path, Aim run hash)."""
    if checkpoint is None:
        return None, None
    local = Path(tempfile.mkdtemp(prefix="mmtune-resume-"))
    with checkpoint.as_directory() as directory:
        src = Path(directory)
        if not (src / CHECKPOINT_NAME).is_file():
            return None, None
        shutil.copy2(src / CHECKPOINT_NAME, local / CHECKPOINT_NAME)
        aim_hash = (src / AIM_HASH_NAME).read_text(encoding="utf-8").strip() if (src / AIM_HASH_NAME).is_file() else ""
    return str(local / CHECKPOINT_NAME), aim_hash or None
