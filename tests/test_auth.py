"""JWT bearer verification (CDS Hooks 2.0 "Trusting CDS Clients"): every refusal is a bare 401."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import time
import uuid

import pytest

from cds_service.app import create_app
from cds_service.config import load_settings
from cds_service.errors import ConfigError, Unauthorized
from cds_service.protocol.auth import JwtVerifier, TrustedIssuer, load_trusted_issuers
from cds_service.protocol.store import Store
from tests.helpers import BASE_URL, FILES, ISSUER, SigningKey, claims_for, fhir_server, load_request, write_trust

PATH = "/cds-services/opioid-order-sign"
EXAMPLE = json.loads((FILES / "cds-hooks-examples" / "jwt-example.spec3.0-ballot.json").read_text())


def _call(client, token: str | None, path: str = PATH):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return client.post(path, json=load_request("order-sign.json"), headers=headers)


def _assert_bare_401(response) -> None:
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    body = response.get_json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["diagnostics"] == "Authentication failed."


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _secure_client(tmp_path, trust, **env):
    """A client of an app requiring JWTs from the issuers in ``trust`` (extra settings as env names)."""
    settings = load_settings(
        {
            "OPIOID_CDS_PUBLIC_BASE_URL": BASE_URL,
            "OPIOID_CDS_TRUSTED_ISSUERS": str(trust),
            "OPIOID_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/t.sqlite3",
            **env,
        }
    )
    return create_app(settings).test_client()


def test_valid_es384_token_is_accepted(secure_client, es384_key):
    assert _call(secure_client, es384_key.sign(claims_for(PATH))).status_code == 200


def test_valid_rs384_token_is_accepted(secure_client, rs384_key):
    assert _call(secure_client, rs384_key.sign(claims_for(PATH))).status_code == 200


def test_no_authorization_header_is_401(secure_client):
    _assert_bare_401(_call(secure_client, None))


def test_alg_none_is_refused(secure_client, es384_key):
    token = f"{_b64({'alg': 'none', 'typ': 'JWT', 'kid': es384_key.kid})}.{_b64(claims_for(PATH))}."
    _assert_bare_401(_call(secure_client, token))


def test_hs256_signed_with_the_public_key_is_refused(secure_client, es384_key):
    # The classic key-confusion attack: HMAC keyed with the (public) verification key.
    from cryptography.hazmat.primitives import serialization

    secret = es384_key.private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': es384_key.kid})}.{_b64(claims_for(PATH))}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    token = f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}"
    _assert_bare_401(_call(secure_client, token))


def test_wrong_audience_is_refused(secure_client, es384_key):
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, aud="https://other.example/cds-services/x"))))


def test_token_for_another_service_of_ours_is_refused(secure_client, es384_key):
    token = es384_key.sign(claims_for("/cds-services/opioid-patient-view"))
    _assert_bare_401(_call(secure_client, token))


def test_expired_token_is_refused(secure_client, es384_key):
    now = int(time.time())
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, iat=now - 600, exp=now - 120))))


def test_expiry_within_clock_skew_is_accepted(secure_client, es384_key):
    now = int(time.time())
    assert _call(secure_client, es384_key.sign(claims_for(PATH, iat=now - 300, exp=now - 10))).status_code == 200


def test_exp_more_than_five_minutes_ahead_is_refused(secure_client, es384_key):
    now = int(time.time())
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, exp=now + 3600))))


def test_iat_in_the_future_is_refused(secure_client, es384_key):
    now = int(time.time())
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, iat=now + 120))))


def test_nbf_in_the_future_is_refused(secure_client, es384_key):
    now = int(time.time())
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, nbf=now + 120))))


def test_replayed_jti_is_refused(secure_client, es384_key):
    token = es384_key.sign(claims_for(PATH))
    assert _call(secure_client, token).status_code == 200
    _assert_bare_401(_call(secure_client, token))


def test_missing_jti_is_refused(secure_client, es384_key):
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, jti=None))))


def test_unknown_kid_is_refused(secure_client, es384_key):
    stranger = SigningKey.generate("ES384", kid="not-in-jwks")
    _assert_bare_401(_call(secure_client, stranger.sign(claims_for(PATH))))


def test_key_from_jwks_with_another_kid_does_not_verify(secure_client, es384_key):
    stranger = SigningKey.generate("ES384", kid=es384_key.kid)  # right kid, wrong key
    _assert_bare_401(_call(secure_client, stranger.sign(claims_for(PATH))))


def test_untrusted_issuer_is_refused(secure_client, es384_key):
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, iss="https://evil.example/"))))


def test_sub_is_accepted_and_ignored(secure_client, es384_key):
    assert _call(secure_client, es384_key.sign(claims_for(PATH, sub="epic-client-id"))).status_code == 200


def test_feedback_needs_a_token_too(secure_client, es384_key):
    body = json.loads((FILES / "cds-hooks-examples" / "feedback-accepted.spec3.0-ballot.json").read_text())
    _assert_bare_401(secure_client.post(PATH + "/feedback", json=body))
    token = es384_key.sign(claims_for(PATH + "/feedback"))
    ok = secure_client.post(PATH + "/feedback", json=body, headers={"Authorization": f"Bearer {token}"})
    assert ok.status_code == 200


def test_discovery_and_health_need_no_token(secure_client):
    assert secure_client.get("/cds-services").status_code == 200
    assert secure_client.get("/health").status_code == 200


def test_tenant_allow_list(tmp_path, es384_key):
    client = _secure_client(tmp_path, write_trust(tmp_path, [es384_key], tenants=["practice-a"]))
    assert _call(client, es384_key.sign(claims_for(PATH, tenant="practice-a"))).status_code == 200
    _assert_bare_401(_call(client, es384_key.sign(claims_for(PATH, tenant="practice-b"))))
    _assert_bare_401(_call(client, es384_key.sign(claims_for(PATH))))


def test_unknown_kid_refetches_the_jwks_url_once(tmp_path, es384_key):
    rotated = SigningKey.generate("ES384", kid="rotated")
    with fhir_server() as keys_server:
        served = {"keys": [es384_key.public_jwk()]}
        keys_server.routes["/fhir/jwks"] = lambda _req: (200, served, 0.0)
        trust = tmp_path / "trust.yaml"
        trust.write_text(f"issuers:\n  - iss: {ISSUER}\n    jwks_url: {keys_server.base_url}/jwks\n")
        client = _secure_client(tmp_path, trust, OPIOID_CDS_JWKS_MIN_REFETCH_SECONDS="0")
        assert _call(client, es384_key.sign(claims_for(PATH))).status_code == 200
        fetches = len(keys_server.requests)
        served["keys"].append(rotated.public_jwk())  # the EHR rotates its key
        assert _call(client, rotated.sign(claims_for(PATH))).status_code == 200
        assert len(keys_server.requests) == fetches + 1
        assert _call(client, es384_key.sign(claims_for(PATH))).status_code == 200
        assert len(keys_server.requests) == fetches + 1  # known kid: served from the cache


def test_unknown_kid_refetch_is_rate_limited(tmp_path, es384_key):
    with fhir_server() as keys_server:
        keys_server.routes["/fhir/jwks"] = lambda _req: (200, {"keys": [es384_key.public_jwk()]}, 0.0)
        trust = tmp_path / "trust.yaml"
        trust.write_text(f"issuers:\n  - iss: {ISSUER}\n    jwks_url: {keys_server.base_url}/jwks\n")
        client = _secure_client(tmp_path, trust)
        assert _call(client, es384_key.sign(claims_for(PATH))).status_code == 200
        for _ in range(5):
            stranger = SigningKey.generate("ES384", kid=f"x-{uuid.uuid4().hex[:6]}")
            _assert_bare_401(_call(client, stranger.sign(claims_for(PATH))))
        assert len(keys_server.requests) == 1  # an attacker cannot make us hammer the EHR's JWKS endpoint


def test_jku_on_the_allow_list_is_fetched_and_others_are_not(tmp_path, es384_key):
    with fhir_server() as keys_server:
        keys_server.routes["/fhir/jwks"] = lambda _req: (200, {"keys": [es384_key.public_jwk()]}, 0.0)
        keys_server.routes["/fhir/evil"] = lambda _req: (200, {"keys": [es384_key.public_jwk()]}, 0.0)
        trust = tmp_path / "trust.yaml"
        trust.write_text(f"issuers:\n  - iss: {ISSUER}\n    jku: [{keys_server.base_url}/jwks]\n")
        client = _secure_client(tmp_path, trust)
        good = es384_key.sign(claims_for(PATH), headers={"jku": f"{keys_server.base_url}/jwks"})
        assert _call(client, good).status_code == 200
        evil = es384_key.sign(claims_for(PATH), headers={"jku": f"{keys_server.base_url}/evil"})
        _assert_bare_401(_call(client, evil))
        assert [r.path for r in keys_server.requests] == ["/fhir/jwks"]


def test_spec_example_token_verifies_with_its_jwks_before_its_expiry(tmp_path, monkeypatch):
    jwks_path = tmp_path / "example-jwks.json"
    jwks_path.write_text(json.dumps(EXAMPLE["jwks_public"]))
    header = EXAMPLE["header"]

    # Test double: the example's jku host (fhir-ehr.example.com) cannot be reached from here, so the JWKS
    # "fetched" from it is the example's published public JWKS.
    import cds_service.protocol.auth as auth

    class _Response:
        def raise_for_status(self) -> None: ...

        def json(self):
            return EXAMPLE["jwks_public"]

    monkeypatch.setattr(auth.requests, "get", lambda url, **_: _Response() if url == header["jku"] else None)
    settings = load_settings(
        {
            "OPIOID_CDS_PUBLIC_BASE_URL": "https://cds.example.org",
            "OPIOID_CDS_TRUSTED_ISSUERS": str(write_trust(tmp_path, [])),
            "OPIOID_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/t.sqlite3",
        }
    )
    issuer = TrustedIssuer(iss=EXAMPLE["payload"]["iss"], jku=(header["jku"],))
    store = Store(settings.database_url)
    store.create_schema()
    before_expiry = JwtVerifier(settings, {issuer.iss: issuer}, store, clock=lambda: EXAMPLE["payload"]["exp"] - 60)
    claims = before_expiry.verify(f"Bearer {EXAMPLE['token']}", EXAMPLE["payload"]["aud"])
    assert claims["tenant"] == EXAMPLE["payload"]["tenant"]
    with pytest.raises(Unauthorized) as replay:
        before_expiry.verify(f"Bearer {EXAMPLE['token']}", EXAMPLE["payload"]["aud"])
    assert replay.value.reason == "jti replayed"

    today = JwtVerifier(settings, {issuer.iss: issuer}, Store(settings.database_url))
    with pytest.raises(Unauthorized) as expired:
        today.verify(f"Bearer {EXAMPLE['token']}", EXAMPLE["payload"]["aud"])
    assert expired.value.reason == "token expired"


def test_tokens_are_never_logged(secure_client, es384_key, caplog):
    caplog.set_level(logging.DEBUG)
    good = es384_key.sign(claims_for(PATH))
    bad = es384_key.sign(claims_for(PATH, aud="https://wrong.example/"))
    body = load_request("order-sign.json")
    body["fhirAuthorization"] = {
        "access_token": "fhir-secret-token-123",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/*.read",
        "subject": "opioid-cds",
    }
    for token in (good, bad):
        secure_client.post(PATH, json=body, headers={"Authorization": f"Bearer {token}"})
    logged = caplog.text
    assert good not in logged and bad not in logged
    assert good.split(".")[2] not in logged
    assert "fhir-secret-token-123" not in logged
    assert "pat-1" not in logged  # patient ids are pseudonymised


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("issuers: []", "non-empty list"),
        ("issuers:\n  - jwks_url: https://x.example/jwks\n", "needs 'iss'"),
        ("issuers:\n  - iss: https://x.example/\n", "jwks_file, jwks_url or a jku"),
        ("issuers:\n  - iss: https://x.example/\n    jwks_url: http://x.example/jwks\n", "must be https"),
        (
            "issuers:\n  - iss: https://x.example/\n    jku: [https://x.example/k]\n    algorithms: [HS256]\n",
            "not allowed",
        ),
        ("issuers:\n  - iss: https://x.example/\n    jwks_file: nope.json\n", "does not exist"),
        ("issuers:\n  - iss: https://x.example/\n    jku: [https://x.example/k]\n    colour: blue\n", "unknown keys"),
    ],
)
def test_broken_trusted_issuer_files_are_refused_at_start(tmp_path, yaml_text, message):
    path = tmp_path / "trust.yaml"
    path.write_text(yaml_text)
    with pytest.raises(ConfigError, match=message):
        load_trusted_issuers(path)


@pytest.mark.parametrize("algorithms", ["HS256", "none", "ES384,HS512"])
def test_symmetric_or_none_algorithms_cannot_be_configured(algorithms):
    with pytest.raises(ConfigError, match="never 'none' or HMAC"):
        load_settings({"OPIOID_CDS_AUTH": "off", "OPIOID_CDS_JWT_ALGORITHMS": algorithms})


def test_auth_required_without_public_base_url_refuses_to_start(tmp_path, es384_key):
    with pytest.raises(ConfigError, match="PUBLIC_BASE_URL"):
        load_settings({"OPIOID_CDS_TRUSTED_ISSUERS": str(write_trust(tmp_path, [es384_key]))})


def test_auth_is_required_by_default():
    with pytest.raises(ConfigError, match="TRUSTED_ISSUERS"):
        load_settings({})


@pytest.mark.parametrize("base", ["http://cds.example.org", "ftp://cds.example.org", "cds.example.org"])
def test_public_base_url_must_be_https(tmp_path, es384_key, base):
    env = {"OPIOID_CDS_PUBLIC_BASE_URL": base, "OPIOID_CDS_TRUSTED_ISSUERS": str(write_trust(tmp_path, [es384_key]))}
    with pytest.raises(ConfigError, match="must be https"):
        load_settings(env)


def test_public_base_url_may_be_http_on_loopback_for_testing(tmp_path, es384_key):
    env = {
        "OPIOID_CDS_PUBLIC_BASE_URL": "http://127.0.0.1:8080/",
        "OPIOID_CDS_TRUSTED_ISSUERS": str(write_trust(tmp_path, [es384_key])),
    }
    assert load_settings(env).public_base_url == "http://127.0.0.1:8080"


# --- issue #13 item 2: JWT hardening -------------------------------------------------------------------------------


class _AcceptingStore:
    """A replay store that remembers any expiry (as PostgreSQL does with a NaN float); isolates the time checks."""

    def remember_jti(self, iss, jti, expires, now=None):
        return True


def _verifier(secure_settings, trust_path):
    return JwtVerifier(secure_settings, load_trusted_issuers(trust_path), _AcceptingStore())


@pytest.mark.parametrize("claim", ["iat", "nbf"])
def test_nan_iat_or_nbf_is_refused(secure_client, es384_key, claim):
    # NaN compares false with everything, so "iat/nbf in the future" could never fire.
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, **{claim: float("nan")}))))


def test_nan_exp_is_refused_even_where_the_store_accepts_it(secure_settings, es384_key):
    verifier = _verifier(secure_settings, secure_settings.trusted_issuers_file)
    token = es384_key.sign(claims_for(PATH, exp=float("nan")))
    with pytest.raises(Unauthorized) as refused:
        verifier.verify(f"Bearer {token}", BASE_URL + PATH)
    assert refused.value.reason == "exp is not a finite number"


_BAD_TIMES = {"inf": float("inf"), "-inf": float("-inf"), "bool": True, "string": "1700000000", "huge-int": -(10**400)}
_CASES = [pytest.param(c, v, id=f"{c}-{k}") for c in ("exp", "iat", "nbf") for k, v in _BAD_TIMES.items()]
# A missing exp or iat is refused too; nbf is optional, so leaving it out is a valid token (not a case here).
_CASES += [pytest.param("exp", None, id="exp-missing"), pytest.param("iat", None, id="iat-missing")]


@pytest.mark.parametrize(("claim", "value"), _CASES)
def test_non_finite_or_non_numeric_time_claims_are_refused(secure_settings, es384_key, claim, value):
    claims = claims_for(PATH)
    claims[claim] = value
    claims = {k: v for k, v in claims.items() if v is not None}
    verifier = _verifier(secure_settings, secure_settings.trusted_issuers_file)
    with pytest.raises(Unauthorized):
        verifier.verify(f"Bearer {es384_key.sign(claims)}", BASE_URL + PATH)


def test_aud_list_holding_the_right_url_and_another_is_refused(secure_client, es384_key):
    aud = [BASE_URL + PATH, "https://other.example/cds-services/x"]
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, aud=aud))))


def test_aud_list_holding_only_the_right_url_is_accepted(secure_client, es384_key):
    assert _call(secure_client, es384_key.sign(claims_for(PATH, aud=[BASE_URL + PATH]))).status_code == 200


def test_aud_empty_list_is_refused(secure_client, es384_key):
    _assert_bare_401(_call(secure_client, es384_key.sign(claims_for(PATH, aud=[]))))


def test_unreachable_jku_with_a_kid_in_the_pinned_jwks_is_verified_with_the_pinned_key(tmp_path, es384_key):
    # The public CDS Hooks Sandbox signs this way: a jku we cannot (or should not) fetch, a kid we have pinned.
    with fhir_server() as keys_server:
        keys_server.routes["/fhir/jwks"] = lambda _req: (500, {}, 0.0)
        jku = f"{keys_server.base_url}/jwks"
        client = _secure_client(tmp_path, write_trust(tmp_path, [es384_key], jku=[jku]))
        assert _call(client, es384_key.sign(claims_for(PATH), headers={"jku": jku})).status_code == 200
        unlisted = es384_key.sign(claims_for(PATH), headers={"jku": "https://unreachable.invalid/jwks"})
        assert _call(client, unlisted).status_code == 200
        assert keys_server.requests == []  # the pinned key set won: jku was never fetched


def test_unreachable_jku_with_a_kid_not_pinned_is_refused(tmp_path, es384_key):
    stranger = SigningKey.generate("ES384", kid="not-pinned")
    with fhir_server() as keys_server:
        keys_server.routes["/fhir/jwks"] = lambda _req: (500, {}, 0.0)
        jku = f"{keys_server.base_url}/jwks"
        client = _secure_client(tmp_path, write_trust(tmp_path, [es384_key], jku=[jku]))
        _assert_bare_401(_call(client, stranger.sign(claims_for(PATH), headers={"jku": jku})))
        # a kid outside the pinned set still needs an allow-listed jku, and is never fetched from another
        _assert_bare_401(_call(client, stranger.sign(claims_for(PATH), headers={"jku": "https://evil.invalid/k"})))


def test_pinned_kid_with_a_forged_signature_is_refused_whatever_jku_says(tmp_path, es384_key):
    forger = SigningKey.generate("ES384", kid=es384_key.kid)  # same kid, another private key
    with fhir_server() as keys_server:
        keys_server.routes["/fhir/jwks"] = lambda _req: (200, {"keys": [forger.public_jwk()]}, 0.0)
        jku = f"{keys_server.base_url}/jwks"
        client = _secure_client(tmp_path, write_trust(tmp_path, [es384_key], jku=[jku]))
        _assert_bare_401(_call(client, forger.sign(claims_for(PATH), headers={"jku": jku})))
        assert keys_server.requests == []


def test_query_string_access_token_leaves_no_trace_in_the_access_log(capsys):
    from gunicorn.config import Config
    from gunicorn.glogging import Logger

    from cds_service.config import ACCESS_LOG_FORMAT

    secret = "eyJhbGciOiJFUzM4NCJ9.leaked-token.sig"

    class _Req:
        method, path, version = "POST", PATH, (1, 1)
        query = f"access_token={secret}"
        uri = f"{PATH}?{query}"
        headers = (("REFERER", f"https://ehr.example{PATH}?access_token={secret}"),)

    class _Resp:
        status, status_code, sent, response_length = "200 OK", 200, 2, 2
        headers = ()

    environ = {
        "REQUEST_METHOD": "POST",
        "RAW_URI": _Req.uri,
        "PATH_INFO": PATH,
        "QUERY_STRING": _Req.query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_REFERER": _Req.headers[0][1],
    }
    import datetime

    def line(fmt):
        cfg = Config()
        cfg.set("accesslog", "-")
        cfg.set("access_log_format", fmt)
        Logger(cfg).access(_Resp(), _Req(), environ, datetime.timedelta(seconds=0.01))
        return capsys.readouterr()

    default = line(Config().access_log_format)
    assert secret in default.out + default.err  # gunicorn's default format does log it (what cli.py uses today)
    ours = line(ACCESS_LOG_FORMAT)
    assert PATH in ours.out + ours.err and "POST" in ours.out + ours.err
    assert secret not in ours.out + ours.err and "access_token" not in ours.out + ours.err


def test_query_string_access_token_is_not_in_the_service_logs(secure_client, es384_key, caplog):
    secret = "query-string-secret-token-value"
    caplog.set_level(logging.DEBUG)
    token = es384_key.sign(claims_for(PATH))
    response = secure_client.post(
        f"{PATH}?access_token={secret}",
        json=load_request("order-sign.json"),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200
    assert secret not in caplog.text
    denied = secure_client.post(f"{PATH}?access_token={secret}", json=load_request("order-sign.json"))
    _assert_bare_401(denied)
    assert secret not in caplog.text


def test_issuer_fhir_servers_must_be_https(tmp_path):
    path = tmp_path / "trust.yaml"
    path.write_text(
        "issuers:\n  - iss: https://x.example/\n    jku: [https://x.example/k]\n    fhir_servers: [http://x.example/fhir]\n"
    )
    with pytest.raises(ConfigError, match=r"fhir_servers.*must be https"):
        load_trusted_issuers(path)


@pytest.mark.parametrize(
    "servers", ["http://ehr.example/fhir", "https://ehr.example/fhir?x=1", "https://u:p@ehr.example/fhir", "https://"]
)
def test_global_fhir_servers_must_be_plain_https_base_urls(servers):
    with pytest.raises(ConfigError, match="OPIOID_CDS_FHIR_SERVERS"):
        load_settings({"OPIOID_CDS_AUTH": "off", "OPIOID_CDS_FHIR_SERVERS": servers})


def test_global_fhir_servers_allow_http_on_loopback_and_drop_trailing_slashes():
    settings = load_settings(
        {"OPIOID_CDS_AUTH": "off", "OPIOID_CDS_FHIR_SERVERS": "http://127.0.0.1:9/fhir/, https://e.example"}
    )
    assert settings.fhir_servers == ("http://127.0.0.1:9/fhir", "https://e.example")
