"""``layout: ictcf``: one folder per patient holding its image files (and an optional mask file).

``<path>/<patient_dir>/<image_glob>`` with ``{id}`` in ``patient_dir`` = the clinical table's patient id; the
images are JPG/PNG slices, a DICOM series, or one NIfTI/MHA volume; ``mask_glob`` names the mask file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from mmtune.config.card import SOURCE_LAYOUTS, DatasetCard, SourceSpec
from mmtune.data.discovery import Discovery, group_files, natural_key
from mmtune.data.layouts.base import SourceLayout

if TYPE_CHECKING:
    import pandas as pd


@SOURCE_LAYOUTS.register("ictcf")
class IctcfLayout(SourceLayout):
    """one folder per patient (patient_dir with {id}) holding image files (image_glob) and a mask (mask_glob)"""

    keys = frozenset({"patient_dir", "image_glob", "mask_glob"})
    mask_key = "source.mask_glob"

    @classmethod
    def check_source(cls, source: SourceSpec) -> None:
        if "{id}" not in source.patient_dir:
            raise ValueError("patient_dir must contain `{id}` (the patient id)")

    @classmethod
    def has_masks(cls, source: SourceSpec) -> bool:
        return source.mask_glob is not None

    @classmethod
    def discover(cls, root: Path, table: pd.DataFrame, card: DatasetCard, table_path: Path) -> Discovery:
        return discover_ictcf(root, card, set(table[card.patient_id].tolist()))

    @classmethod
    def no_images_reason(cls, card: DatasetCard, pid: str) -> str:
        return f"no patient folder {card.source.patient_dir.replace('{id}', pid)!r}"


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
    inside = root.resolve()
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: natural_key(p.name))
    for folder in folders:
        match = pattern.match(folder.name)
        if table_ids is not None and folder.name in table_ids and (match is None or match["id"] not in table_ids):
            pid = folder.name
        elif match is not None:
            pid = match["id"]
        else:
            continue
        folder_inside = folder.resolve().is_relative_to(inside)
        files = _files_inside(folder, folder.glob(source.image_glob), inside, folder_inside)
        mask = None
        if source.mask_glob:
            masks = sorted(
                _files_inside(folder, folder.glob(source.mask_glob), inside, folder_inside),
                key=lambda p: natural_key(p.name),
            )
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


def _file_inside(path: Path, root: Path) -> bool:
    """A file whose real path is inside the source folder (a symlink leaving it is not read)."""
    return path.is_file() and path.resolve().is_relative_to(root)


def _files_inside(folder: Path, paths: Iterable[Path], root: Path, folder_inside: bool) -> list[Path]:
    """The files of ``paths`` whose real path is inside ``root``. A plain file under plain sub-folders of a folder
    that is inside is inside: only links need resolving (resolving every file cost ~0.6 ms a patient, a sixth of
    its decode, in ``bench prepare``). Each sub-folder is checked once."""
    plain_dirs: dict[Path, bool] = {folder: folder_inside}

    def plain(directory: Path) -> bool:
        if directory not in plain_dirs:
            inside_folder = directory.is_relative_to(folder) and directory != folder
            plain_dirs[directory] = inside_folder and plain(directory.parent) and not directory.is_symlink()
        return plain_dirs[directory]

    out = []
    for path in paths:
        if plain(path.parent) and not path.is_symlink():
            if path.is_file():
                out.append(path)
        elif _file_inside(path, root):
            out.append(path)
    return out
