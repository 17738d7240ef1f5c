"""The printable taper page: served by the live service, rendered by headless Chromium (screenshot kept in
test-artifacts/), A4 when printed, no script and no external assets."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import date

import pytest
import requests

from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.ome import compute_ome
from cds_service.clinical.taper import link_params, regimens_from_ome
from tests.helpers import ROOT, gunicorn_server
from tests.ome_helpers import mr

pytestmark = pytest.mark.integration
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with gunicorn_server(tmp_path_factory.mktemp("taper-page"), {"OPIOID_CDS_AUTH": "off"}) as live:
        yield live


def _query() -> list[tuple[str, str]]:
    knowledge = load_knowledge()
    orders = [
        mr(code="322696002", dosage="ONE tablet TWICE a day", id="mr"),
        mr(code="322691007", dosage="ONE capsule up to four times a day when required", id="prn"),
    ]
    ome = compute_ome([(o, "existing") for o in orders], {}, knowledge)
    regimens, _ = regimens_from_ome(ome, knowledge)
    return link_params(regimens, "mr-first", "standard", date(2026, 12, 1))


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    assert found, "headless Chromium is needed: `make test` installs Debian's chromium package"
    return found


def test_page_is_self_contained(server):
    response = requests.get(f"{server.url}/taper", params=_query(), timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/html")
    html = response.text
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)="https?://', html), "no external assets"
    assert "<svg" in html and "Week 1" in html and "Overdose risk" in html
    assert "mr" not in re.findall(r"o=([^&\"]*)", response.url)  # doses and codes only


def test_page_renders_in_chromium_with_a_screenshot(server, tmp_path):
    from urllib.parse import urlencode

    url = f"{server.url}/taper?{urlencode(_query())}"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "taper-page.png"
    shot.unlink(missing_ok=True)
    profile = tmp_path / "chromium-profile"
    subprocess.run(
        [_chromium(), *CHROMIUM, f"--user-data-dir={profile}", "--window-size=900,1400", f"--screenshot={shot}", url],
        check=True,
        capture_output=True,
        timeout=90,
    )
    assert shot.exists() and shot.stat().st_size > 20_000
    dom = subprocess.run(
        [_chromium(), *CHROMIUM, f"--user-data-dir={profile}", "--dump-dom", url],
        check=True,
        capture_output=True,
        text=True,
        timeout=90,
    ).stdout
    assert "Your opioid reduction plan" in dom and "oxycodone modified-release tablets" in dom
    pdf = tmp_path / "plan.pdf"
    subprocess.run(
        [_chromium(), *CHROMIUM, f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}", url],
        check=True,
        capture_output=True,
        timeout=90,
    )
    media = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf.read_bytes())
    assert media, "a PDF page size"
    width, height = float(media.group(1)), float(media.group(2))
    assert abs(width - 595.3) < 2 and abs(height - 841.9) < 2  # A4 in points


@pytest.mark.parametrize(
    "query", ["o=nope", "o=36127711000001103:60:2:0&strategy=fast", "o=36127711000001103:60:2:0&start=soon", ""]
)
def test_bad_links_are_400_with_an_operation_outcome(server, query):
    response = requests.get(f"{server.url}/taper?{query}", timeout=10)
    assert response.status_code == 400
    assert response.json()["resourceType"] == "OperationOutcome"
