"""Prepared Parquet -> torch batches (the batch dict of docs/architecture.md), by two paths that share one decoder.

* **In memory** (one worker, ``fit`` and inline trials): each source is read once with pyarrow, harmonised, split,
  and decoded to numpy (the image column zero-copy with ``np.frombuffer``); a batch is a numpy fancy-index plus a
  float16 -> float32 cast. Fast for the data sizes one worker trains on.
* **Ray Data** (Ray Train workers): ``ray.data.read_parquet(shards)`` + ``filter(expr=...)`` + ``select_columns``
  (both pushed into the read), handed to ``TorchTrainer(datasets=...)``; on a worker
  ``get_dataset_shard(split).iter_torch_batches(collate_fn=ArrowBatchDecoder(...))`` decodes each Arrow batch with
  the same functions as the in-memory path, so both paths yield identical values.

Harmonising makes every source look the same: a ``dataset`` index column, one label column per run task (masked
where the source lacks the task), clinical features mapped onto the union of all sources' features (missing where a
source lacks one) and, for a fold or a held-out group, re-standardised with statistics refitted on that source's
training rows from ``clinical_raw`` (no statistics leak from validation patients).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.dataset as pads

from mmtune.config.run import DataConfig
from mmtune.data.clinical import Standardiser
from mmtune.data.format import (
    CLINICAL,
    CLINICAL_MISSING,
    CLINICAL_RAW,
    FOLD,
    GROUP,
    IMAGE,
    MASK,
    PATIENT_ID,
    SPLIT,
    decode_binary_column,
    label_arrow_type,
    task_has_label_column,
)
from mmtune.data.multisource import DataInfo, Source, resolve_data, split_expression
from mmtune.tasks import TaskKind, TaskSpec

if TYPE_CHECKING:
    import torch

DATASET = "dataset"
HAS_MASK = "has_mask"
SPLIT_NAMES = ("train", "val", "test")


# ----------------------------------------------------------------------------------------------------------------
# clinical standardisation


def fit_standardisers(info: DataInfo) -> dict[int, Standardiser | None]:
    """Refitted statistics per source when the run's training rows differ from the prepared ``train`` split."""
    if not info.refit_clinical:
        return {s.index: None for s in info.sources}
    out: dict[int, Standardiser | None] = {}
    for source in info.sources:
        train = split_expression("train", info.fold, info.test_group, val_ids=info.val_ids_for(source))
        table = _dataset(source).to_table(columns=[CLINICAL_RAW], filter=train)
        raw = fixed_list_to_numpy(table[CLINICAL_RAW], _width(source)).astype(np.float64)
        out[source.index] = Standardiser.fit(raw)
    return out


# ----------------------------------------------------------------------------------------------------------------
# Arrow helpers


def _dataset(source: Source) -> pads.Dataset:
    return pads.dataset([str(p) for p in source.shards], format="parquet")


def _width(source: Source) -> int:
    return len(source.manifest.clinical.features)


def fixed_list_to_numpy(column: pa.ChunkedArray | pa.Array, width: int) -> np.ndarray:
    """``fixed_size_list<float32>[width]`` -> float32 ``[N, width]`` (null lists become NaN rows)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    n = len(column)
    if column.null_count:
        rows = [np.full(width, np.nan, np.float32) if v is None else np.asarray(v, np.float32) for v in column]
        return np.stack(rows).reshape(n, width) if rows else np.zeros((0, width), np.float32)
    values = column.flatten().to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(n, width)


def _fixed_list(values: np.ndarray) -> pa.FixedSizeListArray:
    values = np.ascontiguousarray(values, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1)), values.shape[1])


def source_columns(source: Source, info: DataInfo) -> list[str]:
    """The stored columns of ``source`` that a run of ``info`` reads (besides the split columns)."""
    cols = [PATIENT_ID, IMAGE, CLINICAL, CLINICAL_MISSING]
    if info.refit_clinical:
        cols.append(CLINICAL_RAW)
    if info.needs_mask and source.manifest.mask is not None:
        cols.append(MASK)
    cols += [t.label_column for t in info.tasks if task_has_label_column(t) and source.has_task(t.name)]
    return cols


def harmonised_columns(info: DataInfo) -> list[str]:
    cols = [PATIENT_ID, DATASET, IMAGE, CLINICAL, CLINICAL_MISSING]
    if info.needs_mask:
        cols.append(MASK)
    return cols + [t.label_column for t in info.tasks if task_has_label_column(t)]


def needs_harmonising(info: DataInfo) -> bool:
    """Only multi-source runs and refitted folds change the stored columns; otherwise batches decode as stored."""
    if info.multi_source or info.refit_clinical:
        return True
    source = info.sources[0]
    return info.needs_mask and source.manifest.mask is None


def harmonise_table(table: pa.Table, source: Source, info: DataInfo, standardiser: Standardiser | None) -> pa.Table:
    """``table`` (stored columns of ``source``) -> the common columns of ``info`` (see the module docstring)."""
    n = table.num_rows
    cols: dict[str, pa.Array | pa.ChunkedArray] = {
        PATIENT_ID: table[PATIENT_ID],
        DATASET: pa.array(np.full(n, source.index, np.int64)),
        IMAGE: table[IMAGE],
    }
    own = source.manifest.clinical.features
    if standardiser is not None:
        clinical, missing = standardiser.transform(fixed_list_to_numpy(table[CLINICAL_RAW], len(own)))
    else:
        clinical = fixed_list_to_numpy(table[CLINICAL], len(own))
        missing = fixed_list_to_numpy(table[CLINICAL_MISSING], len(own))
    if own != info.features:
        union_clinical = np.zeros((n, info.n_clinical), np.float32)
        union_missing = np.ones((n, info.n_clinical), np.float32)
        where = [info.features.index(f) for f in own]
        union_clinical[:, where] = clinical
        union_missing[:, where] = missing
        clinical, missing = union_clinical, union_missing
    cols[CLINICAL] = _fixed_list(clinical)
    cols[CLINICAL_MISSING] = _fixed_list(missing)
    if info.needs_mask:
        cols[MASK] = table[MASK] if MASK in table.column_names else pa.nulls(n, pa.binary())
    for task in info.tasks:
        if not task_has_label_column(task):
            continue
        name = task.label_column
        cols[name] = table[name] if name in table.column_names else masked_labels(task, n)
    return pa.table(cols)


def masked_labels(task: TaskSpec, n: int) -> pa.Array:
    """A label column of ``n`` rows where every label is masked (-1 or NaN)."""
    kind = task.kind
    if kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
        return pa.array(np.full(n, -1, np.int64))
    if kind == TaskKind.MULTILABEL:
        width = len(task.classes)
        return pa.FixedSizeListArray.from_arrays(pa.array(np.full(n * width, np.nan, np.float32)), width)
    return pa.array(np.full(n, np.nan, np.float32), type=label_arrow_type(task))


# ----------------------------------------------------------------------------------------------------------------
# Arrow -> numpy -> torch (shared by both paths)


def table_to_numpy(table: pa.Table, info: DataInfo, with_ids: bool = True) -> dict[str, np.ndarray]:
    """Decode a (stored or harmonised) table into numpy columns: image stays float16 (zero-copy when possible)."""
    n = table.num_rows
    out: dict[str, np.ndarray] = {IMAGE: decode_binary_column(table[IMAGE], info.image)}
    out[DATASET] = (
        table[DATASET].to_numpy().astype(np.int64, copy=False)
        if DATASET in table.column_names
        else np.zeros(n, np.int64)
    )
    out[CLINICAL] = fixed_list_to_numpy(table[CLINICAL], info.n_clinical)
    out[CLINICAL_MISSING] = fixed_list_to_numpy(table[CLINICAL_MISSING], info.n_clinical)
    if info.needs_mask:
        spec = _mask_spec(info)
        column = table[MASK] if MASK in table.column_names else pa.chunked_array([pa.nulls(n, pa.binary())])
        out[MASK] = decode_binary_column(column, spec) if spec is not None else np.zeros((n, 0), np.uint8)
        out[HAS_MASK] = np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=bool)
    for task in info.tasks:
        if task_has_label_column(task):
            out[task.label_column] = _labels_to_numpy(table[task.label_column], task)
    if with_ids:
        out[PATIENT_ID] = np.asarray(table[PATIENT_ID].to_pylist(), dtype=object)
    return out


def _mask_spec(info: DataInfo) -> Any:
    for source in info.sources:
        if source.manifest.mask is not None:
            return source.manifest.mask
    from mmtune.data.format import ArraySpec

    return ArraySpec(dtype="uint8", shape=list(info.image.shape))


def _labels_to_numpy(column: pa.ChunkedArray, task: TaskSpec) -> np.ndarray:
    if task.kind in (TaskKind.BINARY, TaskKind.MULTICLASS):
        return np.asarray(column.fill_null(-1).to_numpy(), dtype=np.int64)
    if task.kind == TaskKind.MULTILABEL:
        return fixed_list_to_numpy(column, len(task.classes))
    return np.asarray(column.to_numpy(zero_copy_only=False), dtype=np.float32)


def numpy_to_batch(cols: dict[str, np.ndarray], info: DataInfo) -> dict[str, Any]:
    """numpy columns -> the batch dict: float32 images/masks shaped per layout, binary labels as float with NaN."""

    image = _tensor(cols[IMAGE]).float()
    volume = info.image.layout == "volume3d"
    if volume:
        image = image.unsqueeze(1)
    batch: dict[str, Any] = {
        IMAGE: image,
        CLINICAL: _tensor(cols[CLINICAL]),
        CLINICAL_MISSING: _tensor(cols[CLINICAL_MISSING]),
        DATASET: _tensor(cols[DATASET]),
    }
    if MASK in cols:
        mask = _tensor(cols[MASK]).float()
        batch[MASK] = mask.unsqueeze(1) if volume else mask
        batch[HAS_MASK] = _tensor(cols[HAS_MASK])
    for task in info.tasks:
        if not task_has_label_column(task):
            continue
        values = cols[task.label_column]
        if task.kind == TaskKind.BINARY:
            values = np.where(values < 0, np.nan, values).astype(np.float32)
        batch[task.label_column] = _tensor(values)
    if PATIENT_ID in cols:
        batch[PATIENT_ID] = [str(p) for p in cols[PATIENT_ID]]
    return batch


def _tensor(array: np.ndarray) -> torch.Tensor:
    """A tensor sharing ``array``'s memory when it is writable and contiguous, else over a copy (Arrow buffers are
    read-only; torch must not alias them)."""
    import torch

    if not (array.flags.writeable and array.flags.c_contiguous):
        array = np.array(array, copy=True, order="C")
    return torch.from_numpy(array)


def augment_batch(batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
    """Small train-time augmentation: random horizontal/vertical flips (mask flipped alike), intensity jitter."""
    import torch

    image = batch[IMAGE]
    n = image.shape[0]
    mask = batch.get(MASK)
    for dim in (-1, -2):
        flip = torch.rand(n, generator=generator) < 0.5
        shape = (n,) + (1,) * (image.dim() - 1)
        image = torch.where(flip.view(shape), image.flip(dim), image)
        if mask is not None:
            mask = torch.where(flip.view(shape), mask.flip(dim), mask)
    scale = 1.0 + (torch.rand(n, generator=generator) - 0.5) * 0.1
    shift = (torch.rand(n, generator=generator) - 0.5) * 0.1
    shape = (n,) + (1,) * (image.dim() - 1)
    image = (image * scale.view(shape) + shift.view(shape)).clamp_(0.0, 1.0)
    out = dict(batch)
    out[IMAGE] = image
    if mask is not None:
        out[MASK] = mask
    return out


# ----------------------------------------------------------------------------------------------------------------
# in-memory path


@dataclass
class SplitArrays:
    """One split of a run decoded into numpy (all sources concatenated); ``weights`` drive weighted sampling."""

    columns: dict[str, np.ndarray]
    weights: np.ndarray

    def __len__(self) -> int:
        return len(self.columns[DATASET])

    def take(self, indices: np.ndarray | list[int]) -> dict[str, np.ndarray]:
        idx = np.asarray(indices, dtype=np.int64)
        return {k: v[idx] for k, v in self.columns.items()}


def read_split_tables(info: DataInfo, splits: tuple[str, ...] = SPLIT_NAMES) -> dict[str, pa.Table]:
    """Each split's harmonised rows (all sources) as one Arrow table; each shard is read once."""
    standardisers = fit_standardisers(info)
    parts: dict[str, list[pa.Table]] = {s: [] for s in splits}
    for source in info.sources:
        columns = [*source_columns(source, info), SPLIT, FOLD, GROUP]
        table = _dataset(source).to_table(columns=columns)
        for split in splits:
            rows = table.filter(split_expression(split, info.fold, info.test_group, val_ids=info.val_ids_for(source)))
            if needs_harmonising(info):
                rows = harmonise_table(rows, source, info, standardisers[source.index])
            else:
                rows = rows.drop_columns(
                    [SPLIT, FOLD, GROUP] + ([CLINICAL_RAW] if CLINICAL_RAW in rows.column_names else [])
                )
            parts[split].append(rows)
    return {s: pa.concat_tables(tables) if len(tables) > 1 else tables[0] for s, tables in parts.items()}


NODE_CACHE_BYTES = 256 * 1024**2


def uses_node_cache(info: DataInfo, cache: str = "memory") -> bool:
    """``data.cache``: ``node`` / ``memory`` as asked; ``auto`` = node above ``NODE_CACHE_BYTES`` of images (below,
    a private copy costs little and leaves no files behind)."""
    if cache == "auto":
        return sum(s.manifest.n_patients for s in info.sources) * info.image.nbytes > NODE_CACHE_BYTES
    return cache == "node"


def decoded_shard_parts(info: DataInfo, splits: tuple[str, ...]) -> Iterator[tuple[str, dict[str, np.ndarray]]]:
    """``(split, decoded columns)`` per shard and split, harmonised like :func:`read_split_tables`, one shard in
    memory at a time (what the node cache writes)."""
    import pyarrow.parquet as pq

    standardisers = fit_standardisers(info)
    harmonise = needs_harmonising(info)
    for source in info.sources:
        columns = [*source_columns(source, info), SPLIT, FOLD, GROUP]
        for shard in source.shards:
            table = pq.read_table(str(shard), columns=columns)
            for split in splits:
                rows = table.filter(
                    split_expression(split, info.fold, info.test_group, val_ids=info.val_ids_for(source))
                )
                if harmonise:
                    rows = harmonise_table(rows, source, info, standardisers[source.index])
                yield split, table_to_numpy(rows, info, with_ids=True)


def build_node_cache(info: DataInfo, splits: tuple[str, ...] = SPLIT_NAMES) -> None:
    """Write the node's decoded copy of ``splits`` unless it is there (``mmtune.data.node_cache``)."""
    from mmtune.data.node_cache import ensure_cached

    ensure_cached(info, splits, decoded_shard_parts)


def load_splits(info: DataInfo, splits: tuple[str, ...] = SPLIT_NAMES, cache: str = "memory") -> dict[str, SplitArrays]:
    """Materialise the splits of a run (once per run): read into this process, or, with the node cache
    (:func:`uses_node_cache`), memory-mapped from the node's decoded copy (``mmtune.data.node_cache``)."""
    out: dict[str, SplitArrays] = {}
    if uses_node_cache(info, cache):
        from mmtune.data.node_cache import load_cached

        build_node_cache(info, splits)
        for split in splits:
            cols = load_cached(info, split)
            out[split] = SplitArrays(cols, sampling_weights(cols[DATASET], info))
        return out
    for split, table in read_split_tables(info, splits).items():
        cols = table_to_numpy(table, info, with_ids=True)
        out[split] = SplitArrays(cols, sampling_weights(cols[DATASET], info))
    return out


def train_labels(info: DataInfo, tasks: list[str]) -> dict[str, np.ndarray]:
    """Stored training-row labels of ``tasks`` (all sources; masked where a source lacks a task)."""
    train = split_expression("train", info.fold, info.test_group)
    out: dict[str, list[np.ndarray]] = {t: [] for t in tasks}
    for source in info.sources:
        table = _dataset(source).to_table(
            columns=[info.task(t).label_column for t in tasks if source.has_task(t)], filter=train
        )
        for name in tasks:
            task = info.task(name)
            column = (
                table[task.label_column]
                if task.label_column in table.column_names
                else pa.chunked_array([masked_labels(task, table.num_rows)])
            )
            out[name].append(_labels_to_numpy(column, task))
    return {k: np.concatenate(v) for k, v in out.items()}


def sampling_weights(dataset: np.ndarray, info: DataInfo) -> np.ndarray:
    """Per-row weights so source ``s`` fills a share ``weight_s / sum(weights)`` of the sampled rows."""
    weights = np.zeros(len(dataset), np.float64)
    total = sum(s.weight for s in info.sources)
    for source in info.sources:
        rows = dataset == source.index
        if rows.any():
            weights[rows] = source.weight / total / rows.sum()
    return weights


class ArrayBatches:
    """A torch map-style dataset whose items are whole batches (a list of row indices -> a batch dict)."""

    def __init__(self, arrays: SplitArrays, info: DataInfo, with_ids: bool, augment: bool) -> None:
        self.arrays = arrays
        self.info = info
        self.with_ids = with_ids
        self.augment = augment

    def __len__(self) -> int:
        return len(self.arrays)

    def __getitem__(self, indices: list[int]) -> dict[str, Any]:
        cols = self.arrays.take(indices)
        if not self.with_ids:
            cols.pop(PATIENT_ID, None)
        batch = numpy_to_batch(cols, self.info)
        return augment_batch(batch) if self.augment else batch


class EpochBatchSampler:
    """``BatchSampler`` that passes ``set_epoch`` on to its sampler (Lightning calls it on ``loader.sampler``)."""

    def __init__(self, sampler: Any, batch_size: int, drop_last: bool) -> None:
        from torch.utils.data import BatchSampler

        self.inner = BatchSampler(sampler, batch_size, drop_last=drop_last)

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.inner.sampler, "set_epoch"):
            self.inner.sampler.set_epoch(epoch)


def make_loader(
    arrays: SplitArrays,
    info: DataInfo,
    cfg: DataConfig,
    *,
    train: bool,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
) -> Any:
    """A ``DataLoader`` over one split: shuffled (weighted across sources) for training, in order otherwise.

    With ``world_size > 1`` (Ray Train workers over the node cache) rank ``r`` draws every ``world_size``-th row of
    each epoch's permutation, reshuffled per epoch (``set_epoch``, which Lightning calls).
    """
    import torch
    from torch.utils.data import DataLoader, RandomSampler, SequentialSampler, WeightedRandomSampler

    generator = torch.Generator().manual_seed(seed)
    n = len(arrays)
    if world_size > 1:
        from torch.utils.data import DistributedSampler

        sampler: Any = DistributedSampler(
            range(n), num_replicas=world_size, rank=rank, shuffle=train, seed=seed, drop_last=train
        )
    elif not train:
        sampler = SequentialSampler(range(n))
    elif info.multi_source and len({s.weight for s in info.sources}) > 1:
        sampler = WeightedRandomSampler(torch.from_numpy(arrays.weights), n, replacement=True, generator=generator)
    else:
        sampler = RandomSampler(range(n), generator=generator)
    drop_last = train and n > cfg.batch_size  # a batch of one breaks batch norm
    batches = EpochBatchSampler(sampler, cfg.batch_size, drop_last=drop_last)
    dataset = ArrayBatches(arrays, info, with_ids=not train, augment=train and cfg.augment)
    return DataLoader(
        dataset,
        sampler=batches,
        batch_size=None,
        num_workers=cfg.num_workers,
        persistent_workers=cfg.num_workers > 0,
    )


def iterate_batches(arrays: SplitArrays, info: DataInfo, batch_size: int) -> Iterator[dict[str, Any]]:
    """Batches of a split in row order (evaluation helpers and tests)."""
    for start in range(0, len(arrays), batch_size):
        yield numpy_to_batch(arrays.take(np.arange(start, min(start + batch_size, len(arrays)))), info)


# ----------------------------------------------------------------------------------------------------------------
# Ray Data path


IN_MEMORY_BYTES = 2 * 1024**3


def ray_datasets(
    info: DataInfo, splits: tuple[str, ...] = SPLIT_NAMES, *, mode: Literal["auto", "memory", "stream"] = "auto"
) -> dict[str, Any]:
    """One Ray Data dataset per split for ``TorchTrainer(datasets=...)``.

    * ``stream``: ``read_parquet(shards)`` + ``filter(expr=...)`` + ``select_columns`` (pushed into the read), then
      harmonised per batch: memory stays bounded however large the data are;
    * ``memory``: each split read once with pyarrow (as the in-memory path does) and handed to Ray as Arrow blocks
      (``from_arrow``): no read tasks at all. Streaming re-lists and re-reads the shards every epoch and each read
      task costs a worker start, seconds on a busy machine (DESIGN.md);
    * ``auto``: ``memory`` when the images fit in 2 GiB, else ``stream``.

    Both yield the same columns, so the same ``arrow_batch_decoder`` serves both.
    """
    import ray.data

    quiet_ray_data()
    if mode == "auto":
        total = sum(s.manifest.n_patients for s in info.sources) * info.image.nbytes
        mode = "memory" if total <= IN_MEMORY_BYTES else "stream"
    if mode == "memory":
        return {split: ray.data.from_arrow(table) for split, table in read_split_tables(info, splits).items()}
    standardisers = fit_standardisers(info)
    harmonise = needs_harmonising(info)
    out: dict[str, Any] = {}
    for split in splits:
        parts = []
        for source in info.sources:
            ds = ray.data.read_parquet([str(p) for p in source.shards])
            ds = ds.filter(expr=split_expression(split, info.fold, info.test_group, engine="ray"))
            ds = ds.select_columns(source_columns(source, info))
            if harmonise:
                ds = ds.map_batches(
                    harmonise_table,
                    batch_format="pyarrow",
                    zero_copy_batch=True,
                    fn_kwargs={"source": source, "info": info, "standardiser": standardisers[source.index]},
                )
            parts.append(ds)
        out[split] = parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])
    return out


def quiet_ray_data() -> None:
    """No Ray Data progress bars or per-execution log lines (they flood trial logs)."""
    from ray.data import DataContext

    ctx = DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.verbose_stats_logs = False
    ctx.enable_operator_progress_bars = False


def arrow_batch_decoder(info: DataInfo, *, with_ids: bool, augment: bool = False) -> Any:
    """The ``collate_fn`` for ``iter_torch_batches``: decodes the binary image column like the in-memory path."""
    from ray.data.collate_fn import ArrowBatchCollateFn

    class ArrowBatchDecoder(ArrowBatchCollateFn):
        def __init__(self) -> None:
            super().__init__()
            self.info = info
            self.with_ids = with_ids
            self.augment = augment

        def __call__(self, batch: pa.Table) -> dict[str, Any]:
            out = numpy_to_batch(table_to_numpy(batch, self.info, with_ids=self.with_ids), self.info)
            return augment_batch(out) if self.augment else out

    return ArrowBatchDecoder()


def shard_batches(shard: Any, info: DataInfo, batch_size: int, *, train: bool, augment: bool = False) -> Any:
    """Torch batches from a Ray Data shard (``ray.train.get_dataset_shard(split)``) on a worker."""
    return shard.iter_torch_batches(
        batch_size=batch_size,
        collate_fn=arrow_batch_decoder(info, with_ids=not train, augment=train and augment),
        drop_last=False,
        local_shuffle_buffer_size=batch_size * 4 if train else None,
    )


__all__ = [
    "DATASET",
    "HAS_MASK",
    "ArrayBatches",
    "DataInfo",
    "SplitArrays",
    "Standardiser",
    "arrow_batch_decoder",
    "build_node_cache",
    "fit_standardisers",
    "harmonise_table",
    "iterate_batches",
    "load_splits",
    "make_loader",
    "numpy_to_batch",
    "ray_datasets",
    "read_split_tables",
    "resolve_data",
    "shard_batches",
    "split_expression",
    "table_to_numpy",
    "uses_node_cache",
]
