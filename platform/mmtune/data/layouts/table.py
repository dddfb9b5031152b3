"""``layout: table``: one patient per row of ``source.clinical_table``; ``options.images`` names its file.

The images template is filled with the row's columns (AIforCOVID ``imgs*/{ImageFile}.dcm``, BRIXIA
``dicom_clean/{Filename}`` in a ``;``-separated CSV: ``options.separator``); ``options.digits`` splits digit
strings into one column per digit (BRIXIA's zone scores). No row whose image exists is a one-line ``DataError``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import Field, field_validator

from mmtune.config.card import SOURCE_LAYOUTS, DatasetCard, SourceSpec
from mmtune.config.loading import StrictModel
from mmtune.data.discovery import Discovery
from mmtune.data.layouts.base import SourceLayout, SourceTable, file_bytes, table_path
from mmtune.data.layouts.templates import DigitSplit, check_template, discover_templates, fill, resolve, template_fields
from mmtune.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

EXCEL_SUFFIXES = (".xlsx", ".xls", ".xlsm")


class TableOptions(StrictModel):
    """``layout: table``: one patient per row of ``clinical_table``; ``images`` names the file from the row."""

    images: str = Field(description="template filled with the row's columns, e.g. 'imgs*/{ImageFile}.dcm'")
    masks: str | None = Field(None, description="template of the mask file, filled with the row's columns")
    separator: str | None = Field(None, min_length=1, max_length=1, description="CSV separator (default: by suffix)")
    digits: dict[str, DigitSplit] = Field(default_factory=dict, description="column -> per-digit columns")

    @field_validator("images", "masks")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return None if value is None else check_template(value)

    @field_validator("images")
    @classmethod
    def _has_field(cls, value: str) -> str:
        if not template_fields(value):
            raise ValueError(f"{value!r}: name at least one table column, e.g. 'images/{{ImageFile}}.dcm'")
        return value


@SOURCE_LAYOUTS.register("table")
class TableLayout(SourceLayout):
    """one patient per row of clinical_table; options.images is filled with the row's columns"""

    options_model = TableOptions

    @classmethod
    def has_masks(cls, source: SourceSpec) -> bool:
        return bool(source.options.get("masks"))

    @classmethod
    def add_structural_columns(cls, source: SourceSpec, patient_id: str, out: dict[str, str]) -> None:
        options = cls.parse_options(source.options)
        fields = template_fields(options.images) + template_fields(options.masks or "")
        for column in dict.fromkeys(fields):
            out.setdefault(column, "source.options template")

    @classmethod
    def load_table(cls, root: Path, card: DatasetCard) -> SourceTable:
        """The clinical CSV (``options.separator``), its template columns checked and its digit strings split."""
        from mmtune.data.clinical import read_table

        path = table_path(root, card)
        options: TableOptions = cls.parse_options(card.source.options)
        if path.suffix.lower() in EXCEL_SUFFIXES:
            raise DataError(
                f"{path}: Excel tables are not read; export it to CSV (pandas: read_excel(...).to_csv(...)) and set "
                "source.clinical_table to the CSV"
            )
        table = read_table(path, card.patient_id, sep=options.separator)
        for field in template_fields(options.images) + template_fields(options.masks or ""):
            if field not in table.columns:
                shown = ", ".join(list(table.columns)[:12])
                raise DataError(f"{path}: no column {field!r} (named by source.options templates); columns: {shown}")
        table = _split_digits(table, options, path, card.patient_id)
        return SourceTable(path, table, file_bytes(path))

    @classmethod
    def discover(cls, root: Path, table: pd.DataFrame, card: DatasetCard, table_path: Path) -> Discovery:
        options = cls.parse_options(card.source.options)
        root = root.resolve()
        jobs = []
        for record in table.to_dict(orient="records"):
            pid = record[card.patient_id]
            pattern = fill(options.images, record)
            jobs.append((pid, record, resolve(root, pattern) if pattern else []))
        discovery = discover_templates(root, jobs, options)
        if not discovery.patients:
            raise DataError(
                f"{table_path}: no row's image file exists under {root} (source.options.images "
                f"{options.images!r}); is --source the {card.name} data set in its documented layout?"
            )
        return discovery


def _split_digits(table: pd.DataFrame, options: TableOptions, path: Path, id_column: str) -> pd.DataFrame:
    """BRIXIA-style digit strings -> one text column per digit (empty cells stay empty: masked labels)."""
    for column, spec in options.digits.items():
        if column not in table.columns:
            raise DataError(f"{path}: no column {column!r} (named by source.options.digits)")
        clash = [n for n in spec.names if n in table.columns]
        if clash:
            raise DataError(f"{path}: column {clash[0]!r} exists; choose other source.options.digits.{column}.names")
        if len(spec.names) != spec.width:
            raise DataError(f"{path}: source.options.digits.{column}: {len(spec.names)} names for width {spec.width}")
        parts: list[list[str]] = []
        for pid, cell in zip(table[id_column].tolist(), table[column].tolist()):
            text = cell.strip()
            if text.endswith(".0") and text[:-2].isdigit():  # a spreadsheet's number format
                text = text[:-2]
            if not text:
                parts.append([""] * spec.width)
                continue
            if not text.isdigit() or len(text) > spec.width:
                raise DataError(
                    f"{path}: row {pid!r}, column {column!r}: {cell!r} is not a string of {spec.width} digits "
                    f"(source.options.digits.{column})"
                )
            parts.append(list(text.zfill(spec.width)))
        for j, name in enumerate(spec.names):
            table[name] = [p[j] for p in parts]
    return table
