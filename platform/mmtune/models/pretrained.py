"""Local pretrained weights: ``torch.load(weights_only=True)``, never a download.

Checkpoints trained with another number of input channels (3-channel ImageNet weights for a 4-slice stack, or for
1-channel MIL slices) get their first convolution adapted the way timm does it (sum to one channel, or repeat and
rescale), so the usual checkpoints load onto any slice count.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from mmtune.errors import ConfigError

WHERE = "model.backbone.pretrained"


@dataclass(frozen=True)
class LoadReport:
    """What a ``pretrained:`` file gave: tensors loaded, keys missing / unexpected, shapes adapted or skipped."""

    path: str
    loaded: int
    missing: int
    unexpected: int
    adapted: int
    skipped: int

    def line(self) -> str:
        return (
            f"pretrained {self.path}: loaded {self.loaded} tensors (missing {self.missing}, unexpected "
            f"{self.unexpected}, input conv adapted {self.adapted}, shape mismatch skipped {self.skipped})"
        )


def read_state_dict(path: str | Path, where: str = WHERE) -> dict[str, Tensor]:
    """A state dict from a local file (plain, or nested under ``state_dict`` / ``model``; ``module.`` stripped)."""
    file = Path(path).expanduser()
    if not file.is_file():
        raise ConfigError(f"{where}: weights file not found: {path}")
    try:
        data = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{where}: {path} is not loadable with torch.load(weights_only=True) ({reason})") from None
    for key in ("state_dict", "model", "model_state_dict"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
    if not isinstance(data, Mapping) or not all(isinstance(v, Tensor) for v in data.values()):
        raise ConfigError(f"{where}: {path} does not hold a state dict (a mapping of names to tensors)")
    return {k.removeprefix("module."): v for k, v in data.items()}


def adapt_input_conv(weight: Tensor, in_chans: int) -> Tensor:
    """timm's rule for a first conv trained on another channel count: sum to 1, else repeat and rescale."""
    trained = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeats = math.ceil(in_chans / trained)
    return weight.repeat(1, repeats, *([1] * (weight.dim() - 2)))[:, :in_chans] * (trained / in_chans)


def load_pretrained(module: nn.Module, path: str | Path, where: str = WHERE) -> LoadReport:
    """Load ``path`` into ``module`` with ``strict=False``; raise if not one tensor matches (wrong file)."""
    state = read_state_dict(path, where)
    own = module.state_dict()
    usable: dict[str, Tensor] = {}
    adapted = skipped = 0
    for key, value in state.items():
        target = own.get(key)
        if target is None or target.shape == value.shape:
            usable[key] = value
        elif _is_input_conv_mismatch(target, value):
            usable[key] = adapt_input_conv(value, target.shape[1]).to(target.dtype)
            adapted += 1
        else:
            skipped += 1
    result = module.load_state_dict(usable, strict=False)
    loaded = len(usable) - len(result.unexpected_keys)
    if loaded == 0:
        raise ConfigError(f"{where}: no tensor in {path} matches the backbone's parameter names")
    return LoadReport(str(path), loaded, len(result.missing_keys), len(result.unexpected_keys), adapted, skipped)


def _is_input_conv_mismatch(target: Tensor, value: Tensor) -> bool:
    return (
        target.dim() in (4, 5)
        and value.dim() == target.dim()
        and target.shape[0] == value.shape[0]
        and target.shape[2:] == value.shape[2:]
        and target.shape[1] != value.shape[1]
    )
