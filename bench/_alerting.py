"""Alerting latency, locally: from a failure burst to PagerDuty's enqueue endpoint.

A burst of failed sync jobs is written to a fresh store; the local evaluator runs the
failure-rate rule as Azure Monitor would at its next evaluation, posts the common alert
schema to the relay of the real app on uvicorn, and the relay delivers to a loopback
PagerDuty. Measured: burst written -> PagerDuty received, in wall time, several times.
Baseline in the same run: one bare HTTP POST to the same loopback PagerDuty.

The scheduled part is not timed: Azure and the local host evaluate each rule every
`evaluationFrequency` (5 minutes for this rule), so detection adds up to that much.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from ._admin import Server

SECRET = "bench-relay-secret"


class _PagerDuty:
    """A loopback Events API that notes when each event arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length", 0)))
                owner.arrivals.append(time.perf_counter())
                body = b'{"status":"success"}'
                self.send_response(202)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v2/enqueue"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def _burst(at: dt.datetime, adapter: str) -> list[dict[str, Any]]:
    rows = []
    for n in range(30):
        failed = n % 3 == 0
        props = {"tenantId": "t-1", "integrationId": f"{adapter}-{n % 4}", "adapterType": adapter,
                 "entity": "contact", "duration": "1200.0",
                 "error": "503 from API" if failed else ""}
        rows.append({"TimeGenerated": (at - dt.timedelta(seconds=n)).replace(tzinfo=None),
                     "Message": "sync.failed" if failed else "sync.completed",
                     "SeverityLevel": 3 if failed else 1, "Properties": json.dumps(props),
                     "OperationId": uuid.uuid4().hex, "ItemCount": 1, "Type": "AppTraces"})
    return rows


def part_alerting(quick: bool) -> dict[str, Any]:
    from integration_monitoring.admin import LocalBackend
    from integration_monitoring.alerts import Deliverer, Evaluator, RelayPoster, rule_by_id
    from integration_monitoring.app import create_app
    from integration_monitoring.store import TelemetryStore
    from integration_monitoring.testing import capture_telemetry

    rounds = 3 if quick else 10
    rule = rule_by_id("high-sync-failure-rate")
    pagerduty = _PagerDuty()
    os.environ["ALERT_RELAY_SECRET"] = SECRET
    with tempfile.TemporaryDirectory(prefix="im-bench-alerts-") as workdir, \
            capture_telemetry():
        store = TelemetryStore(Path(workdir) / "alerts.duckdb")
        deliverer = Deliverer(pagerduty_routing_key="r" * 32,
                              pagerduty_events_url=pagerduty.url)
        app = create_app(backend=LocalBackend(store), deliverer_factory=lambda: deliverer)
        latencies, baseline = [], []
        with Server(app) as server:
            evaluator = Evaluator(store, rules=[rule],
                                  post=RelayPoster(server.url + "/api/alerts/relay", SECRET))
            for index in range(rounds):
                now = dt.datetime.now(dt.UTC)
                adapter = f"adapter{index}"  # a new dimension each round: a new alert
                arrived = len(pagerduty.arrivals)
                started = time.perf_counter()
                store.append("AppTraces", _burst(now, adapter))
                evaluator.evaluate(rule, now + dt.timedelta(seconds=1))
                if len(pagerduty.arrivals) > arrived:
                    latencies.append((pagerduty.arrivals[arrived] - started) * 1000)
                posted = time.perf_counter()
                httpx.post(pagerduty.url, json={"event_action": "trigger"}, timeout=5)
                baseline.append((pagerduty.arrivals[-1] - posted) * 1000)
        store.close()
    pagerduty.close()
    median = statistics.median(latencies) if latencies else None
    base = statistics.median(baseline)
    return {"rounds": rounds, "delivered": len(latencies), "median_ms": median,
            "max_ms": max(latencies) if latencies else None, "baseline_post_ms": base,
            "ratio": median / base if median else None,
            "evaluation_frequency_s": rule.frequency.total_seconds()}


def print_alerting(r: dict[str, Any]) -> None:
    print("\nAlerting: failure burst written -> PagerDuty received (local evaluator, relay "
          "on uvicorn, loopback PagerDuty)")
    if r["median_ms"] is None:
        print("  no delivery measured")
        return
    print(f"  {r['delivered']}/{r['rounds']} delivered; median {r['median_ms']:.0f} ms, "
          f"max {r['max_ms']:.0f} ms; baseline bare POST {r['baseline_post_ms']:.1f} ms "
          f"({r['ratio']:.0f}x)")
    print(f"  plus the wait for the rule's next evaluation: up to "
          f"{r['evaluation_frequency_s']:.0f} s (its evaluationFrequency), in Azure and locally")
