"""The shipped development issuer for the public CDS Hooks Sandbox (deploy/cds-hooks-sandbox/).

The Sandbox signs with a ``kid`` from its published JWK Set and a ``jku`` that may be unreachable; the pinned set
must be used and the ``jku`` never fetched. We cannot sign as the Sandbox (we hold no private key), so the positive
path is shown by the pinned key being chosen: a token forged with the Sandbox's ``kid`` and another key fails on
its signature, not on fetching or allow-listing the ``jku``.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from cds_service.config import load_settings
from cds_service.errors import Unauthorized
from cds_service.protocol import auth
from cds_service.protocol.auth import JwtVerifier, load_trusted_issuers
from tests.helpers import SigningKey

SANDBOX = Path(__file__).resolve().parent.parent / "deploy" / "cds-hooks-sandbox"
ISS = "https://sandbox.cds-hooks.org"
ES384_KID = "44823f3d-0b01-4a6c-a80e-b9d3e8a7226f"  # deploy/cds-hooks-sandbox/jwks.json, first key
ES256_KID = "d9cd3c4f-eb08-4304-b973-44f352fd2ca2"  # second key
AUD = "https://cds.example.org/cds-services/opioid-order-sign"


class _NoReplayStore:
    def remember_jti(self, iss, jti, expires, now=None):
        return True


def _verifier(tmp_path) -> JwtVerifier:
    settings = load_settings(
        {
            "OPIOID_CDS_AUTH": "required",
            "OPIOID_CDS_PUBLIC_BASE_URL": "https://cds.example.org",
            "OPIOID_CDS_TRUSTED_ISSUERS": str(SANDBOX / "issuers.yaml"),
            "OPIOID_CDS_JWT_ALGORITHMS": "ES384,ES256",
            "OPIOID_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/t.sqlite3",
        }
    )
    return JwtVerifier(settings, load_trusted_issuers(SANDBOX / "issuers.yaml"), _NoReplayStore())


def test_sandbox_issuer_file_loads_with_both_published_keys():
    issuer = load_trusted_issuers(SANDBOX / "issuers.yaml")[ISS]
    assert issuer.jwks_file is not None and issuer.jwks_file.is_file()
    assert issuer.jku == ()  # no jku is ever trusted for the Sandbox: the pinned set only
    cache = auth.JwksCache()
    assert [k.usable_for("ES384") for k in cache.keys_for(str(issuer.jwks_file), ES384_KID, time.time())] == [True]
    assert [k.usable_for("ES256") for k in cache.keys_for(str(issuer.jwks_file), ES256_KID, time.time())] == [True]


@pytest.mark.parametrize(
    ("alg", "kid", "curve"), [("ES384", ES384_KID, ec.SECP384R1()), ("ES256", ES256_KID, ec.SECP256R1())]
)
def test_token_with_the_sandbox_kid_and_an_unreachable_jku_is_checked_against_the_pinned_key(
    tmp_path, monkeypatch, alg, kid, curve
):
    def no_network(*_args, **_kwargs):
        raise AssertionError("the jku must not be fetched when the kid is pinned")

    monkeypatch.setattr(auth.requests, "get", no_network)
    forger = SigningKey(kid, alg, ec.generate_private_key(curve))
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "iat": now, "exp": now + 240, "jti": str(uuid.uuid4())}
    token = forger.sign(claims, headers={"jku": "https://sandbox.cds-hooks.org/.well-known/jwks.json"})
    with pytest.raises(Unauthorized) as refused:
        _verifier(tmp_path).verify(f"Bearer {token}", AUD)
    assert refused.value.reason == "signature does not verify"


def test_sandbox_token_with_an_unknown_kid_and_a_jku_is_refused_without_a_fetch(tmp_path, monkeypatch):
    monkeypatch.setattr(auth.requests, "get", lambda *a, **k: pytest.fail("no fetch for a jku not allow-listed"))
    forger = SigningKey.generate("ES384", kid="not-the-sandbox")
    now = int(time.time())
    claims = {"iss": ISS, "aud": AUD, "iat": now, "exp": now + 240, "jti": str(uuid.uuid4())}
    token = forger.sign(claims, headers={"jku": "https://attacker.example/jwks.json"})
    with pytest.raises(Unauthorized) as refused:
        _verifier(tmp_path).verify(f"Bearer {token}", AUD)
    assert "not allow-listed" in refused.value.reason
