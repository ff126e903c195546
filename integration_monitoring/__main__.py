"""Command line: `python -m integration_monitoring serve | demo | retention`."""

from __future__ import annotations

import argparse
import json
import os
import secrets
import sys


def _bounded(kind, low, high):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
        return value
    return parse


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .alerts import RoutingError, load_routes
    from .app import create_app
    from .localhost import (
        DemoOptions,
        LocalHost,
        LoopbackHostsOnly,
        is_loopback,
        server_config,
        url_host,
    )
    from .queues import SettingError, sampler_settings
    from .store import default_path
    from .telemetry import configure_telemetry, get_logger, shutdown_telemetry

    if not is_loopback(args.host) and not os.environ.get("ADMIN_API_TOKEN", "").strip():
        print(f"error: refusing to serve on {args.host} without ADMIN_API_TOKEN: beyond "
              "loopback anyone who can reach the port would read every tenant's data. Set "
              "ADMIN_API_TOKEN to a long random value (callers send it as a bearer token), "
              "or bind 127.0.0.1.", file=sys.stderr)
        return 2
    try:
        sampler_settings()
        demo = None if args.no_demo else DemoOptions(args.hours, args.seed, args.tenants,
                                                     args.integrations)
        host = LocalHost(demo)
        load_routes()  # a bad routes file stops the start, naming the route
    except (SettingError, RoutingError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    configure_telemetry("integration-monitoring", prometheus=True)
    url = f"http://{url_host(args.host)}:{args.port}"
    # The relay needs a shared secret; locally the host makes one up for its own evaluator.
    os.environ.setdefault("ALERT_RELAY_SECRET", secrets.token_urlsafe(24))
    os.environ.setdefault("DASHBOARD_BASE_URL", url)  # links in alerts point at this host
    get_logger("integration-monitoring").info("server.started", url=url)

    def stop() -> None:
        host.stop()
        shutdown_telemetry()

    host.start(relay_url=f"{url}/api/alerts/relay")
    print(f"""
  Integration monitoring, local host
    dashboard        {url}/dashboard{"  (bearer token: ADMIN_API_TOKEN)"
                                      if os.environ.get("ADMIN_API_TOKEN") else ""}
    admin API docs   {url}/api/docs
    health           {url}/api/health
    alerts           {url}/api/admin/alerts
    metrics          {url}/metrics
    telemetry store  {default_path()}
    demo workload    {"off" if demo is None else f"{demo.integrations} integrations, "
                      f"{demo.tenants} tenants, {demo.hours:g} h of history, then live"}
  Ctrl-C stops.
""", file=sys.stderr, flush=True)
    app = create_app(on_shutdown=stop, host_status=host.status)
    if not os.environ.get("ADMIN_API_TOKEN", "").strip():
        # Only loopback names may reach the open app: another site's page whose name
        # resolves to 127.0.0.1 must not read it.
        app = LoopbackHostsOnly(app)
    server = uvicorn.Server(server_config(app, args.host, args.port))
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    return 0 if server.started else 1


def _evaluate_once(args: argparse.Namespace) -> int:
    import datetime as dt

    import duckdb

    from .alerts import Evaluator, RelayPoster
    from .store import open_store

    try:
        store = open_store()
    except duckdb.IOException as error:
        print(f"error: cannot open the local store ({error}); is `make run` holding it?",
              file=sys.stderr)
        return 1
    evaluator = Evaluator(store, post=RelayPoster(args.relay) if args.relay else None)
    now = dt.datetime.now(dt.UTC)
    fired = 0
    for rule in evaluator.rules:
        measured = evaluator.measure(rule, now - rule.window, now)
        for dims, value in sorted(measured.items(), key=lambda item: str(item[0])):
            breached = rule.breached(value)
            fired += breached
            where = ", ".join(f"{k}={v}" for k, v in dims) or "-"
            print(f"{'FIRING' if breached else 'ok    '} {rule.id:32s} {where:50s} "
                  f"{rule.measure}={value} ({rule.operator} {rule.threshold:g})")
    if args.relay:
        evaluator.run_once(now)
    print(f"{fired} firing", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m integration_monitoring")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the local host: admin app, timers, demo")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=7071)
    serve.add_argument("--no-demo", action="store_true", help="do not run the demo workload")
    serve.add_argument("--hours", type=_bounded(float, 0.01, 24 * 31), default=24.0,
                       help="demo history to backfill on first start (default 24)")
    serve.add_argument("--seed", type=int, default=7)
    serve.add_argument("--tenants", type=_bounded(int, 1, 10_000), default=8)
    serve.add_argument("--integrations", type=_bounded(int, 1, 100_000), default=24)
    demo = commands.add_parser("demo", help="generate a realistic integrations workload")
    demo.add_argument("--hours", type=_bounded(float, 0.01, 24 * 31), default=24.0,
                      help="hours of history to backfill up to now (default 24)")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument("--tenants", type=_bounded(int, 1, 10_000), default=8)
    demo.add_argument("--integrations", type=_bounded(int, 1, 100_000), default=24)
    demo.add_argument("--live", action="store_true", help="keep running in real time")
    demo.add_argument("--quiet", action="store_true", help="no JSON lines on stdout")
    alerts = commands.add_parser("alerts", help="alert rules")
    alert_commands = alerts.add_subparsers(dest="alerts_command", required=True)
    evaluate = alert_commands.add_parser(
        "evaluate", help="run every rule on the local store, as Azure Monitor would")
    evaluate.add_argument("--once", action="store_true", required=True,
                          help="evaluate each rule once, now (the local host runs them on "
                               "their schedules)")
    evaluate.add_argument("--relay", default=None,
                          help="post firing alerts to this relay URL (secret from "
                               "ALERT_RELAY_SECRET)")
    retention = commands.add_parser("retention", help="delete local telemetry older than N days")
    retention.add_argument("--days", type=float, default=None,
                           help="default: TELEMETRY_RETENTION_DAYS or 30")
    args = parser.parse_args(argv)
    from .store import StoreLocked

    try:
        return _run(args, parser)
    except StoreLocked as error:  # another process holds the local store: say who, no trace
        print(f"error: {error}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.command == "serve":
        return _serve(args)

    if args.command == "demo":
        from .demo import run_demo
        from .store import open_store

        if args.tenants > args.integrations:
            parser.error("--tenants cannot exceed --integrations")
        result = run_demo(hours=args.hours, seed=args.seed, tenants=args.tenants,
                          integrations=args.integrations, live=args.live,
                          store=open_store(), stdout=None if args.quiet else sys.stdout,
                          progress=sys.stderr.isatty())
        lost = sum(result.dropped.values())
        print(f"demo: {result.events} events, {result.counts.jobs_done} jobs done, "
              f"{result.counts.jobs_failed} failed, {result.counts.dead_lettered} "
              f"dead-lettered in {result.seconds:.1f} s"
              + (f"; {lost} log records lost {result.dropped}" if lost else ""),
              file=sys.stderr)
        return 0

    if args.command == "alerts":
        return _evaluate_once(args)

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
