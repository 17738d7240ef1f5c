"""Service settings, read once from the environment at start-up.

Every setting has a default that is safe for production except where noted; ``make run`` overrides
``OPIOID_CDS_AUTH`` to ``off`` for local development and the service logs that loudly.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from urllib.parse import urlsplit

from cds_service.errors import ConfigError

# Asymmetric algorithms only: CDS Hooks 2.0 forbids `none` and symmetric (HMAC) signatures.
ALLOWED_JWT_ALGORITHMS = frozenset({"ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})


LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})

# gunicorn's access-log line without the query string: %(U)s is the path alone, where the default's %(r)s (the
# request line) and %(f)s (the referer) would carry any ``?access_token=...`` a client put in the URL.
ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(m)s %(U)s %(H)s" %(s)s %(b)s "%(a)s"'


@dataclass(frozen=True)
class Settings:
    auth: str = "required"  # required | off
    public_base_url: str | None = None  # e.g. https://cds.example.org (the JWT `aud` is this + the path called)
    trusted_issuers_file: Path | None = None
    jwt_algorithms: tuple[str, ...] = ("ES384", "RS384")
    jwt_leeway_seconds: int = 30
    jwt_max_future_exp_seconds: int = 300  # CDS Hooks: exp SHALL be no more than five minutes in the future
    jwks_cache_seconds: int = 3600
    jwks_min_refetch_seconds: int = 30  # an unknown kid refetches at most this often per JWKS
    database_url: str = "sqlite:///var/opioid-cds.sqlite3"
    cors_origins: tuple[str, ...] = ("*",)
    max_body_bytes: int = 5 * 1024 * 1024
    max_json_depth: int = 64
    fhir_timeout_seconds: float = 2.0  # total, for all prefetch fetching of one request
    fhir_max_pages: int = 10
    fhir_max_response_bytes: int = 10 * 1024 * 1024
    # fhirServer base URLs the service may call with the client's token (an issuer's own list wins); empty means
    # none with auth required, and loopback hosts only with auth off
    fhir_servers: tuple[str, ...] = ()
    profile: str = "uk"  # OME factor profile: uk | cdc-2022 | cdc-2016
    rules_dir: Path | None = None  # default: resources.default_rules_dir() (in the package, or the checkout)
    settings_file: Path | None = None  # a practice's settings layered over rules/settings.yaml
    today: date | None = None  # fixed evaluation date, for tests and replays only
    pseudonym_key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @property
    def auth_required(self) -> bool:
        return self.auth == "required"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < 0:
        raise ConfigError(f"{name}={raw!r} must not be negative")
    return value


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not value > 0:
        raise ConfigError(f"{name}={raw!r} must be greater than 0")
    return value


def _date(env: Mapping[str, str], name: str) -> date | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a date (YYYY-MM-DD)") from None


def _list(env: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _fhir_servers(env: Mapping[str, str]) -> tuple[str, ...]:
    servers = tuple(u.rstrip("/") for u in _list(env, "OPIOID_CDS_FHIR_SERVERS", ()))
    for url in servers:
        parts = urlsplit(url)
        if not (parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS)):
            raise ConfigError(f"OPIOID_CDS_FHIR_SERVERS has {url!r}: must be https (http only on loopback)")
        if not parts.hostname or parts.query or parts.fragment or parts.username or parts.password:
            raise ConfigError(f"OPIOID_CDS_FHIR_SERVERS has {url!r}: give a plain base URL")
    return servers


def load_settings(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Read settings from ``env`` (default ``os.environ``); keyword overrides win (used by tests and the CLI)."""
    env = os.environ if env is None else env
    auth = env.get("OPIOID_CDS_AUTH", "required").strip().lower() or "required"
    if auth not in ("required", "off"):
        raise ConfigError(f"OPIOID_CDS_AUTH={auth!r}: use 'required' or 'off'")
    algorithms = _list(env, "OPIOID_CDS_JWT_ALGORITHMS", ("ES384", "RS384"))
    refused = [a for a in algorithms if a not in ALLOWED_JWT_ALGORITHMS]
    if refused:
        raise ConfigError(
            f"OPIOID_CDS_JWT_ALGORITHMS has {', '.join(refused)}: only asymmetric algorithms "
            f"({', '.join(sorted(ALLOWED_JWT_ALGORITHMS))}) are allowed; never 'none' or HMAC"
        )
    base = env.get("OPIOID_CDS_PUBLIC_BASE_URL") or None
    if base:
        base = base.rstrip("/")
        host = urlsplit(base).hostname
        if not (base.startswith("https://") or (base.startswith("http://") and host in LOOPBACK_HOSTS)):
            raise ConfigError(
                f"OPIOID_CDS_PUBLIC_BASE_URL={base!r} must be https (CDS Hooks requires TLS; http only on loopback)"
            )
    issuers = env.get("OPIOID_CDS_TRUSTED_ISSUERS") or None
    key = env.get("OPIOID_CDS_PSEUDONYM_KEY")
    values: dict[str, object] = {
        "auth": auth,
        "public_base_url": base,
        "trusted_issuers_file": Path(issuers) if issuers else None,
        "jwt_algorithms": algorithms,
        "jwt_leeway_seconds": _int(env, "OPIOID_CDS_JWT_LEEWAY", 30),
        "jwt_max_future_exp_seconds": _int(env, "OPIOID_CDS_JWT_MAX_FUTURE_EXP", 300),
        "jwks_cache_seconds": _int(env, "OPIOID_CDS_JWKS_CACHE_SECONDS", 3600),
        "jwks_min_refetch_seconds": _int(env, "OPIOID_CDS_JWKS_MIN_REFETCH_SECONDS", 30),
        "database_url": env.get("OPIOID_CDS_DATABASE_URL") or "sqlite:///var/opioid-cds.sqlite3",
        "cors_origins": _list(env, "OPIOID_CDS_CORS_ORIGINS", ("*",)),
        "max_body_bytes": _int(env, "OPIOID_CDS_MAX_BODY_BYTES", 5 * 1024 * 1024),
        "max_json_depth": _int(env, "OPIOID_CDS_MAX_JSON_DEPTH", 64),
        "fhir_timeout_seconds": _float(env, "OPIOID_CDS_FHIR_TIMEOUT", 2.0),
        "fhir_max_pages": _int(env, "OPIOID_CDS_FHIR_MAX_PAGES", 10),
        "fhir_max_response_bytes": _int(env, "OPIOID_CDS_FHIR_MAX_RESPONSE_BYTES", 10 * 1024 * 1024),
        "fhir_servers": _fhir_servers(env),
        "profile": (env.get("OPIOID_CDS_PROFILE") or "uk").strip(),
        "rules_dir": Path(env["OPIOID_CDS_RULES"]) if env.get("OPIOID_CDS_RULES") else None,
        "settings_file": Path(env["OPIOID_CDS_SETTINGS"]) if env.get("OPIOID_CDS_SETTINGS") else None,
        "today": _date(env, "OPIOID_CDS_TODAY"),
    }
    if key:
        values["pseudonym_key"] = key.encode()
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.auth_required and settings.trusted_issuers_file is None:
        raise ConfigError(
            "OPIOID_CDS_AUTH=required needs OPIOID_CDS_TRUSTED_ISSUERS (a YAML file of trusted issuers, "
            "see docs/security.md); for local development only, set OPIOID_CDS_AUTH=off"
        )
    if settings.auth_required and not settings.public_base_url:
        raise ConfigError(
            "OPIOID_CDS_AUTH=required needs OPIOID_CDS_PUBLIC_BASE_URL: a JWT's aud must equal the exact external "
            "URL the client calls (e.g. https://cds.example.org)"
        )
    return settings
