"""The Lightning module of one multi-task run: model + masked task losses + loss weighting + masked metrics.

Loss weightings (``combine``) use automatic optimisation; gradient-manipulating weightings (PCGrad, GradNorm, ...,
``weighting.manual_gradients``) use Lightning manual optimisation and call ``weighting.backward``. Validation keeps
every patient's predictions (``last_predictions["val"]``) so the best epoch's predictions can be written.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd
import pytorch_lightning as pl
import torch

from mmtune.config.run import RunConfig
from mmtune.data.multisource import DataInfo
from mmtune.training.metrics import RunMetrics
from mmtune.training.model_spec import DATA_KEY
from mmtune.training.predictions import PredictionBuffer

CONFIG_KEY = "mmtune_config"


class MultiTaskModule(pl.LightningModule):
    """See the module docstring; ``evaluate`` runs a plain no-grad pass (optionally without one modality)."""

    def __init__(self, cfg: RunConfig, info: DataInfo) -> None:
        super().__init__()
        from mmtune.losses.weighting import build_weighting
        from mmtune.models import build_model

        self.cfg = cfg
        self.info = info
        self.tasks = list(info.tasks)
        self.task_options = resolved_task_options(cfg, info)
        self.model = build_model(cfg.model, info.image, info.n_clinical, self.tasks)
        # The run config's tasks carry the static weights; the model supplies each task's kind.
        self.weighting = build_weighting(cfg.weighting, cfg.tasks, self.model)
        self.manual = bool(getattr(self.weighting, "manual_gradients", False))
        self.automatic_optimization = not self.manual
        names = info.source_names if info.multi_source else []
        self.val_metrics = RunMetrics(self.tasks, names)
        self._val_predictions = PredictionBuffer(self.tasks, info.source_names, "val")
        self.last_val_metrics: dict[str, float] = {}
        self.last_train_metrics: dict[str, float] = {}
        self._train_sums = EpochMeans()
        self._val_sums = EpochMeans()
        self.last_predictions: dict[str, pd.DataFrame] = {}
        self._diagnostics_batch: dict[str, Any] | None = None
        self._data_spec: dict[str, Any] | None = None

    # ---- forward / losses -------------------------------------------------------------------------------
    def forward(self, batch: Mapping[str, Any], drop_modality: str | None = None) -> dict[str, torch.Tensor]:
        return self.model(batch, drop_modality=drop_modality)

    def task_losses(
        self, outputs: Mapping[str, torch.Tensor], batch: Mapping[str, Any]
    ) -> tuple[dict[str, torch.Tensor], dict[str, int]]:
        """Masked loss of every task and how many samples of the batch label it."""
        from mmtune.losses import task_losses

        return task_losses(self.tasks, outputs, batch, self.task_options)

    @staticmethod
    def _batch_size(batch: Mapping[str, Any]) -> int:
        return int(batch["image"].shape[0])

    # ---- training ---------------------------------------------------------------------------------------
    def training_step(self, batch: Mapping[str, Any], batch_idx: int) -> torch.Tensor | None:
        from mmtune.losses.weighting import StepInfo

        if self.cfg.trainer.diagnostics and self._diagnostics_batch is None:
            from mmtune.training.diagnostics import fixed_batch

            self._diagnostics_batch = fixed_batch(batch, self.cfg.trainer.diagnostics_batch)
        outputs = self(batch)
        losses, counts = self.task_losses(outputs, batch)
        step = StepInfo(step=self.global_step, epoch=self.current_epoch, n_labelled=counts)
        size = self._batch_size(batch)
        if self.manual:
            optimizer = self.optimizers()
            optimizer.zero_grad()
            total = self.weighting.backward(
                losses, self.model.shared_parameters(), self.manual_backward, step_info=step
            )
            if self.cfg.trainer.gradient_clip:
                self.clip_gradients(optimizer, gradient_clip_val=self.cfg.trainer.gradient_clip)
            optimizer.step()
        else:
            total = self.weighting.combine(losses, step)
        self._train_sums.add("train/loss", total.detach(), size)
        for name, loss in losses.items():
            self._train_sums.add(f"train/{name}/loss", loss.detach(), size)
        return None if self.manual else total

    def on_train_epoch_start(self) -> None:
        self._train_sums.clear()

    def on_train_epoch_end(self) -> None:
        means = {k: self.trainer.strategy.reduce(v, reduce_op="mean") for k, v in self._train_sums.means().items()}
        self.last_train_metrics = {k: float(v) for k, v in means.items()}
        self.last_train_metrics.update(self.diagnostics())
        self._publish(self.last_train_metrics)
        hook = getattr(self.weighting, "on_epoch_end", None)
        if callable(hook):
            hook()
        if self.manual:
            scheduler = self.lr_schedulers()
            if scheduler is not None:
                scheduler.step()

    def diagnostics(self) -> dict[str, float]:
        """This epoch's task weights, shared-gradient norms and cosines (``mmtune.training.diagnostics``)."""
        if self._diagnostics_batch is None:
            return {}
        from mmtune.training.diagnostics import gradient_diagnostics

        fixed = self._diagnostics_batch
        return gradient_diagnostics(
            self.model, lambda outputs: self.task_losses(outputs, fixed), fixed, self.weighting.task_weights()
        )

    # ---- validation -------------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.val_metrics.reset()
        self._val_predictions.clear()
        self._val_sums.clear()

    def validation_step(self, batch: Mapping[str, Any], batch_idx: int) -> None:
        outputs = self(batch)
        losses, _ = self.task_losses(outputs, batch)
        total = sum(loss.detach() for loss in losses.values())
        self._val_sums.add("val/loss", total, self._batch_size(batch))
        self.val_metrics.update(outputs, batch)
        self._val_predictions.add(outputs, batch)

    def on_validation_epoch_end(self) -> None:
        metrics = self.val_metrics.compute("val")
        self.last_predictions["val"] = self._val_predictions.frame()
        # val data are not split across DDP workers: every rank computes the same values (no sync needed).
        metrics.update({k: float(v) for k, v in self._val_sums.means().items()})
        self.last_val_metrics = metrics
        monitor = self.cfg.trainer.monitor
        if monitor in metrics:  # ModelCheckpoint / EarlyStopping read it from the trainer
            self.log(monitor, metrics[monitor], on_step=False, on_epoch=True, logger=False)
        self._publish(metrics)

    def _publish(self, metrics: Mapping[str, float]) -> None:
        """Epoch metrics go straight to the loggers: ``self.log`` costs milliseconds per key (Lightning moves its
        whole result state per call), a visible share of a small model's epoch with dozens of metric keys."""
        if self.trainer.sanity_checking or not metrics:
            return
        for logger in self.loggers:
            logger.log_metrics({**metrics, "epoch": self.current_epoch}, step=self.global_step)

    @property
    def epoch_metrics(self) -> dict[str, float]:
        """The last epoch's training means and validation metrics (what a trial reports)."""
        return {**self.last_train_metrics, **self.last_val_metrics}

    # ---- plain evaluation (best checkpoint, test set, missing-modality robustness) ------------------------
    @torch.no_grad()
    def evaluate(
        self, batches: Iterable[Mapping[str, Any]], split: str = "test", drop_modality: str | None = None
    ) -> tuple[dict[str, float], pd.DataFrame]:
        """Metrics (``<split>/...``) and per-patient predictions of one pass over ``batches``."""
        was_training = self.training
        self.eval()
        names = self.info.source_names if self.info.multi_source else []
        metrics = RunMetrics(self.tasks, names).to(self.device)
        buffer = PredictionBuffer(self.tasks, self.info.source_names, split)
        total, count = 0.0, 0
        try:
            for batch in batches:
                batch = _to_device(batch, self.device)
                outputs = self(batch, drop_modality=drop_modality)
                losses, _ = self.task_losses(outputs, batch)
                size = self._batch_size(batch)
                total += float(sum(loss.detach() for loss in losses.values())) * size
                count += size
                metrics.update(outputs, batch)
                buffer.add(outputs, batch)
        finally:
            self.train(was_training)
        out = metrics.compute(split)
        out[f"{split}/loss"] = total / count if count else float("nan")
        return out, buffer.frame()

    # ---- optimisation -----------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        optim = self.cfg.optim
        params = [p for p in self.parameters() if p.requires_grad]
        if optim.name == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=optim.lr, momentum=0.9, weight_decay=optim.weight_decay
            )
        elif optim.name == "adam":
            optimizer = torch.optim.Adam(params, lr=optim.lr, weight_decay=optim.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=optim.lr, weight_decay=optim.weight_decay)
        if optim.scheduler == "cosine":
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.cfg.trainer.max_epochs)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        return optimizer

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[CONFIG_KEY] = self.cfg.model_dump(mode="json")
        checkpoint[DATA_KEY] = self.data_spec()

    def data_spec(self) -> dict[str, Any]:
        """What the model expects from data (``mmtune.training.model_spec``), so ``mmtune predict`` / ``evaluate`` can
        score it on another prepared data set without the training data; computed once."""
        if self._data_spec is None:
            from mmtune.training.model_spec import spec_from_info

            self._data_spec = spec_from_info(self.info).model_dump(mode="json")
        return self._data_spec


class EpochMeans:
    """Sample-weighted running means of detached scalars over an epoch (logged once at its end)."""

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, key: str, value: torch.Tensor, n: int) -> None:
        self.sums[key] = self.sums.get(key, 0.0) + value.detach().float() * n
        self.counts[key] = self.counts.get(key, 0) + n

    def means(self) -> dict[str, torch.Tensor]:
        return {k: self.sums[k] / self.counts[k] for k in self.sums if self.counts[k]}

    def clear(self) -> None:
        self.sums.clear()
        self.counts.clear()


def resolved_task_options(cfg: RunConfig, info: DataInfo) -> dict[str, Any]:
    """Task options with ``pos_weight: auto`` / ``class_weights: balanced`` turned into numbers from the run's
    training labels (read only when some task asks for them)."""
    from mmtune.losses import resolve_task_options

    options = {t.name: t for t in cfg.tasks}
    wanted = [t for t in cfg.tasks if t.pos_weight == "auto" or t.class_weights == "balanced"]
    if not wanted:
        return options
    from mmtune.data.loading import train_labels

    labels = train_labels(info, [t.name for t in wanted])
    for t in wanted:
        options[t.name] = resolve_task_options(info.task(t.name), t, labels.get(t.name))
    return options


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def load_weights(module: MultiTaskModule, checkpoint_path: str) -> None:
    """Load a Lightning checkpoint's weights into ``module`` (``weights_only`` safe load)."""
    state = torch.load(checkpoint_path, map_location=module.device, weights_only=True)
    module.load_state_dict(state["state_dict"])
