"""Dosage -> amount per day. Expected values worked by hand from the instruction."""

from __future__ import annotations

from decimal import Decimal

import pytest

from cds_service.clinical.dosage import DosageError, daily_dosage, text_line


def _dose(quantity, unit="tablet", **repeat):
    return {"doseAndRate": [{"doseQuantity": {"value": quantity, "unit": unit}}], "timing": {"repeat": repeat}}


def _daily(*dosages, **extra):
    lines = daily_dosage({"dosageInstruction": list(dosages), **extra}).lines
    low = sum((line.daily.low for line in lines), Decimal(0))
    high = sum((line.daily.high for line in lines), Decimal(0))
    return float(low), float(high), {line.daily.unit for line in lines}


@pytest.mark.parametrize(
    ("dosage", "expected"),
    [
        (_dose(1, frequency=2, period=1, periodUnit="d"), (2, 2)),
        (_dose(1, frequency=1, frequencyMax=2, period=1, periodUnit="d"), (1, 2)),
        (_dose(1, frequency=1, period=4, periodMax=6, periodUnit="h"), (4, 6)),
        (_dose(7, frequency=1, period=1, periodUnit="wk"), (1, 1)),
        (_dose(30, frequency=1, period=1, periodUnit="mo"), (1, 1)),
        (_dose(1, frequency=1, period=72, periodUnit="h"), (1 / 3, 1 / 3)),
        (
            {
                "doseAndRate": [{"doseRange": {"low": {"value": 1}, "high": {"value": 2}}}],
                "timing": {"repeat": {"frequency": 4, "period": 1, "periodUnit": "d"}},
            },
            (4, 8),
        ),
        (_dose(1, when=["MORN", "NIGHT"]), (2, 2)),
        (_dose(1, timeOfDay=["08:00:00", "14:00:00", "20:00:00"]), (3, 3)),
    ],
    ids=[
        "freq-2-per-day",
        "frequency-max",
        "period-max-hours",
        "weekly",
        "monthly",
        "every-72-hours",
        "dose-range",
        "when",
        "time-of-day",
    ],
)
def test_structured_timing(dosage, expected):
    low, high, _ = _daily(dosage)
    assert (low, high) == pytest.approx(expected)


@pytest.mark.parametrize(("code", "per_day"), [("BID", 2), ("TID", 3), ("QID", 4), ("QD", 1), ("Q4H", 6), ("QOD", 0.5)])
def test_timing_codes(code, per_day):
    dosage = {
        "doseAndRate": [{"doseQuantity": {"value": 1}}],
        "timing": {
            "code": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-GTSAbbreviation", "code": code}]}
        },
    }
    assert _daily(dosage)[:2] == pytest.approx((per_day, per_day))


def test_stu3_dose_quantity_on_the_dosage_is_read_after_normalisation():
    from cds_service.clinical.record import normalise_dosage

    stu3 = {
        "dosageInstruction": [
            {
                "doseQuantity": {"value": 2, "unit": "tablet"},
                "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}},
            }
        ]
    }
    lines = daily_dosage(normalise_dosage(stu3)).lines
    assert float(lines[0].daily.high) == 6


def test_prn_with_max_dose_per_period_counts_zero_to_the_maximum():
    dosage = {
        "asNeededBoolean": True,
        "doseAndRate": [{"doseRange": {"low": {"value": 1}, "high": {"value": 2}}}],
        "timing": {"repeat": {"frequency": 1, "period": 4, "periodUnit": "h"}},
        "maxDosePerPeriod": {"numerator": {"value": 6, "unit": "tablet"}, "denominator": {"value": 1, "unit": "d"}},
    }
    assert _daily(dosage)[:2] == (0, 6)  # 2 every 4 hours would be 12; the stated maximum is 6


def test_prn_with_only_a_maximum_counts_the_maximum():
    dosage = {
        "asNeededCodeableConcept": {"text": "pain"},
        "doseAndRate": [{"doseQuantity": {"value": 5, "unit": "ml"}}],
        "maxDosePerPeriod": {"numerator": {"value": 30, "unit": "ml"}, "denominator": {"value": 24, "unit": "h"}},
    }
    assert _daily(dosage) == (0, 30, {"ml"})


def test_dose_in_mg_and_micrograms_is_kept_as_mg():
    assert _daily(_dose(20, "mg", frequency=2, period=1, periodUnit="d")) == (40, 40, {"mg"})
    assert _daily(_dose(500, "micrograms", frequency=2, period=1, periodUnit="d")) == (1, 1, {"mg"})


def test_regular_and_prn_lines_add_up():
    regular = _dose(1, frequency=2, period=1, periodUnit="d")
    prn = {"text": "ONE tablet up to four times a day when required"}
    assert _daily(regular, prn)[:2] == (2, 6)  # regular 2 a day; PRN 0 to 4 more


@pytest.mark.parametrize(
    ("text", "low", "high", "unit"),
    [
        ("ONE tablet TWICE a day", 2, 2, "unit"),
        ("1-2 tablets up to four times a day when required", 0, 8, "unit"),
        ("one patch every 72 hours", 1 / 3, 1 / 3, "unit"),
        ("apply one patch every 7 days", 1 / 7, 1 / 7, "unit"),
        ("5ml every 4 hours when required, max 30ml in 24 hours", 0, 30, "ml"),
        ("one at night", 1, 1, "unit"),
        ("TWO tablets FOUR times a day", 8, 8, "unit"),
        ("take one or two every 4-6 hours if needed, maximum 8 in 24 hours", 0, 8, "unit"),
        ("10mg twice daily", 20, 20, "mg"),
        ("1 bd", 2, 2, "unit"),
        ("2 qds prn", 0, 8, "unit"),
        ("one tablet three times a day for 5 days", 3, 3, "unit"),
        ("Take 1 capsule (20 mg total) by mouth daily.", 1, 1, "unit"),
        ("half a tablet in the morning", 0.5, 0.5, "unit"),
    ],
)
def test_uk_free_text(text, low, high, unit):
    line = text_line(text)
    assert (float(line.daily.low), float(line.daily.high)) == pytest.approx((low, high))
    assert line.daily.unit == unit


@pytest.mark.parametrize("text", ["as directed", "use as directed by your doctor", "2 times a day for 10 days", ""])
def test_text_that_cannot_be_quantified(text):
    with pytest.raises(DosageError):
        text_line(text)


def test_dispense_quantity_over_supply_duration_is_the_last_resort():
    resource = {
        "dispenseRequest": {
            "quantity": {"value": 56, "unit": "tablet"},
            "expectedSupplyDuration": {"value": 28, "unit": "day"},
        }
    }
    dosage = daily_dosage(resource)
    assert dosage.basis == "dispense quantity" and float(dosage.lines[0].daily.high) == 2


def test_unreadable_text_falls_back_to_the_dispense_quantity_with_a_note():
    resource = {
        "dosageInstruction": [{"text": "as directed"}],
        "dispenseRequest": {
            "quantity": {"value": 30, "unit": "tablet"},
            "expectedSupplyDuration": {"value": 10, "unit": "d"},
        },
    }
    dosage = daily_dosage(resource)
    assert float(dosage.lines[0].daily.high) == 3 and "quantity supplied" in dosage.notes[0]


def test_nothing_to_read_is_an_error():
    with pytest.raises(DosageError, match="no dosage"):
        daily_dosage({})


def test_one_unreadable_line_beside_a_readable_one_is_an_error_not_a_low_total():
    resource = {"dosageInstruction": [_dose(1, frequency=2, period=1, periodUnit="d"), {"text": "as directed"}]}
    with pytest.raises(DosageError, match="too low"):
        daily_dosage(resource)
