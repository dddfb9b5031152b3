"""``mmtune data prepare``: raw CT + clinical table -> patient-split Parquet shards + ``manifest.json``.

The driver plans (table, labels, splits: small) and cuts the patients into fixed shards (consecutive runs of the
plan, sized by the card). Ray tasks decode a few patients each (SimpleITK, windowing, resizing) straight into rows
of the prepared schema, and one task per shard concatenates its parts and writes the Parquet file, hashing the
bytes as it writes them; the driver only moves object references and keeps a few strings per patient, so
preparing scales with the cluster's CPUs and memory stays bounded by about one shard plus the tasks in flight.
Output goes to a temporary directory that is renamed only when complete; the same inputs and seed give
byte-identical shards and manifest, whatever the number of CPUs.
"""

from __future__ import annotations

import contextlib
import hashlib
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
from mmtune.data.decode import IMAGE_DTYPE, MASK_DTYPE
from mmtune.data.discovery import natural_key
from mmtune.data.plan import Plan, make_plan
from mmtune.data.shards import fixed_list, prepared_schema, shard_size, write_shard
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
    has_mask: list[bool] = field(default_factory=list)
    shard_facts: list[dict[str, Any]] = field(default_factory=list)  # name, rows, bytes, sha256 per shard

    def add(self, position: int, fact: dict[str, Any]) -> bool:
        """Record one patient's facts (in plan order); True when it was decoded and written."""
        pid = fact["patient_id"]
        self.files.extend(fact["files"])
        self.skipped.update({path: reason for path, reason in fact["skipped"]})
        self.warnings.extend(f"patient {pid!r}: {w}" for w in fact["warnings"])
        if fact["error"]:
            self.dropped[pid] = fact["error"]
            return False
        owner = self.image_owner.setdefault(fact["image_sha256"], pid)
        if owner != pid:
            self.duplicates.append((owner, pid))
        self.kept.append(position)
        self.has_mask.append(bool(fact["has_mask"]))
        return True


class _ShardPlan:
    """Which plan positions go to which shard, and the small plan columns a decode task needs for its jobs."""

    def __init__(self, plan: Plan, scaler: Standardiser) -> None:
        card = plan.card
        self.plan = plan
        self.scaler = scaler
        self.tasks = card.task_specs
        self.image_info = image_info(card)
        self.mask_info = mask_info(card)
        self.schema = prepared_schema(self.tasks, len(plan.features), self.image_info)
        self.label_tasks = [t.name for t in self.tasks if fmt.task_has_label_column(t)]
        self.per_shard = shard_size(self.image_info.nbytes + (self.mask_info.nbytes if self.mask_info else 0))
        index = {pid: i for i, pid in enumerate(plan.ids)}
        self.positions = [index[str(job["patient_id"])] for job in plan.jobs]

    def shards(self) -> list[list[int]]:
        """Job indices of each shard: consecutive runs of ``per_shard`` jobs (fixed by the card, not the CPUs)."""
        n = len(self.plan.jobs)
        return [list(range(i, min(i + self.per_shard, n))) for i in range(0, n, self.per_shard)]

    def rows(self, jobs: list[int]) -> dict[str, Any]:
        plan = self.plan
        pos = np.array([self.positions[j] for j in jobs], dtype=np.int64)
        return {
            "ids": [plan.ids[i] for i in pos],
            "groups": [plan.groups[i] for i in pos],
            "split": plan.split[pos],
            "fold": plan.fold[pos],
            "labels": {name: plan.labels[name][pos] for name in self.label_tasks},
            "clinical_raw": plan.clinical_raw[pos],
        }


def _parts(jobs: list[int], per_task: int) -> list[list[int]]:
    return [jobs[i : i + per_task] for i in range(0, len(jobs), per_task)]


def _write_shards(layout: _ShardPlan, out: Path, num_cpus: int | None, on_patients: Any) -> _Collected:
    """Decode tasks (a few patients each) feed one write task per shard; the driver only moves references and
    keeps each patient's facts. At most ``2 x CPUs`` decode tasks are in flight (``num_cpus`` caps them at that
    many), so memory stays bounded by about one shard of decoded rows plus the tasks in flight."""
    import ray

    from mmtune.data.shard_tasks import decode_rows, write_parts

    plan = layout.plan
    workers = num_cpus or max(1, int(ray.cluster_resources().get("CPU", 1)))
    window = num_cpus or 2 * workers
    per_task = max(1, min(MAX_PATIENTS_PER_TASK, math.ceil(len(plan.jobs) / (4 * workers))))
    decode = ray.remote(num_cpus=1, num_returns=2)(decode_rows)
    write = ray.remote(num_cpus=1)(write_parts)
    spec, root = plan.card.image, str(plan.root)
    with_masks = plan.card.source.has_masks
    facts: dict[int, Any] = {}  # job index of a part's first job -> its facts (an object ref)
    sizes: dict[Any, int] = {}  # facts ref -> patients in its part (progress)
    writes: list[Any] = []
    in_flight: list[Any] = []
    for number, shard_jobs in enumerate(layout.shards()):
        tables = []
        for part in _parts(shard_jobs, per_task):
            while len(in_flight) >= window:
                done, in_flight = ray.wait(in_flight, num_returns=1)
                on_patients(sizes[done[0]])
            table, fact = decode.remote(
                [plan.jobs[j] for j in part],
                layout.rows(part),
                spec,
                root,
                with_masks,
                layout.scaler,
                layout.tasks,
                layout.schema,
                layout.label_tasks,
            )
            tables.append(table)
            facts[part[0]] = fact
            sizes[fact] = len(part)
            in_flight.append(fact)
        name = f"{fmt.SHARD_DIR}/" + fmt.SHARD_PATTERN.format(index=number)
        writes.append(write.remote(str(out), name, layout.schema, *tables))
    while in_flight:
        done, in_flight = ray.wait(in_flight, num_returns=1)
        on_patients(sizes[done[0]])
    collected = _Collected()
    for shard_jobs in layout.shards():
        kept = []
        for part in _parts(shard_jobs, per_task):
            for j, fact in zip(part, ray.get(facts[part[0]])):
                if collected.add(layout.positions[j], fact):
                    kept.append(layout.positions[j])
        collected.shard_rows.append(kept)
    results = ray.get(writes)
    for result in results:
        if "data" in result:  # written on another node: the driver stores the bytes
            path = out / result["name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(result.pop("data"))
    # a shard none of whose patients decoded is dropped; the others are numbered without gaps
    keep = [i for i, r in enumerate(results) if r["rows"]]
    for number, i in enumerate(keep):
        name = f"{fmt.SHARD_DIR}/" + fmt.SHARD_PATTERN.format(index=number)
        if name != results[i]["name"]:
            (out / results[i]["name"]).rename(out / name)
            results[i]["name"] = name
    for result in results:
        if not result["rows"]:
            (out / result["name"]).unlink(missing_ok=True)
    collected.shards = [results[i]["name"] for i in keep]
    collected.shard_rows = [collected.shard_rows[i] for i in keep]
    collected.shard_facts = [results[i] for i in keep]
    return collected


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


def _rewrite_clinical(out: Path, layout: _ShardPlan, collected: _Collected, scaler: Standardiser) -> None:
    """Re-standardise shards after decode dropped training patients (rare), so stats match the written train rows."""
    plan = layout.plan
    n_features = len(plan.features)
    for i, (name, positions) in enumerate(zip(collected.shards, collected.shard_rows)):
        path = out / name
        table = pq.read_table(path, schema=layout.schema)
        values, missing = scaler.transform(plan.clinical_raw[np.array(positions, dtype=np.int64)])
        table = table.set_column(
            table.schema.get_field_index(fmt.CLINICAL), fmt.CLINICAL, fixed_list(values, n_features)
        )
        table = table.set_column(
            table.schema.get_field_index(fmt.CLINICAL_MISSING),
            fmt.CLINICAL_MISSING,
            fixed_list(missing, n_features),
        )
        write_shard(table.replace_schema_metadata(layout.schema.metadata), path)
        data = path.read_bytes()
        collected.shard_facts[i].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())


def _verify(plan: Plan, kept: list[int]) -> None:
    """Refuse a data set that leaks patients across splits (checked on the written rows' plan columns)."""
    if not kept:
        raise DataError("no patient could be decoded; nothing to write")
    pos = np.array(kept, dtype=np.int64)
    rows = pa.table(
        {
            fmt.PATIENT_ID: pa.array([plan.ids[i] for i in kept], pa.string()),
            fmt.SPLIT: pa.array([str(v) for v in plan.split[pos]], pa.string()),
            fmt.FOLD: pa.array(plan.fold[pos], pa.int32()),
        }
    )
    check_no_leakage(rows)


def write_prepared(plan: Plan, out: Path, *, num_cpus: int | None = None, progress: bool = False) -> fmt.Manifest:
    """Decode, write shards and ``manifest.json`` into ``out`` (an empty temporary directory)."""
    from mmtune.console import progress as progress_bar

    card = plan.card
    train = plan.split == "train"
    scaler = Standardiser.fit(plan.clinical_raw[train])
    layout = _ShardPlan(plan, scaler)
    with progress_bar(transient=True, disable=not progress) as bar:
        task = bar.add_task("decoding patients", total=len(plan.jobs))
        c = _write_shards(layout, out, num_cpus, lambda n: bar.advance(task, n))
    kept = c.kept
    kept_train = np.zeros(len(plan.ids), dtype=bool)
    kept_train[kept] = True
    kept_train &= train
    if int(kept_train.sum()) != int(train.sum()):
        scaler = Standardiser.fit(plan.clinical_raw[kept_train])
        _rewrite_clinical(out, layout, c, scaler)
    _verify(plan, kept)

    has_mask = c.has_mask if layout.mask_info is not None else [False] * len(kept)
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
        shard_info=[
            fmt.ShardInfo(name=f["name"], rows=f["rows"], bytes=f["bytes"], sha256=f["sha256"]) for f in c.shard_facts
        ],
        image=layout.image_info,
        mask=layout.mask_info,
        tasks=layout.tasks,
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
        counts=count_labels(layout.tasks, plan, kept, has_mask),
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
