"""The layout's contract (DESIGN.md, issue 18): dependencies point one way.

flows/ (Prefect flows, deployment helpers, the CLI) may import warehouse/ and expectations/;
warehouse/ (the library) never imports flows/ or Prefect; expectations/ (the GX suites and their
adapter) never imports flows/ or Prefect. Checked on every import statement of every module,
including imports inside functions: a lazy import is still a dependency. (The read-only CLI
path not loading Prefect, GX or pandas is checked by running it: tests/unit/test_cli.py.)
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "warehouse": ("flows", "prefect", "prefect_dask"),
    "expectations": ("flows", "prefect", "prefect_dask"),
}


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import statement in the file, at any depth."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def violations(package: str) -> list[str]:
    out = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imported_modules(path):
            if module.split(".")[0] in FORBIDDEN[package]:
                out.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_the_library_and_the_suites_never_import_the_orchestration(package):
    assert violations(package) == []


def test_the_contract_check_finds_a_forbidden_import(tmp_path, monkeypatch):
    """The check can fail: a lazy Prefect import inside a function is found."""
    module = tmp_path / "warehouse" / "x.py"
    module.parent.mkdir()
    module.write_text("def f():\n    from prefect.blocks.system import Secret\n    return Secret\n")
    monkeypatch.setattr(__import__(__name__, fromlist=["ROOT"]), "ROOT", tmp_path)
    assert violations("warehouse") == ["warehouse/x.py:2 imports prefect.blocks.system"]


def test_flows_holds_only_orchestration():
    """flows/ keeps the Prefect flows and tasks, deployment helpers and the CLI entry point; a
    module that imports no Prefect anywhere (and is not the CLI) belongs in warehouse/."""
    allowed_without_prefect = {"__init__.py", "cli.py"}
    for path in sorted((ROOT / "flows").rglob("*.py")):
        if path.name in allowed_without_prefect:
            continue
        modules = {m.split(".")[0] for _, m in imported_modules(path)}
        assert "prefect" in modules, f"{path.relative_to(ROOT)} imports no Prefect: move it to warehouse/"
