"""Command line: `python -m integration_monitoring serve | retention`."""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integration_monitoring")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the local admin app")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7071)
    retention = commands.add_parser("retention", help="delete local telemetry older than N days")
    retention.add_argument("--days", type=float, default=None,
                           help="default: TELEMETRY_RETENTION_DAYS or 30")
    args = parser.parse_args(argv)

    if args.command == "serve":
        import uvicorn

        from .app import create_app
        from .telemetry import configure_telemetry, get_logger, shutdown_telemetry

        configure_telemetry("integration-monitoring", prometheus=True)
        get_logger("integration-monitoring").info(
            "server.started", url=f"http://{args.host}:{args.port}")
        app = create_app(on_shutdown=shutdown_telemetry)
        uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
        return 0

    if args.command == "retention":
        from .store import open_store, retention_days

        days = args.days if args.days is not None else retention_days()
        deleted = open_store().delete_older_than(days)
        json.dump({"days": days, "deleted": deleted}, sys.stdout)
        sys.stdout.write("\n")
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
