"""What a trained model expects from its input data, stored in its checkpoint (``mmtune_data``).

A model only makes sense on data prepared like its training data: the same image geometry, the clinical features
it was trained on (standardised with the *training* statistics) and its tasks with their classes in its order.
Checkpoints written before this key existed fall back to the manifests of the training data named in their config.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

from mmtune.data.format import ImageInfo
from mmtune.tasks import TaskSpec

DATA_KEY = "mmtune_data"


class ModelSpec(BaseModel):
    """Image geometry, clinical features + training statistics, tasks (see the module docstring)."""

    model_config = ConfigDict(extra="forbid")

    image: ImageInfo
    features: list[str]
    mean: list[float]
    std: list[float]
    tasks: list[TaskSpec]
    data_names: list[str] = []
    data_paths: list[str] = []


def spec_from_info(info: Any) -> ModelSpec:
    """The spec of a run's ``DataInfo``: the statistics the run standardised with (refitted per fold / held-out
    group, otherwise the prepared train split's), each feature from the first source that has it."""
    import numpy as np

    from mmtune.data.loading import fit_standardisers

    fitted = fit_standardisers(info)
    mean = np.zeros(info.n_clinical)
    std = np.ones(info.n_clinical)
    done: set[str] = set()
    for source in info.sources:
        own = source.manifest.clinical.features
        standardiser = fitted.get(source.index)
        src_mean = standardiser.mean if standardiser is not None else np.asarray(source.manifest.clinical.mean)
        src_std = standardiser.std if standardiser is not None else np.asarray(source.manifest.clinical.std)
        for i, name in enumerate(own):
            if name in done or i >= len(src_mean):
                continue
            j = info.features.index(name)
            mean[j], std[j] = float(src_mean[i]), float(src_std[i]) or 1.0
            done.add(name)
    return ModelSpec(
        image=info.image,
        features=list(info.features),
        mean=[float(v) for v in mean],
        std=[float(v) for v in std],
        tasks=list(info.tasks),
        data_names=[s.manifest.name for s in info.sources],
        data_paths=[str(s.path) for s in info.sources],
    )
