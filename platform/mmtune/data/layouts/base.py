"""What a source layout provides, and the patient table every layout hands ``prepare``.

A layout is a class registered in ``mmtune.config.card.SOURCE_LAYOUTS`` by one module of this package. The card
uses its config half when it is loaded (``keys``, ``options_model``, ``check_source``, ``has_masks``,
``add_structural_columns``); ``prepare`` uses its data half (``load_table``, ``discover``, ``no_images_reason``).
The class methods only; a layout holds no state. Heavy imports (pandas) stay inside the data half so checking a
card stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import ValidationError

from mmtune.config.loading import StrictModel, format_validation_error

if TYPE_CHECKING:
    import pandas as pd

    from mmtune.config.card import DatasetCard, SourceSpec
    from mmtune.data.discovery import Discovery


@dataclass
class SourceTable:
    """The patient table a layout yields: where it came from (for messages), its text cells, and its bytes (hash)."""

    path: Path
    table: pd.DataFrame
    data: bytes


def table_path(root: Path, card: DatasetCard) -> Path:
    """``source.clinical_table`` under ``root``; one that resolves outside it (a symlink) is a ``DataError``."""
    from mmtune.errors import DataError

    path = (root / card.source.clinical_table).resolve()
    if not path.is_relative_to(root.resolve()):
        raise DataError(
            f"source.clinical_table: {card.source.clinical_table!r} resolves to {path}, outside the source folder {root}"
        )
    return path


def file_bytes(path: Path) -> bytes:
    return path.read_bytes() if path.is_file() else b""


class SourceLayout:
    """The defaults: a clinical CSV at ``source.clinical_table``, no options, masks from ``source.mask_column``."""

    keys: ClassVar[frozenset[str]] = frozenset()  # ``source.*`` keys that apply to this layout only
    options_model: ClassVar[type[StrictModel] | None] = None  # the model of ``source.options`` (None: no options)
    reads_clinical_table: ClassVar[bool] = True  # False: ``source.clinical_table`` does not apply
    mask_key: ClassVar[str] = "source.mask_column"  # the key a segmentation task's error points at

    # ---------------------------------------------------------------- config half (the card, when it is loaded)

    @classmethod
    def parse_options(cls, options: dict[str, Any]) -> Any:
        """The layout's options model; a problem is a ``ValueError`` whose text starts with ``options.<key>``."""
        assert cls.options_model is not None
        try:
            return cls.options_model.model_validate(options)
        except ValidationError as exc:
            raise ValueError(format_validation_error(exc, "options").replace("options: ", "options.", 1)) from None

    @classmethod
    def check_source(cls, source: SourceSpec) -> None:
        """Raise ``ValueError`` for a ``source`` section this layout cannot read."""

    @classmethod
    def has_masks(cls, source: SourceSpec) -> bool:
        return source.mask_column is not None

    @classmethod
    def add_structural_columns(cls, source: SourceSpec, patient_id: str, out: dict[str, str]) -> None:
        """Add the table columns this layout reads for paths (never features) to ``out`` (column -> card key)."""

    # ---------------------------------------------------------------- data half (``prepare``)

    @classmethod
    def load_table(cls, root: Path, card: DatasetCard) -> SourceTable:
        """The patient table: the clinical CSV at ``source.clinical_table``."""
        from mmtune.data.clinical import read_table

        path = table_path(root, card)
        return SourceTable(path, read_table(path, card.patient_id), file_bytes(path))

    @classmethod
    def discover(cls, root: Path, table: pd.DataFrame, card: DatasetCard, table_path: Path) -> Discovery:
        """Image (and mask) files of every patient."""
        raise NotImplementedError

    @classmethod
    def no_images_reason(cls, card: DatasetCard, pid: str) -> str:
        """Why a table row has no images, when discovery recorded no reason of its own."""
        return "no images found for this patient"
