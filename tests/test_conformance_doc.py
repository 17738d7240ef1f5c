"""docs/conformance.md covers every service statement of the CDS Hooks 2.0 requirement sheet with real tests."""

from __future__ import annotations

import ast
import csv
import re

import pytest

from tests.helpers import FILES, ROOT

DOC = (ROOT / "docs" / "conformance.md").read_text()
ROWS = {m.group(1): m.group(2) for m in re.finditer(r"^\| (\d+) \| [A-Z ]+ \| .*? \| (.+) \|$", DOC, re.M)}
REQUIREMENTS = [
    r for r in csv.DictReader((FILES / "cds-hooks-2.0-requirements-inferno.csv").open()) if "Service" in r["actors"]
]


def _tests_in(path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")}
    return names


def _param_ids(test_file: str, name: str) -> set[str] | None:
    if (test_file, name) == ("test_openapi.py", "test_card_schema_rejects_what_the_spec_forbids"):
        from tests.test_openapi import CARD_VIOLATIONS

        return {p.id for p in CARD_VIOLATIONS}
    return None


def test_every_service_requirement_has_a_row():
    assert len(REQUIREMENTS) == 120
    assert set(ROWS) == {r["id"] for r in REQUIREMENTS}


@pytest.mark.parametrize("req_id", sorted(ROWS, key=int))
def test_each_row_names_existing_tests_or_says_why_not_applicable(req_id):
    cell = ROWS[req_id]
    if cell.startswith("N/A"):
        assert len(cell) > 10, "say why it does not apply"
        return
    references = re.findall(r"(test_[a-z0-9_]+\.py)::(test_[a-z0-9_]+)(?:\[([a-z0-9-]+)\])?", cell)
    if not references:
        assert "bench/" in cell, cell
        return
    for test_file, name, param in references:
        assert name in _tests_in(ROOT / "tests" / test_file), f"{test_file}::{name} does not exist"
        if param:
            assert param in (_param_ids(test_file, name) or set()), f"{test_file}::{name}[{param}] does not exist"
