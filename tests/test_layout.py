"""The import graph: no circles, and the folder rules of ARCHITECTURE.md ("Layout").

Imports are read with `ast` from every module of the four packages, wherever they stand: at the top, inside
functions (a deferred import is still a dependency, only hidden) and under `if TYPE_CHECKING:` (a circle that
exists only for the type checker is still a design smell: a small Protocol usually removes it). Only the implicit
import of a parent package (`import a.b` runs `a/__init__.py`) is not an edge: it would tie every module to its
package's re-exports.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("controlplane", "adapters", "dataplane", "probes")

# The shared vocabulary: what every part may import from controlplane/. These modules import nothing from
# adapters/, dataplane/ or probes/ (checked below), so reading them never pulls a part in.
VOCABULARY = frozenset(
    {
        "controlplane.domain",  # targets, observations, error classes, states
        "controlplane.errors",
        "controlplane.clock",
        "controlplane.config",  # the config models
        "controlplane.durations",
    }
)
# What dataplane/ reads of controlplane/ besides the vocabulary: its typed seams, the table and its source, the replication wire
# format, and (today) the decision log, metrics and the config loader. Listed so that a new reach is a decision.
DATAPLANE_READS = VOCABULARY | {
    "controlplane.seams",  # the small Protocols the data plane is handed (DataPlaneDeps, TableSource, ...)
    "controlplane.table",
    "controlplane.reasons",  # the one reason formatter (attempt lines say `state: reason` without doubling it)
    "controlplane.publisher",
    "controlplane.scaleout.replication_api",
    "controlplane.config_loader",
    "controlplane.decisions",
    "controlplane.metrics",
    "controlplane.api.metrics_endpoint",
    "controlplane.tracing",  # a span per request and per upstream attempt (OpenTelemetry; off: one None test)
}
# controlplane/ reaches dataplane/ only where a role is composed: the CLI commands, the demo, the roles.
COMPOSITION_PREFIXES = ("controlplane.commands", "controlplane.demo", "controlplane.cli", "controlplane.roles")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imported(node: ast.Import | ast.ImportFrom, here: str, is_pkg: bool) -> Iterator[str]:
    """The modules of ours one import statement names (`from a import b` names a.b when b is a module)."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:  # relative: resolve against this module's package
            base = here.split(".") if is_pkg else here.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)]
            mod = ".".join([*base, node.module] if node.module else base)
        else:
            mod = node.module or ""
        names = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in MODULES else mod for a in node.names]
    for name in names:
        while name and name not in MODULES:  # `import a.b.c` where c is a name inside a.b
            name = name.rpartition(".")[0]
        if name:
            yield name


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):  # every import: top level, in functions, under TYPE_CHECKING
            if isinstance(node, ast.Import | ast.ImportFrom):
                graph[mod].update(d for d in _imported(node, mod, path.name == "__init__.py") if d != mod)
    return graph


GRAPH = _graph()


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[frozenset[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp: set[str] = set()
            while True:
                w = stack.pop()
                on.discard(w)
                comp.add(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(frozenset(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _edges(src_prefix: str, dst_prefix: str) -> list[tuple[str, str]]:
    return sorted((m, d) for m, deps in GRAPH.items() if _under(m, src_prefix) for d in deps if _under(d, dst_prefix))


def _under(mod: str, prefix: str) -> bool:
    return mod == prefix or mod.startswith(prefix + ".")


def test_the_graph_is_read() -> None:
    # guards the checks below against passing on an empty graph
    assert "controlplane.breaker" in GRAPH and "controlplane.domain" in GRAPH["controlplane.breaker"]
    assert "adapters.sim.admin" in GRAPH["adapters.sim.simulator"]


def test_no_import_circles() -> None:
    found = [sorted(c) for c in _circles(GRAPH)]
    assert found == [], f"import circles: {found}"


def test_a_cycle_is_found_when_there_is_one() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _circles(graph) == [frozenset({"a", "b", "c"})]
    assert _circles({"a": {"b"}, "b": set()}) == []


def test_the_vocabulary_imports_no_part() -> None:
    for mod in sorted(VOCABULARY):
        assert mod in GRAPH, mod
        parts = sorted(d for d in GRAPH[mod] if not _under(d, "controlplane"))
        assert parts == [], f"{mod} imports {parts}"
        # and within controlplane/ only other vocabulary, so reading it never pulls the core in
        core = sorted(d for d in GRAPH[mod] if _under(d, "controlplane") and d not in VOCABULARY)
        assert core == [], f"{mod} imports {core}"


def test_adapters_import_only_the_vocabulary_from_controlplane() -> None:
    bad = [(m, d) for m, d in _edges("adapters", "controlplane") if d not in VOCABULARY]
    assert bad == []
    assert _edges("adapters", "dataplane") == [] and _edges("adapters", "probes") == []


def test_probes_import_adapters_and_the_vocabulary_only() -> None:
    bad = [(m, d) for m, d in _edges("probes", "controlplane") if d not in VOCABULARY]
    assert bad == []
    assert _edges("probes", "dataplane") == []


def test_dataplane_reads_only_the_vocabulary_and_the_table_side_of_controlplane() -> None:
    bad = [(m, d) for m, d in _edges("dataplane", "controlplane") if d not in DATAPLANE_READS]
    assert bad == []
    assert _edges("dataplane", "probes") == []


def test_controlplane_reaches_dataplane_only_where_roles_are_composed() -> None:
    bad = [(m, d) for m, d in _edges("controlplane", "dataplane") if not m.startswith(COMPOSITION_PREFIXES)]
    assert bad == []
