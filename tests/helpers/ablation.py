"""Crafted ablation results directories with a known truth, written through mmtune's own study code.

``study.yaml`` and ``cells.parquet`` come from the real study loader and design expansion; the trials' per-patient
predictions are simulated: morbidity scores are sharper with clinical features (a planted effect), covid scores
follow the same process in every cell (no effect). Used by the analysis and report tests.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

CLASSES = ("control", "type_i", "type_ii")


def study_yaml(
    path: Path, data_path: Path, *, folds: int = 3, seeds: tuple[int, ...] = (0, 1), extra: str = ""
) -> Path:
    """A 2 x 2 factorial study file (modality x tasks) on ``data_path``."""
    path.write_text(
        f"""kind: ablation
name: crafted
base:
  data: {{path: {data_path}}}
  tasks: [covid, morbidity]
  model: {{backbone: {{name: small_cnn}}, fusion: {{name: concat, dim: 16}}}}
  trainer: {{max_epochs: 1, accelerator: cpu, progress: false}}
  tracking: {{aim_repo: {path.parent / "aim"}}}
factors:
  modality:
    image: {{model.fusion.name: image_only}}
    image+clinical: {{model.fusion.name: concat}}
  tasks:
    covid: {{tasks: [covid]}}
    covid+morbidity: {{tasks: [covid, morbidity]}}
design: factorial
repeats: {{seeds: {list(seeds)}, folds: {folds}, scheme: kfold}}
metrics: [covid/auroc, morbidity/auroc]
{extra}""",
        encoding="utf-8",
    )
    return path


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _rng(*parts: object) -> np.random.Generator:
    digest = hashlib.sha256("/".join(map(str, parts)).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def make_results(
    root: Path,
    *,
    folds: int = 3,
    seeds: tuple[int, ...] = (0, 1),
    patients: int = 90,
    clinical_gain: float = 1.6,
    drop: tuple[str, ...] = (),
    errored: tuple[str, ...] = (),
) -> Path:
    """Write ``root/crafted`` (study.yaml, cells.parquet, trials.parquet, trials/<id>/predictions.parquet).

    ``clinical_gain``: how much sharper morbidity scores are with clinical features (0 = no effect). ``drop``: keys
    of planned trials left out (missing); ``errored``: keys recorded as ERROR.
    """
    from mmtune.data.cv import assign_folds
    from mmtune.tuning.ablation import expand_with_data, load_study, write_study_files

    root.mkdir(parents=True, exist_ok=True)
    spec = study_yaml(root / "crafted.yaml", root / "no_data", folds=folds, seeds=seeds)
    study = load_study(spec)
    design = expand_with_data(study, None)
    out = root / "crafted"
    ids = [f"p{i:03d}" for i in range(patients)]
    cls = _rng("classes").choice(3, size=patients, p=[0.4, 0.35, 0.25])
    sizes = {}
    partitions = {}
    for rep in design.replicates:
        fold_of = partitions.setdefault(rep.partition_seed, assign_folds(ids, folds, int(rep.partition_seed), cls))
        n_val = int((fold_of == rep.fold).sum())
        sizes[rep.split_id] = {"n_train": patients - n_val, "n_val": n_val, "n_test": 20}
    write_study_files(study, out, design, sizes)
    rows = []
    for index, trial in enumerate(design.trials):
        if trial.key in drop:
            continue
        trial_id = f"t{index:04d}"
        rep, cell = trial.replicate, trial.cell
        status = "ERROR" if trial.key in errored else "TERMINATED"
        rows.append(
            {
                "trial": trial_id,
                "status": status,
                "epochs": 1,
                "stopped_early": False,
                "best_epoch": 1,
                "aim_hash": hashlib.sha256(trial.key.encode()).hexdigest()[:24],
                "trial_dir": str(out / "tune" / trial_id),
                "predictions": str(out / "trials" / trial_id / "predictions.parquet"),
                "error": "RuntimeError: crafted failure" if status == "ERROR" else None,
                "key": trial.key,
                "cell": cell.name,
                "split_id": rep.split_id,
            }
        )
        fold_of = partitions[rep.partition_seed]
        members = np.flatnonzero(fold_of == rep.fold)
        clinical = cell.levels["modality"] == "image+clinical"
        multi = cell.levels["tasks"] == "covid+morbidity"
        frames = [_predictions(ids, cls, members, trial.key, clinical, multi, clinical_gain, "")]
        if clinical and "clinical" not in drop:
            frames.append(_predictions(ids, cls, members, trial.key, False, multi, clinical_gain, "clinical"))
        folder = out / "trials" / trial_id
        folder.mkdir(parents=True, exist_ok=True)
        if status == "TERMINATED":
            pd.concat(frames, ignore_index=True).to_parquet(folder / "predictions.parquet", index=False)
        (folder / "config.yaml").write_text(yaml.safe_dump(trial.config), encoding="utf-8")
    pd.DataFrame(rows).to_parquet(out / "trials.parquet", index=False)
    return out


def _predictions(
    ids: list[str],
    cls: np.ndarray,
    members: np.ndarray,
    key: str,
    clinical: bool,
    multi: bool,
    gain: float,
    dropped: str,
) -> pd.DataFrame:
    rng = _rng(key, dropped)
    y = cls[members]
    covid = (y > 0).astype(np.int64)
    frame = pd.DataFrame(
        {
            "patient_id": [ids[i] for i in members],
            "dataset": "crafted",
            "split": "val",
            "y_covid": covid,
            "score_covid": 1 / (1 + np.exp(-(1.6 * (2 * covid - 1) + rng.normal(0, 1.5, size=y.size)))),
        }
    )
    if multi:
        strength = 0.9 + (gain if clinical else 0.0)
        logits = strength * np.eye(3)[y] + rng.normal(0, 1.0, size=(y.size, 3))
        proba = _softmax(logits)
        frame["y_morbidity"] = y.astype(np.int64)
        frame["pred_morbidity"] = proba.argmax(axis=1).astype(np.int64)
        for c, name in enumerate(CLASSES):
            frame[f"score_morbidity_{name}"] = proba[:, c].astype(np.float32)
    if dropped:
        frame["modality_dropped"] = dropped
    return frame


def make_tuning_results(root: Path, trials: int = 4, patients: int = 60) -> Path:
    """A ``mmtune tune``-style results dir: trials.parquet (searched column ``model.fusion.name``) and each trial's
    predictions on the same validation patients, sharper for later trials."""
    out = root / "tuned"
    ids = [f"v{i:03d}" for i in range(patients)]
    cls = _rng("tuning").choice(3, size=patients, p=[0.4, 0.35, 0.25])
    rows = []
    for i in range(trials):
        trial_id = f"tune_{i:05d}"
        frame = _predictions(ids, cls, np.arange(patients), trial_id, i >= 2, True, 0.8 * i, "")
        folder = out / "trials" / trial_id
        folder.mkdir(parents=True, exist_ok=True)
        frame.to_parquet(folder / "predictions.parquet", index=False)
        rows.append(
            {
                "trial": trial_id,
                "status": "TERMINATED",
                "epochs": 2,
                "stopped_early": i == 0,
                "best_epoch": 1,
                "aim_hash": hashlib.sha256(trial_id.encode()).hexdigest()[:24],
                "trial_dir": str(out / "tune" / trial_id),
                "predictions": str(folder / "predictions.parquet"),
                "error": None,
                "model.fusion.name": ["concat", "gated", "film", "late"][i % 4],
                "best/val/mean_auroc": 0.6 + 0.05 * i,
            }
        )
    pd.DataFrame(rows).to_parquet(out / "trials.parquet", index=False)
    return out
