"""HTTP handlers get what they need through Provide: no edge module looks the container up."""

from __future__ import annotations

import ast
from pathlib import Path

import entrypoints.http

HTTP = Path(entrypoints.http.__file__).parent
# The app factory builds the container and keeps it on app.state (tests read it there);
# dependencies.py turns its providers into Litestar's Provide. Nothing else may touch it.
WIRING = {"app.py", "dependencies.py"}


def container_lookups(source: str) -> list[str]:
    """Each place `source` reaches for the container: `.container`, `["container"]`, or
    an import of the composition root."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "container":
            found.append(f"line {node.lineno}: .container")
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
            if node.slice.value == "container":
                found.append(f"line {node.lineno}: ['container']")
        elif isinstance(node, ast.ImportFrom) and node.module == "entrypoints.container":
            found.append(f"line {node.lineno}: imports entrypoints.container")
        elif isinstance(node, ast.Import) and any(
            alias.name == "entrypoints.container" for alias in node.names
        ):
            found.append(f"line {node.lineno}: imports entrypoints.container")
    return found


def test_the_scan_sees_every_way_of_reaching_the_container() -> None:
    source = (
        "from entrypoints.container import Container\n"
        "import entrypoints.container\n"
        "def handler(request):\n"
        "    request.app.state.container.repository()\n"
        "    request.app.state['container']\n"
        "    getattr(request.app.state, 'x')\n"
    )
    assert sorted(hit.split(":", 1)[0] for hit in container_lookups(source)) == [
        "line 1",
        "line 2",
        "line 4",
        "line 5",
    ]


def test_no_handler_module_looks_the_container_up() -> None:
    modules = sorted(path for path in HTTP.rglob("*.py") if path.name not in WIRING)
    assert HTTP / "dashboard.py" in modules and HTTP / "operations.py" in modules
    offenders = {
        path.relative_to(HTTP).as_posix(): hits
        for path in modules
        if (hits := container_lookups(path.read_text(encoding="utf-8")))
    }
    assert offenders == {}, f"handlers must take dependencies through Provide: {offenders}"


def test_only_the_app_factory_may_name_state_container() -> None:
    named = {
        path.relative_to(HTTP).as_posix()
        for path in HTTP.rglob("*.py")
        if "state.container" in path.read_text(encoding="utf-8")
    }
    assert named <= {"app.py"}, named
