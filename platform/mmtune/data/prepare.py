"""``mmtune data prepare``: raw CT + clinical table -> patient-split Parquet shards + ``manifest.json``.

The driver plans (table, labels, splits: small); Ray Data decodes patients in parallel (SimpleITK, windowing,
resizing) and streams them back in patient order; the driver writes fixed-size shards as rows arrive, so memory
stays bounded by a few shards however large the data set. Output goes to a temporary directory that is renamed
only when complete; the same inputs and seed give byte-identical shards and manifest.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import mmtune
from mmtune.atomic import atomic_directory, atomic_write_text
from mmtune.config.card import DatasetCard, load_card_with_source
from mmtune.data import format as fmt
from mmtune.data.clinical import Standardiser
from mmtune.data.decode import IMAGE_DTYPE, MASK_DTYPE, decode_batch
from mmtune.data.discovery import natural_key
from mmtune.data.plan import Plan, make_plan
from mmtune.data.shards import fixed_list, label_array, prepared_schema, shard_size, write_shard
from mmtune.data.splits import check_no_leakage
from mmtune.errors import DataError
from mmtune.tasks import TaskKind, TaskSpec

MAX_PATIENTS_PER_TASK = 16


@contextlib.contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None) -> Iterator[None]:
    """Use the running Ray, or start a local one (``address`` None/"local") or connect to ``address``; the Ray
    started here is shut down on exit."""
    import ray

    if ray.is_initialized():
        yield
        return
    if address in (None, "local"):
        ray.init(
            address="local",
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=True,
            logging_level=logging.WARNING,
        )
    else:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING)
    try:
        yield
    finally:
        ray.shutdown()


@contextlib.contextmanager
def _quiet_ray_data() -> Iterator[None]:
    """Ray Data logs execution banners at INFO/WARNING; our own progress bar replaces them.

    ``ray.data`` itself is reconfigured by Ray on every execution, so the level is set one level down, on the
    internal loggers that emit the banners (errors still show).
    """
    logger = logging.getLogger("ray.data._internal")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def decode_stream(plan: Plan, num_cpus: int | None = None) -> Iterator[pa.Table]:
    """Decoded patients as pyarrow batches, in the plan's patient order, decoded in parallel by Ray Data.

    ``num_cpus`` caps the concurrent decode tasks (default: every CPU of the cluster).
    """
    import ray

    jobs = [{"job": json.dumps(job, sort_keys=True)} for job in plan.jobs]
    workers = num_cpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
    per_task = max(1, min(MAX_PATIENTS_PER_TASK, math.ceil(len(jobs) / (4 * workers))))
    with _quiet_ray_data():
        ds = ray.data.from_items(jobs, override_num_blocks=max(1, math.ceil(len(jobs) / per_task)))
        ds = ds.map_batches(
            decode_batch,
            fn_kwargs={
                "spec": plan.card.image.model_dump(mode="json"),
                "root": str(plan.root),
                "with_masks": plan.card.source.has_masks,
            },
            batch_size=per_task,
            batch_format="pyarrow",
            num_cpus=1,
            compute=ray.data.TaskPoolStrategy(size=num_cpus) if num_cpus else None,
        )
        ctx = ds.context
        ctx.execution_options.preserve_order = True
        ctx.execution_options.verbose_progress = False
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        yield from ds.iter_batches(batch_size=None, batch_format="pyarrow", prefetch_batches=2)


@dataclass
class _Collected:
    """What the driver keeps per decoded patient: a few strings, never pixels."""

    kept: list[int] = field(default_factory=list)  # plan positions written, in order
    files: list[list[Any]] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    dropped: dict[str, str] = field(default_factory=dict)
    image_owner: dict[str, str] = field(default_factory=dict)
    duplicates: list[tuple[str, str]] = field(default_factory=list)
    shards: list[str] = field(default_factory=list)
    shard_rows: list[list[int]] = field(default_factory=list)


class _ShardBuilder:
    """Turns decoded batches into rows of the prepared schema and writes them as fixed-size shards."""

    def __init__(self, plan: Plan, out: Path, scaler: Standardiser) -> None:
        card = plan.card
        self.plan = plan
        self.out = out
        self.scaler = scaler
        self.tasks = card.task_specs
        self.image_info = image_info(card)
        self.mask_info = mask_info(card)
        self.n_features = len(plan.features)
        self.schema = prepared_schema(self.tasks, self.n_features, self.image_info)
        self.per_shard = shard_size(self.image_info.nbytes + (self.mask_info.nbytes if self.mask_info else 0))
        self.index = {pid: i for i, pid in enumerate(plan.ids)}
        self.pending: list[pa.Table] = []
        self.pending_rows: list[int] = []
        self.collected = _Collected()

    def add(self, batch: pa.Table) -> int:
        """Record one decoded batch; returns the number of patients it held."""
        rows = batch.to_pylist()
        good_positions: list[int] = []
        good_rows: list[dict[str, Any]] = []
        c = self.collected
        for row in rows:
            pid = row["patient_id"]
            c.files.extend(json.loads(row["files"]))
            c.skipped.update({path: reason for path, reason in json.loads(row["skipped"])})
            c.warnings.extend(f"patient {pid!r}: {w}" for w in json.loads(row["warnings"]))
            if row["error"]:
                c.dropped[pid] = row["error"]
                continue
            owner = c.image_owner.setdefault(row["image_sha256"], pid)
            if owner != pid:
                c.duplicates.append((owner, pid))
            good_positions.append(self.index[pid])
            good_rows.append(row)
        if good_rows:
            self.pending.append(self._table(good_positions, good_rows))
            self.pending_rows.extend(good_positions)
            c.kept.extend(good_positions)
            while len(self.pending_rows) >= self.per_shard:
                self._flush(self.per_shard)
        return len(rows)

    def close(self) -> None:
        if self.pending_rows:
            self._flush(len(self.pending_rows))

    def _flush(self, n: int) -> None:
        table = pa.concat_tables(self.pending).combine_chunks()
        head, tail = table.slice(0, n), table.slice(n)
        name = f"{fmt.SHARD_DIR}/" + fmt.SHARD_PATTERN.format(index=len(self.collected.shards))
        write_shard(head, self.out / name)
        self.collected.shards.append(name)
        self.collected.shard_rows.append(self.pending_rows[:n])
        self.pending = [tail] if tail.num_rows else []
        self.pending_rows = self.pending_rows[n:]

    def _table(self, positions: list[int], rows: list[dict[str, Any]]) -> pa.Table:
        plan = self.plan
        pos = np.array(positions, dtype=np.int64)
        raw = plan.clinical_raw[pos]
        values, missing = self.scaler.transform(raw)
        columns: list[pa.Array] = [
            pa.array([plan.ids[i] for i in positions], pa.string()),
            pa.array([plan.groups[i] for i in positions], pa.string()),
            pa.array([str(plan.split[i]) for i in positions], pa.string()),
            pa.array(plan.fold[pos], pa.int32()),
        ]
        for task in self.tasks:
            if fmt.task_has_label_column(task):
                columns.append(label_array(task, plan.labels[task.name][pos]))
        columns += [
            fixed_list(values, self.n_features),
            fixed_list(missing, self.n_features),
            fixed_list(raw, self.n_features),
            pa.array([r["image"] for r in rows], pa.binary()),
            pa.array([r["mask"] if self.mask_info else None for r in rows], pa.binary()),
        ]
        return pa.Table.from_arrays(columns, schema=self.schema)


def image_info(card: DatasetCard) -> fmt.ImageInfo:
    spec = card.image
    return fmt.ImageInfo(
        dtype=IMAGE_DTYPE, shape=spec.shape, layout=spec.kind, spacing=spec.spacing, value_range=[0.0, 1.0]
    )


def mask_info(card: DatasetCard) -> fmt.ArraySpec | None:
    return fmt.ArraySpec(dtype=MASK_DTYPE, shape=card.image.shape) if card.source.has_masks else None


def count_labels(tasks: list[TaskSpec], plan: Plan, positions: list[int], has_mask: list[bool]) -> dict:
    """``counts[split][task][class]``: patients per class ("masked" = no label) of each written patient."""
    counts: dict[str, dict[str, dict[str, int]]] = {}
    pos = np.array(positions, dtype=np.int64)
    splits = plan.split[pos] if len(pos) else np.array([], dtype=object)
    mask_flags = np.array(has_mask, dtype=bool)
    for split in fmt.SPLITS:
        sel = pos[splits == split]
        if not len(sel):
            continue
        per_task: dict[str, dict[str, int]] = {}
        for task in tasks:
            if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
                y = plan.labels[task.name][sel]
                entry = {name: int((y == i).sum()) for i, name in enumerate(task.classes)}
                entry["masked"] = int((y < 0).sum())
            elif task.kind == TaskKind.REGRESSION:
                y = plan.labels[task.name][sel]
                entry = {"labelled": int(np.isfinite(y).sum()), "masked": int((~np.isfinite(y)).sum())}
            elif task.kind == TaskKind.MULTILABEL:
                y = plan.labels[task.name][sel]
                entry = {name: int((y[:, j] == 1).sum()) for j, name in enumerate(task.classes)}
                entry["masked"] = int((~np.isfinite(y)).all(axis=1).sum())
            elif task.kind == TaskKind.SEGMENTATION:
                flags = mask_flags[splits == split]
                entry = {"with_mask": int(flags.sum()), "masked": int((~flags).sum())}
            else:
                entry = {"labelled": len(sel)}
            per_task[task.name] = entry
        counts[split] = per_task
    return counts


def source_digest(files: list[list[Any]]) -> str:
    """sha256 over sorted (relative path, size, content sha256) of every source file read."""
    digest = hashlib.sha256()
    for path, size, sha in sorted((str(p), int(s), str(h)) for p, s, h in files):
        digest.update(f"{path}\t{size}\t{sha}\n".encode())
    return digest.hexdigest()


def _rewrite_clinical(out: Path, builder: _ShardBuilder, scaler: Standardiser) -> None:
    """Re-standardise shards after decode dropped training patients (rare), so stats match the written train rows."""
    plan = builder.plan
    for name, positions in zip(builder.collected.shards, builder.collected.shard_rows):
        path = out / name
        table = pq.read_table(path, schema=builder.schema)
        values, missing = scaler.transform(plan.clinical_raw[np.array(positions, dtype=np.int64)])
        table = table.set_column(
            table.schema.get_field_index(fmt.CLINICAL), fmt.CLINICAL, fixed_list(values, builder.n_features)
        )
        table = table.set_column(
            table.schema.get_field_index(fmt.CLINICAL_MISSING),
            fmt.CLINICAL_MISSING,
            fixed_list(missing, builder.n_features),
        )
        write_shard(table.replace_schema_metadata(builder.schema.metadata), path)


def _verify(out: Path, shards: list[str]) -> None:
    """Read back the split columns of every shard and refuse a data set that leaks patients across splits."""
    if not shards:
        raise DataError("no patient could be decoded; nothing to write")
    parts = [pq.read_table(out / name, columns=[fmt.PATIENT_ID, fmt.SPLIT, fmt.FOLD]) for name in shards]
    check_no_leakage(pa.concat_tables(parts))


def write_prepared(plan: Plan, out: Path, *, num_cpus: int | None = None, progress: bool = False) -> fmt.Manifest:
    """Decode, write shards and ``manifest.json`` into ``out`` (an empty temporary directory)."""
    from mmtune.console import progress as progress_bar

    card = plan.card
    train = plan.split == "train"
    scaler = Standardiser.fit(plan.clinical_raw[train])
    builder = _ShardBuilder(plan, out, scaler)
    with progress_bar(transient=True, disable=not progress) as bar:
        task = bar.add_task("decoding patients", total=len(plan.jobs))
        for batch in decode_stream(plan, num_cpus):
            bar.advance(task, builder.add(batch))
    builder.close()
    c = builder.collected
    kept = c.kept
    kept_train = np.zeros(len(plan.ids), dtype=bool)
    kept_train[kept] = True
    kept_train &= train
    if int(kept_train.sum()) != int(train.sum()):
        scaler = Standardiser.fit(plan.clinical_raw[kept_train])
        _rewrite_clinical(out, builder, scaler)
    _verify(out, c.shards)

    has_mask = _mask_flags(out, c.shards, builder.mask_info is not None)
    warnings = list(plan.warnings) + sorted(set(c.warnings))
    warnings += [f"patients {a!r} and {b!r} have identical images" for a, b in c.duplicates]
    warnings += [f"patient {pid!r} dropped: {reason}" for pid, reason in sorted(c.dropped.items())]
    dropped = {**plan.dropped, **c.dropped}
    skipped = {**plan.skipped, **c.skipped}
    files = [*c.files, plan.table_file]
    kept_raw = plan.clinical_raw[np.array(kept, dtype=np.int64)]
    groups: dict[str, int] = {}
    for i in kept:
        groups[plan.groups[i]] = groups.get(plan.groups[i], 0) + 1
    manifest = fmt.Manifest(
        name=card.name,
        card_sha256=plan.loaded.sha256,
        source_sha256=source_digest(files),
        source_files=len(files),
        mmtune_version=mmtune.__version__,
        n_patients=len(kept),
        shards=c.shards,
        image=builder.image_info,
        mask=builder.mask_info,
        tasks=builder.tasks,
        clinical=fmt.ClinicalInfo(
            features=plan.features,
            mean=[float(v) for v in scaler.mean],
            std=[float(v) for v in scaler.std],
            missing_rate=[float(v) for v in (~np.isfinite(kept_raw)).mean(axis=0)] if len(kept) else [],
            fitted_on="train",
        ),
        split=fmt.SplitInfo(
            method=card.split.method,
            seed=card.split.seed,
            k_folds=card.split.k_folds,
            stratify_by=card.split.stratify_by,
            group_column=card.split_group_column if card.split.method == "group" else None,
            test_fraction=card.split.test_fraction,
            val_fold=card.split.val_fold,
        ),
        counts=count_labels(builder.tasks, plan, kept, has_mask),
        groups=dict(sorted(groups.items())),
        dropped=[
            fmt.DroppedPatient(patient_id=p, reason=r)
            for p, r in sorted(dropped.items(), key=lambda kv: natural_key(kv[0]))
        ],
        skipped_files=[fmt.SkippedFile(path=p, reason=r) for p, r in sorted(skipped.items())],
        warnings=warnings,
        split_sizes={s: int((plan.split[np.array(kept, dtype=np.int64)] == s).sum()) for s in fmt.SPLITS},
        source_layout=card.source.layout,
    )
    atomic_write_text(fmt.manifest_path(out), fmt.json_dumps(manifest.model_dump(mode="json")))
    return manifest


def _mask_flags(out: Path, shards: list[str], with_masks: bool) -> list[bool]:
    if not with_masks:
        return [False] * sum(pq.read_metadata(out / s).num_rows for s in shards)
    flags: list[bool] = []
    for name in shards:
        column = pq.read_table(out / name, columns=[fmt.MASK]).column(fmt.MASK)
        flags.extend(column.is_valid().to_pylist())
    return flags


def prepare(
    card_path: str | Path,
    out: str | Path,
    *,
    source: str | Path | None = None,
    address: str | None = None,
    num_cpus: int | None = None,
    overwrite: bool = False,
    progress: bool = False,
    overrides: dict[str, Any] | None = None,
) -> fmt.Manifest:
    """Prepare the raw data a card describes into ``out`` (Parquet shards + manifest); returns the manifest.

    Fatal input problems raise a one-line ``UserError`` before Ray starts and leave ``out`` untouched. Ray is
    started locally (or joined at ``address``) only when it is not running yet. ``overrides`` are dotted card keys
    (``{"image.size": 64}``, the CLI's ``--set``).
    """
    loaded = load_card_with_source(card_path, overrides)
    out = Path(out).expanduser()
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: output exists and is not empty; pass --overwrite to replace it")
    plan = make_plan(loaded, source)
    with ray_session(address, num_cpus), atomic_directory(out, overwrite=overwrite) as tmp:
        return write_prepared(plan, tmp, num_cpus=num_cpus, progress=progress)
