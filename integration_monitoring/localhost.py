"""The local host: what the Function app runs in Azure, on one machine.

It serves the admin app with uvicorn, runs the timer functions on their NCRONTAB schedules
(the same `TimerSpec`s the Function app registers), and runs the demo workload: a backfill
of history on first start, then live.

The server (`server_config`) bounds what one client can hold: a request's line and headers
must arrive within `ServerLimits.header_timeout_s` of its first byte (of the connection's
opening, for the first request), its body within `body_timeout_s` of the headers, and at
most `max_connections` are open: a new one beyond takes the place of the connection idle
the longest, or is closed when every one is busy with a request. uvicorn has no header
timeout of its own (its keep-alive timer starts after an answer, and any byte stops it).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import itertools
import sys
import threading
from dataclasses import dataclass
from typing import Any

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

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


# -- the server: loopback names and limits on what a connection may hold ----------------------


def is_loopback(host: str) -> bool:
    """`localhost`, an IPv4 address in 127.0.0.0/8, or `::1` (bare or in brackets)."""
    name = host.strip().lower()
    if name == "localhost":
        return True
    if name.startswith("[") and name.endswith("]"):
        name = name[1:-1]
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False  # a name: it may resolve anywhere


def bind_host(host: str) -> str:
    """What to bind: `[::1]` -> `::1`."""
    host = host.strip()
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def url_host(host: str) -> str:
    """The host as a URL (and a Host header) writes it: `::1` -> `[::1]`."""
    host = bind_host(host)
    return f"[{host}]" if ":" in host else host


class LoopbackHostsOnly:
    """Answers only requests whose Host is a loopback name (`is_loopback`: localhost,
    127.x.y.z, [::1], with or without a port); any other is a 400 in the app's error shape.
    The open local server needs it: a web page whose own name resolves to 127.0.0.1 (DNS
    rebinding) would otherwise read the API from the browser."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and not loopback_host_header(scope):
            if scope["type"] == "websocket":
                await send({"type": "websocket.close", "code": 1008})
                return
            from .http import error_response

            await error_response(400, "invalid_host",
                                 "the open local server answers loopback names only "
                                 "(localhost, 127.0.0.1, [::1]); set ADMIN_API_TOKEN to "
                                 "serve other names")(scope, receive, send)
            return
        await self.app(scope, receive, send)


def loopback_host_header(scope: Any) -> bool:
    """The request's Host names a loopback address: `localhost:7071`, `127.0.0.2`,
    `[::1]:7071` (and `::1` unbracketed, without a port, which is unambiguous)."""
    values = [value for name, value in scope.get("headers", ()) if name.lower() == b"host"]
    if len(values) != 1:
        return False
    try:
        host = values[0].decode("ascii")
    except UnicodeDecodeError:
        return False
    if host.startswith("["):
        name, bracket, rest = host.partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            return False
        name, port = name + "]", rest[1:]
    elif host.count(":") == 1:
        name, port = host.split(":")
    else:
        name, port = host, ""
    if port and not (port.isascii() and port.isdigit()):
        return False
    return is_loopback(name) and name == name.strip()


@dataclass(frozen=True)
class ServerLimits:
    """What one client may hold of the local server (see the module's docstring)."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections: int = 256


class LimitedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the header and body deadlines and the connection bound of
    `limits`; `server_config` makes a subclass per configuration."""

    limits = ServerLimits()
    _order = itertools.count()  # when each connection last became idle, in order

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self.idle_since = next(self._order)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.limits.header_timeout_s, self._head_late)
        self._make_room()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE and self._head_timer is None:
            # the first byte of a request on a kept-alive connection: its head's deadline
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s,
                                                    self._head_late)
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.idle_since = next(self._order)
        self._follow()
        if (self.conn.their_state is h11.IDLE and self._head_timer is None
                and self.conn.trailing_data[0]):  # part of a pipelined request is here
            self._head_timer = self.loop.call_later(self.limits.header_timeout_s,
                                                    self._head_late)

    def connection_lost(self, exc: Exception | None) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None
        super().connection_lost(exc)

    @property
    def idle(self) -> bool:
        """No request being answered: waiting for one, or done with the last answer."""
        return self.cycle is None or self.cycle.response_complete

    def _follow(self) -> None:
        """Stop the head's deadline once the head is in; the body's runs while it arrives."""
        state = self.conn.their_state
        if state is not h11.IDLE and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        if state is h11.SEND_BODY:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.limits.body_timeout_s,
                                                        self._body_late)
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE:
            self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.conn.their_state is h11.SEND_BODY:
            self.transport.close()

    def _make_room(self) -> None:
        """Beyond the bound, close the connection idle the longest (this one if every other
        is busy answering)."""
        open_ = [c for c in self.connections if not c.transport.is_closing()]
        if len(open_) <= self.limits.max_connections:
            return
        idle = [c for c in open_ if c is not self and isinstance(c, LimitedH11Protocol)
                and c.idle]
        victim = min(idle, key=lambda c: c.idle_since, default=self)
        victim.transport.close()


def server_config(app: Any, host: str = "127.0.0.1", port: int = 7071, *,
                  limits: ServerLimits = ServerLimits(), **options: Any) -> uvicorn.Config:
    """The uvicorn configuration `serve` runs: the limits above, idle connections kept
    KEEP_ALIVE_S, warnings only. `options` go to uvicorn.Config."""
    from .app import KEEP_ALIVE_S

    protocol = type("LimitedH11Protocol", (LimitedH11Protocol,), {"limits": limits})
    settings: dict[str, Any] = {"log_level": "warning", "timeout_keep_alive": KEEP_ALIVE_S,
                                **options}
    return uvicorn.Config(app, host=bind_host(host), port=port, http=protocol, **settings)
