"""The opioid-cds command line, run as a real process."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers import FILES, FIXTURES

OME_KEYS = {"profile", "total_ome_mg_per_day", "total_ome_mg_per_day_min", "complete", "orders"}
ORDER_KEYS = {
    "id",
    "display",
    "system",
    "code",
    "ingredient",
    "route",
    "classes",
    "units_per_day_min",
    "units_per_day_max",
    "ome_mg_per_day_min",
    "ome_mg_per_day_max",
    "factor",
    "factor_source",
    "counted",
    "reason",
}


def _run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cds_service", *args], input=stdin, capture_output=True, text=True, timeout=60
    )


def test_ome_json_of_a_cds_hooks_request_has_the_documented_shape():
    result = _run("ome", "--json", str(FIXTURES / "requests" / "order-sign.json"))
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) >= OME_KEYS and all(set(o) >= ORDER_KEYS for o in data["orders"])
    # morphine 60 mg MR bd (120) + fentanyl 50 micrograms/hour patch (50 x 2.4 = 120)
    assert data["profile"] == "uk" and data["total_ome_mg_per_day"] == 240.0 and data["complete"] is True
    assert [o["id"] for o in data["orders"]] == ["draft-morphine", "rx-fentanyl"]


def test_ome_reads_one_medication_request_from_stdin_under_a_profile():
    text = (FILES / "cdc-mme" / "example-rec-05-mme-greater-than-fifty-context.json").read_text()
    result = _run("ome", "-", "--json", "--profile", "cdc-2022", stdin=text)
    assert json.loads(result.stdout)["total_ome_mg_per_day"] == 180.0


def test_ome_table_for_people():
    result = _run("ome", str(FIXTURES / "requests" / "order-sign.json"))
    assert result.returncode == 0
    assert "Morphine 60mg modified-release tablets" in result.stdout
    assert "Total oral morphine equivalent (uk): 240 mg/day" in result.stdout


def test_ome_says_when_the_total_is_incomplete():
    order = {
        "resourceType": "MedicationRequest",
        "id": "x",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"text": "Morphine 10mg tablets"},
        "dosageInstruction": [{"text": "as directed"}],
    }
    result = _run("ome", "-", stdin=json.dumps(order))
    assert "INCOMPLETE" in result.stdout and 'not counted: dose "as directed" cannot be quantified' in result.stdout


def test_ome_bad_input_is_a_clear_error():
    assert _run("ome", "/no/such/file.json").returncode == 2
    result = _run("ome", "-", stdin="not json")
    assert result.returncode == 2 and "cannot read" in result.stderr
    assert _run("ome", "-", "--profile", "nope", stdin="{}").returncode == 2


def test_taper_json_and_table():
    path = str(FIXTURES / "dose/high-ome/fires-180.json")
    result = _run("taper", path, "--start", "2026-12-01", "--format", "json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["original_ome_mg_per_day"] == 180.0 and plan["steps"][-1]["total_ome_mg_per_day"] == 0
    table = _run("taper", path, "--start", "2026-12-01", "--pace", "slow")
    assert table.stdout.startswith("Week  1 (2026-12-01): morphine modified-release tablets 60 mg three times a day")
    html = _run("taper", path, "--start", "2026-12-01", "--format", "html")
    assert "<svg" in html.stdout


def test_taper_with_nothing_to_taper_says_so():
    result = _run("taper", str(FIXTURES / "co-prescribing/opioid-benzodiazepine/silent-no-opioid.json"))
    assert result.returncode == 1 and "no current opioid" in result.stderr
