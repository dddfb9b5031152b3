"""Source layouts: how a data set's raw files are laid out, one module per layout, chosen by ``source.layout``.

Every module here registers one layout class in ``mmtune.config.card.SOURCE_LAYOUTS`` (a new layout is one new
file: it is imported below by being in this package); ``mmtune list layouts`` shows them:

* ``ictcf``: one folder per patient (``patient_dir`` with ``{id}``) holding its image files and a mask file.
* ``manifest``: a CSV with one row per patient whose ``image_column`` names its image file(s).
* ``files``: the patients are the files matching ``options.images`` (``{id}`` is the patient id, every other
  ``{field}`` of the path becomes a table column: MosMedData ``studies/CT-{grade}/{id}.nii.gz``); no table.
* ``table``: one patient per row of ``source.clinical_table``; ``options.images`` is filled with the row's columns
  (AIforCOVID ``imgs/{ImageFile}.dcm``); ``options.digits`` splits digit strings into columns (BRIXIA).

Each hands ``prepare`` the same things (a text table, ``SourceTable``, and a ``Discovery``), so labels, clinical
parsing, splits and decoding are the data layer's own. A layout that does not match the files is a one-line
``DataError`` naming the key.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import TYPE_CHECKING

from mmtune.config.card import SOURCE_LAYOUTS, DatasetCard
from mmtune.data.layouts.base import SourceLayout, SourceTable

if TYPE_CHECKING:
    import pandas as pd

    from mmtune.data.discovery import Discovery

__all__ = ["SOURCE_LAYOUTS", "SourceLayout", "SourceTable", "discover", "layout_of", "load_table"]

_HELPERS = ("base", "templates")  # modules of this package that are not layouts
_FIRST = ("ictcf", "manifest", "files", "table")  # registration order = the order an unknown-layout error lists


def _register_all() -> None:
    found = sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name not in _HELPERS + _FIRST)
    for name in (*_FIRST, *found):
        importlib.import_module(f"{__name__}.{name}")


_register_all()


def layout_of(card: DatasetCard) -> type[SourceLayout]:
    """The layout class the card's ``source.layout`` names."""
    return SOURCE_LAYOUTS.get(card.source.layout, "source.layout")


def load_table(root: Path, card: DatasetCard) -> SourceTable:
    """The patient table of any layout: the clinical CSV, or the file listing for ``files``."""
    return layout_of(card).load_table(root, card)


def discover(root: Path, table: pd.DataFrame, card: DatasetCard, table_path: Path) -> Discovery:
    """Image (and mask) files of every patient, found the card's layout's way."""
    return layout_of(card).discover(root, table, card, table_path)
