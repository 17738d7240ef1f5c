"""``opioid-cds``: the service's command line (``serve``; more commands come with the clinical issues)."""

from __future__ import annotations

import argparse
import faulthandler
import logging
import os
import secrets
import sys
from typing import Any

from .errors import ConfigError


def _configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("OPIOID_CDS_LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s [%(process)d] %(name)s: %(message)s",
        stream=sys.stderr,
    )


def serve(args: argparse.Namespace) -> int:
    """Run the service under gunicorn with several worker processes (crash isolation for the rules engine)."""
    from gunicorn.app.base import BaseApplication

    from .api import create_app
    from .config import load_settings

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
    args = parser.parse_args(argv)
    _configure_logging()
    try:
        return args.handler(args)
    except ConfigError as exc:
        print(f"opioid-cds: configuration error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
