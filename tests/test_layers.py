"""Layers point down only (DESIGN.md): a check over the import graph of the package, read
from the source (type-only imports under `if TYPE_CHECKING:` included: they are arrows too,
and a lazy import inside a function is one as well)."""

from __future__ import annotations

import ast
from pathlib import Path

import sipmask

ROOT = Path(sipmask.__file__).parent


def arrows() -> dict[str, set[str]]:
    """module -> the sipmask modules it imports (dotted names)."""
    graph: dict[str, set[str]] = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        package = parts if path.name == "__init__.py" else parts[:-1]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("sipmask")}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1]
                    module = ".".join([*base, *([node.module] if node.module else [])])
                else:
                    module = node.module or ""
                if module.startswith("sipmask"):
                    found.add(module)
                    found |= {f"{module}.{a.name}" for a in node.names}  # `from . import x`
        graph[name] = found
    return graph


def offenders(layer: str, forbidden: tuple[str, ...]) -> list[str]:
    """`module -> forbidden layer` for each module of `layer` that imports from one."""
    return sorted({
        f"{module} -> {f}"
        for module, targets in arrows().items()
        if module == layer or module.startswith(layer + ".")
        for target in targets
        for f in forbidden
        if target == f or target.startswith(f + ".")
    })


def test_the_graph_is_read() -> None:
    graph = arrows()
    assert "sipmask.b2bua.config" not in graph and "sipmask.config" in graph
    assert "sipmask.b2bua.engine" in graph["sipmask.b2bua.shell"]
    assert offenders("sipmask.server", ("sipmask.b2bua",))  # it does use the engine


def test_sip_imports_nothing_above_it() -> None:
    assert offenders("sipmask.sip", ("sipmask.transport", "sipmask.b2bua", "sipmask.config",
                                     "sipmask.store", "sipmask.webhooks", "sipmask.api",
                                     "sipmask.server")) == []


def test_transport_imports_nothing_above_it() -> None:
    assert offenders("sipmask.transport", ("sipmask.b2bua", "sipmask.config",
                                           "sipmask.webhooks", "sipmask.api",
                                           "sipmask.server")) == []


def test_b2bua_imports_no_webhooks_api_or_server() -> None:
    assert offenders("sipmask.b2bua", ("sipmask.webhooks", "sipmask.api", "sipmask.server",
                                       "sipmask.supervisor", "sipmask.node",
                                       "sipmask.cli")) == []


def test_b2bua_imports_nothing_from_config() -> None:
    """The b2bua layer owns its settings (`b2bua/settings.py`); `config` composes them into
    `Config`, never the other way round (issue 12)."""
    assert offenders("sipmask.b2bua", ("sipmask.config",)) == []
