"""Jacobian aggregators from torchjd (UPGrad, MGDA, IMTL-G, Aligned-MTL, DualProj, ConFIG, GradDrop, ...).

torchjd is the maintained implementation; mmtune only plugs it into the gradient-weighting path of ``base``: the
``[T, P]`` matrix of per-task gradients on the shared parameters (already averaged over DDP ranks) goes through
the aggregator, its result becomes the shared gradient, and heads keep their plain gradients (as LibMTL and
PCGrad here do). Every rank feeds the same matrix, so every rank gets the same update; GradDrop's random masks
are drawn from a generator seeded with ``(seed, step)``, identical on every rank.

The aggregator is kept outside the module tree (not a submodule), so its internal state (GradVac's EMA) is not
written to checkpoints: it restarts with a resumed run, and best-checkpoint reloading stays strict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch
from torch import Tensor

from mmtune.losses.registries import WEIGHTINGS
from mmtune.losses.weighting.base import GradientWeighting, WeightingContext


class JacobianAggregator(GradientWeighting):
    """Base: ``make_aggregator()`` builds the torchjd aggregator; the shared gradient is its output."""

    seeded: bool = False

    def __init__(self, tasks: Sequence[str], context: WeightingContext | None = None, *, seed: int = 0) -> None:
        super().__init__(tasks, context)
        self.seed = seed
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        self.__dict__["aggregator"] = self.make_aggregator()  # not a submodule: see the module docstring

    def make_aggregator(self) -> Any:
        raise NotImplementedError

    def shared_update(self, grads: Tensor, losses: Tensor, names: list[str]) -> tuple[Tensor, Tensor]:
        from torchjd.aggregation import WeightedAggregator

        aggregator = self.__dict__["aggregator"]
        matrix = grads.detach()
        weighting = aggregator.weighting if isinstance(aggregator, WeightedAggregator) else None
        with torch.random.fork_rng(devices=[]) if self.seeded else _no_context():
            if self.seeded:
                torch.manual_seed(self.seed * 1_000_003 + int(self.steps))
            if weighting is not None:  # a weighted aggregator: weights, then their combination
                weights = weighting(matrix).to(matrix.dtype)
                vector = weights @ matrix
            else:
                vector = aggregator(matrix)
                weights = _least_squares_weights(matrix, vector)
        self.steps += 1
        self.remember_weights(weights, names)
        return vector, torch.ones(len(names), dtype=grads.dtype, device=grads.device)


class _no_context:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _least_squares_weights(matrix: Tensor, vector: Tensor) -> Tensor:
    """Weights ``w`` with ``w @ matrix`` closest to ``vector`` (for logging aggregators that return a vector)."""
    solution = torch.linalg.lstsq(matrix.T.double(), vector.double().unsqueeze(1)).solution
    return solution.squeeze(1).to(matrix.dtype)


def _register(name: str, description: str, build: Callable[..., Any], seeded: bool = False) -> None:
    """Register a ``JacobianAggregator`` subclass whose keyword-only params are those of ``build``."""
    import inspect

    params = [p for p in inspect.signature(build).parameters.values() if p.kind is inspect.Parameter.KEYWORD_ONLY]

    class Named(JacobianAggregator):
        def __init__(self, tasks, context=None, **kwargs):  # signature replaced below
            self.options = kwargs
            seed = kwargs.pop("seed", 0) if seeded else 0
            super().__init__(tasks, context, seed=seed)

        def make_aggregator(self) -> Any:
            try:
                return build(**self.options)
            except (TypeError, ValueError) as exc:
                raise ValueError(str(exc)) from None

    Named.seeded = seeded
    Named.__name__ = Named.__qualname__ = "".join(part.title() for part in name.split("_"))
    Named.__doc__ = description
    base = inspect.signature(JacobianAggregator.__init__)
    own = [p for p in base.parameters.values() if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    seed_param = [base.parameters["seed"]] if seeded else []
    Named.__init__.__signature__ = base.replace(parameters=[*own, *params, *seed_param])  # type: ignore[attr-defined]
    Named.__init__.__annotations__ = {
        **{p.name: p.annotation for p in params},
        **({"seed": int} if seeded else {}),
    }
    WEIGHTINGS.register(name, description, family="gradient", source="torchjd")(Named)


def _upgrad() -> Any:
    from torchjd.aggregation import UPGrad

    return UPGrad()


def _dualproj() -> Any:
    from torchjd.aggregation import DualProj

    return DualProj()


def _mgda(*, epsilon: float = 0.001, max_iters: int = 100) -> Any:
    from torchjd.aggregation import MGDA

    return MGDA(epsilon=epsilon, max_iters=max_iters)


def _imtl_g() -> Any:
    from torchjd.aggregation import IMTLG

    return IMTLG()


def _aligned_mtl(*, scale_mode: Literal["min", "median", "rmse"] = "min") -> Any:
    from torchjd.aggregation import AlignedMTL

    return AlignedMTL(scale_mode=scale_mode)


def _config() -> Any:
    from torchjd.aggregation import ConFIG

    return ConFIG()


def _graddrop() -> Any:
    from torchjd.aggregation import GradDrop

    return GradDrop()


def _gradvac(*, beta: float = 0.5) -> Any:
    from torchjd.aggregation import GradVac

    return GradVac(beta=beta)


def _fairgrad(*, alpha: float = 1.0, max_iters: int | None = None) -> Any:
    from torchjd.aggregation import FairGrad

    return FairGrad(alpha=alpha, max_iters=max_iters)


def _rgw() -> Any:
    from torchjd.aggregation import Random

    return Random()


_register(
    "upgrad",
    "UPGrad (torchjd; Quinton & Rey 2024): each task gradient projected onto the dual cone of all, averaged",
    _upgrad,
)
_register(
    "mgda", "MGDA (torchjd; Sener & Koltun 2018): minimum-norm point of the convex hull of the task gradients", _mgda
)
_register(
    "imtl_g",
    "IMTL-G (torchjd; Liu et al. 2021): the update has equal projections on every task's unit gradient",
    _imtl_g,
)
_register(
    "aligned_mtl",
    "Aligned-MTL (torchjd; Senushkin et al. 2023): task gradients aligned by an eigen-decomposition of the Gram matrix",
    _aligned_mtl,
)
_register(
    "dualproj", "DualProj (torchjd): the mean gradient projected onto the dual cone of the task gradients", _dualproj
)
_register(
    "config",
    "ConFIG (torchjd; Liu et al. 2024): conflict-free direction with equal cosine to every task gradient",
    _config,
)
_register(
    "graddrop",
    "GradDrop (torchjd; Chen et al. 2020): per-coordinate random sign dropout of the task gradients",
    _graddrop,
    seeded=True,
)
_register(
    "gradvac", "GradVac (torchjd; Wang et al. 2021): gradient vaccine toward an EMA of the pairwise cosines", _gradvac
)
_register("fairgrad", "FairGrad (torchjd; Ban & Ji 2024): alpha-fair utility of the tasks' progress", _fairgrad)
_register(
    "rgw",
    "Random gradient weighting (torchjd; Lin et al. 2022): softmax of Gaussian weights each step",
    _rgw,
    seeded=True,
)
