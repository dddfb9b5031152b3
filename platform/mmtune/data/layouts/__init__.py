"""Source layouts beyond the built-in ``ictcf`` folders and ``manifest`` CSV: path-template layouts.

Public data sets ship in layouts of their own: a folder per class with one volume per study (MosMedData
``studies/CT-{grade}/study_XXXX.nii.gz``), image and mask folders with matching names (COVID-19-CT-Seg), or a
clinical table whose rows name one radiograph each (AIforCOVID ``imgs/{ImageFile}.dcm``, BRIXIA
``dicom_clean/{Filename}`` in a ``;``-separated CSV). Two generic layouts cover them, chosen by the card's
``source.layout`` and configured by ``source.options`` (validated in :mod:`mmtune.data.layouts.options`):

* ``files``: the patients are the files matching ``options.images``; ``{id}`` is the patient id and every other
  ``{field}`` of the path becomes a table column (a label taken from a folder name); no clinical table.
* ``table``: one patient per row of ``source.clinical_table`` (``options.separator``); ``options.images`` is
  filled with the row's columns; ``options.digits`` splits digit strings into columns (BRIXIA's zone scores).

Both hand ``prepare`` the same things the built-in layouts do (a text table and a ``Discovery``), so labels,
clinical parsing, splits and decoding are the data layer's own. A layout that does not match the files is a
one-line ``DataError`` naming the template.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mmtune.config.card import DatasetCard
from mmtune.data.clinical import read_table
from mmtune.data.discovery import Discovery, group_files, natural_key
from mmtune.data.layouts.options import (
    ID_FIELD,
    TEMPLATE_LAYOUTS,
    FilesOptions,
    TableOptions,
    as_glob,
    match_fields,
    parse_options,
    template_fields,
)
from mmtune.errors import DataError

__all__ = ["TEMPLATE_LAYOUTS", "SourceTable", "discover_template", "load_table"]

EXCEL_SUFFIXES = (".xlsx", ".xls", ".xlsm")


@dataclass
class SourceTable:
    """The patient table a layout yields: where it came from (for messages), its text cells, and its bytes (hash)."""

    path: Path
    table: pd.DataFrame
    data: bytes


def load_table(root: Path, card: DatasetCard) -> SourceTable:
    """The patient table of any layout: the clinical CSV for ``ictcf``/``manifest``/``table``, the file listing
    for ``files``."""
    layout = card.source.layout
    if layout == "files":
        return _files_table(root, card, parse_options(layout, card.source.options))
    path = (root / card.source.clinical_table).resolve()
    if layout not in TEMPLATE_LAYOUTS:
        return SourceTable(path, read_table(path, card.patient_id), _bytes(path))
    options: TableOptions = parse_options(layout, card.source.options)
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
    return SourceTable(path, table, _bytes(path))


def _bytes(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


# ---------------------------------------------------------------------------------------------------- files


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
    table = pd.DataFrame(list(rows.values()), dtype=str)
    listing = "\n".join(rel for rel, _ in matches).encode("utf-8")
    return SourceTable(where, table, listing)


# ---------------------------------------------------------------------------------------------------- table


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


def _fill(template: str, values: dict[str, str]) -> str | None:
    """The template with its fields filled in (glob-escaped); None when a value would leave its path part."""
    out = template
    for field in template_fields(template):
        value = str(values.get(field, "")).strip()
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            return None
        out = out.replace("{" + field + "}", glob.escape(value))
    return out


def _resolve(root: Path, pattern: str) -> list[Path]:
    """Files / folders matching a filled template, inside ``root`` only."""
    if glob.has_magic(pattern):
        candidates = sorted(root.glob(pattern), key=lambda p: natural_key(p.as_posix()))
    else:
        candidates = [root / pattern] if (root / pattern).exists() else []
    return [p for p in candidates if p.resolve().is_relative_to(root)]


def _image_files(root: Path, paths: list[Path]) -> list[str]:
    """A match is a file, or a folder whose files are the images (a DICOM series)."""
    files: list[str] = []
    for path in paths:
        if path.is_dir():
            files += [p.relative_to(root).as_posix() for p in sorted(path.iterdir()) if p.is_file()]
        elif path.is_file():
            files.append(path.relative_to(root).as_posix())
    return files


# ---------------------------------------------------------------------------------------------------- discovery


def discover_template(root: Path, table: pd.DataFrame, card: DatasetCard, table_path: Path) -> Discovery:
    """Image (and mask) files of every patient of a template layout."""
    layout = card.source.layout
    options = parse_options(layout, card.source.options)
    root = root.resolve()
    discovery = Discovery()
    if layout == "files":
        jobs = [(fields[ID_FIELD], fields, [root / rel]) for rel, fields in _files_matches(root, options)]
    else:
        jobs = []
        for record in table.to_dict(orient="records"):
            pid = record[card.patient_id]
            pattern = _fill(options.images, record)
            jobs.append((pid, record, _resolve(root, pattern) if pattern else []))
    for pid, fields, matches in jobs:
        files = _image_files(root, matches)
        images = group_files(pid, files, discovery) if files else None
        if images is None:
            filled = _fill(options.images, fields) or options.images
            discovery.no_images[pid] = f"no image file matches {filled!r} (source.options.images)"
            continue
        if options.masks:
            pattern = _fill(options.masks, fields)
            masks = [p for p in _resolve(root, pattern) if p.is_file()] if pattern else []
            images.mask = masks[0].relative_to(root).as_posix() if masks else None
        discovery.patients[pid] = images
    if layout == "table" and not discovery.patients:
        raise DataError(
            f"{table_path}: no row's image file exists under {root} (source.options.images "
            f"{options.images!r}); is --source the {card.name} data set in its documented layout?"
        )
    return discovery
