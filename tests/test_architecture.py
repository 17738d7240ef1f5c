"""The layers stay what docs/architecture.md says: a pure core that neither serves HTTP nor reads files."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "cds_service"
CORE = ("clinical", "ruleset", "cards")
# The only core modules that read files: they load the data once, at start-up, and hand the core plain objects.
LOADERS = {
    "clinical/knowledge/loader.py",
    "clinical/knowledge/codelists.py",
    "ruleset/loader.py",
}
WORLD = {"flask", "werkzeug", "requests", "sqlalchemy", "gunicorn", "psycopg", "urllib3", "socket", "http"}
OUTER_LAYERS = {"app", "assess", "cli", "config", "wsgi", "protocol", "pages", "batch"}
FILE_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "files", "rglob", "glob", "iterdir"}


def _core_modules() -> list[Path]:
    return sorted(p for layer in CORE for p in (PACKAGE / layer).rglob("*.py"))


def _imports(tree: ast.AST, path: Path) -> set[str]:
    """Every module a file imports, and every ``module.name`` it imports from one (relative ones resolved)."""
    package = ["cds_service", *path.relative_to(PACKAGE).parent.parts]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found |= {f"{module}.{alias.name}" for alias in node.names}
    return found


def _calls(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            names.add(func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else "")
    return names


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_imports_no_web_database_or_network_library(path):
    imported = {name.split(".")[0] for name in _imports(ast.parse(path.read_text()), path)}
    assert not imported & WORLD, f"{path.relative_to(PACKAGE)} imports {sorted(imported & WORLD)}"


@pytest.mark.parametrize("path", _core_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_does_not_reach_up_into_protocol_pages_batch_or_app(path):
    outer = {
        name
        for name in _imports(ast.parse(path.read_text()), path)
        if name.startswith("cds_service.") and name.split(".")[1] in OUTER_LAYERS
    }
    assert not outer, f"{path.relative_to(PACKAGE)} imports {sorted(outer)}"


def _pure_modules() -> list[Path]:
    return [p for p in _core_modules() if p.relative_to(PACKAGE).as_posix() not in LOADERS]


@pytest.mark.parametrize("path", _pure_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_reads_no_files_unless_it_is_a_loader(path):
    relative = path.relative_to(PACKAGE).as_posix()
    tree = ast.parse(path.read_text())
    assert not _calls(tree) & FILE_CALLS, f"{relative} calls {sorted(_calls(tree) & FILE_CALLS)}"
    assert not {n for n in _imports(tree, path) if n in ("importlib.resources", "yaml", "csv")}, relative


def test_declared_loaders_exist():
    assert all((PACKAGE / name).is_file() for name in LOADERS)


def test_importing_the_core_does_not_import_flask():
    code = (
        "import sys, cds_service.clinical.ome, cds_service.clinical.facts, cds_service.clinical.taper, "
        "cds_service.cards.render; print(sorted(m for m in ('flask', 'requests', 'sqlalchemy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
