"""The call logic is sans-IO: its modules import no asyncio (nor ssl, sockets or a clock),
take no `await`, and reach the IO parts of the engine only through actions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sipmask.b2bua

PACKAGE = Path(sipmask.b2bua.__file__).parent
CALL_LOGIC = ("actions", "call", "call_setup", "core", "engine", "records", "relay",
              "session_timers", "timers")
"""The modules of the call logic (`shell.py` performs what they ask)."""
IO_MODULES = ("asyncio", "ssl", "socket", "selectors", "time", "concurrent")
SHELL_SIDE = ("shell", "chat", "probing", "overload", "dns", "anchoring")


def imports(tree: ast.Module) -> list[tuple[str, list[str]]]:
    """(module, names) of every import statement, relative ones resolved in the package."""
    found: list[tuple[str, list[str]]] = []
    typing_only = {id(n) for block in ast.walk(tree) if isinstance(block, ast.If)
                   and ast.unparse(block.test) == "TYPE_CHECKING"
                   for n in ast.walk(block)}  # type-only imports never run
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = ["sipmask", "b2bua"][: 2 - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            found.append((module, [alias.name for alias in node.names]))
    return found


@pytest.mark.parametrize("name", CALL_LOGIC)
def test_call_logic_imports_no_io(name: str) -> None:
    tree = ast.parse((PACKAGE / f"{name}.py").read_text())
    for module, names in imports(tree):
        top = module.split(".")[0]
        assert top not in IO_MODULES, f"{name}.py imports {module}"
        assert not any(module == f"sipmask.b2bua.{side}" for side in SHELL_SIDE), (
            f"{name}.py imports the shell side ({module})")
        if module.startswith("sipmask.transport"):  # a pure helper only, no endpoint
            assert names == ["format_hostport"], f"{name}.py imports {module}: {names}"
    awaits = [n for n in ast.walk(tree) if isinstance(n, (ast.Await, ast.AsyncFunctionDef))]
    assert not awaits, f"{name}.py awaits (line {awaits[0].lineno})"


def test_the_resolver_finds_relative_imports() -> None:
    """The check above sees what it must refuse (it can fail)."""
    tree = ast.parse((PACKAGE / "shell.py").read_text())
    modules = [module for module, _ in imports(tree)]
    assert "asyncio" in modules and "sipmask.b2bua.engine" in modules
    assert "sipmask.transport.endpoint" in modules
