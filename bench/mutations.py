"""Random type mutations of one request: how many answer 5xx (the service must answer none).

Each mutation replaces one element of ``fhir_fixtures/requests/order-sign.json`` (any object member or list
member, at any depth) with a value of another JSON type (a number, a string, an empty string, a list, an object, a
boolean, null, a huge number, a nested list). Every mutated request is posted to the live app (Flask test client,
authentication off) and its status counted.

    .venv/bin/python bench/mutations.py --n 2000 --seed 1
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import random
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
REQUEST = ROOT / "fhir_fixtures" / "requests" / "order-sign.json"
SERVICE = "/cds-services/opioid-order-sign"
COULD_NOT_ASSESS = "engine/could-not-assess"
REPLACEMENTS: list[Any] = [7, 2.5, "x", "", [], [1, "a"], {}, {"a": 1}, True, None, 10**300, [[[{"b": [1]}]]]]


def paths(value: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every object member and list member, as a path of keys and indexes."""
    found: list[tuple[Any, ...]] = []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else []
    for key, child in children:
        found.append((*here, key))
        found += paths(child, (*here, key))
    return found


def _same_type(a: Any, b: Any) -> bool:
    kinds = (bool, int | float, str, list, dict, type(None))
    return any(isinstance(a, k) and isinstance(b, k) for k in kinds)


def mutate(document: dict[str, Any], rng: random.Random) -> tuple[dict[str, Any], str]:
    """A copy of ``document`` with one element replaced by a value of another type, and where."""
    mutated = copy.deepcopy(document)
    path = rng.choice(paths(mutated))
    parent = mutated
    for key in path[:-1]:
        parent = parent[key]
    old = parent[path[-1]]
    new = rng.choice([r for r in REPLACEMENTS if not _same_type(r, old)])
    parent[path[-1]] = copy.deepcopy(new)
    return mutated, ".".join(map(str, path)) + f" = {json.dumps(new)[:20]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--show", type=int, default=10, help="list this many 5xx mutations")
    options = parser.parse_args(argv)

    from cds_service.app import create_app
    from cds_service.config import load_settings

    logging.disable(logging.CRITICAL)
    document = json.loads(REQUEST.read_text())
    rng = random.Random(options.seed)
    with tempfile.TemporaryDirectory() as tmp:
        env = {"OPIOID_CDS_AUTH": "off", "OPIOID_CDS_DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3"}
        client = create_app(load_settings(env)).test_client()
        statuses: Counter[int] = Counter()
        failures: list[str] = []
        not_assessed: list[str] = []  # answered, but only with "could not assess" (an unexpected error caught)
        for _ in range(options.n):
            mutated, where = mutate(document, rng)
            response = client.post(SERVICE, json=mutated)
            status = response.status_code
            statuses[status] += 1
            if status >= 500:
                failures.append(f"{status} {where}")
            elif status == 200 and COULD_NOT_ASSESS in response.get_data(as_text=True):
                not_assessed.append(where)
    server_errors = sum(n for s, n in statuses.items() if s >= 500)
    print(
        f"{options.n} mutations (seed {options.seed}): {server_errors} answered 5xx, {len(not_assessed)} answered "
        f"only 'could not assess'; statuses {dict(sorted(statuses.items()))}"
    )
    for line in failures[: options.show] + [f"could not assess: {w}" for w in not_assessed[: options.show]]:
        print("  " + line)
    return 1 if server_errors else 0


if __name__ == "__main__":
    sys.exit(main())
