"""Shared test helpers: fixture loading, JWT signing with test keys, a loopback FHIR server, a gunicorn runner."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

ROOT = Path(__file__).resolve().parents[1]
# The public reference lists the build scripts read, vendored with their origins (scripts/sources/README.md).
SOURCES = ROOT / "scripts" / "sources"
FIXTURES = ROOT / "fhir_fixtures"
FILES = Path(__file__).resolve().parent / "files"
ISSUER = "https://ehr.test.example/"
BASE_URL = "https://cds.test.example"


def load_request(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / "requests" / name).read_text())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SigningKey:
    """A test client's key pair (generated per test session; never a real key)."""

    kid: str
    alg: str
    private: Any

    @classmethod
    def generate(cls, alg: str = "ES384", kid: str | None = None) -> SigningKey:
        if alg.startswith("ES"):
            private = ec.generate_private_key(ec.SECP384R1())
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        return cls(kid or f"test-{alg.lower()}-{uuid.uuid4().hex[:8]}", alg, private)

    def public_jwk(self) -> dict[str, Any]:
        algorithm = ECAlgorithm if self.alg.startswith("ES") else RSAAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "alg": self.alg, "use": "sig"})
        return jwk

    def sign(self, claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm=self.alg, headers={"kid": self.kid, **(headers or {})})


def claims_for(path: str, **over: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": BASE_URL + path, "exp": now + 240, "iat": now, "jti": str(uuid.uuid4())}
    claims.update(over)
    return {k: v for k, v in claims.items() if v is not None}


def write_trust(tmp_path: Path, keys: list[SigningKey], **issuer: Any) -> Path:
    jwks = tmp_path / "ehr-jwks.json"
    jwks.write_text(json.dumps({"keys": [k.public_jwk() for k in keys]}))
    entry = {"iss": ISSUER, "jwks_file": jwks.name, **issuer}
    trust = tmp_path / "trusted-issuers.yaml"
    import yaml

    trust.write_text(yaml.safe_dump({"issuers": [entry]}))
    return trust


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class FhirTestServer:
    """A loopback HTTP server playing the EHR's FHIR server (a test double: no real EHR can run here).

    ``routes`` maps "path?query" (or "path") to a handler returning (status, body, delay_seconds).
    """

    routes: dict[str, Callable[[Request], tuple[int, Any, float]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    base_url: str = ""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        req = Request(environ)
        self.requests.append(Recorded(req.method, req.path, req.query_string.decode(), dict(req.headers)))
        key = req.path + ("?" + req.query_string.decode() if req.query_string else "")
        handler = self.routes.get(key) or self.routes.get(req.path)
        if handler is None:
            status, body, delay = 404, {"resourceType": "OperationOutcome", "issue": []}, 0.0
        else:
            status, body, delay = handler(req)
        if delay:
            time.sleep(delay)
        payload = body if isinstance(body, bytes | str) else json.dumps(body)
        return Response(payload, status=status, mimetype="application/fhir+json")(environ, start_response)


@contextmanager
def fhir_server() -> Iterator[FhirTestServer]:
    app = FhirTestServer()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.base_url = f"http://127.0.0.1:{server.server_port}/fhir"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield app
    finally:
        server.shutdown()
        thread.join(timeout=5)


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def gunicorn_server(
    tmp_path: Path, env: dict[str, str], workers: int = 2, extra_args: tuple[str, ...] = ()
) -> Iterator[LiveServer]:
    """Start the real service (``opioid-cds serve``: gunicorn) on a free loopback port; stop it afterwards."""
    port = free_port()
    full_env = {
        **os.environ,
        "OPIOID_CDS_DATABASE_URL": f"sqlite:///{tmp_path}/live.sqlite3",
        "OPIOID_CDS_AUTH": "off",
        **env,
    }
    log_path = tmp_path / f"gunicorn-{port}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "cds_service",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                *extra_args,
            ],
            env=full_env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
    url = f"http://127.0.0.1:{port}"
    server = LiveServer(url, process, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.log()}")
            try:
                if requests.get(url + "/health", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not start:\n{server.log()}")
            time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
