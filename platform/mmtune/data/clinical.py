"""Quirky clinical tables -> numeric features: reading, cell parsing, feature selection, train-only scaling.

Real exports carry abnormal flags (``12.1&#8593;``, ``3.2↓``), censored values (``<0.5``, ``>1000``), units
(``36.6°C``), categorical text (``Male``) and many spellings of "missing". Every cell goes through one parser so the
same raw table always gives the same numbers.
"""

from __future__ import annotations

import html
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mmtune.config.card import ClinicalSpec, DatasetCard, ParseSpec
from mmtune.errors import DataError

ARROWS = ("↑", "↓", "⬆", "⬇", "▲", "▼")
_NUMBER = re.compile(
    r"^(?P<op><=|>=|≤|≥|<|>)?\s*(?P<num>[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)\s*(?P<rest>.*)$"
)
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?:\D|$))")


def read_table(path: Path, id_column: str, sep: str | None = None) -> pd.DataFrame:
    """A CSV/TSV table as stripped text cells; entirely empty rows are dropped, ids must be present and unique.

    Everything stays text so ``007`` or ``1.0`` are never silently reinterpreted before the card's rules apply.
    """
    if not path.is_file():
        raise DataError(f"{path}: clinical table not found (source.clinical_table)")
    sep = sep or ("\t" if path.suffix.lower() in (".tsv", ".tab") else ",")
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, sep=sep, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a readable CSV table ({reason})") from None
    table.columns = [str(c).strip() for c in table.columns]
    table = table.apply(lambda column: column.str.strip())
    table = table[(table != "").any(axis=1)]  # keep the original index: error messages name CSV lines
    if id_column not in table.columns:
        shown = ", ".join(table.columns[:12]) + (" ..." if len(table.columns) > 12 else "")
        raise DataError(f"{path}: no patient id column {id_column!r} (card key patient_id); columns: {shown}")
    ids = table[id_column]
    empty = ids[ids == ""]
    if len(empty):
        raise DataError(f"{path}: row {int(empty.index[0]) + 2}: empty patient id in column {id_column!r}")
    duplicated = ids[ids.duplicated()]
    if len(duplicated):
        pid = duplicated.iloc[0]
        rows = [int(i) + 2 for i in ids.index[ids == pid]]
        raise DataError(f"{path}: duplicate patient id {pid!r} in column {id_column!r} (rows {rows[0]} and {rows[1]})")
    return table


def require_columns(table: pd.DataFrame, path: Path, columns: dict[str, str]) -> None:
    """Every column the card names (column -> card key) must exist in the table."""
    for column, key in columns.items():
        if column not in table.columns:
            raise DataError(f"{path}: no column {column!r} (named by card key {key})")


def clean_cell(text: str, parse: ParseSpec) -> str:
    """Unescape HTML entities and drop abnormal-value flags: ``12.1&#8593;`` -> ``12.1``."""
    text = html.unescape(text)
    if parse.strip_flags:
        for flag in (*ARROWS, *parse.flags):
            text = text.replace(flag, "")
    return text.strip()


def is_missing(text: str, parse: ParseSpec) -> bool:
    return text.strip().lower() in _missing_set(parse)


def _missing_set(parse: ParseSpec) -> frozenset[str]:
    return frozenset(m.strip().lower() for m in parse.missing)


def parse_number(text: str, parse: ParseSpec) -> float:
    """One raw cell -> float (NaN when missing); ``ValueError`` when it is not a number under the card's rules."""
    text = clean_cell(text, parse)
    if text.lower() in _missing_set(parse):
        return math.nan
    match = _NUMBER.match(_THOUSANDS.sub("", text))
    if match is None or (match["rest"] and not parse.strip_units):
        raise ValueError(text)
    if match["rest"] and not _looks_like_unit(match["rest"]):
        raise ValueError(text)
    value = float(match["num"])
    op = match["op"]
    if op is None:
        return value
    if parse.censored == "missing":
        return math.nan
    if op in ("<", "<=", "≤") and parse.censored == "half":
        return value / 2
    return value


def _looks_like_unit(rest: str) -> bool:
    # "36.6°C", "12 mg/L", "45%", "5.1 x10^9/L" are units; "3-5" or "1 2" are not numbers with units.
    return not re.match(r"^[-+.,]?\d", rest) and not re.search(r"\d\s*-\s*\d", rest)


@dataclass
class ParsedColumn:
    values: np.ndarray  # float64, NaN = missing
    bad: list[tuple[int, str]] = field(default_factory=list)  # (row index, raw cell) that did not parse


def parse_numeric_column(cells: pd.Series, parse: ParseSpec) -> ParsedColumn:
    out = np.full(len(cells), np.nan)
    bad: list[tuple[int, str]] = []
    for i, cell in enumerate(cells.tolist()):
        try:
            out[i] = parse_number(cell, parse)
        except ValueError:
            bad.append((i, cell))
    return ParsedColumn(out, bad)


def parse_categorical_column(
    cells: pd.Series, mapping: dict[str, float], parse: ParseSpec, path: Path, ids: pd.Series, column: str
) -> np.ndarray:
    """Map categorical text to numbers (case-insensitive); an unmapped value is a one-line ``DataError``."""
    lookup = {str(k).strip().lower(): float(v) for k, v in mapping.items()}
    missing = _missing_set(parse)
    out = np.full(len(cells), np.nan)
    for i, cell in enumerate(cells.tolist()):
        key = clean_cell(cell, parse).lower()
        if key in missing and key not in lookup:
            continue
        if key not in lookup:
            known = ", ".join(map(repr, mapping))
            raise DataError(
                f"{path}: row {ids.iloc[i]!r}, column {column!r}: value {cell!r} is not in "
                f"clinical.categorical.{column} ({known})"
            )
        out[i] = lookup[key]
    return out


@dataclass
class ClinicalTable:
    """Parsed features: ``raw[i, j]`` is feature ``features[j]`` of table row ``i`` (NaN = missing)."""

    features: list[str]
    raw: np.ndarray
    warnings: list[str]


def excluded_columns(card: DatasetCard) -> dict[str, str]:
    """Columns that may never be features (column -> why): label-defining, structural and ``clinical.exclude``."""
    out = {c: f"defines a label ({why})" for c, why in card.label_defining_columns.items()}
    out.update({c: f"is the {why} column" for c, why in card.structural_columns.items()})
    for column in card.clinical.exclude:
        out.setdefault(column, "listed in clinical.exclude")
    return out


def build_clinical(table: pd.DataFrame, card: DatasetCard, path: Path) -> ClinicalTable:
    """Select, parse and check the feature columns of ``table`` (rows in table order)."""
    spec: ClinicalSpec = card.clinical
    parse = spec.parse
    banned = excluded_columns(card)
    ids = table[card.patient_id]
    warnings: list[str] = []
    if spec.include is not None:
        require_columns(table, path, {c: f"clinical.include[{i}]" for i, c in enumerate(spec.include)})
        candidates = list(spec.include)
    else:
        candidates = [c for c in table.columns if c not in banned]
    require_columns(table, path, {c: f"clinical.categorical.{c}" for c in spec.categorical})
    features: list[str] = []
    columns: list[np.ndarray] = []
    for column in candidates:
        if column in banned:  # include was checked by the card; guard the auto path and future callers alike
            raise DataError(f"{path}: column {column!r} {banned[column]} and cannot be a clinical feature")
        cells = table[column]
        if column in spec.categorical:
            values = parse_categorical_column(cells, spec.categorical[column], parse, path, ids, column)
        else:
            parsed = parse_numeric_column(cells, parse)
            present = int(np.isfinite(parsed.values).sum()) + len(parsed.bad)
            if spec.include is None and (present == 0 or len(parsed.bad) > (1 - parse.numeric_threshold) * present):
                continue  # auto selection keeps numeric columns only (free text such as "Underlying diseases")
            if parsed.bad:
                row, cell = parsed.bad[0]
                warnings.append(
                    f"clinical column {column!r}: {len(parsed.bad)} value(s) are not numbers and count as missing "
                    f"(first: row {ids.iloc[row]!r} {cell!r})"
                )
            values = parsed.values
        if not np.isfinite(values).any():
            warnings.append(f"clinical column {column!r} has no values; it is left out")
            continue
        features.append(column)
        columns.append(values)
    raw = np.stack(columns, axis=1).astype(np.float32) if columns else np.zeros((len(table), 0), np.float32)
    for feature in features:
        assert feature not in banned, feature  # label columns are never features (see card cross_check)
    return ClinicalTable(features, raw, warnings)


@dataclass
class Standardiser:
    """Mean / std fitted on training rows only; missing values become 0 after scaling with an indicator of 1."""

    mean: np.ndarray
    std: np.ndarray
    missing_rate: np.ndarray

    @classmethod
    def fit(cls, raw: np.ndarray) -> Standardiser:
        n_features = raw.shape[1]
        if raw.shape[0] == 0:
            return cls(np.zeros(n_features), np.ones(n_features), np.ones(n_features))
        present = np.isfinite(raw)
        counts = present.sum(axis=0)
        safe = np.where(present, raw, 0.0).astype(np.float64)
        mean = np.divide(safe.sum(axis=0), counts, out=np.zeros(n_features), where=counts > 0)
        var = np.divide(
            (np.where(present, raw - mean, 0.0) ** 2).sum(axis=0), counts, out=np.zeros(n_features), where=counts > 0
        )
        std = np.sqrt(var)
        std = np.where(std > 1e-12, std, 1.0)
        return cls(mean, std, 1.0 - counts / raw.shape[0])

    def transform(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(standardised values with 0 where missing, missing indicators), both float32."""
        missing = ~np.isfinite(raw)
        values = (raw - self.mean) / self.std
        values[missing] = 0.0
        return values.astype(np.float32), missing.astype(np.float32)
