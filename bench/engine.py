"""Rule evaluation: time per request for 1, 20 and 100 orders, and memory over 100,000 evaluations.

    python bench/engine.py [--evaluations 100000]

Times the whole assessment of a prepared record (OME, facts, durable-rules, cards) and the engine call alone, with
the floor (the engine on a single summary fact that fires nothing) measured in the same run. Memory: resident set
size before and after the long run (flat means every engine state is deleted).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from datetime import date

from cds_service.assess import Assessor
from cds_service.clinical.knowledge.loader import load_knowledge
from cds_service.clinical.record import record_from_document

PRODUCTS = [
    ("36127711000001103", "ONE tablet TWICE a day"),  # morphine 60 MR
    ("322691007", "ONE capsule up to four times a day when required"),  # oxycodone 5 PRN
    ("322341003", "TWO tablets FOUR times a day"),  # co-codamol 30/500
    ("415167006", "ONE capsule TWICE a day"),  # pregabalin 75
    ("321197008", "ONE tablet at night"),  # diazepam 5
    ("333919005", "apply one patch every 72 hours"),  # fentanyl 25 patch
]


def document(n_orders: int) -> dict:
    entries = []
    for i in range(n_orders):
        code, dosage = PRODUCTS[i % len(PRODUCTS)]
        entries.append(
            {
                "resource": {
                    "resourceType": "MedicationRequest",
                    "id": f"rx-{i}",
                    "status": "active",
                    "intent": "order",
                    "subject": {"reference": "Patient/p"},
                    "authoredOn": "2026-10-01",
                    "medicationCodeableConcept": {"coding": [{"system": "https://dmd.nhs.uk", "code": code}]},
                    "dosageInstruction": [{"text": dosage}],
                }
            }
        )
    return {
        "hook": "patient-view",
        "context": {"patientId": "p"},
        "prefetch": {
            "patient": {"resourceType": "Patient", "id": "p", "birthDate": "1950-01-01"},
            "medications": {"resourceType": "Bundle", "entry": entries},
        },
    }


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evaluations", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args()
    assessor = Assessor.from_paths(load_knowledge())
    today = date(2026, 11, 23)
    floor_times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        assessor.engine.evaluate([{"kind": "summary", "total_ome_mg_per_day": 0}])
        floor_times.append(time.perf_counter() - started)
    floor = statistics.median(floor_times) * 1e6
    print(f"floor: engine on one fact, nothing fires: {floor:.0f} us")
    print(f"{'orders':>6} {'rules fired':>11} {'engine us':>10} {'x floor':>8} {'assess ms':>10}")
    for n in (1, 20, 100):
        record = record_from_document(document(n))
        evaluation = assessor.assess("patient-view", record, today)
        facts = [evaluation.facts.summary, *evaluation.facts.orders]
        engine_times, assess_times = [], []
        for _ in range(args.repeat):
            started = time.perf_counter()
            assessor.engine.evaluate(facts)
            engine_times.append(time.perf_counter() - started)
        for _ in range(max(20, args.repeat // 10)):
            record = record_from_document(document(n))
            started = time.perf_counter()
            assessor.assess("patient-view", record, today)
            assess_times.append(time.perf_counter() - started)
        engine_us = statistics.median(engine_times) * 1e6
        print(
            f"{n:>6} {len(evaluation.fired):>11} {engine_us:>10.0f} {engine_us / floor:>8.1f} "
            f"{statistics.median(assess_times) * 1e3:>10.2f}"
        )
    record = record_from_document(document(20))
    evaluation = assessor.assess("patient-view", record, today)
    facts = [evaluation.facts.summary, *evaluation.facts.orders]
    before = rss_mb()
    started = time.perf_counter()
    for i in range(args.evaluations):
        assessor.engine.evaluate(facts)
        if i == 1000:
            warm = rss_mb()
    elapsed = time.perf_counter() - started
    after = rss_mb()
    print(
        f"{args.evaluations} engine evaluations of 20 orders: {elapsed:.1f} s; RSS {before:.1f} MB before, "
        f"{warm:.1f} MB after 1,000, {after:.1f} MB after all ({after - warm:+.1f} MB)"
    )


if __name__ == "__main__":
    main()
