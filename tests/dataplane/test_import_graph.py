"""The data plane's import graph has no circles (type-only imports included: a Protocol replaces an import whose
only reason was a type), and the layers point one way: probes and adapters never import the data plane."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _graph(*packages: str) -> dict[str, set[str]]:
    files = [p for pkg in packages for p in (ROOT / pkg).rglob("*.py")]
    mods = {_module(p): p for p in files}
    return {m: {i for i in _imports(p) if i in mods and i != m} for m, p in mods.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        if m in path:
            return [*path[path.index(m) :], m]
        if m in done:
            return None
        path.append(m)
        for dep in sorted(graph[m]):
            if found := visit(dep):
                return found
        path.pop()
        done.add(m)
        return None

    for m in sorted(graph):
        if found := visit(m):
            return found
    return None


def test_the_data_plane_has_no_import_circles() -> None:
    assert _cycle(_graph("dataplane")) is None, " -> ".join(_cycle(_graph("dataplane")) or [])


def test_adapters_and_probes_never_import_the_data_plane() -> None:
    for pkg in ("adapters", "probes"):
        for path in (ROOT / pkg).rglob("*.py"):
            bad = sorted(i for i in _imports(path) if i == "dataplane" or i.startswith("dataplane."))
            assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
