"""The wheel: built from this checkout, installed in a fresh venv outside the repository, run from elsewhere.

The fresh venv borrows the test venv's installed dependencies (a ``.pth`` line naming its site-packages, written
after the wheel is installed so pip never sees them) so that nothing is downloaded; the wheel is built without
build isolation (hatchling is in the test extras) and installed with ``--no-deps --no-index``. The checkout's
editable ``cds_service`` cannot leak in: a site-packages named in a ``.pth`` line is only put on ``sys.path``, its
own ``.pth`` files (the editable install's) are not run, and the tests check where ``cds_service`` came from.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

import cds_service
from cds_service.resources import default_rules_dir
from tests.helpers import FIXTURES, ROOT

pytestmark = pytest.mark.packaging

DATA = ROOT / "cds_service" / "clinical" / "knowledge" / "data"


@dataclass(frozen=True)
class Installed:
    wheel: Path
    venv: Path
    workdir: Path  # outside the repository: every command runs here

    def run(self, program: str, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "OPIOID_CDS_", "VIRTUAL_ENV"))}
        return subprocess.run(
            [str(self.venv / "bin" / program), *args],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )


def _check(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, f"{command}\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    started = time.monotonic()
    base = tmp_path_factory.mktemp("packaging")
    assert not base.resolve().is_relative_to(ROOT)
    dist, venv, workdir = base / "dist", base / "venv", base / "work"
    workdir.mkdir()
    pip = [sys.executable, "-m", "pip"]
    _check([*pip, "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(dist), str(ROOT)])
    (wheel,) = dist.glob("opioid_cds-*.whl")
    _check([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    _check([*pip, "--python", str(python), "install", "--quiet", "--no-deps", "--no-index", str(wheel)])
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    ours = sorted({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
    (Path(site) / "_test_venv_dependencies.pth").write_text("\n".join(ours) + "\n")
    print(f"wheel built and installed in {time.monotonic() - started:.1f} s")
    return Installed(wheel, venv, workdir)


def test_the_wheel_holds_every_rules_file_inside_the_package_and_the_data_csvs(installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    rules = {f"cds_service/{p.relative_to(ROOT).as_posix()}" for p in (ROOT / "rules").rglob("*") if p.is_file()}
    assert rules and rules <= names
    assert {"cds_service/rules/settings.yaml", "cds_service/rules/links.yaml"} <= names
    assert not any(name.startswith("rules/") for name in names)  # only inside the package
    csvs = {f"cds_service/clinical/knowledge/data/{p.name}" for p in DATA.glob("*.csv")}
    assert len(csvs) >= 12 and csvs <= names


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    result = installed.run("python", "-c", "import cds_service, json; print(json.dumps(cds_service.__file__))")
    assert result.returncode == 0, result.stderr
    where = Path(json.loads(result.stdout)).resolve()
    assert where.is_relative_to(installed.venv.resolve()) and not where.is_relative_to(ROOT)


def test_check_rules_from_outside_the_repo_checks_the_rules_inside_the_installed_package(installed):
    result = installed.run("opioid-cds", "check-rules")
    assert result.returncode == 0, result.stdout + result.stderr
    match = re.fullmatch(r"OK: (\d+) active rules, \d+ settings in (.+)", result.stdout.strip())
    assert match, result.stdout
    checked = Path(match[2]).resolve()
    assert checked.is_relative_to(installed.venv.resolve()) and checked.parts[-2:] == ("cds_service", "rules")
    assert int(match[1]) == 17  # 16 rules + dose/ome-incomplete (issue #10 item 5)
    shipped = sorted(p.relative_to(checked).as_posix() for p in checked.rglob("*") if p.is_file())
    in_repo = sorted(p.relative_to(ROOT / "rules").as_posix() for p in (ROOT / "rules").rglob("*") if p.is_file())
    assert shipped == in_repo


def test_ome_of_a_request_file_outside_the_repo_is_the_hand_worked_total(installed):
    request = shutil.copy(FIXTURES / "requests" / "order-sign.json", installed.workdir / "request.json")
    result = installed.run("opioid-cds", "ome", "--json", Path(request).name)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    # By hand from order-sign.json and cds_service/clinical/knowledge/data/ome_factors.csv (profile uk):
    #   draft-morphine: Morphine 60mg modified-release tablets, ONE tablet TWICE a day, oral
    #     60 mg x 2 = 120 mg/day; row "uk,morphine,oral,...,1,mg": 120 x 1 = 120 mg/day OME
    #   rx-fentanyl (prefetch): Fentanyl 50micrograms/hour transdermal patches
    #     50 micrograms/h x 24 h = 1200 micrograms = 1.2 mg delivered per day;
    #     row "uk,fentanyl,transdermal,...,100,mg delivered per day": 1.2 x 100 = 120 mg/day OME
    #   total: 120 + 120 = 240 mg/day
    assert [(o["id"], o["factor"], o["ome_mg_per_day_max"]) for o in data["orders"]] == [
        ("draft-morphine", 1, 120),
        ("rx-fentanyl", 100, 120),
    ]
    assert data["total_ome_mg_per_day"] == 240 and data["complete"] is True


def test_the_installed_version_is_the_one_in_pyproject(installed):
    result = installed.run("python", "-c", "import cds_service; print(cds_service.__version__)")
    assert result.returncode == 0, result.stderr
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert result.stdout.strip() == project["version"] == cds_service.__version__
    assert installed.wheel.name.startswith(f"opioid_cds-{project['version']}-")


def test_the_checkout_reads_the_repository_rules():
    assert default_rules_dir() == ROOT / "rules"


def test_the_newest_changes_heading_is_the_package_version_and_about_shows_it(client):
    headings = re.findall(r"^## (\d+\.\d+\.\d+)\b", (ROOT / "CHANGES.md").read_text(encoding="utf-8"), re.MULTILINE)
    assert headings and headings[0] == cds_service.__version__
    page = client.get("/about")
    assert page.status_code == 200
    assert f"opioid-cds {cds_service.__version__}" in page.get_data(as_text=True)


def test_openapi_document_version_is_the_package_version():
    document = yaml.safe_load((ROOT / "openapi.yaml").read_text(encoding="utf-8"))
    assert document["info"]["version"] == cds_service.__version__
