"""Decode one patient's raw files into the card's tensor (runs inside Ray Data workers).

Per patient: hash every source file (for the manifest), skip unreadable files with a reason, pick K slices evenly
(re-picking when a chosen slice turns out unreadable) or resample the volume, window to [0, 1], resize, and return
raw little-endian bytes ready for the Parquet ``binary`` columns. Only pixel data and geometry are read.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import SimpleITK as sitk

from mmtune.config.card import ImageSpec
from mmtune.data import images as im
from mmtune.data.format import encode_array

IMAGE_DTYPE = "float16"
MASK_DTYPE = "uint8"

DECODED_SCHEMA = pa.schema(
    [
        ("patient_id", pa.string()),
        ("image", pa.binary()),
        ("mask", pa.binary()),
        ("image_sha256", pa.string()),
        ("files", pa.string()),  # JSON [[relative path, size, sha256], ...]
        ("skipped", pa.string()),  # JSON [[relative path, reason], ...]
        ("warnings", pa.string()),  # JSON [str, ...]
        ("error", pa.string()),  # why the patient has no image ("" when decoded)
    ]
)


class PatientDecoder:
    """Decodes patients of one card from one source root."""

    def __init__(self, spec: ImageSpec, root: str | Path, with_masks: bool) -> None:
        self.spec = spec
        self.root = Path(root)
        self._root = str(root)
        self.with_masks = with_masks
        # Ray runs one decode task per CPU; ITK's own thread pool on top would only oversubscribe the cores.
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)

    # -- Ray Data entry point -------------------------------------------------------------------------------
    def __call__(self, batch: pa.Table) -> pa.Table:
        rows = [self.decode(json.loads(job)) for job in batch.column("job").to_pylist()]
        return pa.Table.from_pylist(rows, schema=DECODED_SCHEMA)

    # -- one patient ---------------------------------------------------------------------------------------
    def decode(self, job: dict[str, Any]) -> dict[str, Any]:
        skipped: dict[str, str] = {}
        warnings: list[str] = []
        files = list(job["files"])
        hashes, good = self._hash(files + ([job["mask"]] if job.get("mask") else []), skipped)
        image, mask = self.pixels(job, good, skipped, warnings)
        row: dict[str, Any] = {
            "patient_id": job["patient_id"],
            "image": None,
            "mask": None,
            "image_sha256": "",
            "files": json.dumps(hashes),
            "skipped": json.dumps(sorted(skipped.items())),
            "warnings": json.dumps(warnings),
            "error": "",
        }
        if image is None:
            row["error"] = "no readable image file" + (f" ({len(skipped)} skipped)" if skipped else "")
            return row
        data = encode_array(image, IMAGE_DTYPE)
        row["image"] = data
        row["image_sha256"] = hashlib.sha256(data).hexdigest()
        if mask is not None:
            row["mask"] = encode_array(mask, MASK_DTYPE)
        return row

    def pixels(
        self, job: dict[str, Any], good: set[str], skipped: dict[str, str], warnings: list[str]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """Read, window and resize one patient's ``good`` files (no hashing, no encoding): the decode work proper,
        which ``mmtune bench prepare``/``scale`` time alone as the decode bound."""
        files = list(job["files"])
        mask_rel = job.get("mask") if job.get("mask") in good else None
        usable = [f for f in files if f in good]
        try:
            if job["kind"] == "volume":
                return self._volume(usable, mask_rel, skipped, warnings)
            if self.spec.kind == "stack2d":
                return self._stack(job["kind"], files, good, mask_rel, skipped, warnings)
            if job["kind"] == "dicom":
                return self._series_volume(usable, mask_rel, skipped, warnings)
            return self._slices_volume(usable, mask_rel, skipped, warnings)
        except im.UnreadableImage as exc:
            skipped.setdefault(usable[0] if usable else job["patient_id"], str(exc))
            return None, None

    def _hash(self, files: list[str], skipped: dict[str, str]) -> tuple[list[list[Any]], set[str]]:
        """(relative path, size, sha256) of every file; files that are empty or visibly truncated are skipped."""
        hashes: list[list[Any]] = []
        good: set[str] = set()
        for rel in files:
            try:
                with open(self._path(rel), "rb") as handle:
                    data = handle.read()
            except OSError as exc:
                skipped[rel] = f"unreadable: {exc.strerror or type(exc).__name__}"
                continue
            hashes.append([rel, len(data), hashlib.sha256(data).hexdigest()])
            try:
                im.check_complete(rel, data)
            except im.UnreadableImage as exc:
                skipped[rel] = str(exc)
                continue
            good.add(rel)
        return hashes, good

    def _path(self, rel: str) -> str:
        return os.path.join(self._root, rel)

    def _order_dicom(self, files: list[str], skipped: dict[str, str]) -> list[str]:
        """Relative DICOM paths in slice-position order; unusable files recorded in ``skipped``."""
        relative = {self._path(f): f for f in files}
        ordered, bad = im.order_dicom(list(relative))
        for path, reason in bad.items():
            skipped[relative[path]] = reason
        return [relative[p] for p in ordered]

    def _finish(self, stack: np.ndarray) -> np.ndarray:
        """CLAHE when the card asks for it (the stack is already windowed to [0, 1])."""
        clahe = self.spec.clahe_spec
        return im.apply_clahe(stack, clahe) if clahe is not None else stack

    # -- 2D stacks from slice files or a DICOM series ------------------------------------------------------
    def _stack(
        self,
        kind: str,
        files: list[str],
        good: set[str],
        mask_rel: str | None,
        skipped: dict[str, str],
        warnings: list[str],
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """K slices chosen evenly among the readable ones; indices refer to the patient's full sorted file list,
        which is what an index-aligned mask follows."""
        n_listed = len(files)
        if kind == "dicom":  # unreadable DICOM files have no known position: order the rest by position
            files = self._order_dicom([f for f in files if f in good], skipped)
        failed = {i for i, f in enumerate(files) if f not in good}
        lower, upper = im.intensity_range("slice" if kind == "slice" else "hu", self.spec)
        k = int(self.spec.slices or 1)
        candidates = [i for i in range(len(files)) if i not in failed]
        chosen = [candidates[j] for j in im.even_indices(len(candidates), k)]
        try:  # the common case: every chosen file is fine, read them in one go
            arrays: list[np.ndarray] = list(im.read_stack([self._path(files[i]) for i in chosen])) if chosen else []
        except im.UnreadableImage:
            chosen, arrays = select_readable(
                len(files),
                k,
                lambda i: im.read_slice(self._path(files[i])),
                lambda i, reason: skipped.__setitem__(files[i], reason),
                failed,
            )
        if not chosen:
            return None, None
        size = self.spec.size
        if self.spec.intensity == "percentile":  # radiographs / non-HU volumes: the patient's own range
            lower, upper = percentile_range(arrays)
        if len({a.shape for a in arrays}) == 1:
            windowed = list(im.window(np.stack(arrays), lower, upper))  # one vectorised pass in the common case
        else:
            windowed = [im.window(a, lower, upper) for a in arrays]
        stack = self._pad(np.stack([im.resize_slice(a, size) for a in windowed]))
        mask = None
        if self.with_masks and mask_rel is not None:
            if len(files) != n_listed:
                warnings.append(f"{mask_rel}: {n_listed - len(files)} DICOM file(s) could not be placed; mask not used")
            else:
                mask = self._stack_mask(mask_rel, len(files), chosen, warnings)
        return self._finish(stack), mask

    def _stack_mask(self, rel: str, n_slices: int, chosen: list[int], warnings: list[str]) -> np.ndarray | None:
        """Index-aligned mask slices (mask slice i belongs to the i-th sorted image slice)."""
        array = im.read_mask_array(self._path(rel))
        if array.shape[0] != n_slices:
            warnings.append(f"{rel}: mask has {array.shape[0]} slices but the patient has {n_slices}; mask not used")
            return None
        size = self.spec.size
        return self._pad(np.stack([im.resize_slice(array[i], size, nearest=True) for i in chosen]))

    def _pad(self, stack: np.ndarray) -> np.ndarray:
        """Pad a stack with blank slices at the end up to K."""
        k = int(self.spec.slices or stack.shape[0])
        if stack.shape[0] >= k:
            return stack
        pad = np.zeros((k - stack.shape[0], *stack.shape[1:]), dtype=stack.dtype)
        return np.concatenate([stack, pad])

    # -- volumes ------------------------------------------------------------------------------------------
    def _volume(
        self, files: list[str], mask_rel: str | None, skipped: dict[str, str], warnings: list[str]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        if not files:
            return None, None
        try:
            raw = im.read_volume_raw(self._path(files[0]))
        except im.UnreadableImage as exc:
            skipped[files[0]] = str(exc)
            return None, None
        return self._from_volume(raw, mask_rel, warnings)

    def _series_volume(
        self, files: list[str], mask_rel: str | None, skipped: dict[str, str], warnings: list[str]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """A DICOM series as one 3D image (ImageSeriesReader); unreadable files are found one by one and skipped."""
        ordered = [self._path(f) for f in self._order_dicom(files, skipped)]
        if not ordered:
            return None, None
        try:
            raw = im.read_dicom_series(ordered)
        except im.UnreadableImage:
            good = []
            for path in ordered:
                try:
                    im.read_slice(path)
                    good.append(path)
                except im.UnreadableImage as exc:
                    skipped[os.path.relpath(path, self._root)] = str(exc)
            if not good:
                return None, None
            raw = im.read_dicom_series(good)
        return self._from_volume(raw, mask_rel, warnings)

    def _slices_volume(
        self, files: list[str], mask_rel: str | None, skipped: dict[str, str], warnings: list[str]
    ) -> tuple[np.ndarray | None, np.ndarray | None]:
        """8-bit slice files stacked into a volume (unit spacing: JPG/PNG carry no geometry), then resampled."""
        _, arrays = select_readable(
            len(files),
            len(files),
            lambda i: im.read_slice(self._path(files[i])),
            lambda i, reason: skipped.__setitem__(files[i], reason),
        )
        if not arrays:
            return None, None
        height, width = arrays[0].shape
        planes = [a if a.shape == (height, width) else im.resize_to(a, height, width) for a in arrays]
        lower, upper = im.intensity_range("slice", self.spec)
        volume = sitk.GetImageFromArray(im.window(np.stack(planes), lower, upper))
        stack = im.resample_volume(volume, self.spec)
        mask = None
        if self.with_masks and mask_rel is not None:
            array = im.read_mask_array(self._path(mask_rel))
            if array.shape[0] == len(files) and not skipped:
                mask_image = sitk.GetImageFromArray(array)
                if array.shape[1:] != (height, width):  # same field of view, other pixel grid
                    mask_image = im.resize_fov(mask_image, (width, height, array.shape[0]), nearest=True)
                    mask_image.CopyInformation(volume)
                mask = im.resample_volume(mask_image, self.spec, nearest=True).astype(np.uint8)
            else:
                warnings.append(f"{mask_rel}: mask slices do not match the {len(arrays)} readable slices; not used")
        return self._finish(stack), mask

    def _from_volume(
        self, raw: sitk.Image, mask_rel: str | None, warnings: list[str]
    ) -> tuple[np.ndarray, np.ndarray | None]:
        mask_image = None
        if self.with_masks and mask_rel is not None:
            mask_image = im.align_mask(im.read_image(self._path(mask_rel)), raw)
        image = sitk.DICOMOrient(raw, "LPS")
        lower, upper = im.intensity_range("hu", self.spec)
        if self.spec.intensity == "percentile":  # volumes stored without Hounsfield units
            lower, upper = percentile_range([sitk.GetArrayViewFromImage(image)])
        windowed = sitk.GetImageFromArray(im.window(sitk.GetArrayViewFromImage(image), lower, upper))
        windowed.CopyInformation(image)
        mask = None
        if self.spec.kind == "volume3d":
            stack = im.resample_volume(windowed, self.spec)
            if mask_image is not None:
                mask = im.resample_volume(sitk.DICOMOrient(mask_image, "LPS"), self.spec, nearest=True)
            return self._finish(stack), None if mask is None else mask.astype(np.uint8)
        array = sitk.GetArrayViewFromImage(windowed)
        chosen = im.even_indices(array.shape[0], int(self.spec.slices or 1))
        size = self.spec.size
        stack = self._pad(np.stack([im.resize_slice(np.asarray(array[i]), size) for i in chosen]))
        if mask_image is not None:
            marr = sitk.GetArrayFromImage(sitk.DICOMOrient(mask_image, "LPS")).astype(np.uint8)
            mask = self._pad(np.stack([im.resize_slice(marr[i], size, nearest=True) for i in chosen]))
        return self._finish(stack), mask


def percentile_range(arrays: list[np.ndarray], low: float = 0.5, high: float = 99.5) -> tuple[float, float]:
    """A patient's own robust intensity range (``image.intensity: percentile``): radiographs carry detector values,
    not Hounsfield units, and differ in bit depth per vendor, so a fixed window would saturate them."""
    values = np.concatenate([np.asarray(a, dtype=np.float32).reshape(-1) for a in arrays])
    lower, upper = (float(v) for v in np.percentile(values, [low, high]))
    return (lower, upper) if upper > lower else (lower, lower + 1.0)


def select_readable(
    n: int,
    k: int,
    read: Callable[[int], np.ndarray],
    on_skip: Callable[[int, str], None],
    failed: set[int] | None = None,
) -> tuple[list[int], list[np.ndarray]]:
    """Choose K of n items evenly, reading only the chosen ones; an unreadable item is skipped and K re-chosen.

    ``failed`` items are known to be unusable already (never read, not reported again).
    """
    failed = set(failed or ())
    cache: dict[int, np.ndarray] = {}
    while True:
        candidates = [i for i in range(n) if i not in failed]
        chosen = [candidates[j] for j in im.even_indices(len(candidates), k)]
        todo = [i for i in chosen if i not in cache]
        if not todo:
            return chosen, [cache[i] for i in chosen]
        for i in todo:
            try:
                cache[i] = read(i)
            except im.UnreadableImage as exc:
                failed.add(i)
                on_skip(i, str(exc))
