"""Project-level guarantees: the README's quick start matches CI, import hazards stay away, the CLI starts light."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def quick_start_blocks() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return [block.strip() for block in re.findall(r"```bash\n(.*?)```", section, flags=re.S)]


def test_quick_start_is_two_commands_and_ci_runs_the_readme_test_command():
    blocks = quick_start_blocks()
    assert len(blocks) == 2, blocks
    install_and_run, test_command = blocks
    assert "\n" not in install_and_run and "\n" not in test_command
    assert "pip install -e '.[dev]'" in install_and_run
    assert "mmtune tune search_spaces/quickstart.yaml" in install_and_run
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    # CI activates its own venv, so the README's `.venv/bin/` prefix is dropped there.
    assert test_command.removeprefix(".venv/bin/") in ci.splitlines()


def test_no_package_shadows_stdlib_or_hugging_face_datasets():
    assert not (REPO / "platform" / "__init__.py").exists()
    assert not (REPO / "datasets" / "__init__.py").exists()
    spec = importlib.util.find_spec("datasets")
    # Under `pytest` the repo root is not on sys.path, so `datasets/` (YAML cards) is not importable.
    assert spec is None or Path(str(spec.origin or "")).parent != REPO / "datasets"


def test_cli_help_does_not_import_heavy_libraries():
    code = (
        "import sys, mmtune.cli; print(sorted(m for m in ('torch', 'ray', 'aim', 'timm', 'monai') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_command_exits_2():
    out = subprocess.run([sys.executable, "-m", "mmtune", "no-such-command"], capture_output=True, text=True)
    assert out.returncode == 2


def _shipped(folder: str) -> list[Path]:
    return sorted((REPO / folder).glob("*.yaml"))


def test_every_shipped_dataset_card_validates():
    from mmtune.config.card import load_card

    cards = _shipped("datasets")
    assert {"ictcf.yaml", "synthetic.yaml"} <= {p.name for p in cards}
    for path in cards:
        card = load_card(path)
        assert card.tasks, path


def test_every_shipped_run_config_passes_the_component_checks():
    from mmtune.config.run import load_run_config
    from mmtune.validation import check_run_config

    for path in _shipped("configs"):
        check_run_config(load_run_config(path), None, quiet=True)


def test_every_shipped_search_space_and_study_validates_against_the_registries():
    import yaml
    from mmtune.tuning.ablation import check_registries, expand_with_data, load_study
    from mmtune.tuning.candidates import check_candidates
    from mmtune.tuning.space import load_search_space

    spaces = _shipped("search_spaces")
    assert "quickstart.yaml" in {p.name for p in spaces}
    for path in spaces:
        if yaml.safe_load(path.read_text(encoding="utf-8")).get("kind") == "ablation":
            study = load_study(path)
            check_registries(study, expand_with_data(study, None), None)
        else:
            check_candidates(load_search_space(path))
