"""Static import graph of the ``startnet`` package (every ``import startnet...`` / ``from startnet... import``
statement, at module level and inside functions), read with ``ast`` without importing anything.

A ``from startnet.pkg import name`` edge goes to ``startnet.pkg.name`` when that is a module, to the
submodule a lazy ``_EXPORTS`` table of ``startnet/pkg/__init__.py`` names for ``name``, else to
``startnet.pkg`` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, List, Optional, Set

PACKAGE_DIR = Path(__file__).resolve().parents[2] / "StartNetExtension" / "StartNetCore" / "startnet"


def module_files(package_dir: Path = PACKAGE_DIR) -> Dict[str, Path]:
    """Module name -> file for every .py file of the package (packages by their ``__init__``)."""
    modules = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def _lazy_exports(path: Path) -> Dict[str, str]:
    """``_EXPORTS`` of a package ``__init__`` (name -> module), full module names."""
    package = ".".join(path.relative_to(PACKAGE_DIR.parent).parent.parts)
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "_EXPORTS" for t in node.targets)
                and isinstance(node.value, ast.Dict)):
            table = ast.literal_eval(node.value)
            return {name: value if value.startswith("startnet") else f"{package}.{value}"
                    for name, value in table.items()}
    return {}


def _target(modules: Dict[str, Path], exports: Dict[str, Dict[str, str]], base: str, name: Optional[str]) -> str:
    if name is not None:
        if f"{base}.{name}" in modules:
            return f"{base}.{name}"
        if name in exports.get(base, {}):
            return exports[base][name]
    return base


def import_graph(package_dir: Path = PACKAGE_DIR) -> Dict[str, Set[str]]:
    """Module -> the package's modules it imports (anywhere in its source)."""
    modules = module_files(package_dir)
    exports = {name: _lazy_exports(path) for name, path in modules.items() if path.name == "__init__.py"}
    graph: Dict[str, Set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module \
                    and node.module.split(".")[0] == "startnet":
                graph[name].update(_target(modules, exports, node.module, alias.name) for alias in node.names)
            elif isinstance(node, ast.Import):
                graph[name].update(alias.name for alias in node.names if alias.name.split(".")[0] == "startnet")
    for name in graph:
        graph[name] = {target for target in graph[name] if target in modules and target != name}
    return graph


def find_cycles(graph: Dict[str, Set[str]]) -> List[List[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components: List[List[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def reachable(graph: Dict[str, Set[str]], start: str) -> Set[str]:
    """Modules imported by ``start`` directly or through other modules."""
    seen: Set[str] = set()
    todo = list(graph.get(start, ()))
    while todo:
        node = todo.pop()
        if node not in seen:
            seen.add(node)
            todo.extend(graph.get(node, ()))
    return seen
