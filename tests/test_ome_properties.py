"""Properties of the OME arithmetic (hypothesis): never negative, additive, monotonic, order-invariant."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.ome_helpers import mr, ome

PRODUCTS = [
    "36127711000001103",  # Morphine 60mg modified-release tablets
    "322708003",  # Morphine 10mg tablets
    "322696002",  # Oxycodone 40mg modified-release tablets
    "322503009",  # Codeine 30mg tablets
    "322341003",  # Co-codamol 30mg/500mg tablets
    "333919005",  # Fentanyl 25micrograms/hour transdermal patches
    "322591003",  # Methadone 5mg tablets
    "322623000",  # Tramadol 50mg capsules
    "42017511000001108",  # Tapentadol 50mg tablets
    "415167006",  # Pregabalin 75mg capsules (not an opioid)
]


def _structured(code: str, dose: int, per_day: int, prn: bool, index: int) -> dict:
    dosage = {
        "doseAndRate": [{"doseQuantity": {"value": dose, "unit": "tablet"}}],
        "timing": {"repeat": {"frequency": per_day, "period": 1, "periodUnit": "d"}},
        "asNeededBoolean": prn,
    }
    return mr(code=code, dosage=[dosage], id=f"o{index}")


orders = st.lists(
    st.tuples(st.sampled_from(PRODUCTS), st.integers(1, 4), st.integers(1, 6), st.booleans()), min_size=1, max_size=6
).map(lambda items: [_structured(c, d, f, p, i) for i, (c, d, f, p) in enumerate(items)])


def _totals(resources):
    result = ome(*resources)
    return result.total_min, result.total_max


@settings(max_examples=60, deadline=None)
@given(orders)
def test_ome_is_never_negative_and_min_never_exceeds_max(resources):
    low, high = _totals(resources)
    assert 0 <= low <= high
    for order in ome(*resources).orders:
        if order.counted:
            assert 0 <= order.ome_min <= order.ome_max


@settings(max_examples=60, deadline=None)
@given(orders, orders)
def test_ome_is_additive_over_orders(first, second):
    second = [dict(r, id=f"b{i}") for i, r in enumerate(second)]
    both = _totals(first + second)
    one, two = _totals(first), _totals(second)
    assert both == (one[0] + two[0], one[1] + two[1])


@settings(max_examples=60, deadline=None)
@given(orders, st.randoms(use_true_random=False))
def test_ome_does_not_depend_on_the_order_of_entries(resources, random):
    shuffled = list(resources)
    random.shuffle(shuffled)
    assert _totals(resources) == _totals(shuffled)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(PRODUCTS), st.integers(1, 4), st.integers(1, 6), st.integers(1, 3), st.booleans())
def test_ome_is_monotonic_in_dose_and_frequency(code, dose, per_day, more, prn):
    base = _totals([_structured(code, dose, per_day, prn, 0)])
    higher_dose = _totals([_structured(code, dose + more, per_day, prn, 0)])
    higher_frequency = _totals([_structured(code, dose, per_day + more, prn, 0)])
    assert higher_dose[1] >= base[1] and higher_dose[0] >= base[0]
    assert higher_frequency[1] >= base[1] and higher_frequency[0] >= base[0]
