"""Pseudonymous patient ids for logs: a keyed hash, so a log line never carries a patient identifier."""

from __future__ import annotations

import hashlib
import hmac


def pseudonymise(key: bytes, patient_id: str | None) -> str:
    """Return a stable 16-hex-digit pseudonym of ``patient_id`` under ``key`` ("-" when there is none)."""
    if not patient_id:
        return "-"
    return hmac.new(key, patient_id.encode("utf-8"), hashlib.sha256).hexdigest()[:16]
