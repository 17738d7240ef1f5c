"""Microseconds per order for identification + dosage + OME (the pure path; no pydantic validation on it).

    python bench/ome.py [--orders 20000]

Mixes the ways orders arrive: dm+d codes with structured dosage, dm+d codes with UK free text, RxNorm codes,
brand and RxNorm names to parse, patches, PRN lines. The floor, measured in the same run, is copying each raw
order dict (json round trip), so the figure can be read as a ratio on a noisy shared machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import tracemalloc

from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.ome import compute_ome

DMD = "https://dmd.nhs.uk"
RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm"


def _order(i: int, concept: dict, dosage: list) -> dict:
    return {
        "resourceType": "MedicationRequest",
        "id": f"o{i}",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": concept,
        "dosageInstruction": dosage,
    }


STRUCTURED = [
    {
        "doseAndRate": [{"doseQuantity": {"value": 1, "unit": "tablet"}}],
        "timing": {"repeat": {"frequency": 2, "period": 1, "periodUnit": "d"}},
    }
]
KINDS = [
    ({"coding": [{"system": DMD, "code": "36127711000001103"}]}, STRUCTURED),
    ({"coding": [{"system": DMD, "code": "322341003"}]}, [{"text": "TWO tablets FOUR times a day"}]),
    ({"coding": [{"system": DMD, "code": "333919005"}]}, [{"text": "apply one patch every 72 hours"}]),
    ({"coding": [{"system": RXNORM, "code": "1049593"}]}, STRUCTURED),
    ({"text": "Zomorph 30mg modified-release capsules"}, [{"text": "ONE capsule TWICE a day"}]),
    ({"text": "12 HR Oxycodone Hydrochloride 10 MG Extended Release Oral Tablet"}, STRUCTURED),
    (
        {"coding": [{"system": DMD, "code": "322691007"}]},
        [{"text": "1-2 capsules up to four times a day when required"}],
    ),
    ({"coding": [{"system": DMD, "code": "415167006"}]}, STRUCTURED),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--per-request", type=int, default=10, help="orders evaluated together, as in one request")
    args = parser.parse_args()
    knowledge = load_knowledge()
    orders = [_order(i, *KINDS[i % len(KINDS)]) for i in range(args.orders)]
    batches = [orders[i : i + args.per_request] for i in range(0, len(orders), args.per_request)]
    compute_ome([(o, "existing") for o in batches[0]], {}, knowledge)  # warm caches

    def run_ome() -> list[float]:
        times = []
        for batch in batches:
            started = time.perf_counter()
            compute_ome([(o, "existing") for o in batch], {}, knowledge)
            times.append((time.perf_counter() - started) / len(batch))
        return times

    def run_floor() -> list[float]:
        times = []
        for batch in batches:
            started = time.perf_counter()
            [json.loads(json.dumps(o)) for o in batch]
            times.append((time.perf_counter() - started) / len(batch))
        return times

    floor, path = run_floor(), run_ome()
    tracemalloc.start()
    run_ome()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    mean_path, mean_floor = statistics.mean(path) * 1e6, statistics.mean(floor) * 1e6
    print(f"{args.orders} orders in requests of {args.per_request}; kinds: {len(KINDS)} (codes, text, brands, patches)")
    print(
        f"identification + dosage + OME: mean {mean_path:.1f} us/order, median "
        f"{statistics.median(path) * 1e6:.1f} us/order"
    )
    print(f"floor (json copy of the order):  mean {mean_floor:.1f} us/order")
    print(f"ratio to the floor: {mean_path / mean_floor:.1f}x; peak traced memory during a run {peak / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
