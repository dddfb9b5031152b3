"""Task specifications shared by dataset cards, prepared manifests, models, losses and metrics.

A task has a name (``covid``, ``morbidity``, ``severity``, ``findings``, ``lesion_seg``) and a kind. Missing labels
are masked, never dropped: -1 for class tasks, NaN for regression / multilabel entries, an all-absent mask flag for
segmentation.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field


class TaskKind(StrEnum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"
    REGRESSION = "regression"
    SEGMENTATION = "segmentation"
    RECONSTRUCTION = "reconstruction"


CLASSIFICATION_KINDS = frozenset({TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.MULTILABEL})
DENSE_KINDS = frozenset({TaskKind.SEGMENTATION, TaskKind.RECONSTRUCTION})


class TaskSpec(BaseModel):
    """What a model needs to know about one task (as recorded in a prepared data set's manifest).

    ``classes`` names the classes of binary/multiclass tasks (index = label) and the labels of a multilabel task.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    kind: TaskKind
    classes: list[str] = Field(default_factory=list)

    @property
    def num_outputs(self) -> int:
        """Width of the head's output: 1 logit for binary/regression, one per class or label otherwise."""
        if self.kind in (TaskKind.BINARY, TaskKind.REGRESSION):
            return 1
        if self.kind == TaskKind.SEGMENTATION:
            return max(1, len(self.classes) - 1) if self.classes else 1
        if self.kind == TaskKind.RECONSTRUCTION:
            return 1
        return len(self.classes)

    @property
    def is_classification(self) -> bool:
        return self.kind in CLASSIFICATION_KINDS

    @property
    def label_column(self) -> str:
        """Column of the prepared Parquet holding this task's labels."""
        return label_column(self.name)


LABEL_PREFIX = "y_"


def label_column(task: str) -> str:
    return f"{LABEL_PREFIX}{task}"
