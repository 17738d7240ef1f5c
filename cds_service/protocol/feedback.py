"""CDS Hooks 2.0 feedback: check a ``POST /cds-services/{id}/feedback`` body and report every problem."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from cds_service.errors import BadRequest, Issue
from cds_service.protocol.hooks import is_text
from cds_service.protocol.jsonbody import ROOT

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def _is_datetime(value: Any) -> bool:
    if not isinstance(value, str) or "T" not in value:
        return False
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return parsed.tzinfo is not None


def _check_coding(value: Any, path: str, issues: list[Issue]) -> None:
    if not isinstance(value, dict):
        issues.append(Issue("Must be a Coding object.", path))
        return
    for name in ("code", "system"):
        if not is_text(value.get(name)):
            issues.append(Issue(f"A reason Coding needs {name}.", f"{path}.{name}", "required"))


def _check_item(item: Any, path: str, issues: list[Issue]) -> None:
    if not isinstance(item, dict):
        issues.append(Issue("A feedback item must be an object.", path))
        return
    if not is_text(item.get("card")):
        issues.append(Issue("card (the card's uuid) is required.", f"{path}.card", "required"))
    elif not _UUID.match(item["card"]):
        issues.append(Issue("card must be the uuid of a card this service returned.", f"{path}.card"))
    outcome = item.get("outcome")
    if outcome not in ("accepted", "overridden"):
        issues.append(
            Issue(
                "outcome must be 'accepted' or 'overridden'.",
                f"{path}.outcome",
                "required" if outcome is None else "invalid",
            )
        )
    if not _is_datetime(item.get("outcomeTimestamp")):
        issues.append(
            Issue(
                "outcomeTimestamp must be an ISO 8601 date-time with a time zone.",
                f"{path}.outcomeTimestamp",
                "required" if "outcomeTimestamp" not in item else "invalid",
            )
        )
    accepted = item.get("acceptedSuggestions")
    if outcome == "accepted":
        if not isinstance(accepted, list) or not accepted:
            issues.append(
                Issue(
                    "acceptedSuggestions is required when the outcome is accepted.",
                    f"{path}.acceptedSuggestions",
                    "required",
                )
            )
        else:
            for i, suggestion in enumerate(accepted):
                if not isinstance(suggestion, dict) or not is_text(suggestion.get("id")):
                    issues.append(
                        Issue(
                            "An accepted suggestion needs its id.",
                            f"{path}.acceptedSuggestions[{i}].id",
                            "required",
                        )
                    )
    elif accepted is not None:
        issues.append(Issue("acceptedSuggestions is only for accepted outcomes.", f"{path}.acceptedSuggestions"))
    reason = item.get("overrideReason")
    if reason is not None:
        rpath = f"{path}.overrideReason"
        if outcome != "overridden":
            issues.append(Issue("overrideReason is only for overridden outcomes.", rpath))
        elif not isinstance(reason, dict):
            issues.append(Issue("overrideReason must be an object.", rpath))
        elif reason.get("reason") is None and reason.get("userComment") is None:
            issues.append(Issue("overrideReason needs a reason, a userComment, or both.", rpath, "required"))
        else:
            if reason.get("reason") is not None:
                _check_coding(reason["reason"], f"{rpath}.reason", issues)
            if reason.get("userComment") is not None and not isinstance(reason["userComment"], str):
                issues.append(Issue("userComment must be a string.", f"{rpath}.userComment"))


def parse_feedback(body: Any) -> list[dict[str, Any]]:
    """Return the checked feedback items; raise one :class:`BadRequest` listing every problem."""
    if not isinstance(body, dict):
        raise BadRequest("A feedback request must be a JSON object.", ROOT)
    items = body.get("feedback")
    if not isinstance(items, list) or not items:
        raise BadRequest("feedback must be a non-empty array.", "feedback")
    issues: list[Issue] = []
    for index, item in enumerate(items):
        _check_item(item, f"feedback[{index}]", issues)
    if issues:
        raise BadRequest(issues=issues)
    return items
