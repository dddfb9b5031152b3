"""``layout: manifest``: a CSV with one row per patient whose ``image_column`` names its image file(s).

A cell holds a volume file, a DICOM folder, or slice files separated by ``path_separator`` (paths relative to the
CSV); ``mask_column`` optionally names a mask file. Paths leaving the source folder are refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mmtune.config.card import SOURCE_LAYOUTS, DatasetCard, SourceSpec
from mmtune.data.discovery import Discovery, group_files
from mmtune.data.layouts.base import SourceLayout
from mmtune.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


@SOURCE_LAYOUTS.register("manifest")
class ManifestLayout(SourceLayout):
    """a CSV with one row per patient whose image_column holds a volume, a DICOM folder or slice files"""

    keys = frozenset({"image_column", "mask_column", "path_separator"})

    @classmethod
    def add_structural_columns(cls, source: SourceSpec, patient_id: str, out: dict[str, str]) -> None:
        out[source.image_column] = "source.image_column"
        if source.mask_column:
            out[source.mask_column] = "source.mask_column"

    @classmethod
    def discover(cls, root: Path, table: pd.DataFrame, card: DatasetCard, table_path: Path) -> Discovery:
        return discover_manifest(root, table, card, table_path)


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
