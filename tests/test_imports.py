"""Imports flow one way: no package imports a package above it, and no import cycle exists between packages or
files. The graph is read with ``ast`` from every file under ``platform/mmtune`` (no list of files); imports inside
``if TYPE_CHECKING:`` are not run, so they are not edges. docs/architecture.md states the same layers."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "platform" / "mmtune"

# Top-level packages / modules of mmtune, lowest first; a unit may import its own layer and the layers below.
LAYERS: list[set[str]] = [
    {"errors", "locale_guard", "atomic", "console", "tasks", "registry", "results_files", "trial_config", "study_lock"},
    {"config"},
    {"data"},
    {"models"},
    {"losses"},
    {"components"},
    {"validation"},
    {"tracking"},
    {"analysis"},
    {"training"},
    {"inference"},
    {"tuning"},
    {"bench"},
    {"cli", "__main__"},
]
CONFIG_MAY_IMPORT = {"config", "errors", "tasks", "registry"}


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _runtime_imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement (module level or inside functions) except those under ``if TYPE_CHECKING:``."""
    out: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            out.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return out


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same top-level package it imports. ``from pkg import sub`` is an edge to the
    submodule ``pkg.sub`` when it is one (else to ``pkg``); ``import a.b`` is an edge to ``a.b``."""
    top = root.name
    files = {_module_name(p, root): p for p in root.rglob("*.py")}
    packages = {_module_name(p, root) for p in root.rglob("__init__.py")}

    def resolve(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {name: set() for name in files}
    for name, path in files.items():
        own_package = name if name in packages else name.rpartition(".")[0]
        for node in _runtime_imports(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                if node.level:
                    base = own_package.split(".")[: len(own_package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.append(sub if sub in files else module)
            for target in targets:
                if target == top or target.startswith(top + "."):
                    resolved = resolve(target)
                    if resolved and resolved != name:
                        graph[name].add(resolved)
    return graph


def unit(module: str) -> str:
    """The top-level package or module of ``mmtune.x.y`` (``x``); ``mmtune`` itself is ``""``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def connect(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for other in sorted(graph.get(node, ())):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def package_graph(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for module, targets in graph.items():
        for target in targets:
            if unit(module) != unit(target) and unit(target):
                out[unit(module)].add(unit(target))
    return dict(out)


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    layer = {name: i for i, names in enumerate(LAYERS) for name in names}
    out = []
    for module, targets in sorted(graph.items()):
        for target in sorted(targets):
            a, b = unit(module), unit(target)
            if a and b and a != b and layer[a] < layer[b]:
                out.append(f"{module} -> {target} ({a} is below {b})")
    return out


GRAPH = import_graph(PACKAGE)


def test_the_graph_is_read_from_every_file() -> None:
    assert len(GRAPH) == len(list(PACKAGE.rglob("*.py"))) > 100
    assert "mmtune.tuning.keypaths" in GRAPH["mmtune.tuning.space"]  # module-level import
    assert "mmtune.validation" in GRAPH["mmtune.training.fit"]  # import inside a function
    assert "mmtune.data.synthetic.clinical" in GRAPH["mmtune.data.synthetic.ictcf"]  # from pkg import submodule
    assert "mmtune.tuning.space" not in GRAPH["mmtune.tuning.keypaths"]  # only under TYPE_CHECKING


def test_every_package_has_a_layer() -> None:
    placed = set().union(*LAYERS)
    missing = sorted({unit(m) for m in GRAPH if unit(m)} - placed)
    assert not missing, f"place these in LAYERS (and docs/architecture.md): {missing}"


def test_no_upward_import() -> None:
    assert upward_imports(GRAPH) == []


def test_config_imports_only_errors_tasks_and_registry() -> None:
    wrong = sorted(
        f"{m} -> {t}" for m, ts in GRAPH.items() if unit(m) == "config" for t in ts if unit(t) not in CONFIG_MAY_IMPORT
    )
    assert wrong == []


def test_no_import_cycle_between_packages_or_files() -> None:
    assert cycles(package_graph(GRAPH)) == []
    assert cycles(GRAPH) == []


def test_the_checks_find_an_upward_import_and_cycles(tmp_path: Path) -> None:
    """The checks fail on what they guard against: a small package with a config -> data import and cycles."""
    root = tmp_path / "mmtune"
    files = {
        "__init__.py": "",
        "config/__init__.py": "",
        "config/card.py": "def f():\n    from mmtune.data import layouts\n",
        "data/__init__.py": "",
        "data/layouts.py": "from mmtune.config.card import f\nfrom . import ingest\n",
        "data/ingest.py": "from mmtune.data.layouts import f\n",
        "models.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mmtune import cli\n",
        "cli.py": "import mmtune.models\n",
    }
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    graph = import_graph(root)
    assert upward_imports(graph) == ["mmtune.config.card -> mmtune.data.layouts (config is below data)"]
    assert cycles(package_graph(graph)) == [["config", "data"]]
    assert cycles(graph) == [["mmtune.config.card", "mmtune.data.ingest", "mmtune.data.layouts"]]
    assert graph["mmtune.models"] == set()  # the TYPE_CHECKING import is no edge
