"""The JSON Schema of a rule file: committed as generated, valid, and accepting every shipped rule."""

from __future__ import annotations

import json

import jsonschema
import pytest
import yaml

from cds_service.clinical.facts import FACTS
from cds_service.ruleset.loader import rule_files
from cds_service.ruleset.model import CARD_KEYS, INDICATORS, OPERATORS, STATUSES, SUGGESTIONS, TOP_KEYS
from cds_service.ruleset.schema import SCHEMA_FILE, placeholder_table, rule_schema, schema_text, vocabulary_table
from tests.helpers import FILES, ROOT

RULES = ROOT / "rules"
INVALID = FILES / "rules_invalid"
FIRST_LINE = f"# yaml-language-server: $schema=../{SCHEMA_FILE}"


def _as_editor_reads(text: str):
    """The document as a YAML 1.2 editor sees it: an unquoted 2026-11-23 is a string, not a date."""
    return json.loads(json.dumps(yaml.safe_load(text), default=str))


def _validator():
    return jsonschema.Draft202012Validator(json.loads((RULES / SCHEMA_FILE).read_text()))


def test_the_committed_schema_is_the_generated_one():
    assert (RULES / SCHEMA_FILE).read_text() == schema_text()


def test_the_schema_is_a_valid_draft_2020_12_schema():
    jsonschema.Draft202012Validator.check_schema(rule_schema())
    assert rule_schema()["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", rule_files(RULES), ids=lambda p: p.stem)
def test_every_shipped_rule_validates_against_the_schema(path):
    errors = [e.message for e in _validator().iter_errors(_as_editor_reads(path.read_text()))]
    assert errors == []


@pytest.mark.parametrize("path", rule_files(RULES), ids=lambda p: p.stem)
def test_every_rule_file_names_the_schema_on_its_first_line(path):
    assert path.read_text().splitlines()[0] == FIRST_LINE


def test_the_schema_enumerates_the_model_vocabulary():
    schema = rule_schema()
    definitions = schema["$defs"]
    compared = {
        f for name, d in definitions.items() if name.endswith("_comparison") for f in d["properties"]["fact"]["enum"]
    }
    assert compared == set(FACTS)
    summary_only = {
        f
        for name, d in definitions.items()
        if name.startswith("summary_") and name.endswith("_comparison")
        for f in d["properties"]["fact"]["enum"]
    }
    assert summary_only == {name for name, spec in FACTS.items() if spec.kind == "summary"}
    assert set(definitions["number_comparison"]["properties"]) - {"fact"} == set(OPERATORS)
    assert set(definitions["bool_comparison"]["properties"]) - {"fact"} == {"eq", "neq"}
    assert schema["required"] == list(TOP_KEYS)
    assert schema["properties"]["status"]["enum"] == list(STATUSES)
    card = schema["properties"]["card"]["properties"]
    assert set(card) == set(CARD_KEYS)
    assert card["indicator"]["enum"] == list(INDICATORS)
    assert card["suggestions"]["items"]["enum"] == list(SUGGESTIONS)


@pytest.mark.parametrize(
    "case",
    [
        "bad-indicator.yaml",
        "bad-operator.yaml",
        "bad-status.yaml",
        "bool-compared-with-gte.yaml",
        "empty-description.yaml",
        "missing-card-field.yaml",
        "missing-provenance-field.yaml",
        "missing-provenance.yaml",
        "not-mixes-orders.yaml",
        "not-over-order.yaml",
        "reference-not-text.yaml",
        "unknown-fact-deep.yaml",
        "unknown-fact.yaml",
        "unknown-suggestion.yaml",
        "unknown-top-key.yaml",
    ],
)
def test_a_broken_example_the_schema_can_see_is_refused_by_it(case):
    assert list(_validator().iter_errors(_as_editor_reads((INVALID / case).read_text())))


def _between(text: str, start: str, end: str) -> str:
    assert text.count(start) == 1 and text.count(end) == 1
    return text.split(start, 1)[1].split(end, 1)[0].lstrip("\n")


def test_the_readme_fact_table_is_the_generated_one():
    readme = (RULES / "README.md").read_text()
    assert _between(readme, "<!-- vocabulary: generated, do not edit -->", "<!-- end vocabulary -->") == (
        vocabulary_table()
    )


def test_the_readme_placeholder_table_is_the_generated_one():
    readme = (RULES / "README.md").read_text()
    assert _between(readme, "<!-- placeholders: generated, do not edit -->", "<!-- end placeholders -->") == (
        placeholder_table()
    )


def test_the_vocabulary_table_has_one_row_per_fact_in_order():
    rows = vocabulary_table().splitlines()[2:]
    assert [row.split("`")[1] for row in rows] == list(FACTS)
    assert all(row.count(" | ") == 3 for row in rows)  # a '|' inside a description is escaped


def test_check_rules_prints_the_vocabulary_and_the_schema():
    import subprocess
    import sys

    def run(flag):
        command = [sys.executable, "-m", "cds_service", "check-rules", flag]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=True).stdout

    assert run("--vocabulary") == vocabulary_table()
    assert run("--schema") == (RULES / SCHEMA_FILE).read_text()
