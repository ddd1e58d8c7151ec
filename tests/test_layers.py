"""The package's layers: every import, function-level ones included, points down, and there is no cycle.

Run alone: `python -m pytest tests/test_layers.py -q` (it reads the source with `ast`; nothing is imported).
"""

import ast
from functools import lru_cache
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "code" / "poolnas"

# Bottom to top; a module may import from its own layer and the layers below it, never above.
LAYERS = [
    {"poolnas", "poolnas.errors", "poolnas.records"},
    {"poolnas.arch", "poolnas.data", "poolnas.schemas"},
    {"poolnas.settings"},
    {"poolnas.engine"},
    {"poolnas.standalone", "poolnas.search"},
    {"poolnas.plan", "poolnas.estimate"},
    {"poolnas.analysis"},
    {"poolnas.cli", "poolnas.__main__", "poolnas.argcheck"},
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every poolnas module `path` imports, at any depth of the code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("poolnas")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("poolnas"):
            for alias in node.names:  # `from poolnas.search import methods` imports a module
                candidate = f"{node.module}.{alias.name}"
                known = (PACKAGE.parent / candidate.replace(".", "/")).with_suffix(".py").is_file() or \
                    (PACKAGE.parent / candidate.replace(".", "/")).is_dir()
                out.add(candidate if known else node.module)
    return out


@lru_cache(maxsize=None)
def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) - {module_name(p)} for p in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> int:
    for depth, layer in enumerate(LAYERS):
        if module in layer or any(module.startswith(top + ".") for top in layer if top != "poolnas"):
            return depth
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def test_every_module_has_a_layer():
    for module in graph():
        layer_of(module)


@pytest.mark.parametrize("module", sorted(graph()))
def test_imports_point_down(module):
    up = {m for m in graph()[module] if layer_of(m) > layer_of(module)}
    assert not up, f"{module} (layer {layer_of(module)}) imports from a layer above: {sorted(up)}"


def test_no_import_cycle():
    g = graph()
    state: dict[str, int] = {}

    def visit(node, stack):
        state[node] = 1
        for nxt in sorted(g.get(node, ())):
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(nxt):] + [nxt]))
            if nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(g):
        if node not in state:
            visit(node, [node])


def test_no_module_over_400_lines():
    long = {module_name(p): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 420}
    assert not long, f"modules over ~400 lines: {long}"
