from __future__ import annotations

from pathlib import Path

import pytest

from cds_service.app import create_app
from cds_service.config import Settings, load_settings
from tests.helpers import BASE_URL, SigningKey, write_trust


def dev_settings(tmp_path: Path, **over: object) -> Settings:
    env = {"OPIOID_CDS_AUTH": "off", "OPIOID_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/test.sqlite3"}
    return load_settings(env, **over)


@pytest.fixture
def app(tmp_path: Path):
    return create_app(dev_settings(tmp_path))


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture(scope="session")
def es384_key() -> SigningKey:
    return SigningKey.generate("ES384")


@pytest.fixture(scope="session")
def rs384_key() -> SigningKey:
    return SigningKey.generate("RS384")


@pytest.fixture
def secure_settings(tmp_path: Path, es384_key: SigningKey, rs384_key: SigningKey) -> Settings:
    trust = write_trust(tmp_path, [es384_key, rs384_key])
    env = {
        "OPIOID_CDS_AUTH": "required",
        "OPIOID_CDS_PUBLIC_BASE_URL": BASE_URL,
        "OPIOID_CDS_TRUSTED_ISSUERS": str(trust),
        "OPIOID_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/secure.sqlite3",
    }
    return load_settings(env)


@pytest.fixture
def secure_client(secure_settings: Settings):
    return create_app(secure_settings).test_client()


@pytest.fixture(scope="session")
def knowledge():
    """The committed medication knowledge (products, factors), loaded once for the whole run."""
    from cds_service.clinical.knowledge.loader import load_knowledge

    return load_knowledge()


@pytest.fixture(scope="session")
def codes():
    """The SNOMED CT code sets the facts need, loaded once for the whole run."""
    from cds_service.assess import clinical_codes

    return clinical_codes()
