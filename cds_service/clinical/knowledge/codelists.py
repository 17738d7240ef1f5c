"""Load the committed SNOMED CT codelists in ``clinical/knowledge/data`` (built by ``scripts/build_codelists.py``)."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from importlib import resources


@dataclass(frozen=True)
class Code:
    system: str
    code: str
    term: str
    source: str


@cache
def load_codelist(name: str) -> tuple[Code, ...]:
    """Return the rows of ``cds_service/clinical/knowledge/data/<name>.csv`` (read once per process)."""
    text = resources.files("cds_service.clinical.knowledge.data").joinpath(f"{name}.csv").read_text(encoding="utf-8")
    rows = csv.DictReader(text.splitlines())
    return tuple(Code(r["system"], r["code"], r["term"], r["source"]) for r in rows)
