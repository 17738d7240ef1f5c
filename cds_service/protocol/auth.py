"""Bearer JWT verification for CDS Hooks 2.0 (spec "Trusting CDS Clients" and its best-practice page).

A request is accepted only if its JWT:
- is signed with an allowed asymmetric algorithm (never ``none`` or HMAC);
- comes from an allow-listed ``iss``, whose keys come from its JWKS file, its JWKS URL, or a ``jku`` header that
  is on that issuer's allow-list (key sets are cached and refetched once when a ``kid`` is unknown); a ``kid`` found
  in the issuer's pinned JWKS file is verified with that file whatever ``jku`` says, and ``jku`` is not fetched;
- has ``aud`` equal to the exact external URL called (a string, or a list holding only that URL);
- is within ``exp``/``iat``/``nbf`` (finite numbers, small clock skew), with ``exp`` at most five minutes ahead;
- carries a ``jti`` not seen before (replay cache shared by all workers, kept until the token expires);
- has a ``tenant`` on the issuer's allow-list when one is configured.
``sub`` is accepted and ignored. Any failure is a bare 401; the reason goes to the log, the token never does.
The trusted-issuer file format is documented in docs/security.md.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
import yaml
from flask import g, has_request_context
from jwt import PyJWK
from jwt.exceptions import PyJWKError, PyJWTError

from cds_service.config import ALLOWED_JWT_ALGORITHMS, LOOPBACK_HOSTS, Settings
from cds_service.errors import ConfigError, Unauthorized
from cds_service.protocol.store import Store


@dataclass(frozen=True)
class TrustedIssuer:
    iss: str
    jwks_file: Path | None = None
    jwks_url: str | None = None
    jku: tuple[str, ...] = ()
    tenants: tuple[str, ...] = ()
    algorithms: tuple[str, ...] = ()
    fhir_servers: tuple[str, ...] = ()  # fhirServer base URLs this issuer's clients may send (else the global list)


def _secure_url(url: Any, where: str) -> str:
    if not isinstance(url, str):
        raise ConfigError(f"{where}: must be a URL")
    parts = urlsplit(url)
    loopback = parts.hostname in LOOPBACK_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ConfigError(f"{where}: {url!r} must be https (http only on loopback, for testing)")
    return url


def load_trusted_issuers(path: Path) -> dict[str, TrustedIssuer]:
    """Read the trusted-issuer YAML file; every problem raises :class:`ConfigError` naming the entry."""
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read trusted issuers: {exc}") from None
    entries = document.get("issuers") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{path}: expected a non-empty list under 'issuers:'")
    issuers: dict[str, TrustedIssuer] = {}
    known = {"iss", "jwks_file", "jwks_url", "jku", "tenants", "algorithms", "fhir_servers"}
    for index, entry in enumerate(entries):
        where = f"{path}: issuers[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("iss"), str) or not entry["iss"]:
            raise ConfigError(f"{where}: needs 'iss' (the client's issuer URL)")
        unknown = set(entry) - known
        if unknown:
            raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
        jwks_file = entry.get("jwks_file")
        if jwks_file is not None:
            jwks_file = Path(jwks_file) if Path(jwks_file).is_absolute() else path.parent / jwks_file
            if not jwks_file.is_file():
                raise ConfigError(f"{where}: jwks_file {str(jwks_file)!r} does not exist")
        jwks_url = _secure_url(entry["jwks_url"], f"{where}.jwks_url") if entry.get("jwks_url") else None
        jku = tuple(_secure_url(u, f"{where}.jku") for u in entry.get("jku") or [])
        if not (jwks_file or jwks_url or jku):
            raise ConfigError(f"{where}: give jwks_file, jwks_url or a jku allow-list")
        algorithms = tuple(entry.get("algorithms") or ())
        bad = [a for a in algorithms if a not in ALLOWED_JWT_ALGORITHMS]
        if bad:
            raise ConfigError(f"{where}: algorithms {bad} are not allowed (asymmetric only)")
        tenants = tuple(str(t) for t in entry.get("tenants") or ())
        fhir_servers = tuple(
            _secure_url(u, f"{where}.fhir_servers").rstrip("/") for u in entry.get("fhir_servers") or []
        )
        issuer = TrustedIssuer(entry["iss"], jwks_file, jwks_url, jku, tenants, algorithms, fhir_servers)
        if issuer.iss in issuers:
            raise ConfigError(f"{where}: issuer {issuer.iss!r} is listed twice")
        issuers[issuer.iss] = issuer
    return issuers


@dataclass(frozen=True)
class VerificationKey:
    """A public key from a JWKS, with what the JWK says it may be used for."""

    kty: str
    alg: str | None
    use: str | None
    key: Any

    def usable_for(self, alg: str) -> bool:
        family = {"ES": "EC", "RS": "RSA", "PS": "RSA"}.get(alg[:2])
        return self.kty == family and self.alg in (None, alg) and self.use in (None, "sig")


@dataclass
class _CachedKeys:
    keys: dict[str | None, list[VerificationKey]]
    fetched_at: float


@dataclass
class JwksCache:
    """Key sets by source (file path or URL), cached; an unknown ``kid`` triggers one rate-limited refetch."""

    ttl_seconds: int = 3600
    min_refetch_seconds: int = 30
    fetch_timeout_seconds: float = 2.0
    _cache: dict[str, _CachedKeys] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _load(self, source: str) -> dict[str | None, list[VerificationKey]]:
        if source.startswith(("https://", "http://")):
            resp = requests.get(source, timeout=self.fetch_timeout_seconds, headers={"Accept": "application/json"})
            resp.raise_for_status()
            document = resp.json()
        else:
            document = json.loads(Path(source).read_text(encoding="utf-8"))
        if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
            raise ValueError("not a JWK Set")
        keys: dict[str | None, list[VerificationKey]] = {}
        for data in document["keys"]:
            if not isinstance(data, dict) or data.get("kty") not in ("EC", "RSA"):
                continue  # symmetric ("oct") and unknown key types are never used
            try:
                jwk = PyJWK.from_dict(data)
            except PyJWKError:
                continue
            key = VerificationKey(data["kty"], data.get("alg"), data.get("use"), jwk.key)
            keys.setdefault(data.get("kid"), []).append(key)
        return keys

    def keys_for(self, source: str, kid: str | None, now: float) -> list[VerificationKey]:
        with self._lock:
            cached = self._cache.get(source)
            stale = cached is None or now - cached.fetched_at > self.ttl_seconds
            unknown = cached is not None and kid is not None and kid not in cached.keys
            may_refetch = cached is None or now - cached.fetched_at >= self.min_refetch_seconds
            if stale or (unknown and may_refetch):
                try:
                    cached = _CachedKeys(self._load(source), now)
                    self._cache[source] = cached
                except (OSError, ValueError, requests.RequestException, PyJWKError) as exc:
                    if cached is None:
                        raise Unauthorized(f"cannot load JWKS {source}: {type(exc).__name__}") from None
            assert cached is not None
            if kid is not None:
                return cached.keys.get(kid, [])
            return [k for group in cached.keys.values() for k in group]


class JwtVerifier:
    """Verifies the bearer JWT of one request; ``clock`` is injectable for tests of dated tokens."""

    def __init__(
        self,
        settings: Settings,
        issuers: dict[str, TrustedIssuer],
        store: Store,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.issuers = issuers
        self.store = store
        self.clock = clock
        self.jwks = JwksCache(settings.jwks_cache_seconds, settings.jwks_min_refetch_seconds)

    def verify(self, authorization: str | None, audience: str) -> dict[str, Any]:
        """Return the verified claims, or raise :class:`Unauthorized` with the reason for the log."""
        if not authorization or not authorization.startswith("Bearer "):
            raise Unauthorized("no bearer token")
        token = authorization.removeprefix("Bearer ").strip()
        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except PyJWTError as exc:
            raise Unauthorized(f"malformed JWT ({type(exc).__name__})") from None
        alg = header.get("alg")
        if alg not in self.settings.jwt_algorithms:
            raise Unauthorized(f"algorithm {alg!r} is not accepted")
        issuer = self.issuers.get(unverified.get("iss")) if isinstance(unverified.get("iss"), str) else None
        if issuer is None:
            raise Unauthorized(f"issuer {unverified.get('iss')!r} is not trusted")
        if issuer.algorithms and alg not in issuer.algorithms:
            raise Unauthorized(f"algorithm {alg!r} is not accepted for {issuer.iss}")
        now = self.clock()
        kid = header.get("kid") if isinstance(header.get("kid"), str) else None
        source = self._key_source(issuer, header.get("jku"), kid, now)
        candidates = [k for k in self.jwks.keys_for(source, kid, now) if k.usable_for(alg)]
        if not candidates:
            raise Unauthorized(f"no key for kid {kid!r} in {source}")
        claims = self._decode(token, candidates, alg, audience, issuer.iss)
        if claims.get("aud") not in (audience, [audience]):
            # PyJWT accepts a list that merely contains the audience; the spec's aud is the one URL called.
            raise Unauthorized("aud is not exactly the URL called")
        self._check_times(claims, now)
        if issuer.tenants and claims.get("tenant") not in issuer.tenants:
            raise Unauthorized(f"tenant {claims.get('tenant')!r} is not allowed for {issuer.iss}")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not jti:
            raise Unauthorized("no jti")
        expires = _numeric_date(claims, "exp") + self.settings.jwt_leeway_seconds
        if not self.store.remember_jti(issuer.iss, jti, expires, now=now):
            raise Unauthorized("jti replayed")
        _remember_issuer(issuer)
        return claims

    def _key_source(self, issuer: TrustedIssuer, jku: Any, kid: str | None, now: float) -> str:
        if issuer.jwks_file and kid is not None:
            # A pinned (configured) key set wins: a kid found there is verified with it whatever jku says, and jku
            # is then never fetched (the public CDS Hooks Sandbox sends an unreachable jku with a published kid).
            pinned = str(issuer.jwks_file)
            if self.jwks.keys_for(pinned, kid, now):
                return pinned
        if jku is not None:
            if jku not in issuer.jku:
                raise Unauthorized(f"jku {jku!r} is not allow-listed for {issuer.iss}")
            return jku
        if issuer.jwks_file:
            return str(issuer.jwks_file)
        if issuer.jwks_url:
            return issuer.jwks_url
        raise Unauthorized(f"{issuer.iss} signs with jku only, and the token has none")

    @staticmethod
    def _decode(token: str, keys: list[VerificationKey], alg: str, audience: str, iss: str) -> dict[str, Any]:
        failure = "signature does not verify"
        for key in keys:
            try:
                return jwt.decode(
                    token,
                    key=key.key,
                    algorithms=[alg],
                    audience=audience,
                    issuer=iss,
                    options={
                        "verify_exp": False,  # times are checked against our own (injectable) clock
                        "verify_iat": False,
                        "verify_nbf": False,
                        "require": ["iss", "aud", "exp", "iat", "jti"],
                    },
                )
            except jwt.InvalidSignatureError:
                continue
            except PyJWTError as exc:
                failure = f"{type(exc).__name__}: {exc}"
                break
        raise Unauthorized(failure)

    def _check_times(self, claims: dict[str, Any], now: float) -> None:
        skew = self.settings.jwt_leeway_seconds
        exp, iat = _numeric_date(claims, "exp"), _numeric_date(claims, "iat")
        nbf = _numeric_date(claims, "nbf") if "nbf" in claims else None
        if now > exp + skew:
            raise Unauthorized("token expired")
        if exp > now + self.settings.jwt_max_future_exp_seconds + skew:
            raise Unauthorized("exp is more than five minutes ahead")
        if iat > now + skew:
            raise Unauthorized("iat is in the future")
        if nbf is not None and nbf > now + skew:
            raise Unauthorized("token not yet valid (nbf)")


def _numeric_date(claims: dict[str, Any], name: str) -> float:
    """A JWT NumericDate as a finite float; NaN, infinities, bools, strings and huge integers are refused
    (every comparison with NaN is false, so a NaN ``nbf`` would otherwise pass every check)."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"{name} is not a number")
    try:
        number = float(value)
    except OverflowError:
        raise Unauthorized(f"{name} is out of range") from None
    if not math.isfinite(number):
        raise Unauthorized(f"{name} is not a finite number")
    return number


_ISSUER_KEY = "opioid_cds_verified_issuer"


def _remember_issuer(issuer: TrustedIssuer) -> None:
    """Keep the verified issuer on the request (flask.g) so prefetch can apply its ``fhir_servers`` list."""
    if has_request_context():
        setattr(g, _ISSUER_KEY, issuer)


def verified_issuer() -> TrustedIssuer | None:
    """The issuer whose token authenticated the current request (None without auth or outside a request)."""
    return getattr(g, _ISSUER_KEY, None) if has_request_context() else None
