"""The ``prognosis`` variant: a second data set with its own labels in a generic manifest layout.

``manifest.csv`` + ``images/P0001.nii.gz`` (int16 HU volumes with spacing) + ``masks/P0001.nii.gz`` for a subset.
Labels: ``prognosis`` MILD/SEVERE (AIforCOVID-like; the latent Type I / Type II classes) and ``severity_score``
0-18 (BRIXIA-like: 6 lung zones x 0-3 by their lesion fraction). Patient ids ``P0001`` never collide with the
``ictcf`` variant's integer ids.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mmtune.data.synthetic import clinical as clin
from mmtune.data.synthetic.config import SynthConfig
from mmtune.data.synthetic.latent import (
    FINDINGS,
    LatentParams,
    binary_posteriors,
    population_binary_auroc,
    sample_latents,
)
from mmtune.data.synthetic.output import write_csv
from mmtune.data.synthetic.parallel import map_in_order
from mmtune.data.synthetic.render import (
    SLICE_THICKNESS_MM,
    RenderParams,
    brixia_like_score,
    hospital_effects,
    pixel_spacing,
    render_patient,
)
from mmtune.data.synthetic.writers import write_nifti

MANIFEST_FILE = "manifest.csv"
PROGNOSIS_LABS = ("CRP", "LY", "LDH", "D-Dimer")
COLUMNS = ("patient_id", "image", "mask", "centre", "age", "sex", *PROGNOSIS_LABS, "prognosis", "severity_score")
PROGNOSIS_CLASSES = {1: "MILD", 2: "SEVERE"}
# MILD/SEVERE = latent Type I/II only; a stronger image signal than in ictcf (lesion load separates the
# classes better), a slightly weaker clinical one: Bayes AUROC about 0.83 image / 0.85 clinical / 0.92 both.
PROGNOSIS_PARAMS = dataclasses.replace(
    LatentParams(), prior=(0.0, 0.55, 0.45), lesion_logit_mean=(-4.2, -1.0, -0.1), severity_mean=(0.0, 1.5)
)
MASK_SHARE = 0.6
UNLABELLED_PROGNOSIS = 0.10
UNLABELLED_SCORE = 0.15
ZONE_THRESHOLDS = (0.1, 0.3, 0.6)


def patient_id(i: int) -> str:
    return f"P{i:04d}"


def write_prognosis(
    root: Path, cfg: SynthConfig, on_patient: Callable[[], None] | None = None, workers: int = 1
) -> dict[str, Any]:
    """Write the whole variant under ``root``; returns the facts for the summary and truth.json.

    Patients are rendered by ``workers`` processes; the bytes do not depend on ``workers``.
    """
    params = PROGNOSIS_PARAMS
    render_params, clin_params = RenderParams(), clin.ClinicalParams()
    centres = hospital_effects(cfg.hospitals, prefix="Centre")
    labs = tuple(lab for lab in clin.LABS if lab.name in PROGNOSIS_LABS)
    rng = cfg.rng(0)
    n = cfg.patients
    lat = sample_latents(n, params, rng)
    centre_idx = rng.integers(cfg.hospitals, size=n)
    with_mask = rng.random(n) < MASK_SHARE
    unlabelled = rng.random(n) < UNLABELLED_PROGNOSIS
    unscored = rng.random(n) < UNLABELLED_SCORE
    missing_image = int(rng.integers(n)) if cfg.quirks else -1
    posteriors = binary_posteriors(params, lat, positive=2)
    spacing = pixel_spacing(cfg.size)
    (root / "images").mkdir()
    (root / "masks").mkdir()

    ctx = {
        "centres": centres,
        "centre_idx": centre_idx,
        "latents": lat,
        "render_params": render_params,
        "clinical_params": clin_params,
        "labs": labs,
        "with_mask": with_mask,
        "unlabelled": unlabelled,
        "unscored": unscored,
        "missing_image": missing_image,
        "posteriors": posteriors,
        "spacing": spacing,
    }
    written = map_in_order(functools.partial(_patient, root, cfg, ctx), list(range(n)), workers, on_patient)
    rows = [row for row, _, _ in written]
    truth_rows = [truth for _, truth, _ in written]
    files = {"nifti": 0, "mask": 0}
    for _, _, counts in written:
        for key, value in counts.items():
            files[key] += value

    write_csv(root / MANIFEST_FILE, rows, COLUMNS)
    write_csv(root / "posteriors.csv", truth_rows, list(truth_rows[0]))
    from sklearn.metrics import roc_auc_score

    evaluable = np.array([r["evaluable"] for r in truth_rows], dtype=bool)
    y = (lat.cls[evaluable] == 2).astype(int)
    aurocs = {
        "prognosis": {
            m: (round(float(roc_auc_score(y, posteriors[m][evaluable])), 4) if len(set(y)) == 2 else float("nan"))
            for m in posteriors
        }
    }
    return {
        "files": files,
        "table_rows": len(rows),
        "image_patients": files["nifti"],
        "jpg_patients": 0,
        "dicom_patients": 0,
        "mask_patients": files["mask"],
        "class_counts": {name: int((lat.cls == c).sum()) for c, name in PROGNOSIS_CLASSES.items()},
        "defects": {"missing_image": patient_id(missing_image + 1)} if missing_image >= 0 else {},
        "bayes_auroc": aurocs,
        "bayes_auroc_population": {"prognosis": population_binary_auroc(params, positive=2)},
        "n_evaluable": {"prognosis": int(evaluable.sum())},
        "truth": {
            "latent_params": params.to_dict(),
            "render_params": render_params.to_dict(),
            "clinical_params": clin_params.to_dict(),
            "labs": [lab.to_dict() for lab in labs],
            "centres": [c.to_dict() for c in centres],
            "columns": list(COLUMNS),
            "label_columns": ["prognosis", "severity_score"],
            "prognosis_classes": {"MILD": "latent type1", "SEVERE": "latent type2"},
            "severity_score": {
                "zones": "left/right image half x upper/middle/lower third of that lung's rows",
                "zone_thresholds": list(ZONE_THRESHOLDS),
                "per_zone": "0 if fraction < 0.1, 1 if < 0.3, 2 if < 0.6, else 3; sum over 6 zones (0-18)",
            },
            "mask_share": MASK_SHARE,
            "unlabelled_prognosis_share": UNLABELLED_PROGNOSIS,
            "unlabelled_score_share": UNLABELLED_SCORE,
            "pixel_spacing_mm": spacing,
            "slice_thickness_mm": SLICE_THICKNESS_MM,
        },
    }


def _patient(
    root: Path, cfg: SynthConfig, ctx: dict[str, Any], i: int
) -> tuple[dict[str, str], dict[str, Any], dict[str, int]]:
    """Render and write patient ``i`` (0-based): its manifest row, truth row and file counts."""
    lat, posteriors, spacing = ctx["latents"], ctx["posteriors"], ctx["spacing"]
    missing_image, with_mask, labs = ctx["missing_image"], ctx["with_mask"], ctx["labs"]
    clin_params = ctx["clinical_params"]
    files = {"nifti": 0, "mask": 0}
    pid = patient_id(i + 1)
    centre = ctx["centres"][ctx["centre_idx"][i]]
    rendered = render_patient(
        cfg.rng(1, i + 1),
        cfg.size,
        cfg.slices,
        float(lat.lesion_fraction[i]),
        tuple(int(f) for f in lat.findings[i]),
        centre,
        ctx["render_params"],
    )
    crng = cfg.rng(2, i + 1)
    z0 = round(float(crng.uniform(-60.0, 20.0)), 1)
    score = brixia_like_score(rendered.zone_fractions, ZONE_THRESHOLDS)
    image_rel = f"images/{pid}.nii.gz"
    if i != missing_image:
        write_nifti(
            root / image_rel, np.round(rendered.hu).astype(np.int16), (spacing, spacing, SLICE_THICKNESS_MM), z0
        )
        files["nifti"] += 1
    mask_rel = ""
    if with_mask[i] and i != missing_image:
        mask_rel = f"masks/{pid}.nii.gz"
        write_nifti(root / mask_rel, rendered.lesion, (spacing, spacing, SLICE_THICKNESS_MM), z0)
        files["mask"] += 1
    s = float(lat.s[i])
    age = clin.age_years(s, crng, clin_params)
    sex = "M" if crng.random() < 0.5 else "F"
    values = {lab.name: clin.lab_value(lab, s, crng) for lab in labs}
    missing = {lab.name: crng.random() < clin_params.mcar_missing for lab in labs}
    label = PROGNOSIS_CLASSES[int(lat.cls[i])]
    unlabelled, unscored = ctx["unlabelled"], ctx["unscored"]
    row = {
        "patient_id": pid,
        "image": image_rel,
        "mask": mask_rel,
        "centre": centre.name,
        "age": str(age),
        "sex": sex,
        **{lab.name: "" if missing[lab.name] else f"{values[lab.name]:.{lab.decimals}f}" for lab in labs},
        "prognosis": "" if unlabelled[i] else label,
        "severity_score": "" if unscored[i] else str(score),
    }
    truth = {
        "patient_id": pid,
        "centre": centre.name,
        "prognosis_true": label,
        "severity_score_true": score,
        "lesion_fraction_latent": round(float(lat.lesion_fraction[i]), 6),
        "lesion_fraction": round(rendered.lesion_fraction, 6),
        "severity_latent": round(s, 6),
        **{name: int(lat.findings[i, j]) for j, name in enumerate(FINDINGS)},
        "has_image": int(i != missing_image),
        "has_mask": int(bool(mask_rel)),
        "defect": "missing_image" if i == missing_image else "",
        "evaluable": int(i != missing_image and not unlabelled[i]),
        **{f"p_severe_{m}": float(posteriors[m][i]) for m in posteriors},
    }
    return row, truth, files
