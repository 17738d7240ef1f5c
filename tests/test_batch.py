"""Batch evaluation: every patient accounted for, the same answers as the live service, resume, Dask, report."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from cds_service.batch.run import Options, local_executor, plan_tasks, run
from cds_service.batch.synth import synthesise
from tests.helpers import FIXTURES, gunicorn_server

TODAY = "2026-11-23"


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cds_service", *args], capture_output=True, text=True, timeout=300)


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("export") / "bulk"
    synthesise(300, 11, out)
    return out


def test_every_patient_of_a_bulk_export_gets_one_record(export, tmp_path):
    result = _cli("evaluate", str(export), "--out", str(tmp_path / "out"), "--today", TODAY, "--workers", "2")
    assert result.returncode == 0, result.stderr
    records = _records(tmp_path / "out" / "records.jsonl")
    patients = [json.loads(line)["id"] for line in (export / "Patient.ndjson").read_text().splitlines()]
    assert sorted(r["patient"] for r in records) == sorted(patients)
    assert "300 records" in result.stdout and "(0 with errors)" in result.stdout


def test_a_broken_patient_gets_an_error_record_and_the_run_goes_on(tmp_path):
    good = json.loads((FIXTURES / "dose/high-ome/fires-180.json").read_text())
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.json").write_text(json.dumps(good))
    (folder / "broken.json").write_text("{ this is not json")
    result = _cli(
        "evaluate", str(folder), "--out", str(tmp_path / "out"), "--today", TODAY, "--workers", "1", "--fail-on-error"
    )
    records = _records(tmp_path / "out" / "records.jsonl")
    assert len(records) == 2 and result.returncode == 1
    broken = next(r for r in records if r["source"].endswith("broken.json"))
    assert broken["error"].startswith("cannot read") and broken["rules"] == []
    assert "dose/high-ome" in next(r for r in records if r["source"].endswith("good.json"))["rules"]


def test_resume_after_an_interruption_completes_without_duplicates(export, tmp_path):
    out = tmp_path / "out" / "records.jsonl"
    assert _cli("evaluate", str(export), "--out", str(out.parent), "--today", TODAY, "--workers", "2").returncode == 0
    complete = _records(out)
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:120]) + lines[120][:40])  # killed mid-write: 120 records and a cut line
    result = _cli("evaluate", str(export), "--out", str(out.parent), "--today", TODAY, "--workers", "2", "--resume")
    assert result.returncode == 0, result.stderr
    resumed = [r for r in (json.loads(x) for x in out.read_text().splitlines() if x.strip().endswith("}"))]
    assert len(resumed) == len(complete)
    assert len({r["patient"] for r in resumed}) == len(complete)
    assert sorted(json.dumps(r, sort_keys=True) for r in resumed) == sorted(
        json.dumps(r, sort_keys=True) for r in complete
    )


def test_interrupted_by_a_real_kill_then_resumed(export, tmp_path):
    import signal
    import time

    out = tmp_path / "out"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cds_service",
            "evaluate",
            str(export),
            "--out",
            str(out),
            "--today",
            TODAY,
            "--workers",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    records = out / "records.jsonl"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (not records.exists() or records.stat().st_size < 2000):
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert _cli("evaluate", str(export), "--out", str(out), "--today", TODAY, "--resume").returncode == 0
    lines = [x for x in records.read_text().splitlines() if x.strip()]
    patients = [json.loads(x)["patient"] for x in lines if x.endswith("}")]
    assert len(patients) == len(set(patients)) == 300


def test_local_workers_and_a_dask_local_cluster_give_identical_records(export, tmp_path):
    local = tmp_path / "local"
    dask = tmp_path / "dask"
    assert _cli("evaluate", str(export), "--out", str(local), "--today", TODAY, "--workers", "2").returncode == 0
    result = _cli("evaluate", str(export), "--out", str(dask), "--today", TODAY, "--dask-local")
    assert result.returncode == 0, result.stderr

    def canonical(path):
        return sorted(json.dumps(r, sort_keys=True) for r in _records(path / "records.jsonl"))

    assert canonical(local) == canonical(dask)


def test_pseudonymised_records_carry_no_patient_id(export, tmp_path):
    key = tmp_path / "key"
    key.write_bytes(b"a-practice-secret-key-0123456789")
    assert (
        _cli(
            "evaluate",
            str(export),
            "--out",
            str(tmp_path / "out"),
            "--today",
            TODAY,
            "--workers",
            "2",
            "--pseudonymise",
            str(key),
            "--format",
            "csv",
        ).returncode
        == 0
    )
    text = (tmp_path / "out" / "records.jsonl").read_text()
    assert "syn-11-" not in text
    assert (tmp_path / "out" / "records.csv").read_text().count("\n") == 301
    # The same pseudonym as the live service's log lines: HMAC-SHA256 of the id under the key, 16 hex digits.
    first_patient = json.loads((export / "Patient.ndjson").read_text().splitlines()[0])["id"]
    expected = hmac.new(key.read_bytes(), first_patient.encode(), hashlib.sha256).hexdigest()[:16]
    assert expected in {json.loads(line)["patient"] for line in text.splitlines()}


def test_batch_fires_exactly_the_rules_the_live_service_does(tmp_path):
    fixtures = sorted(p for p in FIXTURES.glob("*/*/*.json"))
    services = {
        "order-sign": "opioid-order-sign",
        "order-select": "opioid-order-select",
        "patient-view": "opioid-patient-view",
    }
    folder = tmp_path / "in"
    folder.mkdir()
    for i, path in enumerate(fixtures):
        shutil.copy(path, folder / f"{i:03d}.json")
    run(plan_tasks([folder], tmp_path / "work"), Options(today=TODAY), tmp_path / "records.jsonl", local_executor(1))
    batch = {Path(r["source"]).name: r["rules"] for r in _records(tmp_path / "records.jsonl")}
    (tmp_path / "live").mkdir()
    with gunicorn_server(tmp_path / "live", {"OPIOID_CDS_AUTH": "off", "OPIOID_CDS_TODAY": TODAY}) as server:
        for i, path in enumerate(fixtures):
            body = json.loads(path.read_text())
            cards = requests.post(f"{server.url}/cds-services/{services[body['hook']]}", json=body, timeout=10).json()[
                "cards"
            ]
            assert batch[f"{i:03d}.json"] == sorted({c["source"]["topic"]["code"] for c in cards}), path


def test_report_renders_in_chromium(export, tmp_path):
    out = tmp_path / "out"
    report = tmp_path / "report.html"
    assert (
        _cli(
            "evaluate", str(export), "--out", str(out), "--today", TODAY, "--workers", "2", "--report", str(report)
        ).returncode
        == 0
    )
    html = report.read_text()
    assert "<script" not in html and "https://" not in html and "<svg" in html
    assert "OME at or above 120 mg/day" in html and "Patients to invite for review" in html
    chromium = shutil.which("chromium")
    assert chromium, "make test installs Debian's chromium"
    artifacts = Path(__file__).resolve().parents[1] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    shot = artifacts / "batch-report.png"
    shot.unlink(missing_ok=True)
    subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--window-size=1000,1400",
            f"--screenshot={shot}",
            report.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    assert shot.stat().st_size > 20_000


def test_missing_input_is_a_clear_error(tmp_path):
    result = _cli("evaluate", str(tmp_path / "nope"), "--out", str(tmp_path / "out"))
    assert result.returncode == 2 and "no such input" in result.stderr
