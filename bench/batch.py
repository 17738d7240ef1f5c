"""Batch throughput: patients per second over a synthetic Bulk Data export with 1, 2 and all workers, and the
raw JSON parse rate of the same export (orjson over the NDJSON) as the floor, in one run; peak memory.

    python bench/batch.py [--patients 100000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from cds_service.batch.run import Options, local_executor, plan_tasks, run
from cds_service.batch.synth import synthesise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="opioid-cds-bench-"))
    try:
        export = root / "export"
        started = time.perf_counter()
        counts = synthesise(args.patients, args.seed, export)
        print(
            f"synthetic export: {args.patients} patients, {sum(counts.values())} resources "
            f"({sum(f.stat().st_size for f in export.iterdir()) / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s"
        )
        started = time.perf_counter()
        lines = 0
        for path in export.glob("*.ndjson"):
            with path.open("rb") as handle:
                for line in handle:
                    orjson.loads(line)
                    lines += 1
        parse = time.perf_counter() - started
        floor = args.patients / parse
        print(f"floor: orjson parse of every line: {lines} lines in {parse:.1f} s = {floor:.0f} patients/s")
        cores = os.cpu_count() or 1
        for workers in sorted({1, 2, cores}):
            out = root / f"out-{workers}"
            started = time.perf_counter()
            tasks = plan_tasks([export], root / f"work-{workers}")
            written, errors = run(tasks, Options(today="2026-11-23"), out / "records.jsonl", local_executor(workers))
            elapsed = time.perf_counter() - started
            rate = written / elapsed
            print(
                f"{workers} worker(s){' (all cores)' if workers == cores else ''}: {written} records, {errors} errors "
                f"in {elapsed:.0f} s = {rate:.0f} patients/s ({rate / workers:.0f} per worker); "
                f"{floor / rate:.1f}x slower than the parse floor"
            )
        parent = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"peak RSS: this process {parent:.0f} MB, largest worker {children:.0f} MB")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
