"""Path templates of the ``files`` and ``table`` layouts; light to import (no pandas).

A path template is a POSIX path relative to the source folder with ``{field}`` parts and ``*`` wildcards:
``studies/CT-{grade}/{id}.nii.gz`` (MosMedData), ``imgs*/{ImageFile}.dcm`` (AIforCOVID). In the ``files`` layout
the fields are read *from* the file names (``{id}`` is the patient id, other fields become table columns); in the
``table`` layout they are filled in *from* a row's columns. The card validates templates when it is loaded, so a
malformed one is a one-line error naming ``source.options.<key>`` before any file is read.
"""

from __future__ import annotations

import glob
import re
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from mmtune.config.loading import StrictModel
from mmtune.data.discovery import Discovery, group_files, natural_key

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


def fill(template: str, values: dict[str, str]) -> str | None:
    """The template with its fields filled in (glob-escaped); None when a value would leave its path part."""
    out = template
    for field in template_fields(template):
        value = str(values.get(field, "")).strip()
        if not value or "/" in value or "\\" in value or value in (".", ".."):
            return None
        out = out.replace("{" + field + "}", glob.escape(value))
    return out


def resolve(root: Path, pattern: str) -> list[Path]:
    """Files / folders matching a filled template, inside ``root`` only."""
    if glob.has_magic(pattern):
        candidates = sorted(root.glob(pattern), key=lambda p: natural_key(p.as_posix()))
    else:
        candidates = [root / pattern] if (root / pattern).exists() else []
    return [p for p in candidates if p.resolve().is_relative_to(root)]


def image_files(root: Path, paths: list[Path]) -> list[str]:
    """A match is a file, or a folder whose files are the images (a DICOM series)."""
    files: list[str] = []
    for path in paths:
        if path.is_dir():
            files += [p.relative_to(root).as_posix() for p in sorted(path.iterdir()) if p.is_file()]
        elif path.is_file():
            files.append(path.relative_to(root).as_posix())
    return files


def discover_templates(root: Path, jobs: list[tuple[str, dict[str, Any], list[Path]]], options: Any) -> Discovery:
    """Image (and mask) files of every patient of a template layout: ``jobs`` are (patient id, its template
    fields, the paths its images template matched)."""
    discovery = Discovery()
    for pid, fields, matches in jobs:
        files = image_files(root, matches)
        images = group_files(pid, files, discovery) if files else None
        if images is None:
            filled = fill(options.images, fields) or options.images
            discovery.no_images[pid] = f"no image file matches {filled!r} (source.options.images)"
            continue
        if options.masks:
            pattern = fill(options.masks, fields)
            masks = [p for p in resolve(root, pattern) if p.is_file()] if pattern else []
            images.mask = masks[0].relative_to(root).as_posix() if masks else None
        discovery.patients[pid] = images
    return discovery
