"""Write slices and volumes the way the real data sets ship them, all with SimpleITK, byte-for-byte reproducibly.

JPG with a fixed quality; DICOM with UIDs derived from the seed and fixed dates/times (GDCM would otherwise stamp
the current time); NIfTI through SimpleITK's gzip writer (which stores no timestamp).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from mmtune.locale_guard import keeps_locale

JPEG_QUALITY = 90
CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


def derived_uid(*parts: object) -> str:
    """A valid DICOM UID (``2.25.<integer>``) that depends only on ``parts`` (seed, patient, role, ...)."""
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode("utf-8")).hexdigest()
    return f"2.25.{int(digest[:30], 16)}"


def write_jpg_stack(folder: Path, slices: np.ndarray) -> list[Path]:
    """``slices`` uint8 ``[K, S, S]`` -> ``folder/0001.jpg ...`` (file order = slice order)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, plane in enumerate(slices):
        path = folder / f"{k + 1:04d}.jpg"
        sitk.WriteImage(sitk.GetImageFromArray(plane), str(path), useCompression=True, compressionLevel=JPEG_QUALITY)
        paths.append(path)
    return paths


@dataclass(frozen=True)
class DicomStudy:
    """Header values of one patient's series; the PHI fields are fake and exist so tests can prove they never leak."""

    patient_name: str
    patient_id: str
    birth_date: str
    sex: str
    study_date: str
    institution: str
    study_uid: str
    series_uid: str
    frame_uid: str
    intercept: int
    slope: int = 1


@keeps_locale
def write_dicom_series(
    folder: Path,
    hu: np.ndarray,
    study: DicomStudy,
    *,
    spacing_mm: float,
    thickness_mm: float,
    z0_mm: float,
    file_order: Sequence[int],
    uid_seed: str,
) -> list[Path]:
    """Write ``hu`` ``[K, S, S]`` as one CT series ``IM0001.dcm ...``; file ``n`` holds slice ``file_order[n-1]``.

    Slice ``k`` sits at ``z = z0 + k * thickness`` (ImagePositionPatient), so a reader must sort by position, not
    by name or InstanceNumber (InstanceNumber follows the file name, as some scanners' exports do). GDCM stores
    ``(HU - intercept) / slope`` as int16 with the RescaleIntercept/Slope tags given here.
    """
    folder.mkdir(parents=True, exist_ok=True)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    values = np.round(hu).astype(np.int16)
    paths = []
    for n, k in enumerate(file_order, start=1):
        # one slice as a 3D image of depth 1 whose z spacing is the slice thickness: GDCM writes
        # SpacingBetweenSlices from the image spacing once any DICOM was read in the process (ITK's reader turns
        # on gdcm::ImageHelper's ForcePixelSpacing, a process global), so it must equal the tag set below
        image = sitk.GetImageFromArray(values[k][None])
        image.SetSpacing((spacing_mm, spacing_mm, thickness_mm))
        z = z0_mm + k * thickness_mm
        origin = -0.5 * spacing_mm * (values.shape[2] - 1)
        tags = {
            "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
            "0008|0016": CT_IMAGE_STORAGE,
            "0008|0018": derived_uid(uid_seed, "sop", k),
            "0008|0020": study.study_date,
            "0008|0021": study.study_date,
            "0008|0023": study.study_date,
            "0008|0030": "101500",
            "0008|0031": "101500",
            "0008|0033": "101500",
            "0008|0012": study.study_date,
            "0008|0013": "101500",
            "0008|0060": "CT",
            "0008|0070": "mmtune synthetic",
            "0008|0080": study.institution,
            "0008|103e": "CHEST SYNTH",
            "0010|0010": study.patient_name,
            "0010|0020": study.patient_id,
            "0010|0030": study.birth_date,
            "0010|0040": study.sex,
            "0018|0050": f"{thickness_mm:g}",
            "0018|0088": f"{thickness_mm:g}",
            "0020|000d": study.study_uid,
            "0020|000e": study.series_uid,
            "0020|0052": study.frame_uid,
            "0020|0011": "1",
            "0020|0013": str(n),
            "0020|0032": f"{origin:g}\\{origin:g}\\{z:g}",
            "0020|0037": "1\\0\\0\\0\\1\\0",
            "0028|1050": "-600",
            "0028|1051": "1500",
            "0028|1052": str(study.intercept),
            "0028|1053": str(study.slope),
            "0028|1054": "HU",
        }
        for key, value in tags.items():
            image.SetMetaData(key, value)
        path = folder / f"IM{n:04d}.dcm"
        writer.SetFileName(str(path))
        writer.Execute(image)
        paths.append(path)
    return paths


def write_nifti(path: Path, array: np.ndarray, spacing_xyz: tuple[float, float, float], z0_mm: float = 0.0) -> Path:
    """``array`` ``[K, S, S]`` (numpy z, y, x order) -> gzip NIfTI with spacing and a centred origin."""
    path.parent.mkdir(parents=True, exist_ok=True)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing_xyz)
    half = -0.5 * spacing_xyz[0] * (array.shape[2] - 1)
    image.SetOrigin((half, half, z0_mm))
    sitk.WriteImage(image, str(path), useCompression=True)
    return path
