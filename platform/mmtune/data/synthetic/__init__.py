"""Built-in synthetic chest-CT + clinical raw data with a planted, documented signal (``mmtune data synth``).

Two layouts: ``ictcf`` (the public iCTCF release: ``Patient {i}/CT/*.jpg|*.dcm``, ``clinical.csv``, NIfTI lesion
masks) and ``prognosis`` (a manifest CSV of NIfTI volumes with MILD/SEVERE and a 0-18 severity score). Each also
writes ``posteriors.csv`` (the exact Bayes posteriors per patient) and ``truth.json`` (the generating model and the
Bayes-optimal AUROC per task x modality). Modules: ``latent`` (model + posteriors), ``render`` (CT volumes),
``clinical`` (lab values + table quirks), ``writers`` (JPG/DICOM/NIfTI), ``ictcf`` / ``prognosis`` (layouts),
``generate`` (the entry point). See docs/synthetic.md.
"""

from __future__ import annotations

from mmtune.data.synthetic.config import VARIANTS, SynthArgumentError, SynthConfig
from mmtune.data.synthetic.generate import POSTERIORS_FILE, TRUTH_FILE, SynthSummary, generate

__all__ = ["POSTERIORS_FILE", "TRUTH_FILE", "VARIANTS", "SynthArgumentError", "SynthConfig", "SynthSummary", "generate"]
