"""The shared unit tables and reference readers of the clinical core (one place each)."""

from __future__ import annotations

from decimal import Decimal

from cds_service.clinical.record import bare_patient_id, patient_id_of
from cds_service.clinical.units import MASS_TO_MG, days_per, quantity_value


def test_mass_units_in_milligrams():
    assert MASS_TO_MG["g"] == 1000
    assert MASS_TO_MG["micrograms"] == Decimal("0.001")
    assert MASS_TO_MG["µg"] == MASS_TO_MG["mcg"] == MASS_TO_MG["ug"] == Decimal("0.001")
    assert MASS_TO_MG["nanogram"] == Decimal("0.000001")


def test_period_codes_and_words_in_days():
    assert days_per("d") == days_per("day") == days_per("Days") == 1
    assert days_per("wk") == days_per("weeks") == 7
    assert days_per("mo") == days_per("month") == 30  # a UK 30-day month supply
    assert days_per("h") * 24 == days_per("hours") * 24 == days_per("hr") * 24 == 1


def test_unknown_or_wrong_typed_period_is_none():
    assert days_per("fortnight") is None
    assert days_per(["d"]) is None
    assert days_per(None) is None


def test_patient_reference_forms_give_the_id():
    assert patient_id_of("Patient/123") == "123"
    assert patient_id_of("https://fhir.example.nhs.uk/R4/Patient/abc-9") == "abc-9"
    assert patient_id_of("Patient/123/_history/2") == "123"


def test_non_patient_references_give_none():
    assert patient_id_of("Practitioner/123") is None
    assert patient_id_of({"reference": "Patient/1"}) is None
    assert patient_id_of("urn:uuid:5d1b6e9a-0000-4000-8000-000000000001") is None


def test_context_patient_id_sent_as_reference_reads_as_id():
    assert bare_patient_id("Patient/123") == "123"
    assert bare_patient_id("123") == "123"


def test_quantity_values_are_finite_non_negative_numbers_only():
    assert quantity_value(28) == 28
    assert quantity_value(2.5) == Decimal("2.5")
    assert quantity_value(True) is None  # a bool is an int in Python, never a quantity
    assert quantity_value("28") is None
    assert quantity_value(float("nan")) is None
    assert quantity_value(-7) is None
