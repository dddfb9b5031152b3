"""``generate()``: validate, write one variant into a temp directory, add truth.json, rename into place."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mmtune.atomic import atomic_directory
from mmtune.data.synthetic.config import SynthArgumentError, SynthConfig, Variant
from mmtune.data.synthetic.ictcf import write_ictcf
from mmtune.data.synthetic.latent import POSTERIOR_DECIMALS
from mmtune.data.synthetic.output import write_json
from mmtune.data.synthetic.parallel import available_cpus
from mmtune.data.synthetic.prognosis import write_prognosis

GENERATOR_VERSION = 2  # 2: lesion fields wider than 4 px drawn coarse and upsampled (> 128 px slices)
TRUTH_FILE = "truth.json"
POSTERIORS_FILE = "posteriors.csv"
_WRITERS = {"ictcf": write_ictcf, "prognosis": write_prognosis}


@dataclass
class SynthSummary:
    """What was written (also the facts a test or benchmark needs without re-reading truth.json)."""

    out: Path
    variant: str
    patients: int
    table_rows: int
    image_patients: int
    jpg_patients: int
    dicom_patients: int
    mask_patients: int
    files: int
    class_counts: dict[str, int]
    defects: dict[str, str]
    bayes_auroc: dict[str, dict[str, float]]
    seconds: float
    hospitals: list[str] = field(default_factory=list)

    def line(self) -> str:
        """One-line human summary for the CLI."""
        classes = ", ".join(f"{k} {v}" for k, v in self.class_counts.items())
        auroc = "; ".join(
            f"{task} " + "/".join(f"{value:.2f}" for value in by_modality.values())
            for task, by_modality in self.bayes_auroc.items()
        )
        modalities = "/".join(next(iter(self.bayes_auroc.values()), {}).keys())
        defects = f", defects: {', '.join(f'{k}={v}' for k, v in self.defects.items())}" if self.defects else ""
        return (
            f"wrote {self.variant} data, {self.patients} patients ({classes}), {self.files} files "
            f"to {self.out} in {self.seconds:.1f} s; Bayes AUROC {modalities}: {auroc}{defects}"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["out"] = str(self.out)
        return data


def generate(
    out: str | Path,
    *,
    patients: int = 300,
    size: int = 64,
    slices: int = 8,
    seed: int = 0,
    variant: Variant = "ictcf",
    hospitals: int = 3,
    dicom_fraction: float = 0.25,
    quirks: bool = True,
    overwrite: bool = False,
    on_patient: Callable[[], None] | None = None,
    workers: int = 1,
) -> SynthSummary:
    """Write a synthetic raw data set with a known, planted signal into ``out`` (see docs/synthetic.md).

    Same arguments give byte-identical files. ``out`` must be absent or empty unless ``overwrite``; it appears
    only when complete. ``on_patient`` is called after each patient (progress bars). ``workers`` processes render
    patients in parallel (``0``: one per available CPU); the bytes do not depend on it.
    """
    cfg = SynthConfig(
        patients=patients,
        size=size,
        slices=slices,
        seed=seed,
        variant=variant,
        hospitals=hospitals,
        dicom_fraction=dicom_fraction,
        quirks=quirks,
    )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise SynthArgumentError(f"{out}: exists and is not a directory; choose another OUT")
    if out.is_dir() and not overwrite and any(out.iterdir()):
        raise SynthArgumentError(f"{out}: directory exists and is not empty; pass --overwrite to replace it")
    if not isinstance(workers, int) or workers < 0:
        raise SynthArgumentError(f"--workers: expected an integer >= 0 (0 = every CPU), got {workers!r}")
    start = time.perf_counter()
    with atomic_directory(out, overwrite=overwrite) as tmp:
        facts = _WRITERS[cfg.variant](tmp, cfg, on_patient, workers or available_cpus())
        truth = {
            "generator": "mmtune.data.synthetic",
            "generator_version": GENERATOR_VERSION,
            "variant": cfg.variant,
            "arguments": cfg.to_dict(),
            "bayes_auroc": facts["bayes_auroc"],
            "bayes_auroc_population": facts["bayes_auroc_population"],
            "n_evaluable": facts["n_evaluable"],
            "class_counts": facts["class_counts"],
            "defects": facts["defects"],
            "posterior_decimals": POSTERIOR_DECIMALS,
            "notes": _NOTES[cfg.variant],
            **facts["truth"],
        }
        write_json(tmp / TRUTH_FILE, truth)
        n_files = sum(1 for p in tmp.rglob("*") if p.is_file())
    return SynthSummary(
        out=out,
        variant=cfg.variant,
        patients=cfg.patients,
        table_rows=facts["table_rows"],
        image_patients=facts["image_patients"],
        jpg_patients=facts["jpg_patients"],
        dicom_patients=facts["dicom_patients"],
        mask_patients=facts["mask_patients"],
        files=n_files,
        class_counts=facts["class_counts"],
        defects=facts["defects"],
        bayes_auroc=facts["bayes_auroc"],
        seconds=round(time.perf_counter() - start, 3),
        hospitals=[h["name"] for h in facts["truth"].get("hospitals", facts["truth"].get("centres", []))],
    )


_NOTES = {
    "ictcf": (
        "bayes_auroc: AUROC of the exact posteriors in posteriors.csv given the image latents (lesion fraction + "
        "findings), the clinical latent s, or both, on the evaluable patients (in the table, with images, not "
        "Suspected; mortality also not Unknown); macro one-vs-rest for morbidity. Models see a noisy rendering of "
        "the latents, so these are upper bounds. Clinical values carry no covid information by construction "
        "(covid clinical AUROC is exactly 0.5). bayes_auroc_population: the same for 20,000 patients drawn from "
        "the model (no sampling noise)."
    ),
    "prognosis": (
        "bayes_auroc: AUROC of P(SEVERE | image latents / clinical latent / both) from posteriors.csv on patients "
        "with an image and a prognosis label; bayes_auroc_population: the same for 20,000 patients drawn from the "
        "model. severity_score is computed from the rendered lesion mask."
    ),
}
