"""Aim images and texts beside the metrics: PNG bytes / arrays -> ``aim.Image``, markdown -> ``aim.Text``, and
the queries that read them back (tests, ``mmtune report``).

Figures are stored as ``aim.Image`` (the same PNGs as the report): ``aim.Figure`` needs plotly, which mmtune does
not depend on, and its matplotlib conversion is lossy.
"""

from __future__ import annotations

from io import BytesIO
from pathlib import Path
from typing import Any

import numpy as np


def png_image(png: bytes, caption: str) -> Any:
    from aim import Image
    from PIL import Image as PILImage

    return Image(PILImage.open(BytesIO(png)), caption=caption, format="png")


def array_image(array: np.ndarray, caption: str) -> Any:
    """A 2-D array in [0, 1] (values outside are clipped) as a greyscale PNG ``aim.Image``."""
    from aim import Image
    from PIL import Image as PILImage

    pixels = (np.clip(np.asarray(array, dtype=np.float64), 0.0, 1.0) * 255).round().astype(np.uint8)
    return Image(PILImage.fromarray(pixels, mode="L"), caption=caption, format="png")


def text(value: str) -> Any:
    from aim import Text

    return Text(value)


DTYPES = {"images": ("aim.image", "list(aim.image)"), "texts": ("aim.text", "list(aim.text)"), "metric": ("float",)}


def _open(repo: str | Path, run_hash: str) -> Any:
    """A finished run, read-only; runs written by another process are visible after
    ``mmtune.tracking.aim.reindex(repo)``."""
    from aim import Run

    return Run(run_hash, repo=str(Path(repo).resolve()), read_only=True)


def sequences(repo: str | Path, run_hash: str, dtype: str) -> list[tuple[str, dict[str, Any]]]:
    """``(name, context)`` of a run's sequences of one type (``images``, ``texts``, ``metric``)."""
    run = _open(repo, run_hash)
    return [(name, dict(ctx.to_dict())) for name, ctx, _ in run.iter_sequence_info_by_type(DTYPES[dtype])]


def sequence_values(repo: str | Path, run_hash: str, dtype: str, name: str, context: dict[str, Any]) -> list[Any]:
    """The tracked objects of one sequence: PIL images with ``info["caption"]`` (``images``) or strings
    (``texts``), in step order."""
    from aim.storage.context import Context

    run = _open(repo, run_hash)
    getter = {"images": "get_image_sequence", "texts": "get_text_sequence"}[dtype]
    seq = getattr(run, getter)(name, Context(dict(context)))
    if seq is None:
        return []
    out: list[Any] = []
    for value in seq.values.values_list():  # one object per step (a list when several were tracked at once)
        for item in value if isinstance(value, list) else [value]:
            out.append(_plain(item))
    return out


def _plain(item: Any) -> Any:
    if hasattr(item, "to_pil_image"):
        image = item.to_pil_image()
        image.info["caption"] = item.caption
        return image
    return getattr(item, "data", item)
