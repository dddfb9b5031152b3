"""The ``ictcf`` variant: the public iCTCF release layout (``Patient {i}/CT/*.jpg|*.dcm`` + ``clinical.csv``).

Patients are written one at a time (only one volume in memory); the table rows are small and written at the end.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmtune.data.synthetic import clinical as clin
from mmtune.data.synthetic.config import SynthConfig
from mmtune.data.synthetic.latent import (
    CLASSES,
    FINDINGS,
    LatentParams,
    bayes_aurocs,
    population_aurocs,
    posterior_table,
    sample_latents,
)
from mmtune.data.synthetic.output import write_csv
from mmtune.data.synthetic.parallel import map_in_order
from mmtune.data.synthetic.render import (
    SLICE_THICKNESS_MM,
    HospitalEffect,
    Rendered,
    RenderParams,
    hospital_effects,
    pixel_spacing,
    render_patient,
    to_window_uint8,
)
from mmtune.data.synthetic.writers import DicomStudy, derived_uid, write_dicom_series, write_jpg_stack, write_nifti

CLINICAL_FILE = "clinical.csv"
MASK_FILE = "lesion_mask.nii.gz"
MORBIDITY_RAW: dict[int, tuple[tuple[str, float], ...]] = {
    0: (("Control", 0.7), ("Control (Community-acquired pneumonia)", 0.3)),
    1: (("Mild", 0.4), ("Regular", 0.6)),
    2: (("Severe", 0.65), ("Critically ill", 0.35)),
}
SUSPECTED = "Suspected"
SUSPECTED_LATER = "Suspected (COVID-19-confirmed later)"
LABEL_COLUMNS = (
    "SARS-CoV-2 nucleic acids",
    "Computed tomography (CT)",
    "Morbidity outcome",
    "Mortality outcome",
    "Lesion fraction",
    "Ground-glass opacity",
    "Consolidation",
    "Pleural effusion",
)
FINDING_COLUMNS = dict(zip(FINDINGS, ("Ground-glass opacity", "Consolidation", "Pleural effusion")))
CLINICAL_COLUMNS = (
    "Patient ID",
    "Hospital",
    "Age",
    "Gender",
    "Body temperature",
    "Underlying diseases",
    *LABEL_COLUMNS,
    *clin.LAB_NAMES,
)
MASK_SHARE = 0.85
UNKNOWN_MORTALITY = 0.08
SUSPECTED_SHARE = 0.02  # of patients, for each of the two Suspected values (at least one each)


def folder_name(patient: int) -> str:
    return f"Patient {patient}"


def write_ictcf(
    root: Path, cfg: SynthConfig, on_patient: Callable[[], None] | None = None, workers: int = 1
) -> dict[str, Any]:
    """Write the whole variant under ``root``; returns the facts for the summary and truth.json.

    Patients are rendered and written by ``workers`` processes; each uses only its own random streams, so the
    bytes do not depend on ``workers``.
    """
    params, render_params, clin_params = LatentParams(), RenderParams(), clin.ClinicalParams()
    hospitals = hospital_effects(cfg.hospitals)
    plan = _plan(cfg, params)
    lat = plan["latents"]
    spacing = pixel_spacing(cfg.size)
    plan["hospitals"] = hospitals
    plan["render_params"] = render_params
    plan["clinical_params"] = clin_params

    job = functools.partial(_patient, root, cfg, plan)
    written = map_in_order(job, list(range(cfg.patients)), workers, on_patient)
    rows = [row for row, _, _ in written if row is not None]
    truth_rows = [truth for _, truth, _ in written]
    files = {"jpg": 0, "dcm": 0, "mask": 0}
    for _, _, counts in written:
        for key, value in counts.items():
            files[key] += value

    write_csv(root / CLINICAL_FILE, rows, CLINICAL_COLUMNS)
    posteriors = plan["posteriors"]
    evaluable = np.array(
        [
            bool(r["in_table"] and r["has_images"]) and not r["morbidity_outcome"].startswith("Suspected")
            for r in truth_rows
        ],
        dtype=bool,
    )
    for r, ok in zip(truth_rows, evaluable):
        r["evaluable"] = int(ok)
    post_rows = [{**r, **{k: float(v[i]) for k, v in posteriors.items()}} for i, r in enumerate(truth_rows)]
    write_csv(root / "posteriors.csv", post_rows, list(post_rows[0]))
    mortality_known = evaluable & np.array([r["mortality_outcome"] != "Unknown" for r in truth_rows])
    sel = evaluable
    aurocs = bayes_aurocs(
        {k: v[sel] for k, v in posteriors.items()}, lat.cls[sel], lat.deceased[sel], mortality_known[sel]
    )
    counts = {name: int((lat.cls == c).sum()) for c, name in enumerate(CLASSES)}
    return {
        "files": files,
        "table_rows": len(rows),
        "image_patients": sum(r["has_images"] for r in truth_rows),
        "jpg_patients": sum(r["image_format"] == "jpg" for r in truth_rows),
        "dicom_patients": sum(r["image_format"] == "dicom" for r in truth_rows),
        "mask_patients": files["mask"],
        "class_counts": counts,
        "defects": {kind: str(pid) for pid, kind in sorted(plan["defect_of"].items())},
        "bayes_auroc": aurocs,
        "bayes_auroc_population": population_aurocs(params),
        "n_evaluable": {"covid": int(sel.sum()), "morbidity": int(sel.sum()), "mortality": int(mortality_known.sum())},
        "truth": {
            "latent_params": params.to_dict(),
            "render_params": render_params.to_dict(),
            "clinical_params": clin_params.to_dict(),
            "labs": [lab.to_dict() for lab in clin.LABS],
            "informative_labs": list(clin.INFORMATIVE_LABS),
            "noise_labs": list(clin.NOISE_LABS),
            "hospitals": [h.to_dict() for h in hospitals],
            "columns": list(CLINICAL_COLUMNS),
            "label_columns": list(LABEL_COLUMNS),
            "morbidity_raw_values": {CLASSES[c]: [v for v, _ in vals] for c, vals in MORBIDITY_RAW.items()},
            "suspected_values": [SUSPECTED, SUSPECTED_LATER],
            "mask_share": MASK_SHARE,
            "unknown_mortality_share": UNKNOWN_MORTALITY,
            "suspected_patients": {str(p): v for p, v in sorted(plan["suspected"].items())},
            "dicom_file_orders": {str(p): list(map(int, o)) for p, o in sorted(plan["file_order"].items())},
            "pixel_spacing_mm": spacing,
            "slice_thickness_mm": SLICE_THICKNESS_MM,
        },
    }


def _patient(
    root: Path, cfg: SynthConfig, plan: dict[str, Any], idx: int
) -> tuple[dict[str, str] | None, dict[str, Any], dict[str, int]]:
    """Render and write patient ``idx``: its table row (None when the row is a planted defect), truth row, files."""
    lat = plan["latents"]
    pid = idx + 1
    hospital = plan["hospitals"][plan["hospital"][idx]]
    rendered = render_patient(
        cfg.rng(1, pid),
        cfg.size,
        cfg.slices,
        float(lat.lesion_fraction[idx]),
        tuple(int(f) for f in lat.findings[idx]),
        hospital,
        plan["render_params"],
    )
    crng = cfg.rng(2, pid)
    row = _clinical_row(cfg, pid, idx, plan, hospital, rendered.lesion_fraction, crng, plan["clinical_params"])
    z0 = round(float(crng.uniform(-60.0, 20.0)), 1)
    defect = plan["defect_of"].get(pid)
    files = {"jpg": 0, "dcm": 0, "mask": 0}
    image_kind, has_mask = _write_patient_files(root, cfg, pid, idx, plan, rendered, row, z0, crng, files)
    truth = {
        "patient_id": pid,
        "hospital": hospital.name,
        "morbidity_class": CLASSES[lat.cls[idx]],
        "covid": int(lat.cls[idx] > 0),
        "deceased": int(lat.deceased[idx]),
        "mortality_outcome": row["Mortality outcome"],
        "morbidity_outcome": row["Morbidity outcome"],
        "lesion_fraction_latent": round(float(lat.lesion_fraction[idx]), 6),
        "lesion_fraction": round(rendered.lesion_fraction, 6),
        "severity_latent": round(float(lat.s[idx]), 6),
        **{name: int(lat.findings[idx, j]) for j, name in enumerate(FINDINGS)},
        "image_format": image_kind,
        "has_mask": int(has_mask),
        "in_table": int(defect != "no_row"),
        "has_images": int(image_kind != "none"),
        "defect": defect or "",
    }
    return (row if defect != "no_row" else None), truth, files


def _write_patient_files(
    root: Path,
    cfg: SynthConfig,
    pid: int,
    idx: int,
    plan: dict[str, Any],
    rendered: Rendered,
    row: dict[str, str],
    z0: float,
    rng: np.random.Generator,
    files: dict[str, int],
) -> tuple[str, bool]:
    """``Patient {pid}/CT/`` (JPG or DICOM) and the lesion mask, honouring this patient's file defect.

    Returns the image format written (``jpg``/``dicom``/``none``) and whether a mask was written.
    """
    defect = plan["defect_of"].get(pid)
    if defect == "no_folder":
        return "none", False
    ct = root / folder_name(pid) / "CT"
    ct.mkdir(parents=True)
    if defect == "empty_ct":
        return "none", False
    spacing = pixel_spacing(cfg.size)
    hospital = plan["hospitals"][plan["hospital"][idx]]
    if plan["dicom"][idx]:
        kind = "dicom"
        paths = write_dicom_series(
            ct,
            rendered.hu,
            _dicom_study(cfg, pid, hospital, row["Gender"], rng),
            spacing_mm=spacing,
            thickness_mm=SLICE_THICKNESS_MM,
            z0_mm=z0,
            file_order=plan["file_order"][pid],
            uid_seed=f"{cfg.seed}/ictcf/{pid}",
        )
        files["dcm"] += len(paths)
    else:
        kind = "jpg"
        paths = write_jpg_stack(ct, to_window_uint8(rendered.hu))
        files["jpg"] += len(paths)
    if defect == "truncated":  # cut mid-file, as an interrupted download leaves it
        victim = paths[len(paths) // 2]
        data = victim.read_bytes()
        victim.write_bytes(data[: len(data) // 2])
    if not plan["mask"][idx]:
        return kind, False
    write_nifti(root / folder_name(pid) / MASK_FILE, rendered.lesion, (spacing, spacing, SLICE_THICKNESS_MM), z0)
    files["mask"] += 1
    return kind, True


def _plan(cfg: SynthConfig, params: LatentParams) -> dict[str, Any]:
    """Everything decided across patients before any file is written (all small arrays)."""
    rng = cfg.rng(0)
    n = cfg.patients
    lat = sample_latents(n, params, rng)
    hospital = rng.integers(cfg.hospitals, size=n)
    n_dicom = round(cfg.dicom_fraction * n)
    if cfg.dicom_fraction > 0:
        n_dicom = max(n_dicom, 1)
    dicom = np.zeros(n, dtype=bool)
    dicom[rng.permutation(n)[:n_dicom]] = True
    mask = rng.random(n) < MASK_SHARE
    unknown_mortality = rng.random(n) < UNKNOWN_MORTALITY
    ids = np.arange(1, n + 1)

    n_susp = max(1, round(SUSPECTED_SHARE * n))
    suspected: dict[int, str] = {}
    for value, pool in ((SUSPECTED, ids[lat.cls == 0]), (SUSPECTED_LATER, ids[lat.cls > 0])):
        for pid in rng.permutation(pool)[:n_susp]:
            suspected[int(pid)] = value

    defect_of: dict[int, str] = {}
    if cfg.quirks:
        free = [int(p) for p in rng.permutation(ids) if int(p) not in suspected]
        jpg_first = sorted(free, key=lambda p: bool(dicom[p - 1]))  # stable: JPG patients first
        truncated = jpg_first[0]
        others = [p for p in free if p != truncated][:3]
        defect_of[truncated] = "truncated"
        for kind, pid in zip(("empty_ct", "no_folder", "no_row"), others):
            defect_of[pid] = kind

    file_order: dict[int, list[int]] = {}
    for j, pid in enumerate(ids[dicom]):
        order = list(range(cfg.slices))
        if j % 3 == 0:
            order = order[::-1]
        elif j % 3 == 1:
            shuffled = [int(k) for k in rng.permutation(cfg.slices)]
            order = shuffled if shuffled != order else order[::-1]
        file_order[int(pid)] = order
    return {
        "latents": lat,
        "hospital": hospital,
        "dicom": dicom,
        "mask": mask,
        "unknown_mortality": unknown_mortality,
        "suspected": suspected,
        "defect_of": defect_of,
        "file_order": file_order,
        "posteriors": posterior_table(params, lat),
    }


def _pick(rng: np.random.Generator, options: tuple[tuple[str, float], ...]) -> str:
    u = rng.random()
    acc = 0.0
    for value, p in options:
        acc += p
        if u < acc:
            return value
    return options[-1][0]


def _clinical_row(
    cfg: SynthConfig,
    pid: int,
    idx: int,
    plan: dict[str, Any],
    hospital: HospitalEffect,
    lesion_fraction: float,
    rng: np.random.Generator,
    params: clin.ClinicalParams,
) -> dict[str, str]:
    lat = plan["latents"]
    c, s = int(lat.cls[idx]), float(lat.s[idx])
    covid = c > 0
    age = clin.age_years(s, rng, params)
    gender = "Male" if rng.random() < 0.5 else "Female"
    temperature = clin.temperature_cell(s, rng, params)
    diseases = clin.underlying_diseases(age, rng)
    u_na, u_ct = rng.random(), rng.random()
    morbidity = _pick(rng, MORBIDITY_RAW[c])
    suspected = plan["suspected"].get(pid)
    if suspected is not None:
        morbidity = suspected
    nucleic = "Positive" if (covid and u_na < 0.9) or (not covid and u_na < 0.03) else "Negative"
    ct = "Positive" if (covid and u_ct < 0.95) or (not covid and u_ct < 0.1) else "Negative"
    mortality = "Deceased" if lat.deceased[idx] else "Cured"
    if plan["unknown_mortality"][idx]:
        mortality = "Unknown"
    row = {
        "Patient ID": str(pid),
        "Hospital": hospital.name,
        "Age": str(age),
        "Gender": gender,
        "Body temperature": temperature,
        "Underlying diseases": diseases,
        "SARS-CoV-2 nucleic acids": nucleic,
        "Computed tomography (CT)": ct,
        "Morbidity outcome": morbidity,
        "Mortality outcome": mortality,
        "Lesion fraction": f"{lesion_fraction:.4f}",
        **{FINDING_COLUMNS[name]: str(int(lat.findings[idx, j])) for j, name in enumerate(FINDINGS)},
    }
    row.update(clin.lab_cells(s, rng, params))
    return row


def _dicom_study(
    cfg: SynthConfig, pid: int, hospital: HospitalEffect, gender: str, rng: np.random.Generator
) -> DicomStudy:
    """Fake PHI (name, birth date, study date, institution) and UIDs derived from the seed."""
    study_day = dt.date(2020, 1, 10) + dt.timedelta(days=int(rng.integers(0, 70)))
    birth = dt.date(int(rng.integers(1930, 2000)), int(rng.integers(1, 13)), int(rng.integers(1, 29)))
    key = f"{cfg.seed}/ictcf/{pid}"
    return DicomStudy(
        patient_name=f"SYNTH^PATIENT{pid}",
        patient_id=f"SYN{cfg.seed}-{pid:05d}",
        birth_date=birth.strftime("%Y%m%d"),
        sex="M" if gender == "Male" else "F",
        study_date=study_day.strftime("%Y%m%d"),
        institution=hospital.name,
        study_uid=derived_uid(key, "study"),
        series_uid=derived_uid(key, "series"),
        frame_uid=derived_uid(key, "frame"),
        intercept=hospital.dicom_intercept,
    )
