"""Fusions: one interface from (image features, clinical features) to representations that heads read.

``forward`` returns ``{branch: [B, out_dim]}``: one ``"fused"`` branch for intermediate fusions; ``late`` fusion
returns an ``"image"`` and a ``"clinical"`` branch, each gets its own head set, and ``combine`` mixes the branch
logits per task. Absent modalities arrive zeroed with ``present == 0`` (modality dropout, missing-modality
evaluation); fusions that can, use ``present`` to ignore them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import Tensor, nn

from mmtune.models.features import ClinicalFeatures, ImageFeatures
from mmtune.models.registries import FUSIONS


@dataclass(frozen=True)
class FusionDims:
    """Widths a fusion is built for: pooled image / clinical embeddings, raw clinical features ``F``, channels
    of each image map (bottleneck last), their spatial dims, the fused width (``model.fusion.dim``) and the task names."""

    image: int
    clinical: int
    n_clinical: int
    channels: tuple[int, ...]
    spatial_dims: int
    out: int
    tasks: tuple[str, ...]

    @property
    def map_channels(self) -> int:
        return self.channels[-1] if self.channels else 0


def _projection(width_in: int, width_out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(width_in, width_out), nn.ReLU(), nn.Dropout(dropout))


class Fusion(nn.Module):
    """Base class; subclasses declare ``modalities`` (once: ``uses_image`` / ``uses_clinical`` follow from it)
    and implement ``forward``.

    Fusions that act inside the image network say so with ``image_input_channels`` (extra input channels built
    from the clinical values: early fusion) or by overriding ``attach`` / ``conditioning`` (DAFT hooks a stage);
    ``needs_clinical_encoder = False`` when the clinical embedding is not read (no encoder is built).
    """

    modalities: ClassVar[tuple[str, ...]] = ("image", "clinical")
    uses_image: ClassVar[bool] = True
    uses_clinical: ClassVar[bool] = True
    needs_clinical_encoder: ClassVar[bool] = True
    branches: tuple[str, ...] = ("fused",)

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        unknown = set(cls.modalities) - {"image", "clinical"}
        if unknown:
            raise TypeError(f"{cls.__name__}.modalities: unknown {sorted(unknown)}")
        cls.uses_image = "image" in cls.modalities
        cls.uses_clinical = "clinical" in cls.modalities
        cls.needs_clinical_encoder = cls.needs_clinical_encoder and cls.uses_clinical

    @classmethod
    def image_input_channels(cls, n_clinical: int) -> int:
        """Extra input channels of the image network (early fusion); 0 for the others."""
        return 0

    def image_inputs(self, clinical: ClinicalFeatures) -> Tensor | None:
        """``[B, extra]`` values broadcast as constant extra input channels (early fusion only)."""
        return None

    def attach(self, encoder: nn.Module) -> None:
        """Hook into the image encoder once it is built (DAFT); nothing by default."""

    def conditioning(self, clinical: ClinicalFeatures | None) -> AbstractContextManager[None]:
        """Context in which the image encoder runs conditioned on ``clinical`` (DAFT); a no-op by default."""
        return nullcontext()

    def __init__(self, dims: FusionDims) -> None:
        super().__init__()
        self.dims = dims
        self.out_dim = dims.out

    def forward(self, image: ImageFeatures | None, clinical: ClinicalFeatures | None) -> dict[str, Tensor]:
        raise NotImplementedError

    def combine(
        self, task: str, outputs: dict[str, Tensor], image: ImageFeatures | None, clinical: ClinicalFeatures | None
    ) -> Tensor:
        """Per-task logits from per-branch logits (identity for single-branch fusions)."""
        return outputs["fused"]

    def task_parameters(self, task: str) -> list[nn.Parameter]:
        """Parameters that serve only ``task`` (late fusion's mixing weights)."""
        return []

    def shared_parameters(self) -> list[nn.Parameter]:
        own = {id(p) for t in self.dims.tasks for p in self.task_parameters(t)}
        return [p for p in self.parameters() if id(p) not in own]

    def last_layer(self) -> nn.Module | None:
        """The last shared layer (GradNorm measures gradient norms here); ``None`` if the fusion has no weights."""
        return getattr(self, "out", None)


class NoFusion(Fusion):
    """Stand-in when every task is dense (segmentation / reconstruction): decoders read the image maps directly,
    so no fusion weights exist that no loss would reach (unused parameters break DDP)."""

    modalities = ("image",)

    def forward(self, image, clinical):
        return {}

    def last_layer(self):
        return None


@FUSIONS.register("image_only")
class ImageOnly(Fusion):
    """Image embedding only (clinical features ignored): the imaging baseline"""

    modalities = ("image",)

    def __init__(self, dims: FusionDims, *, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.out = _projection(dims.image, dims.out, dropout)

    def forward(self, image, clinical):
        return {"fused": self.out(image.pooled)}


@FUSIONS.register("clinical_only")
class ClinicalOnly(Fusion):
    """Clinical embedding only (no image encoder is built): the tabular baseline"""

    modalities = ("clinical",)

    def __init__(self, dims: FusionDims, *, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.out = _projection(dims.clinical, dims.out, dropout)

    def forward(self, image, clinical):
        return {"fused": self.out(clinical.embedding)}


@FUSIONS.register("concat")
class Concat(Fusion):
    """Intermediate fusion: concatenate image and clinical embeddings, then an MLP layer"""

    def __init__(self, dims: FusionDims, *, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.out = _projection(dims.image + dims.clinical, dims.out, dropout)

    def forward(self, image, clinical):
        return {"fused": self.out(torch.cat([image.pooled, clinical.embedding], dim=1))}


@FUSIONS.register("late")
class Late(Fusion):
    """Decision-level: one head set per modality, logits averaged or mixed with learned per-task weights"""

    branches = ("image", "clinical")

    def __init__(
        self, dims: FusionDims, *, combine: Literal["average", "learned"] = "learned", dropout: float = 0.0
    ) -> None:
        super().__init__(dims)
        self.mode = combine
        self.image_out = _projection(dims.image, dims.out, dropout)
        self.clinical_out = _projection(dims.clinical, dims.out, dropout)
        # softmax over (image, clinical) per task; zeros = plain average at the start
        self.mix = (
            nn.ParameterDict({t: nn.Parameter(torch.zeros(2)) for t in dims.tasks}) if combine == "learned" else None
        )

    def forward(self, image, clinical):
        return {"image": self.image_out(image.pooled), "clinical": self.clinical_out(clinical.embedding)}

    def combine(self, task, outputs, image, clinical):
        logits = torch.stack([outputs["image"], outputs["clinical"]], dim=1)  # [B, 2, ...]
        b = logits.shape[0]
        weights = torch.softmax(self.mix[task], 0) if self.mix is not None else logits.new_full((2,), 0.5)
        present = torch.stack([image.present, clinical.present], dim=1)  # [B, 2]
        weights = weights.unsqueeze(0) * present
        weights = weights / weights.sum(dim=1, keepdim=True).clamp_min(1e-8)
        return (logits * weights.view(b, 2, *([1] * (logits.dim() - 2)))).sum(dim=1)

    def task_parameters(self, task):
        return [self.mix[task]] if self.mix is not None and task in self.mix else []

    def last_layer(self):
        return self.image_out


@FUSIONS.register("gated")
class Gated(Fusion):
    """Gated multimodal unit (Arevalo et al. 2017): a learned per-sample, per-unit gate mixes the two modalities"""

    def __init__(self, dims: FusionDims, *, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.image_proj = nn.Linear(dims.image, dims.out)
        self.clinical_proj = nn.Linear(dims.clinical, dims.out)
        self.gate = nn.Linear(dims.image + dims.clinical, dims.out)
        self.out = _projection(dims.out, dims.out, dropout)
        self.last_gate: Tensor | None = None

    def forward(self, image, clinical):
        gate = torch.sigmoid(self.gate(torch.cat([image.pooled, clinical.embedding], dim=1)))
        # an absent modality gets no say: the gate goes fully to the other one
        ip, cp = image.present.unsqueeze(1), clinical.present.unsqueeze(1)
        gate = gate * (ip * cp + (1 - ip) * (1 - cp)) + ip * (1 - cp)
        self.last_gate = gate.detach()
        mixed = gate * torch.tanh(self.image_proj(image.pooled)) + (1 - gate) * torch.tanh(
            self.clinical_proj(clinical.embedding)
        )
        return {"fused": self.out(mixed)}


@FUSIONS.register("film", needs_maps=True)
class FiLM(Fusion):
    """Clinical features scale and shift the image bottleneck maps per channel (FiLM; DAFT-style conditioning)

    ``daft=True`` (default for 3D, Pölsterl et al. 2021) computes scale/shift from the pooled image features and
    the clinical embedding through a bottleneck MLP; ``daft=False`` is plain FiLM (Perez et al. 2018) from the
    clinical embedding alone. The last layer starts at zero, so training starts from the image-only model.
    """

    def __init__(self, dims: FusionDims, *, daft: bool | None = None, hidden: int = 64, dropout: float = 0.0) -> None:
        super().__init__(dims)
        self.daft = dims.spatial_dims == 3 if daft is None else daft
        width = dims.clinical + (dims.map_channels if self.daft else 0)
        self.film = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, 2 * dims.map_channels))
        nn.init.zeros_(self.film[-1].weight)
        nn.init.zeros_(self.film[-1].bias)
        self.out = _projection(dims.image + dims.clinical, dims.out, dropout)

    def forward(self, image, clinical):
        bottleneck = image.bottleneck
        condition = clinical.embedding
        if self.daft:
            pooled_maps = bottleneck.flatten(2).mean(dim=2)  # [B * group, C]
            per_patient = pooled_maps.reshape(-1, image.group, pooled_maps.shape[1]).mean(dim=1)
            condition = torch.cat([per_patient, condition], dim=1)
        scale, shift = self.film(condition).chunk(2, dim=1)
        scale = scale * clinical.present.unsqueeze(1)
        shift = shift * clinical.present.unsqueeze(1)
        shape = (*bottleneck.shape[:2], *([1] * (bottleneck.dim() - 2)))
        modulated = bottleneck * (1 + image.per_sample(scale).view(shape)) + image.per_sample(shift).view(shape)
        pooled = image.pool(torch.relu(modulated))
        return {"fused": self.out(torch.cat([pooled, clinical.embedding], dim=1))}


@FUSIONS.register("cross_attention", needs_maps=True)
class CrossAttention(Fusion):
    """Clinical feature tokens attend to image tokens (nn.MultiheadAttention), joined with both embeddings

    Each clinical feature becomes a token ``value * w_f + missing * m_f + e_f`` (FT-Transformer style); image
    tokens are the positions of one feature map (``level``, default the bottleneck; slices x positions in MIL).
    """

    def __init__(
        self, dims: FusionDims, *, heads: int = 4, token_dim: int = 64, level: int = -1, dropout: float = 0.0
    ) -> None:
        super().__init__(dims)
        if token_dim % heads:
            raise ValueError(f"token_dim {token_dim} is not divisible by heads {heads}")
        self.level = level
        n = max(dims.n_clinical, 1)
        self.value_embed = nn.Parameter(torch.randn(n, token_dim) * 0.02)
        self.missing_embed = nn.Parameter(torch.randn(n, token_dim) * 0.02)
        self.feature_embed = nn.Parameter(torch.randn(n, token_dim) * 0.02)
        self.image_tokens = nn.Linear(dims.channels[level], token_dim)
        self.attention = nn.MultiheadAttention(token_dim, heads, dropout=dropout, batch_first=True)
        self.norm = nn.LayerNorm(token_dim)
        self.out = _projection(dims.image + token_dim + dims.clinical, dims.out, dropout)
        self.last_attention: Tensor | None = None

    def forward(self, image, clinical):
        values, missing = clinical.values, clinical.missing
        queries = (
            values.unsqueeze(-1) * self.value_embed
            + missing.unsqueeze(-1) * self.missing_embed
            + self.feature_embed.unsqueeze(0)
        )  # [B, F, d]
        keys = self.image_tokens(image.tokens(self.level))  # [B, N, d]
        attended, weights = self.attention(queries, keys, keys, need_weights=True)
        self.last_attention = weights.detach()
        tokens = self.norm(queries + attended) * clinical.present.view(-1, 1, 1)
        return {"fused": self.out(torch.cat([image.pooled, tokens.mean(dim=1), clinical.embedding], dim=1))}
