"""Gated attention MIL pooling (Ilse, Tomczak & Welling, ICML 2018): slice embeddings -> one patient embedding."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class GatedAttentionPool(nn.Module):
    """``a_k = softmax_k(w^T (tanh(V h_k) * sigmoid(U h_k)))``; returns ``sum_k a_k h_k``.

    The last attention weights stay in ``last_attention`` ``[B, K]`` so callers can show which slices mattered.
    """

    def __init__(self, dim: int, hidden: int = 128) -> None:
        super().__init__()
        self.value = nn.Linear(dim, hidden)
        self.gate = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1)
        self.last_attention: Tensor | None = None

    def forward(self, instances: Tensor) -> Tensor:
        """``instances``: ``[B, K, D]`` -> ``[B, D]``."""
        scores = self.score(torch.tanh(self.value(instances)) * torch.sigmoid(self.gate(instances))).squeeze(-1)
        attention = torch.softmax(scores, dim=1)
        self.last_attention = attention.detach()
        return torch.einsum("bk,bkd->bd", attention, instances)
