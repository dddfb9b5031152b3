"""Random-number state in a trial's checkpoint, so a resumed trial continues as if it had never stopped.

Lightning restores weights, optimiser and loop counters from a checkpoint but not the random streams: a trial
restarted after epoch k would draw epoch k+1's shuffle, augmentation and dropout from freshly seeded generators
(the same ones epoch 1 used) and reach a different metric than an uninterrupted run. ``RngState`` is a callback
whose state (Python ``random``, NumPy's global generator, torch's CPU and CUDA generators and the train loader's
sampler generator) is saved with every checkpoint and put back when Lightning restores one.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch


def loader_generators(loader: Any) -> list[torch.Generator]:
    """The ``torch.Generator`` objects a ``DataLoader`` draws its order from (its sampler's, nested samplers')."""
    found: list[torch.Generator] = []
    seen: set[int] = set()
    stack = [loader]
    while stack:
        node = stack.pop()
        if node is None or id(node) in seen:
            continue
        seen.add(id(node))
        generator = getattr(node, "generator", None)
        if isinstance(generator, torch.Generator) and all(g is not generator for g in found):
            found.append(generator)
        stack += [getattr(node, name, None) for name in ("sampler", "batch_sampler", "inner")]
    return found


class RngState(pl.Callback):
    """Save every random stream a training epoch draws from with the checkpoint; restore them on resume."""

    def __init__(self, generators: Iterable[torch.Generator] = ()) -> None:
        self.generators = list(generators)

    def state_dict(self) -> dict[str, Any]:
        """Tensors, ints and floats only, so the checkpoint also loads with ``torch.load(weights_only=True)``."""
        version, internal, gauss = random.getstate()
        legacy = np.random.get_state(legacy=False)
        state: dict[str, Any] = {
            "python": {"version": version, "state": torch.tensor(internal, dtype=torch.int64), "gauss": gauss},
            "numpy": {
                "key": torch.from_numpy(legacy["state"]["key"].astype(np.int64)),
                "pos": int(legacy["state"]["pos"]),
                "has_gauss": int(legacy["has_gauss"]),
                "gauss": float(legacy["gauss"]),
            },
            "torch": torch.get_rng_state(),
            "generators": [g.get_state() for g in self.generators],
        }
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        py = state_dict["python"]
        random.setstate((py["version"], tuple(int(v) for v in py["state"].tolist()), py["gauss"]))
        legacy = state_dict["numpy"]
        key = legacy["key"].numpy().astype(np.uint32)
        np.random.set_state(("MT19937", key, legacy["pos"], legacy["has_gauss"], legacy["gauss"]))
        torch.set_rng_state(state_dict["torch"])
        for generator, saved in zip(self.generators, state_dict.get("generators") or [], strict=False):
            generator.set_state(saved)
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])
