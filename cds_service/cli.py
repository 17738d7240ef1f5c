"""``opioid-cds``: the service's command line (``serve``; more commands come with the clinical issues)."""

from __future__ import annotations

import argparse
import faulthandler
import json
import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

from cds_service.errors import ConfigError


def _configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("OPIOID_CDS_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )


def serve(args: argparse.Namespace) -> int:
    """Run the service under gunicorn with several worker processes (crash isolation for the rules engine)."""
    from gunicorn.app.base import BaseApplication

    from cds_service.app import create_app
    from cds_service.config import ACCESS_LOG_FORMAT, load_settings

    if not os.environ.get("OPIOID_CDS_PSEUDONYM_KEY"):
        # One key for all workers of this server, so one patient has one pseudonym across its log lines.
        os.environ["OPIOID_CDS_PSEUDONYM_KEY"] = secrets.token_hex(32)
    settings = load_settings()
    create_app(settings)  # validate configuration (and later the rules) before any worker starts

    class Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            options: dict[str, Any] = {
                "bind": f"{args.host}:{args.port}",
                "workers": args.workers,
                "worker_class": "gthread",
                "threads": args.threads,
                "timeout": 30,
                "graceful_timeout": 10,
                "accesslog": "-" if args.access_log else None,
                "access_log_format": ACCESS_LOG_FORMAT,  # path without the query string: a token there never logs
                "errorlog": "-",
                "limit_request_field_size": 16384,
            }
            for key, value in options.items():
                if value is not None:
                    self.cfg.set(key, value)

        def load(self) -> Any:
            faulthandler.enable()
            return create_app()

    print(f"opioid-cds: discovery at http://{args.host}:{args.port}/cds-services", flush=True)
    Application().run()
    return 0


def ome(args: argparse.Namespace) -> int:
    """Print the OME of a CDS Hooks request, a FHIR Bundle or one MedicationRequest (file or stdin)."""
    from cds_service.clinical.knowledge.loader import load_knowledge
    from cds_service.clinical.record import record_from_document
    from cds_service.clinical.shape import checked_ome

    try:
        text = sys.stdin.read() if args.file == "-" else open(args.file, encoding="utf-8").read()  # noqa: SIM115
        document = json.loads(text)
    except (OSError, ValueError) as exc:
        print(f"opioid-cds ome: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    if not isinstance(document, dict):
        print("opioid-cds ome: expected a JSON object (request, Bundle or MedicationRequest)", file=sys.stderr)
        return 2
    knowledge = load_knowledge()
    if args.profile not in knowledge.profiles:
        print(f"opioid-cds ome: unknown profile {args.profile!r}", file=sys.stderr)
        return 2
    record = record_from_document(document)
    result = checked_ome(record, knowledge, args.profile)
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
    else:
        print(format_ome_table(result.to_json()))
    return 0


def taper(args: argparse.Namespace) -> int:
    """Print a taper plan for the opioids in a request, Bundle or MedicationRequest file."""
    from datetime import date

    from cds_service.clinical.knowledge.loader import load_knowledge
    from cds_service.clinical.record import record_from_document
    from cds_service.clinical.shape import checked_ome
    from cds_service.clinical.taper import TaperError, plan_taper, regimens_from_ome
    from cds_service.pages.taper import render_page

    try:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
        document = json.loads(text)
        start = date.fromisoformat(args.start) if args.start else date.today()
    except (OSError, ValueError) as exc:
        print(f"opioid-cds taper: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2
    knowledge = load_knowledge()
    record = record_from_document(document if isinstance(document, dict) else {})
    ome = checked_ome(record, knowledge)
    regimens, problems = regimens_from_ome(ome, knowledge)
    try:
        plan = plan_taper(regimens, start, args.strategy, args.pace, knowledge=knowledge)
    except TaperError as exc:
        print(f"opioid-cds taper: {exc}", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    plan.notes += problems
    if args.format == "json":
        print(json.dumps(plan.to_json(), indent=2))
    elif args.format == "html":
        print(render_page(plan))
    else:
        for step in plan.steps:
            week = plan.week_of(step.number)
            note = f"  [{'; '.join(step.notes)}]" if step.notes else ""
            print(f"Week {week:>2} ({step.starts.isoformat()}): {step.describe()}  = {step.total_ome:.1f} mg/day{note}")
        for note in plan.notes:
            print(f"Note: {note}")
        print(f"Original {plan.original_ome:.1f} mg/day OME; stop after about {plan.duration_days // 7} weeks.")
    return 0


def evaluate(args: argparse.Namespace) -> int:
    """Evaluate every patient in request files, Bundles or Bulk Data NDJSON exports; one record per patient."""
    import tempfile

    from cds_service.batch.report import write_csv, write_report
    from cds_service.batch.run import Options, Progress, dask_executor, local_executor, plan_tasks, run

    key = None
    if args.pseudonymise:
        try:
            key = Path(args.pseudonymise).read_bytes().strip()
        except OSError as exc:
            print(f"opioid-cds evaluate: cannot read the key file: {exc}", file=sys.stderr)
            return 2
        if len(key) < 16:
            print("opioid-cds evaluate: the key file must hold at least 16 bytes", file=sys.stderr)
            return 2
    paths = [Path(p) for p in args.paths]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        print(f"opioid-cds evaluate: no such input: {', '.join(missing)}", file=sys.stderr)
        return 2
    options = Options(args.profile, args.settings, None, args.today, key)
    out_dir = Path(args.out)
    out = out_dir / "records.jsonl"
    with tempfile.TemporaryDirectory(prefix="opioid-cds-") as work:
        tasks = plan_tasks(paths, Path(work))
        if args.dask or args.dask_local:
            executor = dask_executor(None if args.dask_local else args.dask)
        else:
            executor = local_executor(args.workers or os.cpu_count() or 1)
        started = time.monotonic()
        written, errors = run(tasks, options, out, executor, resume=args.resume, progress=Progress(len(tasks)))
        elapsed = time.monotonic() - started
    total = sum(1 for _ in out.open("rb"))
    if args.format == "csv":
        write_csv(out, out_dir / "records.csv")
    if args.report:
        write_report(out, Path(args.report), options.profile)
    print(f"{written} patients evaluated now, {total} records in {out} ({errors} with errors) in {elapsed:.1f} s")
    return 1 if args.fail_on_error and errors else 0


def synth(args: argparse.Namespace) -> int:
    from cds_service.batch.synth import synthesise

    counts = synthesise(args.patients, args.seed, Path(args.outdir))
    print(", ".join(f"{n} {t}" for t, n in counts.items()) + f" in {args.outdir}")
    return 0


def check_rules(args: argparse.Namespace) -> int:
    """Check every rule file; print each problem with its file and line; exit 1 when there is any."""
    from cds_service.errors import RuleSetError
    from cds_service.resources import default_rules_dir
    from cds_service.ruleset.compiler import compile_rule
    from cds_service.ruleset.loader import load_rules

    if args.vocabulary or args.schema:
        from cds_service.ruleset.schema import schema_text, vocabulary_table

        print(vocabulary_table() if args.vocabulary else schema_text(), end="")
        return 0
    directory = Path(args.directory) if args.directory else default_rules_dir()
    settings = Path(args.settings) if args.settings else None
    try:
        rule_set = load_rules(directory, settings)
        for rule in rule_set.rules:
            compile_rule(rule, rule_set.settings)
        from cds_service.ruleset.engine import Engine

        Engine(rule_set)  # the engine itself accepts them (unknown operators are its error 202)
    except RuleSetError as exc:
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s)", file=sys.stderr)
        return 1
    except Exception as exc:  # the engine refused the compiled rules
        print(f"{directory}: the rules engine refused the rule set: {exc}")
        return 1
    print(f"OK: {len(rule_set.rules)} active rules, {len(rule_set.settings)} settings in {directory}")
    return 0


def _span(low: float | None, high: float | None, suffix: str = "") -> str:
    if high is None:
        return ""
    return f"{high:g}{suffix}" if low == high else f"{low:g}-{high:g}{suffix}"


def format_ome_table(data: dict[str, Any]) -> str:
    """The human view of ``OmeResult.to_json()``."""
    rows = [("order", "product", "per day", "OME mg/day", "factor", "note")]
    for order in data["orders"]:
        per_day = order.get("dose") or _span(
            order["units_per_day_min"], order["units_per_day_max"], f" {order['unit']}"
        )
        figure = _span(order["ome_mg_per_day_min"], order["ome_mg_per_day_max"])
        factor = f"{order['factor']:g} ({order['factor_source']})" if order["factor"] is not None else ""
        note = "; ".join(([] if order["counted"] else [f"not counted: {order['reason']}"]) + order["flags"])
        rows.append((order["id"], order["display"][:48], per_day, figure, factor, note))
    widths = [max(len(str(r[i])) for r in rows) for i in range(5)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r[:5], widths, strict=True)) + "  " + r[5] for r in rows]
    total = f"{data['total_ome_mg_per_day']:g}"
    if data["total_ome_mg_per_day_min"] != data["total_ome_mg_per_day"]:
        total = f"{data['total_ome_mg_per_day_min']:g}-{total} (regular to with every as-needed dose)"
    lines.append("")
    lines.append(
        f"Total oral morphine equivalent ({data['profile']}): {total} mg/day"
        + ("" if data["complete"] else "  INCOMPLETE: some orders could not be counted")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="opioid-cds", description="Opioid safety CDS Hooks service.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve_cmd = commands.add_parser("serve", help="run the CDS Hooks service under gunicorn")
    serve_cmd.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    serve_cmd.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8080")))
    serve_cmd.add_argument(
        "--workers", type=int, default=int(os.environ.get("WEB_CONCURRENCY", max(2, os.cpu_count() or 2)))
    )
    serve_cmd.add_argument("--threads", type=int, default=4)
    serve_cmd.add_argument("--access-log", action="store_true", help="log every request line to stderr")
    serve_cmd.set_defaults(handler=serve)
    ome_cmd = commands.add_parser("ome", help="total daily oral morphine equivalent of a request, Bundle or order")
    ome_cmd.add_argument("file", help="a JSON file, or - for standard input")
    ome_cmd.add_argument(
        "--profile",
        default=os.environ.get("OPIOID_CDS_PROFILE", "uk"),
        help="OME factor profile: uk (default), cdc-2022, cdc-2016",
    )
    ome_cmd.add_argument("--json", action="store_true", help="print the JSON result")
    ome_cmd.set_defaults(handler=ome)
    check_cmd = commands.add_parser("check-rules", help="check the rule files; every problem with file and line")
    check_cmd.add_argument(
        "directory",
        nargs="?",
        default=os.environ.get("OPIOID_CDS_RULES"),
        help="the rules directory (default: OPIOID_CDS_RULES, else the rules installed with the service)",
    )
    check_cmd.add_argument(
        "--settings",
        default=os.environ.get("OPIOID_CDS_SETTINGS"),
        help="a practice settings file layered over settings.yaml",
    )
    shown = check_cmd.add_mutually_exclusive_group()
    shown.add_argument("--vocabulary", action="store_true", help="print the fact vocabulary as a Markdown table")
    shown.add_argument("--schema", action="store_true", help="print the JSON Schema of a rule file")
    check_cmd.set_defaults(handler=check_rules)
    taper_cmd = commands.add_parser("taper", help="a taper plan for the opioids in a request, Bundle or order")
    taper_cmd.add_argument("file", help="a JSON file, or - for standard input")
    taper_cmd.add_argument("--strategy", default="mr-first", choices=["mr-first", "prn-first", "consolidate"])
    taper_cmd.add_argument("--pace", default="standard", choices=["standard", "slow"])
    taper_cmd.add_argument("--start", help="first day (YYYY-MM-DD; default today)")
    taper_cmd.add_argument("--format", default="table", choices=["table", "json", "html"])
    taper_cmd.set_defaults(handler=taper)
    eval_cmd = commands.add_parser("evaluate", help="evaluate every patient of files, Bundles or Bulk Data exports")
    eval_cmd.add_argument("paths", nargs="+", help="request/Bundle JSON files, NDJSON files or export folders")
    eval_cmd.add_argument("--out", default="evaluation", help="output folder (records.jsonl)")
    eval_cmd.add_argument("--format", default="jsonl", choices=["jsonl", "csv"])
    eval_cmd.add_argument("--workers", type=int, help="worker processes (default: every core)")
    where = eval_cmd.add_mutually_exclusive_group()
    where.add_argument("--dask", metavar="ADDRESS", help="a Dask distributed scheduler address")
    where.add_argument("--dask-local", action="store_true", help="start a Dask LocalCluster here")
    eval_cmd.add_argument("--profile", default=os.environ.get("OPIOID_CDS_PROFILE", "uk"))
    eval_cmd.add_argument("--settings", default=os.environ.get("OPIOID_CDS_SETTINGS"))
    eval_cmd.add_argument("--today", help="evaluation date YYYY-MM-DD (default today)")
    eval_cmd.add_argument("--pseudonymise", metavar="KEYFILE", help="replace patient ids by a keyed pseudonym")
    eval_cmd.add_argument("--resume", action="store_true", help="skip patients already in the output")
    eval_cmd.add_argument("--report", metavar="HTML", help="write a self-contained HTML report")
    eval_cmd.add_argument("--fail-on-error", action="store_true", help="exit 1 when any patient has an error")
    eval_cmd.set_defaults(handler=evaluate)
    synth_cmd = commands.add_parser("synth", help="write a synthetic Bulk Data export")
    synth_cmd.add_argument("outdir")
    synth_cmd.add_argument("--patients", type=int, default=1000)
    synth_cmd.add_argument("--seed", type=int, default=1)
    synth_cmd.set_defaults(handler=synth)
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"opioid-cds: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
