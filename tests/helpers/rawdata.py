"""Tiny raw CT files for the data-layer tests, all written by SimpleITK (DICOM, NIfTI, JPG, PNG) + CSV tables."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk
import yaml
from mmtune.locale_guard import keeps_locale

PHI_NAME = "SYNTH^PATIENT"


def write_slices(folder: Path, planes: np.ndarray, suffix: str = ".jpg") -> list[Path]:
    """uint8 ``[K, H, W]`` -> ``folder/1.jpg ... K.jpg`` (natural order = slice order)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, plane in enumerate(planes):
        path = folder / f"{k + 1}{suffix}"
        sitk.WriteImage(sitk.GetImageFromArray(np.asarray(plane, np.uint8)), str(path))
        paths.append(path)
    return paths


@keeps_locale
def write_dicom_series(
    folder: Path,
    hu: np.ndarray,
    *,
    file_order: Sequence[int] | None = None,
    slope: float = 1.0,
    intercept: float = -1024.0,
    spacing: float = 0.8,
    thickness: float = 2.5,
    phi: str = PHI_NAME,
) -> list[Path]:
    """HU ``[K, H, W]`` -> one CT series; file ``n`` holds slice ``file_order[n]`` at z = k * thickness.

    GDCM stores ``(HU - intercept) / slope`` with the RescaleSlope/Intercept tags given here, so the stored pixel
    values differ from HU and a reader must apply the tags. Patient name and birth date are fake PHI.
    """
    folder.mkdir(parents=True, exist_ok=True)
    order = list(file_order) if file_order is not None else list(range(hu.shape[0]))
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    paths = []
    for n, k in enumerate(order):
        image = sitk.GetImageFromArray(np.round(hu[k]).astype(np.int16))
        image.SetSpacing((spacing, spacing))
        tags = {
            "0008|0060": "CT",
            "0008|0020": "20200202",
            "0010|0010": phi,
            "0010|0020": "PHI-ID-0042",
            "0010|0030": "19500101",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.2",
            "0020|0013": str(n + 1),
            "0020|0032": f"0\\0\\{k * thickness:g}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|1052": f"{intercept:g}",
            "0028|1053": f"{slope:g}",
            "0008|0018": f"1.2.826.0.1.3680043.2.1125.3.{n + 1}",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        path = folder / f"IM{n + 1:04d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(image)
        paths.append(path)
    return paths


def write_nifti(path: Path, array: np.ndarray, spacing: tuple[float, float, float] = (0.8, 0.8, 2.5)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    sitk.WriteImage(image, str(path), useCompression=True)
    return path


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def write_csv(path: Path, rows: list[dict[str, Any]]) -> Path:
    columns: list[str] = []
    for row in rows:
        columns += [c for c in row if c not in columns]
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({c: row.get(c, "") for c in columns})
    return path


def write_card(path: Path, card: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(card, sort_keys=False), encoding="utf-8")
    return path


def base_card(path: str = "raw", **changes: Any) -> dict[str, Any]:
    """A small iCTCF-style card over ``make_ictcf`` data; ``changes`` replace top-level keys."""
    card: dict[str, Any] = {
        "name": "tiny",
        "source": {
            "layout": "ictcf",
            "path": path,
            "patient_dir": "Patient {id}",
            "image_glob": "CT/*",
            "mask_glob": "lesion_mask.nii.gz",
        },
        "patient_id": "Patient ID",
        "group": "Hospital",
        "image": {"kind": "stack2d", "slices": 3, "size": 16, "window": {"center": 0, "width": 2000}},
        "label_columns": ["SARS-CoV-2 nucleic acids"],
        "clinical": {"categorical": {"Gender": {"Male": 1, "Female": 0}}},
        "tasks": [
            {
                "name": "morbidity",
                "kind": "multiclass",
                "column": "Morbidity outcome",
                "classes": ["Control", "Type I", "Type II"],
                "map": {"Mild": "Type I", "Severe": "Type II"},
                "drop": ["Suspected*"],
            },
            {
                "name": "mortality",
                "kind": "binary",
                "column": "Mortality outcome",
                "classes": ["Cured", "Deceased"],
                "unlabelled": ["Unknown"],
            },
            {"name": "lesion_seg", "kind": "segmentation"},
        ],
        "split": {"method": "stratified", "test_fraction": 0.25, "k_folds": 2, "seed": 0, "stratify_by": "morbidity"},
    }
    card.update(changes)
    return card


MORBIDITY = ["Control", "Mild", "Severe"]


def make_ictcf(root: Path, n: int = 12, size: int = 24, slices: int = 4) -> dict[str, Any]:
    """iCTCF-layout raw data: JPG patients, PNG patients and DICOM patients (shuffled file order), NIfTI masks,
    a clinical.csv with quirks, plus planted defects. Returns facts the tests check against."""
    rng = np.random.default_rng(0)
    rows = []
    facts: dict[str, Any] = {"dicom": [], "png": [], "jpg": [], "slice_means": {}}
    for i in range(1, n + 1):
        folder = root / f"Patient {i}" / "CT"
        level = np.arange(slices, dtype=float)[:, None, None] * 40.0 + i
        planes = np.clip(level + rng.normal(0, 3, (slices, size, size)), 0, 255).astype(np.uint8)
        if i % 4 == 0:
            hu = (level * 4 - 500) + np.zeros((slices, size, size))
            order = list(range(slices))[::-1] if i % 8 == 0 else [*range(1, slices, 2), *range(0, slices, 2)]
            write_dicom_series(folder, hu, file_order=order, slope=2.0 if i == 4 else 1.0)
            facts["dicom"].append(str(i))
        elif i % 4 == 1:
            write_slices(folder, planes, ".png")
            facts["png"].append(str(i))
        else:
            write_slices(folder, planes, ".jpg")
            facts["jpg"].append(str(i))
        mask = np.zeros((slices, size, size), np.uint8)
        mask[:, : i % size, :4] = 1
        write_nifti(root / f"Patient {i}" / "lesion_mask.nii.gz", mask)
        rows.append(
            {
                "Patient ID": str(i),
                "Hospital": f"Hospital {'ABC'[i % 3]}",
                "Age": str(30 + i),
                "Gender": "Male" if i % 2 else "Female",
                "Body temperature": f"{36 + i / 10:.1f}°C",
                "CRP": ["12.5&#8593;", "<0.5", "3.1", ""][i % 4],
                "LY": ["0.8↓", "1.2", ">1000", "1.9"][i % 4],
                "Underlying diseases": ["", "Hypertension", "Diabetes, COPD"][i % 3],
                "SARS-CoV-2 nucleic acids": "Positive" if i % 3 else "Negative",
                "Morbidity outcome": MORBIDITY[i % 3],
                "Mortality outcome": ["Cured", "Deceased", "Unknown", "Cured"][i % 4],
            }
        )
    write_csv(root / "clinical.csv", rows)
    facts["rows"] = rows
    return facts
