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


# --- issue #10 item 1: a dosage reader that accounts for every number -----------------------------------------
MORPHINE_MR_60 = "36127711000001103"  # Morphine 60mg modified-release tablets (as in tests/test_ome.py)


def test_one_in_the_morning_and_two_at_night_is_three_a_day():
    line = text_line("one in the morning and two at night")
    assert (line.daily.low, line.daily.high, line.daily.unit) == (3, 3, "unit")  # 1 + 2 = 3 tablets
    assert not line.uncertain


def test_one_in_the_morning_and_two_at_night_of_morphine_mr_60_is_180_ome():
    from tests.ome_helpers import mr, total

    # 3 tablets x 60 mg = 180 mg morphine x 1 (oral morphine) = 180 mg OME; the old reader counted 1 tablet = 60
    assert total(mr(code=MORPHINE_MR_60, dosage="one in the morning and two at night")) == 180.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5ml to 10ml every 4 hours when required", (0, 60, "ml")),  # up to 10 ml x 24/4 = 60 ml
        ("2.5mg to 5mg sc every 4 hours prn", (0, 30, "mg")),  # up to 5 mg x 6 = 30 mg
        ("5-10ml every 4 hours when required", (0, 60, "ml")),  # the unit after both numbers
        ("1 to 2 tablets every 4 hours", (6, 12, "unit")),  # 1-2 x 6
    ],
)
def test_a_range_with_the_unit_after_the_first_number_counts_its_top(text, expected):
    line = text_line(text)
    assert (line.daily.low, line.daily.high, line.daily.unit) == expected


def test_one_or_two_four_times_a_day_is_four_to_eight():
    line = text_line("ONE OR TWO FOUR TIMES A DAY")
    assert (line.daily.low, line.daily.high) == (4, 8)  # 1-2 tablets x 4; the old reader read 1 x 4


def test_one_four_times_a_day_is_four_not_no_dose():
    line = text_line("ONE FOUR TIMES A DAY")
    assert (line.daily.low, line.daily.high) == (4, 4)  # 1 x 4; the old reader found no dose


@pytest.mark.parametrize(
    ("text", "high"),
    [
        ("2 mane 1 nocte", 3),  # 2 + 1
        ("30mg am 20mg pm", 50),  # 30 + 20 mg
        ("1 tab om 2 tab on", 3),  # 1 + 2
        ("1 in the morning, 1 at lunchtime and 2 at night", 4),  # 1 + 1 + 2
    ],
)
def test_split_doses_are_summed(text, high):
    assert text_line(text).daily.high == high


def test_a_maximum_caps_a_range_and_reads_as_up_to_above_a_fixed_regular_dose():
    assert text_line("1-2 every 4-6 hours max 8 in 24 hours").daily.high == 8  # 2 x 6 = 12, capped at 8
    # A maximum above a fixed regular dose reads as "up to" it (review rv10): 1 x 2 = 2 regular, "max 4 a day" -> up
    # to 4, flagged. The old expectation (2) dropped the maximum the prescriber wrote: a silent under-count.
    line = text_line("1 tablet twice a day max 4 a day")
    assert (line.daily.low, line.daily.high) == (2, 4) and line.uncertain


def test_a_number_not_accounted_for_flags_the_line_and_keeps_the_highest_reading():
    line = text_line("one every 4 hours four times a day")  # two frequencies: 6 and 4 a day
    assert line.uncertain and line.daily.high == 6
    assert any("frequencies" in reason for reason in line.reasons)


def test_stat_alone_is_one_dose():
    assert text_line("stat").daily.high == 1


@pytest.mark.parametrize("text", ["AS DIRECTED", "use as directed"])
def test_as_directed_with_no_dose_is_not_counted_with_that_reason(text):
    with pytest.raises(DosageError, match=rf'dose "{text}" cannot be quantified'):
        text_line(text)


def test_eps_text_that_restates_the_structured_dose_counts_it_once():
    line = text_line("1 tablet - 3 times a day - Oral route - One tablet three times daily")
    assert line.daily.high == 3  # one regimen said twice: 1 x 3, not 6


def test_text_higher_than_the_structured_dose_wins_and_is_flagged():
    dosage = {**_dose(1, frequency=2, period=1, periodUnit="d"), "text": "one in the morning and two at night"}
    result = daily_dosage({"dosageInstruction": [dosage]})
    # structured: 1 x 2 = 2; text: 1 + 2 = 3; the higher (3) counts, flagged uncertain with the reason in the notes
    assert result.lines[0].daily.high == 3 and result.uncertain
    assert any("higher was counted" in note for note in result.notes)


def test_structured_dose_higher_than_its_text_is_kept_and_flagged():
    dosage = {**_dose(2, frequency=2, period=1, periodUnit="d"), "text": "one twice a day"}
    result = daily_dosage({"dosageInstruction": [dosage]})
    assert result.lines[0].daily.high == 4 and result.uncertain  # 2 x 2 structured beats 1 x 2 written


def test_structured_dose_and_text_that_agree_are_not_flagged():
    dosage = {**_dose(1, frequency=3, period=1, periodUnit="d"), "text": "1 tablet - 3 times a day - Oral route"}
    result = daily_dosage({"dosageInstruction": [dosage]})
    assert result.lines[0].daily.high == 3 and not result.uncertain


def test_structured_timing_gives_the_frequency_a_dose_only_text_lacks():
    dosage = {"text": "2 tablets", "timing": {"repeat": {"frequency": 3, "period": 1, "periodUnit": "d"}}}
    assert _daily(dosage)[:2] == (6, 6)  # 2 tablets from the text x 3 a day from the timing


def test_structured_times_of_day_beyond_the_frequency_count_and_are_flagged():
    dosage = _dose(1, frequency=1, period=1, periodUnit="d", when=["MORN", "NIGHT"])
    result = daily_dosage({"dosageInstruction": [dosage]})
    # frequency says once a day, but two times of day are named: 1 tablet x 2 occasions = 2, flagged
    assert result.lines[0].daily.high == 2 and result.uncertain


def test_a_number_too_large_to_be_a_dose_is_not_counted_rather_than_overflowing():
    with pytest.raises(DosageError, match="too large"):
        text_line("1000000000000000000000000000000 tablets bd")


def test_an_uncertain_text_dose_reaches_the_order_flags():
    from tests.ome_helpers import mr, ome

    order = ome(mr(code=MORPHINE_MR_60, dosage="one every 4 hours four times a day")).orders[0]
    # two frequencies (every 4 hours = 6, four times a day = 4): the higher, 6 x 60 mg = 360 mg x 1 = 360 OME, flagged
    assert order.ome_max == 360
    assert any(flag.startswith("uncertain dose") for flag in order.flags)


# --- review rv10: silent under-counts ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("take 2 four times a day, max 4 in 24hrs", 4, 8),  # regular 2 x 4 = 8; "max 4" contradicts it: 8 counts
        ("2 qds max 4 a day", 4, 8),  # 2 x 4 = 8 regular; the cap 4 is the least, never the top
    ],
)
def test_a_maximum_below_a_regular_dose_is_flagged_and_the_regular_dose_counts(text, low, high):
    line = text_line(text)
    assert (line.daily.low, line.daily.high) == (low, high) and line.uncertain
    assert any("below the regular dose" in reason for reason in line.reasons)


def test_a_maximum_above_a_regular_daily_dose_reads_as_up_to_the_maximum():
    line = text_line("one tablet daily (max 3 daily)")  # 1 x 1 = 1 regular; "max 3 daily" -> up to 3, flagged
    assert (line.daily.low, line.daily.high) == (1, 3) and line.uncertain


def test_a_structured_maximum_below_a_regular_structured_dose_is_flagged_and_the_dose_counts():
    dosage = {
        **_dose(2, frequency=4, period=1, periodUnit="d"),
        "maxDosePerPeriod": {"numerator": {"value": 4, "unit": "tablet"}, "denominator": {"value": 1, "unit": "d"}},
    }
    result = daily_dosage({"dosageInstruction": [dosage]})
    # 2 tablets x 4 a day = 8; maxDosePerPeriod 4 a day contradicts a fixed regular dose: 8 counts, flagged
    assert result.lines[0].daily.high == 8 and result.uncertain


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("10mg 4 hourly with double dose at night", 60, 70),  # 10 x 24/4 = 60, + one further 10 mg at night = 70
        ("take 1 in the morning, may repeat once", 1, 2),  # 1 + one repeat of 1 = 2
        ("take 1-2 at night, repeat if necessary", 1, 4),  # up to 2 at night + a repeat of up to 2 = 4
        ("5 ml at night, may repeat after 4 hours", 5, 10),  # 5 ml + a repeat of 5 ml = 10 ml (the 4 is hours)
        ("take 1 at night, repeat after 2 hours if needed", 1, 2),  # 1 + a repeat of 1 = 2 (the 2 is hours)
    ],
)
def test_a_repeat_or_double_dose_counts_one_further_dose_flagged(text, low, high):
    line = text_line(text)
    assert (line.daily.low, line.daily.high) == (low, high) and line.uncertain
    assert not any("not understood" in reason for reason in line.reasons)  # every number accounted for


@pytest.mark.parametrize(
    ("text", "high"),
    [
        ("1 BD and 1 PRN", 3),  # 1 x 2 regular + 1 as needed with no frequency, counted once: 3
        ("1 tds + 1 prn", 4),  # 1 x 3 + 1 = 4
    ],
)
def test_an_as_needed_dose_with_no_frequency_beside_a_regular_dose_counts_one_extra_dose_flagged(text, high):
    line = text_line(text)
    assert line.daily.high == high and line.uncertain


def test_an_as_needed_dose_with_no_frequency_and_a_maximum_counts_up_to_the_maximum():
    line = text_line("1 tab bd plus 1 tab prn max 4 daily")  # 1 x 2 regular; the as-needed tablet up to max 4
    assert (line.daily.low, line.daily.high) == (2, 4)


@pytest.mark.parametrize(
    ("text", "high"),
    [
        ("60mg bd = 120mg/day", 120),  # 60 x 2 = 120, restated as the total
        ("total 120mg daily in 2 divided doses", 120),  # the day's total, divided
        ("ii tds", 6),  # ii = 2: 2 x 3
        ("take 2 every 12 hours (4 a day)", 4),  # 2 x 24/12 = 4; "(4 a day)" restates the total, not a dose
    ],
)
def test_emis_wordings_with_totals_and_numerals_are_read(text, high):
    assert text_line(text).daily.high == high


# --- review rv10 item 1: a structured dose and its text in different units, compared with the strength -----------
MORPHINE_10 = "322708003"  # Morphine 10mg tablets (dm+d VMP, as in tests/test_ome.py)


def _structured_with_text(value, unit, text, frequency=2):
    return [
        {
            "text": text,
            "doseAndRate": [{"doseQuantity": {"value": value, "unit": unit}}],
            "timing": {"repeat": {"frequency": frequency, "period": 1, "periodUnit": "d"}},
        }
    ]


@pytest.mark.parametrize(
    ("value", "unit", "text", "ome_max"),
    [
        # structured 1 tablet x 2 = 20 mg; text 20 mg x 2 = 40 mg; the higher, 40 mg x 1 (oral morphine) = 40
        (1, "tablet", "20mg bd", 40),
        # structured 10 mg x 2 = 20 mg; text 2 tablets x 2 x 10 mg = 40 mg: 40
        (10, "mg", "TWO tablets twice a day", 40),
        # structured 1 tablet x 2 = 2; text 1 x 2 + 1 as needed (no frequency: once) = 3 tablets x 10 mg = 30
        (1, "tablet", "1 bd and 1 prn", 30),
    ],
)
def test_structured_dose_and_text_in_different_units_are_compared_with_the_strength_and_the_higher_counts(
    value, unit, text, ome_max
):
    from tests.ome_helpers import mr, ome

    order = ome(mr(code=MORPHINE_10, dosage=_structured_with_text(value, unit, text))).orders[0]
    assert order.counted and order.ome_max == ome_max
    assert any("the higher was counted" in flag for flag in order.flags)


def test_structured_dose_and_text_in_different_units_that_agree_are_not_flagged():
    from tests.ome_helpers import mr, ome

    # 1 tablet x 2 x 10 mg = 20 mg; "10mg bd" = 10 x 2 = 20 mg: the same dose, no flag
    order = ome(mr(code=MORPHINE_10, dosage=_structured_with_text(1, "tablet", "10mg bd"))).orders[0]
    assert order.ome_max == 20 and not any(flag.startswith("uncertain dose") for flag in order.flags)


def test_a_text_in_another_unit_is_flagged_until_the_strength_compares_it():
    result = daily_dosage({"dosageInstruction": _structured_with_text(1, "tablet", "20mg bd")})
    # no product here: 1 tablet x 2 = 2 counts, but the line says the text (40 mg) was not compared
    assert result.lines[0].daily.high == 2 and result.uncertain
    assert any("not compared" in note for note in result.notes)


def test_a_text_with_a_number_that_cannot_be_read_flags_the_structured_dose():
    result = daily_dosage({"dosageInstruction": _structured_with_text(1, "tablet", "2 as per pain team")})
    # the text names a 2 the reader cannot place: the structured 1 x 2 = 2 counts, flagged with the reason
    assert result.lines[0].daily.high == 2 and result.uncertain
    assert any("could not be read" in note for note in result.notes)


def test_a_text_restating_the_timing_only_leaves_the_structured_dose_unflagged():
    result = daily_dosage({"dosageInstruction": _structured_with_text(1, "tablet", "2 times a day for 10 days")})
    assert result.lines[0].daily.high == 2 and not result.uncertain  # 1 x 2; the text restates the timing


def test_a_text_with_a_higher_frequency_and_no_dose_counts_the_structured_dose_at_that_frequency():
    result = daily_dosage({"dosageInstruction": _structured_with_text(1, "tablet", "three times a day")})
    assert result.lines[0].daily.high == 3 and result.uncertain  # 1 tablet (structured) x 3 (text) = 3, flagged


@pytest.mark.parametrize(
    "text",
    [
        "take 1 at night, may take again after 2 hours",  # 1 + 1 again = 2 (the 2 is hours)
        "1 at night, can take a second dose after 4 hours",  # 1 + a second dose of 1 = 2 (the 4 is hours)
    ],
)
def test_a_number_of_hours_before_a_further_dose_is_not_dropped_and_the_further_dose_counts(text):
    line = text_line(text)
    assert line.daily.high == 2 and line.uncertain
    assert not any("not understood" in reason for reason in line.reasons)


def test_every_3_or_4_hours_is_a_frequency_range():
    assert (
        text_line("take 1 tablet 3 or 4 hourly").daily.low,
        text_line("take 1 tablet 3 or 4 hourly").daily.high,
    ) == (
        6,
        8,
    )  # 24/4 = 6 to 24/3 = 8 doses of 1


def test_a_higher_dose_if_severe_counts_at_the_same_times_flagged():
    line = text_line("take one tablet four times daily - can take two if severe")
    # 1 x 4 = 4 usually; 2 x 4 = 8 if severe: 4 to 8, flagged
    assert (line.daily.low, line.daily.high) == (4, 8) and line.uncertain


def test_a_warning_not_to_double_a_dose_is_not_an_extra_dose():
    line = text_line("1 twice a day, do not take a double dose")  # 1 x 2 = 2; the warning adds nothing
    assert line.daily.high == 2 and not line.uncertain
