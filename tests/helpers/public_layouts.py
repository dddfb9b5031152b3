"""Small synthetic copies of the public data sets, each in its exact documented layout (see datasets/*.yaml).

Every image and mask is written by SimpleITK (DICOM radiographs, NIfTI volumes); tables are CSV exports with the
documented column names and value codings. Each writer plants a simple visible signal (lesion load follows the
label) and returns the truth per patient, so tests can check that a card gives the right labels, masks and splits.

* ``write_aiforcovid``: ``imgs/P_<centre>_<n>.dcm`` (+ ``imgs_r2/`` for release 2), ``AIforCOVID.csv``
  (``ImageFile, Hospital, ... , Prognosis, Death``), hospitals A-F, some radiographs stored as MONOCHROME1.
* ``write_brixia``: ``dicom_clean/<Filename>``, ``metadata_global_v2.csv`` separated by ``;`` with the 6-digit
  ``BrixiaScore`` (leading zeros dropped in some rows, as spreadsheets do) and ``BrixiaScoreGlobal`` 0-18; several
  radiographs per ``Subject``.
* ``write_mosmed``: ``studies/CT-<k>/study_XXXX.nii.gz`` (HU) and ``masks/study_XXXX_mask.nii.gz`` for CT-1 studies.
* ``write_covid_ct_seg``: ``COVID-19-CT-Seg_20cases/<case>.nii.gz`` (coronacases in HU, radiopaedia in 0-255) and
  ``Infection_Mask/``, ``Lung_Mask/``, ``Lung_and_Infection_Mask/`` with the same file names.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
from mmtune.locale_guard import keeps_locale

HOSPITALS = "ABCDEF"
AIFORCOVID_COLUMNS = [
    "ImageFile", "Hospital", "Age", "Sex", "Positivity at admission", "Temp_C", "DaysFever", "Cough",
    "DifficultyInBreathing", "WBC", "RBC", "CRP", "Fibrinogen", "Glucose", "PCT", "LDH", "INR", "D-dimer",
    "Ox_percentage", "PaO2", "SaO2", "PaCO2", "pH", "CardiovascularDisease", "IschemicHeartDisease",
    "AtrialFibrillation", "HeartFailure", "Ictus", "HighBloodPressure", "Diabetes", "Dementia", "BPCO", "Cancer",
    "Chronic Kidney disease", "RespiratoryFailure", "Obesity", "Position", "Prognosis", "Death",
]  # fmt: skip
BRIXIA_COLUMNS = [
    "Filename", "StudyDate", "Sex", "AgeAtStudyDateFiveYear", "BrixiaScore", "BrixiaScoreGlobal",
    "ConsensusTestset", "Modality", "Manufacturer", "PhotometricInterpretation", "Subject", "StudyId",
]  # fmt: skip
MANUFACTURERS = ("SIEMENS", "AGFA", "CARESTREAM HEALTH")
CT_SEG_CASES = (
    "coronacases_001", "coronacases_002", "coronacases_003", "coronacases_004", "coronacases_005",
    "radiopaedia_4_85506_1", "radiopaedia_7_85703_0", "radiopaedia_10_85902_1", "radiopaedia_14_85914_0",
    "radiopaedia_27_86410_0",
)  # fmt: skip


@dataclass
class Written:
    """What a writer put on disk: labels per patient id, which patients have masks, groups, and extras."""

    root: Path
    labels: dict[str, dict[str, Any]] = field(default_factory=dict)
    masks: set[str] = field(default_factory=set)
    groups: dict[str, str] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------------------------------------------- images


def chest_radiograph(size: int, opacity: float, rng: np.random.Generator, bits: int = 12) -> np.ndarray:
    """A uint16 frontal chest X-ray: bright body, two dark lungs, lung opacity growing with ``opacity`` (0-1)."""
    top = 2**bits - 1
    y, x = np.mgrid[0:size, 0:size] / size
    body = ((x - 0.5) / 0.45) ** 2 + ((y - 0.5) / 0.48) ** 2 < 1
    lungs = (((x - 0.32) / 0.14) ** 2 + ((y - 0.48) / 0.3) ** 2 < 1) | (
        ((x - 0.68) / 0.14) ** 2 + ((y - 0.48) / 0.3) ** 2 < 1
    )
    image = np.where(body, 0.75, 0.05) - np.where(lungs, 0.5 * (1 - opacity), 0.0)
    image = image + rng.normal(0, 0.02, image.shape)
    return np.clip(image * top, 0, top).astype(np.uint16)


@keeps_locale
def write_radiograph(path: Path, pixels: np.ndarray, *, monochrome1: bool = False, modality: str = "DX") -> Path:
    """One DICOM radiograph written by SimpleITK (2D uint16); MONOCHROME1 files store inverted values.

    GDCM writes MONOCHROME2; for MONOCHROME1 the stored values are inverted and the header tag is set with pydicom,
    as vendors do (the reader inverts them back: bright bone stays bright).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    stored = (np.iinfo(np.uint16).max - pixels).astype(np.uint16) if monochrome1 else pixels
    image = sitk.GetImageFromArray(stored)
    image.SetSpacing((0.2, 0.2))
    image.SetMetaData("0008|0060", modality)
    image.SetMetaData("0010|0010", "SYNTH^CXR")  # fake PHI: prepare must never copy it
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    writer.SetFileName(str(path))
    writer.Execute(image)
    if monochrome1:
        import pydicom

        ds = pydicom.dcmread(path)
        ds.PhotometricInterpretation = "MONOCHROME1"
        ds.save_as(path)
    return path


def chest_ct(
    size: int, depth: int, lesion: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(HU volume int16 [D, S, S], lung mask 1 left / 2 right, lesion mask 0/1) with ``lesion`` of the lungs hit."""
    _, y, x = np.mgrid[0:depth, 0:size, 0:size]
    y, x = y / size, x / size
    body = ((x - 0.5) / 0.46) ** 2 + ((y - 0.5) / 0.4) ** 2 < 1
    left = ((x - 0.32) / 0.14) ** 2 + ((y - 0.5) / 0.28) ** 2 < 1
    right = ((x - 0.68) / 0.14) ** 2 + ((y - 0.5) / 0.28) ** 2 < 1
    lung = np.where(left, 1, np.where(right, 2, 0)).astype(np.uint8)
    field_ = rng.normal(0, 1, (depth, size, size)) + 2.0 * y  # posterior-biased random field
    lesion_mask = np.zeros_like(lung)
    inside = lung > 0
    if lesion > 0:
        cut = np.quantile(field_[inside], 1 - lesion)
        lesion_mask = (inside & (field_ >= cut)).astype(np.uint8)
    hu = np.where(body, 40.0, -1000.0)
    hu = np.where(inside, -860.0, hu)
    hu = np.where(lesion_mask > 0, -350.0, hu) + rng.normal(0, 15, hu.shape)
    return np.round(hu).astype(np.int16), lung, lesion_mask


def write_volume(path: Path, array: np.ndarray, spacing: tuple[float, float, float] = (0.7, 0.7, 8.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]], sep: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, delimiter=sep, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


# ---------------------------------------------------------------------------------------------------- writers


def write_aiforcovid(root: Path, n: int = 36, size: int = 48, seed: int = 0) -> Written:
    """AIforCOVID: release 1 in ``imgs/``, every fifth patient in ``imgs_r2/`` (a later release); one table."""
    rng = np.random.default_rng(seed)
    out = Written(root)
    rows = []
    for i in range(n):
        hospital = HOSPITALS[i % len(HOSPITALS)]
        pid = f"P_{i % len(HOSPITALS) + 1}_{i // len(HOSPITALS) + 1}"
        severe = i % 3 == 0
        died = severe and i % 2 == 0
        folder = "imgs_r2" if i % 5 == 4 else "imgs"
        pixels = chest_radiograph(size, 0.75 if severe else 0.1, rng)
        write_radiograph(root / folder / f"{pid}.dcm", pixels, monochrome1=i % 4 == 1, modality="CR")
        row = {c: "" for c in AIFORCOVID_COLUMNS}
        row.update(
            {
                "ImageFile": pid,
                "Hospital": hospital,
                "Age": str(int(rng.integers(30, 90))),
                "Sex": "M" if i % 2 else "F",
                "Positivity at admission": "1",
                "Temp_C": f"{37.5 + (0.8 if severe else 0) + rng.normal(0, 0.3):.1f}",
                "DaysFever": str(int(rng.integers(0, 10))),
                "Cough": str(int(rng.integers(0, 2))),
                "DifficultyInBreathing": "1" if severe else "0",
                "WBC": f"{rng.normal(7, 2):.2f}",
                "CRP": f"{rng.gamma(2, 5 if severe else 2):.2f}" if i % 6 else "",  # missing values stay empty
                "LDH": f"{rng.normal(400 if severe else 250, 50):.0f}",
                "Ox_percentage": f"{rng.normal(90 if severe else 96, 2):.0f}",
                "Position": str(int(rng.integers(0, 2))),
                "Prognosis": "SEVERE" if severe else "MILD",
                "Death": "1" if died else "0",
            }
        )
        rows.append(row)
        out.labels[pid] = {"prognosis": int(severe), "death": int(died)}
        out.groups[pid] = hospital
    write_csv(root / "AIforCOVID.csv", AIFORCOVID_COLUMNS, rows)
    out.extra["release2"] = sorted(p.stem for p in (root / "imgs_r2").glob("*.dcm"))
    return out


def write_brixia(root: Path, n: int = 36, size: int = 48, seed: int = 0, per_subject: int = 2) -> Written:
    """BrixIA: ``dicom_clean/<Filename>`` + ``;``-separated metadata; ``per_subject`` radiographs per subject."""
    rng = np.random.default_rng(seed)
    out = Written(root)
    rows = []
    for i in range(n):
        zones = [int(v) for v in rng.integers(0, 4, 6)]
        if i % 4 == 0:
            zones[0] = 0  # a leading zero that the "spreadsheet" below drops
        score = "".join(map(str, zones))
        filename = f"{1000 + 7 * i}.dcm"
        subject = f"{500 + i // per_subject}"
        manufacturer = MANUFACTURERS[(i // per_subject) % len(MANUFACTURERS)]
        pixels = chest_radiograph(size, sum(zones) / 18, rng, bits=12 if i % 2 else 14)
        write_radiograph(root / "dicom_clean" / filename, pixels, monochrome1=i % 3 == 2)
        rows.append(
            {
                "Filename": filename,
                "StudyDate": f"202003{4 + i % 27:02d}",
                "Sex": "M" if i % 2 else "F",
                "AgeAtStudyDateFiveYear": str(int(rng.integers(8, 18))),
                "BrixiaScore": str(int(score)) if i % 4 == 0 else score,
                "BrixiaScoreGlobal": str(sum(zones)),
                "ConsensusTestset": "1" if i % 9 == 0 else "0",
                "Modality": "DX" if i % 2 else "CR",
                "Manufacturer": manufacturer,
                "PhotometricInterpretation": "MONOCHROME1" if i % 3 == 2 else "MONOCHROME2",
                "Subject": subject,
                "StudyId": str(90000 + i),
            }
        )
        out.labels[filename] = {"severity": float(sum(zones)), "zones": zones}
        out.groups[filename] = manufacturer
        out.extra.setdefault("subjects", {})[filename] = subject
    write_csv(root / "metadata_global_v2.csv", BRIXIA_COLUMNS, rows, sep=";")
    return out


def write_mosmed(root: Path, n: int = 30, size: int = 32, depth: int = 6, seed: int = 0) -> Written:
    """MosMedData COVID19_1110: studies by grade folder, masks for the CT-1 studies (as the release has)."""
    rng = np.random.default_rng(seed)
    out = Written(root)
    fractions = {0: 0.0, 1: 0.12, 2: 0.35, 3: 0.6, 4: 0.85}
    for i in range(n):
        grade = (0, 1, 1, 2, 3, 1, 0, 4)[i % 8] if i < 8 else (0, 1, 2, 3)[i % 4]
        study = f"study_{i + 1:04d}"
        hu, _, lesion = chest_ct(size, depth, fractions[grade], rng)
        write_volume(root / "studies" / f"CT-{grade}" / f"{study}.nii.gz", hu)
        if grade == 1:
            write_volume(root / "masks" / f"{study}_mask.nii.gz", lesion)
            out.masks.add(study)
        out.labels[study] = {"grade": grade, "covid": int(grade > 0), "lesion_voxels": int(lesion.sum())}
    return out


def write_covid_ct_seg(root: Path, size: int = 32, depth: int = 6, seed: int = 0) -> Written:
    """COVID-19-CT-Seg: 5 coronacases (HU) + 5 radiopaedia (0-255) volumes and three mask folders per case."""
    rng = np.random.default_rng(seed)
    out = Written(root)
    for k, case in enumerate(CT_SEG_CASES):
        hu, lung, lesion = chest_ct(size, depth, 0.05 + 0.06 * k, rng)
        if case.startswith("radiopaedia"):  # these volumes ship already windowed to 0-255
            volume = np.clip((hu.astype(np.float32) + 1350) / 1500 * 255, 0, 255).astype(np.uint8)
        else:
            volume = hu
        write_volume(root / "COVID-19-CT-Seg_20cases" / f"{case}.nii.gz", volume)
        write_volume(root / "Infection_Mask" / f"{case}.nii.gz", lesion)
        write_volume(root / "Lung_Mask" / f"{case}.nii.gz", lung)
        write_volume(
            root / "Lung_and_Infection_Mask" / f"{case}.nii.gz", np.where(lesion > 0, 3, lung).astype(np.uint8)
        )
        out.masks.add(case)
        out.labels[case] = {"lesion_voxels": int(lesion.sum())}
    return out
