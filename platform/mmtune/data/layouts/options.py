"""Options of the template layouts (``files``, ``table``) and their path templates; light to import (no pandas).

A path template is a POSIX path relative to the source folder with ``{field}`` parts and ``*`` wildcards:
``studies/CT-{grade}/{id}.nii.gz`` (MosMedData), ``imgs*/{ImageFile}.dcm`` (AIforCOVID). In the ``files`` layout
the fields are read *from* the file names (``{id}`` is the patient id, other fields become table columns); in the
``table`` layout they are filled in *from* a row's columns. The card validates templates when it is loaded, so a
malformed one is a one-line error naming ``source.options.<key>`` before any file is read.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, ValidationError, field_validator

from mmtune.config.loading import StrictModel, format_validation_error

TEMPLATE_LAYOUTS = ("files", "table")
ID_FIELD = "id"
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_ ()-]*)\}")
_BAD_BRACES = re.compile(r"[{}]")


def template_fields(template: str) -> list[str]:
    """The ``{field}`` names of a template, in order of first appearance."""
    out: list[str] = []
    for name in _FIELD.findall(template):
        if name not in out:
            out.append(name)
    return out


def check_template(template: str) -> str:
    """A relative POSIX path with balanced ``{field}`` parts; raises ``ValueError`` with what is wrong."""
    if not template or template.startswith("/") or "\\" in template:
        raise ValueError(f"{template!r}: expected a relative POSIX path such as 'images/{{id}}.nii.gz'")
    if any(part == ".." for part in template.split("/")):
        raise ValueError(f"{template!r}: '..' would leave the source folder")
    if _BAD_BRACES.search(_FIELD.sub("", template)):
        raise ValueError(f"{template!r}: braces must enclose a field name, e.g. {{id}} or {{ImageFile}}")
    for part in template.split("/"):
        fields = _FIELD.findall(part)
        if len(fields) > 1 and re.search(r"\}\{", part):
            raise ValueError(f"{template!r}: two fields must be separated by a literal character")
    return template


def template_regex(template: str) -> re.Pattern[str]:
    """Regex matching relative paths of ``template``: fields capture one path part (no ``/``), ``*`` any text.

    Group ``g<i>`` captures field ``template_fields(template)[i]`` (see :func:`match_fields`).
    """
    out, pos = "^", 0
    fields = template_fields(template)
    seen: set[str] = set()
    for match in _FIELD.finditer(template):
        out += _literal(template[pos : match.start()])
        name = match.group(1)
        group = f"g{fields.index(name)}"
        out += f"(?P={group})" if name in seen else f"(?P<{group}>[^/]+?)"
        seen.add(name)
        pos = match.end()
    out += _literal(template[pos:]) + "$"
    return re.compile(out)


def match_fields(template: str, path: str) -> dict[str, str] | None:
    """The field values of a relative path matching ``template`` (None when it does not match)."""
    match = template_regex(template).match(path)
    if match is None:
        return None
    fields = template_fields(template)
    return {fields[int(group[1:])]: value for group, value in match.groupdict().items()}


def _literal(text: str) -> str:
    """Literal template text as regex: ``*`` matches within one path part."""
    return "[^/]*".join(re.escape(part) for part in text.split("*"))


def as_glob(template: str) -> str:
    """The template with every field as ``*`` (what ``Path.glob`` lists before the regex picks fields)."""
    return _FIELD.sub("*", template)


class DigitSplit(StrictModel):
    """A fixed-width digit string -> one column per digit (BRIXIA's ``BrixiaScore`` ``011213`` -> zones A-F).

    Cells are left-padded with zeros to ``width`` (spreadsheets drop leading zeros: ``11213`` is ``011213``).
    """

    width: int = Field(ge=1, le=64)
    names: list[str] = Field(min_length=1, description="new column names, one per digit (left to right)")

    @field_validator("names")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("names repeat a column")
        return value


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


OPTION_MODELS: dict[str, type[StrictModel]] = {"files": FilesOptions, "table": TableOptions}


def parse_options(layout: str, options: dict[str, Any]) -> Any:
    """The layout's options model; a problem is a ``ValueError`` whose text starts with ``options.<key>``."""
    model = OPTION_MODELS[layout]
    try:
        return model.model_validate(options)
    except ValidationError as exc:
        raise ValueError(format_validation_error(exc, "options").replace("options: ", "options.", 1)) from None


def template_columns(layout: str, options: dict[str, Any], patient_id: str) -> list[str]:
    """Table columns a template layout uses for paths (never features): the fields of its templates."""
    parsed = parse_options(layout, options)
    fields = template_fields(parsed.images) + template_fields(parsed.masks or "")
    if layout == "files":
        return [patient_id if f == ID_FIELD else f for f in fields if f != ID_FIELD] + [patient_id]
    return list(dict.fromkeys(fields))
