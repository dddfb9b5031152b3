"""What discovery yields for every source layout: which image files belong to which patient.

Shared by every source layout (``mmtune.data.layouts``): the natural sort order of ids and
file names, a patient's image files (``PatientImages``), what a raw folder holds (``Discovery``), and how one
patient's files are narrowed to one image kind (``group_files``).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field


def natural_key(text: str) -> tuple:
    """Sort ``Patient 2`` before ``Patient 10`` and ``9.jpg`` before ``10.jpg``."""
    return tuple(int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text))


@dataclass
class PatientImages:
    """The image files of one patient: ``kind`` is ``slice`` (2D files), ``dicom`` (a series) or ``volume``."""

    patient_id: str
    kind: str
    files: list[str]  # paths relative to the source root; slices in natural name order
    mask: str | None = None

    def to_job(self) -> dict[str, object]:
        return {"patient_id": self.patient_id, "kind": self.kind, "files": self.files, "mask": self.mask}


@dataclass
class Discovery:
    """What the raw folder holds: patients with images, plus skipped files and notes (path/id -> reason)."""

    patients: dict[str, PatientImages] = field(default_factory=dict)
    no_images: dict[str, str] = field(default_factory=dict)  # patient id -> reason (folder exists, nothing usable)
    skipped: dict[str, str] = field(default_factory=dict)  # relative path -> reason


def group_files(pid: str, files: list[str], discovery: Discovery) -> PatientImages | None:
    """Choose the image kind of a patient's files; files of other kinds are skipped with a reason."""
    from mmtune.data.images import file_kind  # SimpleITK: only when files are grouped, not when a card is checked

    kinds: dict[str, list[str]] = {}
    for rel in files:
        kind = file_kind(rel)
        if kind is None:
            discovery.skipped[rel] = "not an image file (unknown extension)"
            continue
        kinds.setdefault(kind, []).append(rel)
    if not kinds:
        return None
    counts = Counter({k: len(v) for k, v in kinds.items()})
    # DICOM wins over slices (the series carries HU), a volume over both when present.
    chosen = "volume" if "volume" in kinds else max(counts, key=lambda k: (k == "dicom", counts[k]))
    for kind, paths in kinds.items():
        if kind != chosen:
            for rel in paths:
                discovery.skipped[rel] = f"{kind} file beside the patient's {chosen} images; not used"
    chosen_files = sorted(kinds[chosen], key=natural_key)
    if chosen == "volume" and len(chosen_files) > 1:
        for rel in chosen_files[1:]:
            discovery.skipped[rel] = "second volume file of the patient; only the first is used"
        chosen_files = chosen_files[:1]
    return PatientImages(pid, chosen, chosen_files)
