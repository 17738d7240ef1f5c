"""One error hierarchy for the whole service: every error we raise is an :class:`OpioidCdsError`.

Errors a client sees are :class:`CdsError` subclasses, each knowing its HTTP status and OperationOutcome;
``app.py`` maps them to a response in one place. The others are raised inside the service and handled where the
contract says (a dose not counted, a taper not made, "could not assess", a refusal to start).
Every body is a FHIR OperationOutcome whose ``issue[].expression`` points at the offending element.
A 500 is reserved for our own bugs and never carries a stack trace.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar


@dataclass(frozen=True)
class Issue:
    """One OperationOutcome issue: what went wrong and where (a FHIRPath-like expression)."""

    diagnostics: str
    expression: str | None = None
    code: str = "invalid"
    severity: str = "error"

    def to_fhir(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.code,
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = [self.expression]
        return issue


class OpioidCdsError(Exception):
    """The root of every error opioid-cds raises on purpose."""


class CdsError(OpioidCdsError):
    """Base of every error the service answers with a non-2xx status."""

    status: ClassVar[int] = 500
    issue_code: ClassVar[str] = "exception"

    def __init__(
        self,
        diagnostics: str = "",
        expression: str | None = None,
        *,
        issues: list[Issue] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.issues = issues or [Issue(diagnostics or self.__class__.__doc__ or "", expression, self.issue_code)]
        self.headers = headers or {}
        super().__init__("; ".join(i.diagnostics for i in self.issues))

    def operation_outcome(self) -> dict[str, Any]:
        return {"resourceType": "OperationOutcome", "issue": [i.to_fhir() for i in self.issues]}


class BadRequest(CdsError):
    """The request is malformed."""

    status = 400
    issue_code = "invalid"


class Unauthorized(CdsError):
    """Authentication failed."""

    status = 401
    issue_code = "login"

    def __init__(self, reason: str) -> None:
        # The body never says why a token was refused (that would help an attacker); the log does.
        super().__init__("Authentication failed.", headers={"WWW-Authenticate": "Bearer"})
        self.reason = reason


class NotFound(CdsError):
    """No such service or route."""

    status = 404
    issue_code = "not-found"


class MethodNotAllowed(CdsError):
    """The route exists, but not with this method."""

    status = 405
    issue_code = "not-supported"


class PreconditionFailed(CdsError):
    """Data the service needs was neither prefetched nor obtainable from the FHIR server."""

    status = 412
    issue_code = "processing"


class PayloadTooLarge(CdsError):
    """The request body is larger than the service accepts."""

    status = 413
    issue_code = "too-costly"


class UnsupportedMediaType(CdsError):
    """The request body must be JSON (Content-Type: application/json)."""

    status = 415
    issue_code = "not-supported"


class InternalError(CdsError):
    """Internal error in the CDS service."""

    status = 500
    issue_code = "exception"


class ConfigError(OpioidCdsError):
    """The service's own configuration (settings, trusted issuers, rules) is broken; it refuses to start."""


class RuleSetError(OpioidCdsError):
    """The rule set has problems; ``problems`` lists each (file, line, message)."""

    def __init__(self, problems: list[Any]) -> None:
        super().__init__(f"{len(problems)} problem(s) in the rules:\n" + "\n".join(str(p) for p in problems))
        self.problems = problems


class EngineError(OpioidCdsError):
    """The engine could not assess this request ("could not assess", never "no alerts")."""


class DosageError(OpioidCdsError, ValueError):
    """The dose cannot be quantified; the message says why (shown on the card as "not counted")."""


class TaperError(OpioidCdsError, ValueError):
    """No taper plan can be made (the reason says why)."""


class Unobtainable(OpioidCdsError):
    """A prefetch key could not be read from the FHIR server (the message is safe to return)."""
