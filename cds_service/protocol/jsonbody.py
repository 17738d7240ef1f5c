"""Decode an HTTP body as JSON safely: UTF-8, no NaN/Infinity, bounded nesting.

Errors are :class:`BadRequest` with a position, so a caller sees where the body went wrong.
"""

from __future__ import annotations

import json
from typing import Any

from cds_service.errors import BadRequest

ROOT = "$"  # the expression naming the body as a whole (see docs/decisions.md, "Error expressions")


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def parse_json_body(raw: bytes, max_depth: int) -> Any:
    """Return the decoded JSON value of ``raw``; raise :class:`BadRequest` naming where it is malformed."""
    if not raw.strip():
        raise BadRequest("The request body is empty; a JSON object is required.", ROOT)
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"The request body is not UTF-8 (byte {exc.start}).", ROOT) from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise BadRequest(
            f"The request body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}.", ROOT
        ) from None
    except ValueError as exc:  # NaN / Infinity
        raise BadRequest(f"The request body is not valid JSON: {exc}.", ROOT) from None
    except RecursionError:
        raise BadRequest(f"The request body nests deeper than {max_depth} levels.", ROOT) from None
    path = deepest_path_over(value, max_depth)
    if path is not None:
        raise BadRequest(f"The request body nests deeper than {max_depth} levels.", path)
    return value


def deepest_path_over(value: Any, max_depth: int) -> str | None:
    """Return the path of the first container nested deeper than ``max_depth``, or None.

    The common case (not too deep) walks containers only and builds no paths; paths are built only to
    report a failure.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    too_deep = False
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            too_deep = True
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    if not too_deep:
        return None
    path_stack: list[tuple[Any, int, str]] = [(value, 1, "")]
    while path_stack:
        node, depth, path = path_stack.pop()
        if depth > max_depth:
            return path or ROOT
        if isinstance(node, dict):
            items = ((f"{path}.{k}" if path else str(k), c) for k, c in node.items())
        else:
            items = ((f"{path}[{i}]", c) for i, c in enumerate(node))
        path_stack.extend((c, depth + 1, p) for p, c in items if isinstance(c, dict | list))
    return ROOT
