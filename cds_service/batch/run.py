"""Batch evaluation: every patient of CDS Hooks request files, FHIR Bundles or a FHIR Bulk Data export (NDJSON),
through the same pipeline as the live service, one record per patient.

NDJSON exports are split by patient into partition files first (a hash of the patient id), so no more than one
partition is ever held in memory; partitions and files are the tasks that worker processes (or a Dask cluster)
evaluate. Records are written as they come, flushed and fsynced per task; ``--resume`` skips patients already
written. A patient whose data breaks gets an error record; records out == patients in.
"""

from __future__ import annotations

import json
import os
import sys
import time
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from cds_service.clinical.record import HISTORY_STATUSES, bare_patient_id, patient_id_of
from cds_service.protocol.privacy import pseudonymise

PARTITION_LINES = 20_000


@dataclass(frozen=True)
class Options:
    profile: str = "uk"
    settings_file: str | None = None
    rules_dir: str | None = None
    today: str | None = None  # ISO date; default today
    pseudonym_key: bytes | None = None


@dataclass
class Task:
    kind: str  # "file" | "partition"
    path: str
    medications: str | None = None  # the partition's shared Medication resources (NDJSON)
    skip: frozenset[str] = field(default_factory=frozenset)  # patient ids already written (resume)


# --- reading inputs ---------------------------------------------------------------------------------------------------
def patient_of(resource: dict[str, Any]) -> str | None:
    if resource.get("resourceType") == "Patient":
        return str(resource.get("id") or "") or None
    for key in ("subject", "patient"):
        ref = resource.get(key)
        found = patient_id_of(ref.get("reference")) if isinstance(ref, dict) else None
        if found is not None:
            return found
    return None


def _loads(line: str | bytes) -> Any:
    try:
        import orjson

        return orjson.loads(line)
    except ImportError:  # pragma: no cover - orjson is a dependency
        return json.loads(line)


def plan_tasks(paths: Iterable[Path], workdir: Path) -> list[Task]:
    """Tasks for the inputs: each JSON file is a task; NDJSON exports are split into patient partitions."""
    tasks: list[Task] = []
    ndjson: list[Path] = []
    for path in paths:
        if path.is_dir():
            ndjson += sorted(path.rglob("*.ndjson"))
            tasks += [Task("file", str(p)) for p in sorted(path.rglob("*.json"))]
        elif path.suffix == ".ndjson":
            ndjson.append(path)
        else:
            tasks.append(Task("file", str(path)))
    if ndjson:
        tasks += partition(ndjson, workdir)
    return tasks


def partition(files: list[Path], workdir: Path) -> list[Task]:
    """Split NDJSON files by patient into partitions (streamed: one line in memory at a time)."""
    total = sum(f.stat().st_size for f in files)
    count = max(4, min(512, total // (8 * 1024 * 1024) + 1))
    workdir.mkdir(parents=True, exist_ok=True)
    handles = [(workdir / f"part-{i:04d}.ndjson").open("wb") for i in range(count)]
    medications = (workdir / "medications.ndjson").open("wb")
    orphans = (workdir / "orphans.ndjson").open("wb")
    try:
        for path in files:
            with path.open("rb") as source:
                for number, line in enumerate(source, start=1):
                    if not line.strip():
                        continue
                    try:
                        resource = _loads(line)
                    except ValueError:
                        orphans.write(
                            json.dumps({"file": str(path), "line": number, "error": "not JSON"}).encode() + b"\n"
                        )
                        continue
                    if not isinstance(resource, dict):
                        continue
                    if resource.get("resourceType") == "Medication":
                        medications.write(line.rstrip(b"\n") + b"\n")
                        continue
                    patient = patient_of(resource)
                    if patient is None:
                        continue
                    bucket = zlib.crc32(patient.encode()) % count
                    handles[bucket].write(line.rstrip(b"\n") + b"\n")
    finally:
        for handle in [*handles, medications, orphans]:
            handle.close()
    return [
        Task("partition", str(workdir / f"part-{i:04d}.ndjson"), str(workdir / "medications.ndjson"))
        for i in range(count)
    ]


def _document_patients(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(patient id, hook, document for record_from_document) for each patient in a JSON file."""
    if isinstance(document.get("context"), dict):
        patient = bare_patient_id(str(document["context"].get("patientId") or ""))
        yield patient or "unknown", str(document.get("hook") or "patient-view"), document
        return
    if document.get("resourceType") == "Bundle":
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        shared = []
        for entry in document.get("entry") or []:
            resource = entry.get("resource") if isinstance(entry, dict) else None
            if not isinstance(resource, dict):
                continue
            patient = patient_of(resource)
            (groups[patient] if patient else shared).append(resource)
        for patient, resources in groups.items():
            bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in resources + shared]}
            yield patient, "patient-view", bundle
        return
    yield patient_of(document) or "unknown", "patient-view", document


# --- evaluating (in workers) ------------------------------------------------------------------------------------------
_ASSESSORS: dict[Options, Any] = {}


def _assessor(options: Options) -> Any:
    if options not in _ASSESSORS:
        from cds_service.assess import Assessor
        from cds_service.clinical.knowledge.loader import load_knowledge

        rules = Path(options.rules_dir) if options.rules_dir else None
        settings = Path(options.settings_file) if options.settings_file else None
        _ASSESSORS[options] = Assessor.from_paths(load_knowledge(), rules, settings, options.profile)
    return _ASSESSORS[options]


def pseudonym(key: bytes | None, patient: str) -> str:
    """The patient id as written to results: itself without a key, else its pseudonym (as the live log's)."""
    return patient if key is None else pseudonymise(key, patient)


def evaluate_document(
    patient: str, hook: str, document: dict[str, Any], source: str, options: Options
) -> dict[str, Any]:
    """One patient's record (an error record when the data breaks: the run goes on)."""
    from cds_service.clinical.record import record_from_document

    key = pseudonym(options.pseudonym_key, patient)
    record: dict[str, Any] = {"patient": key, "source": source}
    try:
        assessor = _assessor(options)
        today = date.fromisoformat(options.today) if options.today else date.today()
        patient_record = record_from_document(document)
        patient_record.patient_id = patient
        evaluation = assessor.assess(hook, patient_record, today, patient=key)
        ome = evaluation.ome
        record.update(
            {
                "total_ome_mg_per_day": float(ome.total_max.quantize(_CENT)),
                "total_ome_mg_per_day_min": float(ome.total_min.quantize(_CENT)),
                "ome_complete": ome.complete,
                "rules": evaluation.fired,
                "cards": [
                    {"rule": c["source"]["topic"]["code"], "indicator": c["indicator"], "summary": c["summary"]}
                    for c in evaluation.body["cards"]
                ],
                "classes": sorted(
                    {k for o in ome.orders if o.product and o.status not in HISTORY_STATUSES for k in o.product.classes}
                ),
                "data_quality": patient_record.data_quality[:20],
                "not_counted": [f"{o.display or o.id}: {o.reason}" for o in ome.not_counted],
                "error": evaluation.error,
            }
        )
    except Exception as exc:  # one patient's broken data must not stop the run
        return error_record(key, source, f"{type(exc).__name__}: {exc}")
    return record


def error_record(patient: str, source: str, error: str) -> dict[str, Any]:
    """The record of a patient (or file) that could not be evaluated."""
    return {
        "patient": patient,
        "source": source,
        "total_ome_mg_per_day": None,
        "total_ome_mg_per_day_min": None,
        "ome_complete": False,
        "rules": [],
        "cards": [],
        "classes": [],
        "data_quality": [],
        "not_counted": [],
        "error": error[:500],
    }


_CENT = Decimal("0.01")


def run_task(task: Task, options: Options) -> list[dict[str, Any]]:
    """Evaluate every patient of one task (runs in a worker process or on a Dask worker)."""
    records = []
    if task.kind == "file":
        try:
            document = _loads(Path(task.path).read_bytes())
        except (OSError, ValueError) as exc:
            patient = pseudonym(options.pseudonym_key, f"file:{task.path}")
            return [error_record(patient, task.path, f"cannot read: {type(exc).__name__}")]
        if not isinstance(document, dict):
            document = {}
        for patient, hook, part in _document_patients(document):
            if patient not in task.skip:
                records.append(evaluate_document(patient, hook, part, task.path, options))
        return records
    medications = []
    if task.medications and Path(task.medications).exists():
        with open(task.medications, "rb") as handle:
            medications = [_loads(line) for line in handle if line.strip()]
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    with open(task.path, "rb") as handle:
        for line in handle:
            resource = _loads(line)
            patient = patient_of(resource)
            if patient is not None:
                groups[patient].append(resource)
    for patient in sorted(groups):
        if patient in task.skip:
            continue
        bundle = {"resourceType": "Bundle", "entry": [{"resource": r} for r in groups[patient] + medications]}
        records.append(evaluate_document(patient, "patient-view", bundle, "bulk-export", options))
    return records


# --- the run ----------------------------------------------------------------------------------------------------------
def _drop_cut_line(out: Path) -> None:
    """An interrupted run may leave a half-written last line: cut it off before appending."""
    with out.open("rb+") as handle:
        handle.seek(0, os.SEEK_END)
        size = handle.tell()
        if size == 0:
            return
        handle.seek(max(0, size - 1))
        if handle.read(1) == b"\n":
            return
        position = size
        while position > 0:
            step = min(65536, position)
            handle.seek(position - step)
            chunk = handle.read(step)
            newline = chunk.rfind(b"\n")
            if newline >= 0:
                handle.truncate(position - step + newline + 1)
                return
            position -= step
        handle.truncate(0)


def _written(out: Path) -> set[tuple[str, str]]:
    done: set[tuple[str, str]] = set()
    if out.exists():
        _drop_cut_line(out)
        with out.open("rb") as handle:
            for line in handle:
                try:
                    record = _loads(line)
                except ValueError:
                    continue  # a line cut by an interruption: its patient is evaluated again
                done.add((record.get("source"), record.get("patient")))
    return done


class Progress:
    """A progress line with rate and ETA on a terminal; silent otherwise."""

    def __init__(self, total: int, stream: Any = sys.stderr) -> None:
        self.total, self.done, self.patients = total, 0, 0
        self.started = time.monotonic()
        self.stream = stream
        self.active = hasattr(stream, "isatty") and stream.isatty()

    def update(self, patients: int) -> None:
        self.done += 1
        self.patients += patients
        if not self.active:
            return
        elapsed = max(time.monotonic() - self.started, 1e-6)
        rate = self.patients / elapsed
        eta = (self.total - self.done) * elapsed / self.done
        self.stream.write(f"\r{self.done}/{self.total} tasks, {self.patients} patients, {rate:.0f}/s, ETA {eta:.0f}s ")
        self.stream.flush()

    def close(self) -> None:
        if self.active:
            self.stream.write("\n")


def run(
    tasks: list[Task],
    options: Options,
    out: Path,
    executor: Callable[[list[Task], Options], Iterator[list[dict[str, Any]]]],
    resume: bool = False,
    progress: Progress | None = None,
) -> tuple[int, int]:
    """Evaluate every task with ``executor`` and append records to ``out``; returns (written, errors)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    done = _written(out) if resume else set()
    if not resume and out.exists():
        out.unlink()
    if done and options.pseudonym_key is None:
        skip_by_source: dict[str, set[str]] = defaultdict(set)
        for source, patient in done:
            skip_by_source[source].add(patient)
        tasks = [
            Task(
                t.kind,
                t.path,
                t.medications,
                frozenset(skip_by_source.get(t.path if t.kind == "file" else "bulk-export", set())),
            )
            for t in tasks
        ]
    written = errors = 0
    with out.open("ab") as handle:
        for records in executor(tasks, options):
            fresh = [r for r in records if (r["source"], r["patient"]) not in done]
            for record in fresh:
                handle.write(json.dumps(record, separators=(",", ":"), sort_keys=True).encode() + b"\n")
                errors += bool(record.get("error"))
            handle.flush()
            os.fsync(handle.fileno())
            written += len(fresh)
            if progress:
                progress.update(len(fresh))
    if progress:
        progress.close()
    return written, errors


def local_executor(workers: int) -> Callable[[list[Task], Options], Iterator[list[dict[str, Any]]]]:
    def execute(tasks: list[Task], options: Options) -> Iterator[list[dict[str, Any]]]:
        if workers <= 1:
            for task in tasks:
                yield run_task(task, options)
            return
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # the rules engine must not cross a fork
        with context.Pool(workers) as pool:
            yield from pool.imap_unordered(_run_task_star, [(t, options) for t in tasks], chunksize=1)

    return execute


def _run_task_star(arguments: tuple[Task, Options]) -> list[dict[str, Any]]:
    return run_task(*arguments)


def dask_executor(address: str | None) -> Callable[[list[Task], Options], Iterator[list[dict[str, Any]]]]:
    """Run tasks on a Dask distributed cluster (``address``), or on a LocalCluster started here (None)."""

    def execute(tasks: list[Task], options: Options) -> Iterator[list[dict[str, Any]]]:
        from dask.distributed import Client, LocalCluster, as_completed

        cluster = None
        if address is None:
            cluster = LocalCluster(
                n_workers=max(1, os.cpu_count() or 1), threads_per_worker=1, processes=True, dashboard_address=None
            )
            client = Client(cluster)
        else:
            client = Client(address)
        try:
            futures = [client.submit(run_task, task, options, pure=False) for task in tasks]
            for future in as_completed(futures):
                yield future.result()
        finally:
            client.close()
            if cluster is not None:
                cluster.close()

    return execute
