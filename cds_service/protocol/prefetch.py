"""Resolve a request's prefetch: use what the client sent, fetch what it left out, or answer 412.

- key present with a resource: used as sent; a Bundle's ``next`` pages are read from ``fhirServer``.
- key present but ``null``: the client has no such data; treated as empty.
- key absent, or an OperationOutcome in its place: fetched from ``fhirServer`` with the client's bearer token.
- still unobtainable (no fhirServer, an error, a timeout): :class:`PreconditionFailed` (412).
- a ``fhirServer`` not on the allow-list (the issuer's ``fhir_servers``, else ``OPIOID_CDS_FHIR_SERVERS``; with
  auth off and no list, loopback hosts only) is never called: a key that needs it is a 412.
- the optional history keys (``services.OPTIONAL_PREFETCH``): used when sent, fetched only when the client sent no
  prefetch at all, and read as no data when they cannot be had (never a 412).

All fetching for one request shares one hard deadline (``fhir_timeout_seconds``). The bearer token goes only
to URLs under ``fhirServer`` and is never logged.
"""

from __future__ import annotations

import json
import logging
import re
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from cds_service.config import LOOPBACK_HOSTS, Settings
from cds_service.errors import Issue, PreconditionFailed, Unobtainable
from cds_service.protocol.auth import TrustedIssuer, verified_issuer
from cds_service.protocol.hooks import HookRequest, fetched_resource_problems
from cds_service.protocol.services import OPTIONAL_PREFETCH

log = logging.getLogger(__name__)

_TOKEN = re.compile(r"\{\{\s*([^{}\s]+)\s*\}\}")
_USER_TOKENS = {
    "userPractitionerId": "Practitioner",
    "userPractitionerRoleId": "PractitionerRole",
    "userPatientId": "Patient",
    "userRelatedPersonId": "RelatedPerson",
}
# Shared by all requests of a worker: a fetch abandoned at the deadline finishes on its own, bounded by its
# own socket timeout, without holding up the response.
_EXECUTOR = ThreadPoolExecutor(max_workers=16, thread_name_prefix="prefetch")


def render_template(template: str, context: dict[str, Any]) -> str:
    """Replace 2.0 prefetch tokens with URL-encoded context values; :class:`Unobtainable` if one is missing."""

    def value(match: re.Match[str]) -> str:
        token = match.group(1)
        if token.startswith("context."):
            raw = context.get(token.removeprefix("context."))
        elif token in _USER_TOKENS:
            user = context.get("userId")
            prefix = _USER_TOKENS[token] + "/"
            raw = user.removeprefix(prefix) if isinstance(user, str) and user.startswith(prefix) else None
        else:
            raw = None
        if not isinstance(raw, str | int | float) or isinstance(raw, bool) or raw == "":
            raise Unobtainable(f"the prefetch token {{{{{token}}}}} has no value in this request")
        return quote(str(raw), safe="")

    return _TOKEN.sub(value, template)


@dataclass
class FhirReader:
    """Reads resources from the client's FHIR server under one deadline."""

    base_url: str
    access_token: str | None
    settings: Settings
    deadline: float
    patient_id: str

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/fhir+json, application/json"}
        if self.access_token:
            headers["Authorization"] = f"Bearer {self.access_token}"
        return headers

    def get(self, url: str) -> dict[str, Any]:
        if not (url == self.base_url or url.startswith(self.base_url + "/")):
            # Never send the client's token anywhere but its own FHIR server.
            raise Unobtainable("a link points outside fhirServer; it was not followed")
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise Unobtainable("the FHIR server did not answer in time")
        try:
            with requests.get(url, headers=self._headers(), timeout=(remaining, remaining), stream=True) as resp:
                if resp.status_code != 200:
                    raise Unobtainable(f"the FHIR server answered HTTP {resp.status_code}")
                body = bytearray()
                for chunk in resp.iter_content(65536):
                    body += chunk
                    if len(body) > self.settings.fhir_max_response_bytes:
                        raise Unobtainable("the FHIR server's answer was too large")
                    if time.monotonic() > self.deadline:
                        raise Unobtainable("the FHIR server did not answer in time")
        except requests.Timeout:
            raise Unobtainable("the FHIR server did not answer in time") from None
        except requests.RequestException as exc:
            raise Unobtainable(f"the FHIR server could not be reached ({type(exc).__name__})") from None
        try:
            resource = json.loads(body)
        except ValueError:
            raise Unobtainable("the FHIR server's answer was not JSON") from None
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            raise Unobtainable("the FHIR server's answer was not a FHIR resource")
        if resource["resourceType"] == "OperationOutcome":
            raise Unobtainable("the FHIR server answered with an OperationOutcome")
        return resource

    def complete(self, resource: dict[str, Any]) -> dict[str, Any]:
        """Follow a Bundle's ``next`` links (at most ``fhir_max_pages`` pages in all) and merge the entries."""
        if resource.get("resourceType") != "Bundle":
            return resource
        merged = dict(resource)
        entries = list(resource.get("entry") or [])
        page, pages = resource, 1
        while (next_url := _next_link(page)) is not None:
            if pages >= self.settings.fhir_max_pages:
                raise Unobtainable(f"more than {self.settings.fhir_max_pages} pages of results")
            page = self.get(next_url)
            if page.get("resourceType") != "Bundle":
                raise Unobtainable("a next page was not a Bundle")
            entries += [
                e for e in page.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)
            ]
            pages += 1
        merged["entry"] = entries
        merged.pop("link", None)
        return merged

    def read(self, key: str, url: str | None, sent: dict[str, Any] | None) -> dict[str, Any]:
        """Read one prefetch key (from ``url``, or the rest of the ``sent`` Bundle) and check what came back."""
        resource = self.complete(sent if sent is not None else self.get(url or ""))
        problems = fetched_resource_problems(resource, f"prefetch.{key}", self.patient_id)
        if problems:
            first = problems[0]
            raise Unobtainable(f"the FHIR server's answer is unusable ({first.expression}: {first.diagnostics})")
        return resource


def _next_link(bundle: dict[str, Any]) -> str | None:
    for link in bundle.get("link") or []:
        if isinstance(link, dict) and link.get("relation") == "next" and isinstance(link.get("url"), str):
            return link["url"]
    return None


def fhir_server_refusal(url: str, settings: Settings, issuer: TrustedIssuer | None) -> str | None:
    """Why the service must not call ``url`` with the client's token, or None when it may."""
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None or parts.query or parts.fragment:
        return "fhirServer is not a plain base URL"
    if ".." in parts.path.split("/"):
        return "fhirServer has a '..' path segment"
    allowed = issuer.fhir_servers if issuer is not None and issuer.fhir_servers else settings.fhir_servers
    if allowed:
        base = url.rstrip("/")
        if any(base == a or base.startswith(a + "/") for a in allowed):
            return None
        return "fhirServer is not on the allow-list"
    if settings.auth_required:
        return "no fhirServer allow-list is configured"
    if parts.hostname in LOOPBACK_HOSTS:
        return None  # development (auth off, no list): loopback FHIR servers only
    return "fhirServer is not a loopback host (auth is off and no allow-list is configured)"


def _needs_fetch(value: Any) -> bool:
    return isinstance(value, dict) and value.get("resourceType") == "OperationOutcome"


def resolve_prefetch(request: HookRequest, settings: Settings) -> dict[str, dict[str, Any] | None]:
    """Return every prefetch key of the service with its data (None = the client has none)."""
    reader = None
    refusal = fhir_server_refusal(request.fhir_server, settings, verified_issuer()) if request.fhir_server else None
    if refusal:
        log.warning("fhirServer refused: %s", refusal)  # the URL itself is not logged: it may name the practice
    if request.fhir_server and not refusal:
        token = request.fhir_authorization.access_token if request.fhir_authorization else None
        deadline = time.monotonic() + settings.fhir_timeout_seconds
        reader = FhirReader(request.fhir_server, token, settings, deadline, request.patient_id)

    resolved: dict[str, dict[str, Any] | None] = {}
    jobs: dict[str, Future[dict[str, Any]]] = {}
    problems: list[Issue] = []
    for key, template in request.service.prefetch.items():
        sent = key in request.prefetch and not _needs_fetch(request.prefetch[key])
        value = request.prefetch.get(key) if sent else None
        if sent and (value is None or _next_link(value) is None):
            resolved[key] = value
            continue
        if key in OPTIONAL_PREFETCH and not sent and (reader is None or request.prefetch):
            # optional history, fetched only for a client that prefetched nothing (one that prefetched has said
            # what it holds); without it, supplies are measured from the current orders
            resolved[key] = None
            continue
        if reader is None:
            why = "its next pages need fhirServer" if sent else "it was not prefetched and there is no fhirServer"
            if refusal:
                why = f"fhirServer may not be called ({refusal})"
            problems.append(Issue(f"Cannot obtain prefetch '{key}': {why}.", f"prefetch.{key}", "processing"))
            continue
        try:
            url = None if sent else f"{reader.base_url}/{render_template(template, request.context)}"
        except Unobtainable as exc:
            problems.append(Issue(f"Cannot obtain prefetch '{key}': {exc}.", f"prefetch.{key}", "processing"))
            continue
        jobs[key] = _EXECUTOR.submit(reader.read, key, url, value)

    if jobs:
        assert reader is not None
        done, _ = wait(jobs.values(), timeout=max(0.0, reader.deadline - time.monotonic()))
        for key, job in jobs.items():
            if job not in done:
                job.cancel()
                if key in OPTIONAL_PREFETCH:
                    resolved[key] = None
                    continue
                problems.append(
                    Issue(
                        f"Cannot obtain prefetch '{key}': the FHIR server did not answer in time.",
                        f"prefetch.{key}",
                        "timeout",
                    )
                )
                continue
            try:
                resolved[key] = job.result()
            except Unobtainable as exc:
                if key in OPTIONAL_PREFETCH:
                    log.info("optional prefetch %s unobtainable: %s", key, exc)
                    resolved[key] = None
                    continue
                problems.append(Issue(f"Cannot obtain prefetch '{key}': {exc}.", f"prefetch.{key}", "processing"))
    if problems:
        log.info("prefetch unobtainable: %s", "; ".join(p.diagnostics for p in problems))
        raise PreconditionFailed(issues=problems)
    return resolved
