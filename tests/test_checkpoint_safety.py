"""Checkpoints are loaded with ``torch.load(weights_only=True)`` (issue 11): a checkpoint planted by someone else
(a pickle that runs code when loaded) is refused without running it, while mmtune's own checkpoints (tensors
plus JSON-safe config and data spec) still load. No Ray."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from mmtune.inference.runs import RunError, resolve_run
from mmtune.training.fit import _best_epoch


class Planted:
    """Unpickling this creates ``marker``: what a malicious checkpoint on a world-writable share could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def planted_checkpoint(tmp_path: Path) -> tuple[Path, Path]:
    marker = tmp_path / "code-ran"
    path = tmp_path / "best.ckpt"
    torch.save({"state_dict": {}, "epoch": 0, "mmtune_config": {}, "payload": Planted(marker)}, path)
    return path, marker


def test_planted_checkpoint_does_not_run(tmp_path):
    path, marker = planted_checkpoint(tmp_path)
    with pytest.raises(RunError, match=r"best\.ckpt: not a readable checkpoint \(Weights only load failed"):
        resolve_run(path)
    with pytest.raises(pickle.UnpicklingError):
        _best_epoch(str(path))
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the same file with the old flag: the planted code runs
    assert marker.exists()


def test_mmtune_checkpoint_loads_weights_only(tmp_path):
    """What ``mmtune train`` saves (Lightning checkpoint + mmtune_config + mmtune_data) loads weights-only."""
    from mmtune.training.model_spec import DATA_KEY

    state = {
        "epoch": 2,
        "global_step": 10,
        "pytorch-lightning_version": "2.6.6",
        "state_dict": {"w": torch.zeros(3)},
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 3}}}},
        "callbacks": {"ModelCheckpoint{}": {"best_model_score": torch.tensor(0.7), "best_model_path": "x"}},
        "optimizer_states": [{"state": {0: {"exp_avg": torch.ones(3)}}, "param_groups": [{"lr": 1e-3}]}],
        "lr_schedulers": [],
        "mmtune_config": {"name": "r", "optim": {"lr": 0.001}},
        DATA_KEY: {"tasks": []},
    }
    path = tmp_path / "best.ckpt"
    torch.save(state, path)
    assert _best_epoch(str(path)) == 3
    assert resolve_run(path).config["optim"]["lr"] == 0.001
