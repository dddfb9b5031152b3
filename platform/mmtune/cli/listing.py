"""``mmtune list [CATEGORY]``: the registered components, chosen by name in YAML."""

from __future__ import annotations

from typing import Any

import typer

CATEGORIES = (
    "backbones",
    "clinical_encoders",
    "fusions",
    "heads",
    "sharings",
    "references",
    "weightings",
    "tasks",
    "losses",
    "layouts",
)

_TAG_ORDER = ("dims", "source", "min_size", "family", "modalities", "head", "output", "default_loss", "kinds")


def _tags(tags: dict[str, Any]) -> str:
    parts = []
    for key in sorted(tags, key=lambda k: (_TAG_ORDER.index(k) if k in _TAG_ORDER else 99, k)):
        value = tags[key]
        if key == "dims":
            parts.append(f"{value}d")
        elif isinstance(value, bool):
            if value:
                parts.append(key)
        elif isinstance(value, (tuple, list)):
            parts.append(f"{key}={'/'.join(map(str, value))}")
        else:
            parts.append(f"{key}={value}")
    return " ".join(parts)


def _params(factory: Any) -> str:
    from mmtune.registry import user_params

    return ", ".join(
        f"{name}={p.default!r}" if p.default is not p.empty else name for name, p in user_params(factory).items()
    )


def _rows(category: str) -> list[tuple[str, str, str, str]]:
    """(name, tags, params, description) rows of one category."""
    from mmtune.components import load_registries
    from mmtune.losses.tasks import DEFAULT_LOSS, allowed_losses
    from mmtune.tasks import TaskKind

    registries = load_registries()
    if category == "tasks":
        heads = registries["heads"]
        return [
            (
                kind.value,
                f"default_loss={DEFAULT_LOSS[kind]} losses={'/'.join(allowed_losses(kind))}",
                "",
                heads.entry(kind.value).description if kind.value in heads else "",
            )
            for kind in TaskKind
        ]
    if category == "layouts":
        return [(e.name, *_layout_columns(e.factory), e.description) for e in registries[category]]
    rows = [(e.name, _tags(_declared(e)), _params(e.factory), e.description) for e in registries[category]]
    return rows + [_namespace_row(ns) for ns in registries[category].namespaces()]


NAMESPACE_HELP = {
    "timm": (
        "2d source=timm",
        "drop_rate=0.0, drop_path_rate=0.0",
        "any timm model by name, e.g. timm:convnext_nano (timm.create_model, pretrained=False, num_classes=0)",
    ),
    "monai": (
        "2d/3d source=monai",
        "the class's own arguments",
        "any MONAI network taking spatial_dims, e.g. "
        "monai:DenseNet121; read out at each scale down to its bottleneck, the head frozen",
    ),
}


def _namespace_row(namespace: Any) -> tuple[str, str, str, str]:
    """One row for a whole namespace of names (``timm:<name>``), described once."""
    tags, params, text = NAMESPACE_HELP.get(namespace.prefix, ("", "", namespace.what))
    return (f"{namespace.prefix}:<name>", tags, params, text)


def _declared(entry: Any) -> dict[str, Any]:
    """Registry tags plus what a fusion declares about itself (the modalities it reads)."""
    modalities = getattr(entry.factory, "modalities", None)
    return {"modalities": modalities, **entry.tags} if modalities else dict(entry.tags)


def _layout_columns(layout: Any) -> tuple[str, str]:
    """(tags, params) of a source layout: whether it reads ``source.clinical_table``; its own ``source`` keys."""
    keys = [f"source.{k}" for k in sorted(layout.keys)]
    if layout.options_model is not None:
        keys += [f"source.options.{k}" for k in layout.options_model.model_fields]
    return ("clinical_table" if layout.reads_clinical_table else "", ", ".join(keys))


def list_components(
    category: str | None = typer.Argument(None, help=f"one of: {', '.join(CATEGORIES)} (default: all)"),
) -> None:
    """List registered backbones, clinical encoders, fusions, heads, weightings, task kinds, losses and source
    layouts."""
    from rich.table import Table

    from mmtune.console import console
    from mmtune.errors import UserError

    if category is not None and category not in CATEGORIES:
        raise UserError(f"unknown category {category!r} for `mmtune list`; known: {', '.join(CATEGORIES)}")
    for name in [category] if category else CATEGORIES:
        table = Table(title=name, title_justify="left", expand=False)
        table.add_column("name", style="bold cyan", no_wrap=True)
        table.add_column("tags", style="magenta")
        table.add_column("params")
        table.add_column("description")
        for row in _rows(name):
            table.add_row(*row)
        console.print(table)
