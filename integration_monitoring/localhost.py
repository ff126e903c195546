"""The local host: what the Function app runs in Azure, on one machine.

It serves the admin app with uvicorn, runs the timer functions on their NCRONTAB schedules
(the same `TimerSpec`s the Function app registers), and runs the demo workload: a backfill
of history on first start, then live.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
from dataclasses import dataclass

from .schedules import TIMERS, TimerSpec, next_fire
from .telemetry import get_logger

HOST_SERVICE = "local-host"


@dataclass
class DemoOptions:
    hours: float = 24.0
    seed: int = 7
    tenants: int = 8
    integrations: int = 24


class LocalHost:
    """Background work beside the admin app: timers and (optionally) the demo workload."""

    def __init__(self, demo: DemoOptions | None, timers: tuple[TimerSpec, ...] = TIMERS) -> None:
        self.demo = demo
        self.timers = timers
        self.schedules = {timer.name: timer.resolve() for timer in timers}  # fails fast
        self.stop_event = threading.Event()
        self._threads: list[threading.Thread] = []
        self.runs: dict[str, int] = {timer.name: 0 for timer in timers}
        self.demo_state = "off" if demo is None else "starting"
        self.alert_tick_s = 15.0

    def start(self, relay_url: str | None = None) -> None:
        for timer in self.timers:
            self._spawn(f"timer-{timer.name}", self._run_timer, timer)
        if self.demo is not None:
            self._spawn("demo-workload", self._run_demo, self.demo)
        if relay_url is not None:
            self._spawn("alert-evaluator", self._run_alerts, relay_url)

    def _spawn(self, name: str, target, *args) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _run_timer(self, timer: TimerSpec) -> None:
        log = get_logger(HOST_SERVICE)
        expression = self.schedules[timer.name]
        while not self.stop_event.is_set():
            now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
            due = next_fire(expression, now)
            if self.stop_event.wait((due - now).total_seconds()):
                return
            try:
                timer.run()
                self.runs[timer.name] += 1
            except Exception as exc:  # one bad run must not stop the schedule
                log.error("timer.failed", timer=timer.name, error=str(exc),
                          errorType=type(exc).__name__)

    def _run_demo(self, options: DemoOptions) -> None:
        from .demo import run_demo
        from .telemetry import current

        self.demo_state = "backfilling"
        try:
            run_demo(hours=options.hours, seed=options.seed, tenants=options.tenants,
                     integrations=options.integrations, live=True, stdout=None,
                     progress=sys.stderr.isatty(), sample_queues_live=False,
                     stop=self.stop_event, live_telemetry=current(),
                     on_live=lambda: setattr(self, "demo_state", "live"))
            self.demo_state = "stopped"
        except Exception as exc:
            self.demo_state = "failed"
            get_logger(HOST_SERVICE).error("demo.failed", error=str(exc),
                                           errorType=type(exc).__name__)

    def _run_alerts(self, relay_url: str) -> None:
        """Azure Monitor's part: every rule on its schedule, changes posted to the relay."""
        from .alerts import Evaluator, RelayPoster
        from .store import open_store

        evaluator = Evaluator(open_store(), post=RelayPoster(relay_url))
        self.evaluator = evaluator
        while not self.stop_event.wait(self.alert_tick_s):
            if self.demo_state not in ("live", "off", "stopped"):
                continue  # history is still being written; alerts start with live data
            try:
                evaluator.run_due(dt.datetime.now(dt.UTC))
            except Exception as exc:
                get_logger(HOST_SERVICE).error("alerts.evaluation_failed", error=str(exc),
                                               errorType=type(exc).__name__)

    def status(self) -> dict[str, object]:
        """What /api/health reports about the host's background work."""
        evaluator = getattr(self, "evaluator", None)
        return {"demo": self.demo_state, "timer_runs": dict(self.runs),
                "alerts_active": len(evaluator.active()) if evaluator else None}

    def stop(self, timeout_s: float = 10.0) -> None:
        self.stop_event.set()
        for thread in self._threads:
            thread.join(timeout_s)
