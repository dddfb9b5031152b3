"""Any timm model (``timm:<name>``) or MONAI network (``monai:<Class>``) as a backbone, by name.

``timm:convnext_nano`` is ``timm.create_model(name, pretrained=False, in_chans=..., num_classes=0)`` read through
:class:`~mmtune.models.backbones.TimmEncoder` (``drop_rate`` / ``drop_path_rate`` as params); nothing downloads.

``monai:DenseNet121`` builds the MONAI class with mmtune supplying what the data decide (``spatial_dims`` from the
layout, the input channels, a dummy output width) and the user's ``params`` passed through, checked against the
class's own signature and type hints. A MONAI network has no common feature interface, so
:class:`MonaiFeatureEncoder` finds its scales once, with one probe pass: the last module output at each spatial
size down to the smallest (the bottleneck). Later passes stop at the bottleneck (a classifier head or a U-Net
decoder never runs) and the parameters behind it, which would never get a gradient, are frozen (DDP needs every
trainable parameter used). Unknown names get the close matches from ``timm.list_models()`` or MONAI's networks.
"""

from __future__ import annotations

import functools
import inspect
import typing
from typing import Any

import torch
from torch import Tensor, nn

from mmtune.models.features import FeatureEncoder
from mmtune.models.registries import BACKBONES
from mmtune.registry import Entry, Namespace

TIMM_MIN_SIZE = 32
MONAI_MIN_SIZE = 32
PROBE_SIZE = {2: 128, 3: 64}  # large enough that a real bottleneck is wider than 1 (squeeze outputs are not)
# constructor arguments mmtune sets itself (from the data): never user params
SPATIAL_ARGS = ("spatial_dims",)
INPUT_ARGS = ("in_channels", "n_input_channels", "in_chans")
OUTPUT_ARGS = ("out_channels", "num_classes", "n_classes", "classification")
FIXED_ARGS = (*SPATIAL_ARGS, *INPUT_ARGS, *OUTPUT_ARGS, "pretrained", "progress")


# ---------------------------------------------------------------------------------------------------- timm


def _timm_known(rest: str) -> bool:
    import timm

    return bool(timm.is_model(rest.split(".", 1)[0]))


def _resolve_timm(rest: str) -> Entry | None:
    if not _timm_known(rest):
        return None
    from mmtune.models.backbones import TimmEncoder

    def factory(in_chans: int, *, drop_rate: float = 0.0, drop_path_rate: float = 0.0) -> FeatureEncoder:
        extra = {"drop_path_rate": drop_path_rate} if drop_path_rate else {}
        try:
            return TimmEncoder(rest, in_chans, drop_rate=drop_rate, **extra)
        except TypeError as exc:  # a model without that option
            raise ValueError(f"timm:{rest}: {exc}") from None

    factory.__doc__ = f"timm model {rest} (pretrained=False, num_classes=0)"
    return Entry(f"timm:{rest}", factory, factory.__doc__, {"dims": 2, "source": "timm", "min_size": TIMM_MIN_SIZE})


@functools.cache
def _timm_names() -> list[str]:
    import timm

    return list(timm.list_models())


# ---------------------------------------------------------------------------------------------------- MONAI


@functools.cache
def monai_networks() -> dict[str, type]:
    """MONAI network classes that take ``spatial_dims`` and an input-channel argument (what a backbone needs)."""
    from monai.networks import nets

    found = {}
    for name in dir(nets):
        cls = getattr(nets, name)
        if not (inspect.isclass(cls) and issubclass(cls, nn.Module)):
            continue
        try:
            params = {n for init in _constructors(cls) for n in inspect.signature(init).parameters}
        except (TypeError, ValueError):
            continue
        if "spatial_dims" in params and any(a in params for a in INPUT_ARGS):
            found[name] = cls
    return found


def _constructors(cls: type) -> list[Any]:
    """``cls.__init__`` and, while a constructor forwards ``**kwargs``, the base classes' (``DenseNet121(**kwargs)``
    passes ``dropout_prob`` on to ``DenseNet``): together they document every argument."""
    out = []
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None or klass is nn.Module:
            continue
        out.append(init)
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(init).parameters.values()):
            break
    return out


def _hints(cls: type) -> dict[str, Any]:
    hints: dict[str, Any] = {}
    for init in reversed(_constructors(cls)):
        try:
            hints.update(typing.get_type_hints(init))
        except Exception:  # unresolvable forward references in a third-party signature: check names only
            continue
    return hints


def monai_user_parameters(cls: type) -> list[inspect.Parameter]:
    """The constructor arguments a user may set under ``params:`` (everything but what mmtune supplies)."""
    out: dict[str, inspect.Parameter] = {}
    for init in _constructors(cls):
        for name, p in inspect.signature(init).parameters.items():
            if name == "self" or name in FIXED_ARGS or name in out or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
                continue
            out[name] = p.replace(kind=inspect.Parameter.KEYWORD_ONLY, annotation=inspect.Parameter.empty)
    return list(out.values())


def _resolve_monai(rest: str) -> Entry | None:
    cls = monai_networks().get(rest)
    if cls is None:
        return None
    allowed = monai_user_parameters(cls)
    hints = _hints(cls)

    def factory(in_chans: int, spatial_dims: int = 2, **params: Any) -> MonaiFeatureEncoder:
        return MonaiFeatureEncoder(cls, in_chans, spatial_dims, params)

    # the user-visible signature is the MONAI class's own (validate_params reads __signature__ / __annotations__)
    context = [
        inspect.Parameter("in_chans", inspect.Parameter.POSITIONAL_ONLY, annotation=int),
        inspect.Parameter("spatial_dims", inspect.Parameter.POSITIONAL_ONLY, annotation=int),
    ]
    factory.__signature__ = inspect.Signature([*context, *allowed])  # type: ignore[attr-defined]
    factory.__annotations__ = {p.name: hints[p.name] for p in allowed if p.name in hints}
    doc = next(iter((cls.__doc__ or "").strip().splitlines()), "").strip()
    description = f"MONAI {rest}" + (f": {doc}" if doc else "")
    tags = {"dims": None, "any_dims": True, "source": "monai", "min_size": MONAI_MIN_SIZE}
    return Entry(f"monai:{rest}", factory, description, tags)


class _Stop(Exception):
    """Raised by the bottleneck's hook: the rest of the network (its head, a decoder) is not run."""


class MonaiFeatureEncoder(FeatureEncoder):
    """A MONAI network read out at the last module output of each spatial size, down to its bottleneck."""

    def __init__(self, cls: type, in_chans: int, spatial_dims: int, params: dict[str, Any]) -> None:
        super().__init__()
        arguments = {n for init in _constructors(cls) for n in inspect.signature(init).parameters}
        supplied: dict[str, Any] = {"spatial_dims": spatial_dims}
        supplied[next(a for a in INPUT_ARGS if a in arguments)] = in_chans
        for name in OUTPUT_ARGS[:3]:
            if name in arguments:
                supplied[name] = 2
        if "pretrained" in arguments:
            supplied["pretrained"] = False
        try:
            self.net = cls(**supplied, **params)
        except (TypeError, ValueError, AssertionError, KeyError, AttributeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
            raise ValueError(f"MONAI {cls.__name__}({shown}) cannot be built: {reason}") from None
        self.spatial_dims = spatial_dims
        x = torch.zeros(2, in_chans, *([PROBE_SIZE[spatial_dims]] * spatial_dims))
        self.taps, self.channels = self._probe(x)
        self.out_dim = self.channels[-1]
        self.frozen = self._freeze_unused(x)

    def _probe(self, x: Tensor) -> tuple[list[str], list[int]]:
        """Tap modules (one per scale, bottleneck last) and their channels, from one pass over ``x``."""
        size = x.shape[-1]
        records: list[tuple[tuple[str, int], tuple[int, ...], int]] = []  # ((module, its n-th call), size, C)
        calls: dict[str, int] = {}
        modules = dict(self.net.named_modules())

        def hook(name: str):
            def record(_module: nn.Module, _inputs: Any, output: Any) -> None:
                calls[name] = calls.get(name, 0) + 1  # a module may run several times (a shared activation)
                if isinstance(output, Tensor) and output.dim() == self.spatial_dims + 2:
                    records.append(((name, calls[name]), tuple(output.shape[2:]), int(output.shape[1])))

            return record

        handles = [m.register_forward_hook(hook(n)) for n, m in modules.items() if n]
        was_training = self.net.training
        self.net.eval()
        try:
            with torch.no_grad():
                self.net(x)
        except Exception as exc:
            raise ValueError(f"a {size}^{self.spatial_dims} probe pass failed: {exc}") from None
        finally:
            for h in handles:
                h.remove()
            self.net.train(was_training)
        maps = [r for r in records if max(r[1]) > 1] or records  # ignore squeeze-excitation / pooled outputs
        if not maps:
            raise ValueError("the network produced no feature map")
        smallest = min(maps, key=lambda r: _volume(r[1]))[1]
        bottleneck = max(i for i, r in enumerate(maps) if r[1] == smallest)
        taps: dict[tuple[int, ...], tuple[tuple[str, int], int]] = {}
        for tap, shape, channels in maps[: bottleneck + 1]:
            if _halvings(size, shape) or shape == smallest:  # a pyramid level, not a padded / odd-sized interim
                taps[shape] = (tap, channels)  # the last module output at that size
        ordered = sorted(taps.items(), key=lambda item: -_volume(item[0]))
        self.shared_taps = any(calls[name] > 1 for _, ((name, _), _) in ordered)
        return [tap for _, (tap, _) in ordered], [c for _, (_, c) in ordered]

    def _freeze_unused(self, x: Tensor) -> int:
        """Parameters past the bottleneck get no gradient: freeze them (DDP without find_unused_parameters)."""
        self.net.zero_grad(set_to_none=True)
        was_training = self.net.training
        self.net.eval()
        sum(m.float().sum() for m in self.features(x)).backward()
        self.net.train(was_training)
        frozen = 0
        for p in self.net.parameters():
            if p.grad is None:
                p.requires_grad_(False)
                frozen += p.numel()
            p.grad = None
        return frozen

    def features(self, x: Tensor) -> list[Tensor]:
        """The tapped outputs; the forward pass ends at the bottleneck's output."""
        modules = dict(self.net.named_modules())
        wanted: dict[str, dict[int, int]] = {}
        for i, (name, call) in enumerate(self.taps):
            wanted.setdefault(name, {})[call] = i
        captured: list[Tensor | None] = [None] * len(self.taps)
        calls: dict[str, int] = {}

        def hook(name: str):
            def keep(_module: nn.Module, _inputs: Any, output: Any) -> None:
                calls[name] = calls.get(name, 0) + 1
                index = wanted[name].get(calls[name])
                if index is not None:
                    captured[index] = output
                    if index == len(self.taps) - 1:
                        raise _Stop

            return keep

        handles = [modules[name].register_forward_hook(hook(name)) for name in wanted]
        try:
            self.net(x)
        except _Stop:
            pass
        finally:
            for h in handles:
                h.remove()
        if any(m is None for m in captured):
            raise RuntimeError(f"{type(self.net).__name__}: a tapped output was not produced (input-dependent graph)")
        return [m for m in captured if m is not None]

    def pool(self, bottleneck: Tensor) -> Tensor:
        return bottleneck.flatten(2).mean(dim=2)

    def stage_modules(self) -> list[nn.Module]:
        if self.shared_taps:  # a hook there would also fire on the module's other calls
            return super().stage_modules()
        modules = dict(self.net.named_modules())
        return [modules[name] for name, _ in self.taps]

    def weights_module(self) -> nn.Module:
        return self.net


def _halvings(size: int, shape: tuple[int, ...]) -> bool:
    """Whether every side of ``shape`` is ``size / 2^k`` for one k (a level of the usual stride-2 pyramid)."""
    ratio = size // shape[0] if shape[0] else 0
    return ratio >= 1 and ratio & (ratio - 1) == 0 and all(s * ratio == size for s in shape)


def _volume(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= s
    return out


BACKBONES.add_namespace(Namespace("timm", "timm.list_models()", _resolve_timm, _timm_names))
BACKBONES.add_namespace(
    Namespace(
        "monai", "monai.networks.nets classes taking spatial_dims", _resolve_monai, lambda: list(monai_networks())
    )
)
