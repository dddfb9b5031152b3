"""``mmtune data inspect``: what a prepared data set holds (counts per split x class, clinical missingness) and a
montage of slices per class, so a user can eyeball labels and preprocessing before training anything."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mmtune.data import format as fmt
from mmtune.errors import DataError
from mmtune.tasks import TaskKind, TaskSpec


@dataclass
class Summary:
    manifest: fmt.Manifest
    split_sizes: dict[str, int]
    missing: dict[str, dict[str, float]]  # feature -> split ("all" too) -> share missing


def read_columns(root: str | Path, columns: list[str], manifest: fmt.Manifest | None = None) -> pa.Table:
    """Selected columns of every shard, in shard order."""
    manifest = manifest or fmt.read_manifest(root)
    parts = [pq.read_table(path, columns=columns) for path in fmt.shard_paths(root, manifest)]
    return pa.concat_tables(parts) if parts else pa.table({c: [] for c in columns})


def summarize(root: str | Path) -> Summary:
    """Counts come from the manifest; missingness per split is recomputed from the shards."""
    manifest = fmt.read_manifest(root)
    table = read_columns(root, [fmt.SPLIT, fmt.CLINICAL_MISSING], manifest)
    splits = np.array(table.column(fmt.SPLIT).to_pylist(), dtype=object)
    n_features = len(manifest.clinical.features)
    flat = table.column(fmt.CLINICAL_MISSING).combine_chunks().flatten().to_numpy(zero_copy_only=False)
    missing = flat.reshape(len(splits), n_features) if n_features else np.zeros((len(splits), 0))
    sizes = {s: int((splits == s).sum()) for s in fmt.SPLITS}
    per_feature: dict[str, dict[str, float]] = {}
    for j, name in enumerate(manifest.clinical.features):
        entry = {"all": float(missing[:, j].mean()) if len(splits) else 0.0}
        for split in fmt.SPLITS:
            rows = splits == split
            entry[split] = float(missing[rows, j].mean()) if rows.any() else 0.0
        per_feature[name] = entry
    return Summary(manifest, sizes, per_feature)


def render(summary: Summary) -> list:
    """Rich tables: one per task (classes x splits) and one of clinical missingness."""
    from rich.table import Table

    manifest = summary.manifest
    head = Table(title=f"{manifest.name}: {manifest.n_patients} patients", show_header=True)
    head.add_column("")
    for split in fmt.SPLITS:
        head.add_column(split, justify="right")
    head.add_row("patients", *[str(summary.split_sizes.get(s, 0)) for s in fmt.SPLITS])
    tables = [head]
    for task in manifest.tasks:
        table = Table(title=f"task {task.name} ({task.kind.value})")
        table.add_column("class")
        for split in fmt.SPLITS:
            table.add_column(split, justify="right")
        keys: list[str] = (
            list(task.classes) if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS, TaskKind.MULTILABEL) else []
        )
        for split in fmt.SPLITS:
            for key in manifest.counts.get(split, {}).get(task.name, {}):
                if key not in keys:
                    keys.append(key)
        for key in keys:
            table.add_row(key, *[str(manifest.counts.get(s, {}).get(task.name, {}).get(key, 0)) for s in fmt.SPLITS])
        tables.append(table)
    if summary.missing:
        table = Table(title="clinical features: share missing")
        table.add_column("feature")
        for column in ("all", *fmt.SPLITS):
            table.add_column(column, justify="right")
        for name, entry in summary.missing.items():
            table.add_row(name, *[f"{entry[c]:.0%}" for c in ("all", *fmt.SPLITS)])
        tables.append(table)
    return tables


def montage(root: str | Path, out: str | Path, *, task: str | None = None, per_class: int = 6) -> Path:
    """A PNG grid: one row per class of ``task`` (default: the first binary/multiclass task), ``per_class`` patients
    per row, each shown by its middle slice."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    manifest = fmt.read_manifest(root)
    spec = _pick_task(manifest, task)
    table = read_columns(root, [fmt.PATIENT_ID, spec.label_column, fmt.IMAGE], manifest)
    labels = np.array(table.column(spec.label_column).to_pylist())
    ids = table.column(fmt.PATIENT_ID).to_pylist()
    fig, axes = plt.subplots(
        len(spec.classes), per_class, figsize=(1.6 * per_class, 1.7 * len(spec.classes)), squeeze=False
    )
    middle = manifest.image.shape[0] // 2
    for c, name in enumerate(spec.classes):
        rows = np.flatnonzero(labels == c)[:per_class]
        images = fmt.decode_binary_column(table.column(fmt.IMAGE).take(pa.array(rows, pa.int64())), manifest.image)
        for k in range(per_class):
            ax = axes[c, k]
            ax.set_xticks([])
            ax.set_yticks([])
            if k < len(rows):
                ax.imshow(images[k, middle].astype(np.float32), cmap="gray", vmin=0, vmax=1)
                ax.set_title(str(ids[rows[k]]), fontsize=7)
            else:
                ax.axis("off")
        axes[c, 0].set_ylabel(name, fontsize=9)
    fig.suptitle(f"{manifest.name}: task {spec.name}, middle slice per patient", fontsize=10)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def _pick_task(manifest: fmt.Manifest, name: str | None) -> TaskSpec:
    if name is not None:
        spec = manifest.task(name)
        if spec.kind not in (TaskKind.BINARY, TaskKind.MULTICLASS):
            raise DataError(f"--task {name}: a montage needs a binary or multiclass task (got {spec.kind.value})")
        return spec
    for spec in manifest.tasks:
        if spec.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
            return spec
    raise DataError(f"{manifest.name}: no binary or multiclass task to group slices by")
