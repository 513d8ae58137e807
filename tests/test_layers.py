"""The house rules of ``livedepth``'s imports: no circles, and arrows only point down the layers.

The graph is read from the source with :mod:`ast` (nothing is imported), function-local and
``TYPE_CHECKING`` imports included: a deferred import is still an arrow.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "livedepth"

#: The layers from low to high (README, "How it fits together"): a module imports only from its
#: own package or a lower one. ``__main__`` is the ``python -m livedepth`` entry point.
LAYERS = ("core", "render", "backends", "model", "inference", "settings", "io", "run", "web", "bench", "app",
          "cli", "__main__")

def module_name(path: Path, root: Path) -> str:
    """``livedepth/run/pipeline.py`` -> ``livedepth.run.pipeline``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(root: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same top-level package it imports (every ``import`` statement)."""
    top = root.name
    files = {module_name(path, root): path for path in sorted(root.rglob("*.py"))}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                for alias in node.names:  # `from pkg import module` imports the module
                    targets.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in files else base)
        graph[name] = {t for t in targets if t in files and t != name and (t == top or t.startswith(top + "."))}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
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
            visit(node)
    return sorted(found)


def layer(module: str) -> str:
    """The layer of a module: its sub-package, or the module itself at the top level."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def backward_arrows(graph: dict[str, set[str]], layers: tuple[str, ...] = LAYERS) -> list[str]:
    """Every arrow to a higher layer, or from or to a package that has no layer, as text."""
    rank = {name: i for i, name in enumerate(layers)}
    bad = []
    for source, targets in sorted(graph.items()):
        for target in sorted(targets):
            low_from, low_to = layer(source), layer(target)
            if source.count(".") == 0 or target.count(".") == 0:
                continue  # the top-level package itself (its __init__ stays empty of imports)
            if low_from not in rank or low_to not in rank:
                bad.append(f"{source} -> {target}: no layer for {low_from if low_from not in rank else low_to}")
            elif rank[low_to] > rank[low_from]:
                bad.append(f"{source} -> {target}: {low_from} is below {low_to}")
    return bad


def summary(graph: dict[str, set[str]]) -> str:
    """``modules, arrows, circles`` of a graph (for the issue's before/after)."""
    return f"{len(graph)} modules, {sum(map(len, graph.values()))} arrows, {len(cycles(graph))} circles"


def test_no_import_circles():
    assert cycles(import_graph(ROOT)) == []


def test_arrows_point_down_the_layers():
    assert backward_arrows(import_graph(ROOT)) == []


def test_every_package_has_a_layer():
    packages = {layer(name) for name in import_graph(ROOT) if name.count(".") >= 1}
    assert packages <= set(LAYERS), packages - set(LAYERS)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    return root / "pkg"


def test_the_checks_find_circles_and_backward_arrows(tmp_path):
    """The flat layout's two circles (a deferred one and a TYPE_CHECKING one) and an upward arrow."""
    root = _write(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/settings.py": "from pkg.colorize import LAYOUTS\n",
        "pkg/colorize.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.settings import X\n",
        "pkg/model.py": "def load():\n    from pkg.weights import load_state_dict_into\n",
        "pkg/weights.py": "def build():\n    from pkg import model\n",
        "pkg/core/__init__.py": "",
        "pkg/core/files.py": "from .. import weights\nfrom ..render import colors\n",
        "pkg/render/__init__.py": "",
        "pkg/render/colors.py": "import os\nfrom pkg.core import files\n",
    })
    graph = import_graph(root)
    assert graph["pkg.core.files"] == {"pkg.weights", "pkg.render.colors"}
    assert cycles(graph) == [["pkg.colorize", "pkg.settings"], ["pkg.core.files", "pkg.render.colors"],
                             ["pkg.model", "pkg.weights"]]
    assert summary(graph) == "9 modules, 7 arrows, 3 circles"
    assert backward_arrows(graph, ("core", "render", "colorize", "settings", "model", "weights")) == [
        "pkg.colorize -> pkg.settings: colorize is below settings",
        "pkg.core.files -> pkg.render.colors: core is below render",
        "pkg.core.files -> pkg.weights: core is below weights",
        "pkg.model -> pkg.weights: model is below weights",
    ]
    assert backward_arrows(graph, ("core",))[:1] == ["pkg.colorize -> pkg.settings: no layer for colorize"]
