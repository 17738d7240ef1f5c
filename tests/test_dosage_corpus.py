"""Every row of tests/data/uk_dosage_texts.csv: UK GP dose texts, each worked out by hand (the reasoning column).

A row gives what the text doses per day (min, max, in units of the presentation, ml or mg) and whether the reader
must flag it uncertain (a number or frequency it could not account for); "not counted" rows must be refused with
a reason (DosageError), never read as a lower dose.
"""

from __future__ import annotations

import csv
from fractions import Fraction
from pathlib import Path

import pytest

from cds_service.clinical.dosage import DosageError, text_line

CORPUS = Path(__file__).parent / "data" / "uk_dosage_texts.csv"


def _rows() -> list[dict[str, str]]:
    with CORPUS.open(newline="", encoding="utf-8") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return list(csv.DictReader(lines))


ROWS = _rows()


def _number(value: str) -> float:
    return float(Fraction(value))


def test_the_corpus_has_at_least_300_hand_worked_rows():
    assert len(ROWS) >= 300
    assert all(row["reasoning"].strip() for row in ROWS)
    assert len({row["text"] for row in ROWS}) == len(ROWS)  # no text twice


@pytest.mark.parametrize("row", ROWS, ids=[row["text"][:60] for row in ROWS])
def test_uk_dosage_text(row):
    if row["unit"] == "not counted":
        with pytest.raises(DosageError):
            text_line(row["text"])
        return
    line = text_line(row["text"])
    daily = line.daily
    expected = (_number(row["min_per_day"]), _number(row["max_per_day"]))
    assert (float(daily.low), float(daily.high)) == pytest.approx(expected), row["reasoning"]
    assert daily.unit == row["unit"]
    assert line.uncertain is (row["uncertain"] == "true"), line.reasons
