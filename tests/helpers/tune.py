"""Search-space files for the driver tests (real prepared data, small budgets)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

CURVE = "mmtune.tuning.curve:curve_trial"


def write_space(folder: Path, prepared: Path, *, name: str = "study", **changes: Any) -> Path:
    """A search space over 4 fusions x 3 weightings (+ gradnorm's alpha) x learning rate on ``prepared``."""
    doc: dict[str, Any] = {
        "name": name,
        "base": {
            "data": {"path": str(prepared), "batch_size": 16},
            "tasks": ["covid", "morbidity"],
            "model": {"backbone": {"name": "small_cnn", "params": {"width": 8}}, "fusion": {"dim": 32}},
            "trainer": {"max_epochs": 4, "monitor": "val/mean_auroc", "progress": False},
            "tracking": {"aim_repo": str(folder / "aim")},
        },
        "space": {
            "model.fusion.name": {"choice": ["concat", "late", "gated", "film"]},
            "weighting.name": {"choice": ["equal", "uncertainty", "gradnorm"]},
            "weighting.params.alpha": {"uniform": [0.5, 2.0], "when": {"weighting.name": "gradnorm"}},
            "optim.lr": {"loguniform": [1.0e-4, 3.0e-3]},
        },
        "search": {"name": "random", "seed": 0},
        "scheduler": {"name": "asha", "max_t": 4, "grace_period": 1, "reduction_factor": 2},
        "num_samples": 8,
        "resources": {"workers": 1, "cpus_per_worker": 1},
    }
    doc.update(changes)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return path


def result_epochs(trial_dir: Path) -> list[int]:
    """The ``training_iteration`` of every result a trial reported, in order (Tune's ``result.json``)."""
    path = trial_dir / "result.json"
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [int(json.loads(line)["training_iteration"]) for line in lines]


def trial_starts(log: Path) -> dict[str, list[tuple[int, int]]]:
    """``curve.log`` lines -> {trial_id: [(start_epoch, pid), ...]} in order."""
    out: dict[str, list[tuple[int, int]]] = {}
    if not log.is_file():
        return out
    for line in log.read_text(encoding="utf-8").splitlines():
        trial, start, pid = line.split()
        out.setdefault(trial, []).append((int(start), int(pid)))
    return out
