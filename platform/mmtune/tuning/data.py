"""The prepared data a search reads: checked before Ray starts, prepared from a card when absent.

A directory that exists but is not a prepared data set, or whose shards do not match its manifest, is an error (one
line), never silently re-prepared. A
missing directory with a ``card`` is prepared (and, with ``data.synth``, the built-in synthetic raw data are
generated first when the card's source is absent).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmtune.config.run import default_prepared_path
from mmtune.config.search import SynthSpec
from mmtune.console import err_console
from mmtune.data.format import Manifest, read_manifest
from mmtune.data.integrity import verify_prepared
from mmtune.errors import DataError

if TYPE_CHECKING:
    from mmtune.tuning.plan import StudyPlan
    from mmtune.tuning.space import SearchSpace


@dataclass
class DataPlan:
    """Where the prepared data are, and what has to happen before they are."""

    paths: list[Path]
    card: Path | None = None
    source: Path | None = None
    synth: SynthSpec | None = None
    manifest: Manifest | list[Manifest] | None = None  # one per data source of a multi-dataset run

    @property
    def ready(self) -> bool:
        return self.manifest is not None

    @property
    def describe(self) -> str:
        if self.ready:
            return ", ".join(str(p) for p in self.paths)
        return f"{self.paths[0]} (to be prepared from {self.card})"


def plan_data(study: StudyPlan | SearchSpace) -> DataPlan:
    """Check the data section without writing anything; fills in a default ``data.path`` for a bare card."""
    data = study.base["data"]
    card = Path(data["card"]) if data.get("card") else None
    source = Path(data["source"]) if data.get("source") else None
    synth = study.config.data.synth if study.config.data is not None else None
    if isinstance(data.get("path"), list):
        paths = [Path(s["path"]) for s in data["path"]]
        manifests = [_checked(p) for p in paths]
        return DataPlan(paths, card, source, synth, manifests)
    if data.get("path") is None:
        assert card is not None  # DataConfig requires path or card
        data["path"] = str(default_prepared_path(card).resolve())
    path = Path(data["path"])
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        return DataPlan([path], card, source, synth, _checked(path))
    if card is None:
        raise DataError(f"{path}: data directory not found; prepare it (mmtune data prepare) or give data.card")
    if not card.is_file():
        raise DataError(f"{card}: dataset card not found (data.card)")
    return DataPlan([path], card, source, synth, None)


def _checked(path: Path) -> Manifest:
    """The manifest, after the shards are checked against it (once here, before Ray starts; the trials' own check
    then finds the hashes remembered on this node)."""
    manifest = read_manifest(path)
    verify_prepared(path, manifest)
    return manifest


def ensure_data(plan: DataPlan, address: str | None = None) -> Manifest | list[Manifest]:
    """Prepare the data when the plan says so (Ray must be reachable); returns the (first) manifest."""
    if plan.manifest is not None:
        return plan.manifest
    from mmtune.config.card import load_card_with_source
    from mmtune.data.prepare import prepare

    assert plan.card is not None
    loaded = load_card_with_source(plan.card)
    raw = loaded.source_root(plan.source)
    if not raw.exists() and plan.synth is not None:
        _synthesize(raw, plan.synth, loaded.card)
    err_console.print(f"preparing {plan.card.name} -> {plan.paths[0]}", highlight=False)
    plan.manifest = prepare(plan.card, plan.paths[0], source=plan.source, address=address, progress=True)
    return plan.manifest


def _synthesize(raw: Path, spec: SynthSpec, card: Any) -> None:
    from mmtune.data.synthetic import generate

    image = card.image
    err_console.print(f"writing synthetic raw data ({spec.patients} patients) -> {raw}", highlight=False)
    generate(raw, patients=spec.patients, size=image.size, slices=image.slices, seed=spec.seed)
