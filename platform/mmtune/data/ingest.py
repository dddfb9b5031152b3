"""Raw layouts -> which image files belong to which patient (``ictcf`` folders or a ``manifest`` CSV).

Discovery only lists files; decoding happens later in parallel (``mmtune.data.decode``). Problems that should
not stop a data set (a folder without images, a stray file, a patient without a table row) are recorded and
reported in the manifest rather than raised.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from mmtune.config.card import DatasetCard
from mmtune.data.discovery import Discovery, group_files, natural_key
from mmtune.errors import DataError


def _template_regex(template: str) -> re.Pattern[str]:
    head, tail = template.split("{id}", 1)
    return re.compile("^" + re.escape(head) + "(?P<id>.+?)" + re.escape(tail) + "$")


def discover_ictcf(root: Path, card: DatasetCard, table_ids: set[str] | None = None) -> Discovery:
    """``<root>/<patient_dir>/<image_glob>`` (+ ``mask_glob``) for every patient folder.

    A folder's patient id is the ``{id}`` part of ``patient_dir``, or the whole folder name when the table spells
    ids that way (``Patient 1`` in the table and as the folder).
    """
    source = card.source
    pattern = _template_regex(source.patient_dir)
    discovery = Discovery()
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    for folder in folders:
        match = pattern.match(folder.name)
        if table_ids is not None and folder.name in table_ids and (match is None or match["id"] not in table_ids):
            pid = folder.name
        elif match is not None:
            pid = match["id"]
        else:
            continue
        files = [p for p in folder.glob(source.image_glob) if p.is_file()]
        mask = None
        if source.mask_glob:
            masks = sorted((p for p in folder.glob(source.mask_glob) if p.is_file()), key=lambda p: natural_key(p.name))
            mask = masks[0].relative_to(root).as_posix() if masks else None
            files = [p for p in files if p not in masks]
        rel = [p.relative_to(root).as_posix() for p in files]
        images = group_files(pid, rel, discovery)
        if images is None:
            discovery.no_images[pid] = (
                f"patient folder {folder.name!r} has no image files matching {source.image_glob!r}"
            )
            continue
        images.mask = mask
        discovery.patients[pid] = images
    return discovery


def discover_manifest(root: Path, table: pd.DataFrame, card: DatasetCard, table_path: Path) -> Discovery:
    """Image path(s) per row of the manifest CSV: a volume, a DICOM folder, or slice files joined by a separator."""
    source = card.source
    discovery = Discovery()
    masks = table[source.mask_column].tolist() if source.mask_column else [""] * len(table)
    for pid, cell, mask_cell in zip(table[card.patient_id].tolist(), table[source.image_column].tolist(), masks):
        files: list[str] = []
        for part in (p.strip() for p in cell.split(source.path_separator)):
            if not part:
                continue
            path = _inside(root, part, table_path, pid, source.image_column)
            if path.is_dir():
                files.extend(p.relative_to(root).as_posix() for p in sorted(path.iterdir()) if p.is_file())
            elif path.is_file():
                files.append(path.relative_to(root).as_posix())
            else:
                discovery.skipped[_rel(root, path)] = f"image file of patient {pid!r} not found"
        images = group_files(pid, files, discovery) if files else None
        if images is None:
            discovery.no_images[pid] = f"no readable image path in column {source.image_column!r}"
            continue
        if mask_cell:
            mask_path = _inside(root, mask_cell, table_path, pid, source.mask_column or "")
            if mask_path.is_file():
                images.mask = mask_path.relative_to(root).as_posix()
            else:
                discovery.skipped[_rel(root, mask_path)] = f"mask file of patient {pid!r} not found"
        discovery.patients[pid] = images
    return discovery


def _inside(root: Path, cell: str, table_path: Path, pid: str, column: str) -> Path:
    """A path cell resolved against the manifest's folder; paths escaping the source folder are refused."""
    path = (table_path.parent / cell).resolve()
    if not path.is_relative_to(root):
        raise DataError(f"{table_path}: row {pid!r}, column {column!r}: path {cell!r} is outside the source folder")
    return path


def _rel(root: Path, path: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.name


def discover(root: Path, table: pd.DataFrame, card: DatasetCard, table_path: Path) -> Discovery:
    """Dispatch on ``source.layout``."""
    if card.source.layout == "ictcf":
        return discover_ictcf(root, card, set(table[card.patient_id].tolist()))
    if card.source.layout in ("files", "table"):  # path-template layouts (mmtune.data.layouts)
        from mmtune.data.layouts import discover_template

        return discover_template(root, table, card, table_path)
    return discover_manifest(root, table, card, table_path)
