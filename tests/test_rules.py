"""The rule files: the checker accepts rules/ and rejects every broken example with its file and line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cds_service.ruleset.loader import load_rules
from cds_service.ruleset.model import SUMMARY_LIMIT, longest_summary
from tests.helpers import FILES, ROOT

RULES = ROOT / "rules"
INVALID = FILES / "rules_invalid"
EXPECTED = yaml.safe_load((INVALID / "expected.yaml").read_text())
FAMILIES = {"dose", "combination", "co-prescribing", "repeat"}
REQUIRED_RULES = {
    "dose/high-ome",
    "dose/very-high-ome",
    "dose/ome-escalation",
    "combination/strong-and-weak-opioid",
    "combination/multiple-strong-opioids",
    "combination/duplicate-modified-release",
    "combination/immediate-release-fentanyl",
    "co-prescribing/opioid-gabapentinoid",
    "co-prescribing/opioid-benzodiazepine",
    "co-prescribing/opioid-z-drug",
    "co-prescribing/opioid-multiple-sedatives",
    "repeat/long-term-opioid",
    "repeat/review-overdue",
    "repeat/codeine-on-repeat",
    "repeat/early-request",
    "repeat/not-issued",
}


def _check(directory: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cds_service", "check-rules", str(directory), *extra],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_rules_passes_on_the_rules():
    result = _check(RULES)
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith("OK: ")


def test_every_required_rule_exists_once_in_its_family_folder():
    rule_set = load_rules(RULES)
    assert {r.id for r in rule_set.rules} >= REQUIRED_RULES
    for rule in rule_set.rules:
        assert rule.id.split("/")[0] in FAMILIES
        assert rule.path == RULES / f"{rule.id}.yaml"


def test_every_summary_fits_139_characters_at_its_widest():
    rule_set = load_rules(RULES)
    for rule in rule_set.rules:
        assert longest_summary(rule.card.summary, rule_set.settings) <= SUMMARY_LIMIT, rule.id


def test_every_setting_cites_its_source():
    assert all(s.source.strip() for s in load_rules(RULES).settings.values())


@pytest.mark.parametrize("case", sorted(EXPECTED))
def test_each_broken_example_is_rejected_with_file_and_line(tmp_path, case):
    expected = EXPECTED[case]
    directory = tmp_path / "rules"
    shutil.copytree(RULES, directory)
    target = directory / expected["place"]
    source = RULES / "dose/high-ome.yaml" if case == "duplicate-id" else INVALID / case
    target.write_text(source.read_text())
    result = _check(directory)
    assert result.returncode == 1
    assert f"{target}:{expected['line']}: " in result.stdout, result.stdout
    assert expected["message"] in result.stdout, result.stdout


def test_every_broken_example_is_listed():
    files = {p.name for p in INVALID.glob("*.yaml") if p.name != "expected.yaml"}
    assert files == set(EXPECTED) - {"duplicate-id"}


def test_all_problems_are_reported_at_once(tmp_path):
    directory = tmp_path / "rules"
    shutil.copytree(RULES, directory)
    for case in ("unknown-fact.yaml", "bad-indicator.yaml"):
        (directory / EXPECTED[case]["place"]).write_text((INVALID / case).read_text())
    result = _check(directory)
    assert "unknown fact" in result.stdout and "indicator must be one of" in result.stdout


def test_practice_settings_change_a_threshold_without_editing_rules(tmp_path):
    practice = tmp_path / "practice.yaml"
    practice.write_text("high_ome_mg_per_day:\n  value: 90\n  source: Practice policy (test)\n")
    rule_set = load_rules(RULES, practice)
    assert rule_set.settings["high_ome_mg_per_day"].value == 90
    assert _check(RULES, "--settings", str(practice)).returncode == 0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("high_mme:\n  value: 90\n  source: x\n", "unknown setting 'high_mme'"),
        ("high_ome_mg_per_day:\n  value: ninety\n  source: x\n", "must be a int"),
        ("high_ome_mg_per_day:\n  value: 90\n", "needs a source"),
    ],
)
def test_broken_practice_settings_are_rejected(tmp_path, text, message):
    practice = tmp_path / "practice.yaml"
    practice.write_text(text)
    result = _check(RULES, "--settings", str(practice))
    assert result.returncode == 1 and message in result.stdout and f"{practice}:" in result.stdout


def test_the_service_refuses_to_start_on_a_broken_rule_set(tmp_path):
    from cds_service.app import create_app
    from cds_service.errors import ConfigError
    from tests.conftest import dev_settings

    directory = tmp_path / "rules"
    shutil.copytree(RULES, directory)
    (directory / "dose/unknown-fact.yaml").write_text((INVALID / "unknown-fact.yaml").read_text())
    with pytest.raises(ConfigError, match="unknown fact"):
        create_app(dev_settings(tmp_path, rules_dir=directory))


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        # line 1-3: a good override; line 4: the broken one.
        ("high_ome_mg_per_day:\n  value: 90\n  source: x\nhigh_mme:\n  value: 90\n  source: x\n", 4, "unknown setting"),
        ("high_ome_mg_per_day:\n  value: 90\n  source: x\nvery_high_ome_mg_per_day: 300\n", 4, "needs a value"),
        ("high_ome_mg_per_day:\n  value: 90\n  source: x\n\nvery_high_ome_mg_per_day:\n  value: 300\n", 5, "source"),
    ],
)
def test_a_broken_practice_setting_is_reported_at_its_own_line(tmp_path, text, line, message):
    practice = tmp_path / "practice.yaml"
    practice.write_text(text)
    result = _check(RULES, "--settings", str(practice))
    assert result.returncode == 1
    assert f"{practice}:{line}: " in result.stdout and message in result.stdout, result.stdout


def test_a_broken_link_is_reported_at_its_own_line(tmp_path):
    directory = tmp_path / "rules"
    shutil.copytree(RULES, directory)
    links = directory / "links.yaml"
    lines = links.read_text().splitlines()
    links.write_text("\n".join([*lines, "plain-http:", "  label: Not secure", "  url: http://example.org/", ""]))
    result = _check(directory)
    assert result.returncode == 1
    assert f"{links}:{len(lines) + 1}: link 'plain-http' needs a label and an https url" in result.stdout, result.stdout


def test_a_problem_prints_as_path_line_message():
    from cds_service.ruleset.model import Problem

    assert (
        str(Problem(Path("rules/dose/x.yaml"), 4, "status must be one of"))
        == "rules/dose/x.yaml:4: status must be one of"
    )


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("cds_service.cards.render", "durable_rules_engine"),  # rendering a card never loads the C engine
        ("cds_service.ruleset.model", "yaml"),  # the model is pure
        ("cds_service.ruleset.model", "durable_rules_engine"),
        ("cds_service.ruleset.compiler", "yaml"),
        ("cds_service.ruleset.engine", "cds_service.ruleset.loader"),  # the engine never reads files
    ],
)
def test_each_rule_layer_module_imports_only_what_it_needs(module, absent):
    code = f"import sys, {module}; print({absent!r} in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"


def test_ruleset_error_holds_problem_objects(tmp_path):
    from cds_service.errors import RuleSetError
    from cds_service.ruleset.model import Problem

    directory = tmp_path / "rules"
    shutil.copytree(RULES, directory)
    (directory / "dose/bad-status.yaml").write_text((INVALID / "bad-status.yaml").read_text())
    with pytest.raises(RuleSetError) as caught:
        load_rules(directory)
    (problem,) = caught.value.problems
    assert problem == Problem(
        directory / "dose/bad-status.yaml", 4, "status must be one of ['draft', 'active', 'retired']"
    )


def test_every_setting_cites_a_document_not_an_issue():
    settings = yaml.safe_load((RULES / "settings.yaml").read_text())
    for name, entry in settings.items():
        source = entry["source"]
        assert "issue" not in source.lower().replace("issued", ""), name  # a source is a document, never an issue
        assert any(doc in source for doc in ("Opioids Aware", "NICE", "NHS", "UK opioid searches")), name
