"""``layout: files``: the patients are the files matching ``options.images``; no table (labels come from paths).

``{id}`` in the template is the patient id and every other ``{field}`` becomes a table column (a label taken from
a folder name: MosMedData ``studies/CT-{grade}/{id}.nii.gz``); ``options.masks`` names a mask file filled with the
image's fields (COVID-19-CT-Seg). A template that matches no file is a one-line ``DataError`` naming it.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from mmtune.config.card import SOURCE_LAYOUTS, DatasetCard, SourceSpec
from mmtune.config.loading import StrictModel
from mmtune.data.discovery import Discovery, natural_key
from mmtune.data.layouts.base import SourceLayout, SourceTable
from mmtune.data.layouts.templates import (
    ID_FIELD,
    as_glob,
    check_template,
    discover_templates,
    match_fields,
    template_fields,
)
from mmtune.errors import DataError

if TYPE_CHECKING:
    import pandas as pd


class FilesOptions(StrictModel):
    """``layout: files``: the patients are the files matching ``images``; no table (labels come from paths)."""

    images: str = Field(description="template of a patient's image file (or DICOM folder); must contain {id}")
    masks: str | None = Field(None, description="template of the mask file, filled with the image's fields")

    @field_validator("images", "masks")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)

    @field_validator("images")
    @classmethod
    def _has_id(cls, value: str) -> str:
        if ID_FIELD not in template_fields(value):
            raise ValueError(f"{value!r}: the file name must contain {{{ID_FIELD}}} (the patient id)")
        return value


@SOURCE_LAYOUTS.register("files")
class FilesLayout(SourceLayout):
    """the patients are the files matching options.images ({id} = patient id, other fields = columns); no table"""

    options_model = FilesOptions
    reads_clinical_table = False

    @classmethod
    def has_masks(cls, source: SourceSpec) -> bool:
        return bool(source.options.get("masks"))

    @classmethod
    def add_structural_columns(cls, source: SourceSpec, patient_id: str, out: dict[str, str]) -> None:
        options = cls.parse_options(source.options)
        fields = template_fields(options.images) + template_fields(options.masks or "")
        for column in [f for f in fields if f != ID_FIELD] + [patient_id]:
            out.setdefault(column, "source.options template")

    @classmethod
    def load_table(cls, root: Path, card: DatasetCard) -> SourceTable:
        """The file listing as a table: one row per matching file, its fields as columns."""
        return _files_table(root, card, cls.parse_options(card.source.options))

    @classmethod
    def discover(cls, root: Path, table: pd.DataFrame, card: DatasetCard, table_path: Path) -> Discovery:
        options = cls.parse_options(card.source.options)
        root = root.resolve()
        jobs = [(fields[ID_FIELD], fields, [root / rel]) for rel, fields in _files_matches(root, options)]
        return discover_templates(root, jobs, options)


def _files_matches(root: Path, options: FilesOptions) -> list[tuple[str, dict[str, str]]]:
    """(relative path, fields) of every file or folder matching the images template, in natural id order."""
    found: list[tuple[str, dict[str, str]]] = []
    for path in root.glob(as_glob(options.images)):
        rel = path.relative_to(root).as_posix()
        fields = match_fields(options.images, rel)
        if fields is not None:
            found.append((rel, fields))
    return sorted(found, key=lambda item: (natural_key(item[1][ID_FIELD]), natural_key(item[0])))


def _files_table(root: Path, card: DatasetCard, options: FilesOptions) -> SourceTable:
    matches = _files_matches(root, options)
    where = root / options.images
    if not matches:
        raise DataError(
            f"{where}: no file matches source.options.images {options.images!r}; is {root} the {card.name} "
            "data set in its documented layout?"
        )
    rows: dict[str, dict[str, str]] = {}
    paths: dict[str, str] = {}
    for rel, fields in matches:
        pid = fields[ID_FIELD]
        if pid in rows:
            raise DataError(
                f"{where}: patient id {pid!r} matches two paths ({paths[pid]} and {rel}); make {{id}} unique"
            )
        rows[pid] = {card.patient_id: pid, **{k: v for k, v in fields.items() if k != ID_FIELD}}
        paths[pid] = rel
    import pandas as pd

    table = pd.DataFrame(list(rows.values()), dtype=str)
    listing = "\n".join(rel for rel, _ in matches).encode("utf-8")
    return SourceTable(where, table, listing)
