"""The alert relay against what is not Azure: callers without the secret, numbers and nesting
no double or parser holds, internal errors, and bodies far over the limit on a real socket.

Each test is the attack or accident it stops. The relay runs in the whole app (its error
handlers and header middleware); the 300 MB bodies go to uvicorn in a thread.
"""

from __future__ import annotations

import io
import json
import re
import resource
import socket
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from integration_monitoring.admin import install_error_handlers
from integration_monitoring.alerts._relay import (
    MAX_BODY,
    MAX_DEPTH,
    REJECTED_METRIC,
    RefusalNotes,
    relay_router,
)
from integration_monitoring.app import create_app

from .helpers import http_get, http_post, serve_app
from .test_alert_relay import alert

SECRET = "relay-secret-for-edge-tests"
RELAY = "/api/alerts/relay"
BASELINE = {"x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
            "cache-control": "no-store"}
MB = 1024 * 1024


@pytest.fixture(autouse=True)
def settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALERT_RELAY_SECRET", SECRET)
    for name in ("SLACK_WEBHOOK_URL", "PAGERDUTY_ROUTING_KEY", "DASHBOARD_BASE_URL"):
        monkeypatch.delenv(name, raising=False)


class NoDelivery:
    """A deliverer that must not be reached: every request here is refused first."""

    calls = 0

    def deliver(self, *_: Any) -> Any:
        NoDelivery.calls += 1
        raise AssertionError("a refused request reached delivery")


@pytest.fixture
def client() -> Iterator[TestClient]:
    NoDelivery.calls = 0
    with TestClient(create_app(deliverer_factory=NoDelivery)) as test_client:
        yield test_client
    assert NoDelivery.calls == 0


def post(client: TestClient, body: bytes, secret: str | None = SECRET,
         **headers: str) -> httpx.Response:
    sent = {"content-type": "application/json", **headers}
    if secret is not None:
        sent["x-relay-secret"] = secret
    return client.post(RELAY, content=body, headers=sent)


def assert_error(response: httpx.Response, status: int, code: str, says: str) -> None:
    """The app's error shape, the message saying what is wrong, and the baseline headers."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert says in error["message"], error
    for name, value in BASELINE.items():
        assert response.headers.get(name) == value, (name, dict(response.headers))


# -- callers without the secret --------------------------------------------------------------


def test_a_scanner_guessing_secrets_costs_a_counter_not_an_event_each(captured):
    """Anyone on the internet can post to the relay. 500 guesses (and 300 posts without a
    secret) write no event; the metric counts them by reason and stderr gets one line per
    reason while the minute lasts."""
    # given the relay with its refusal notes on a clock that does not move
    lines = io.StringIO()
    notes = RefusalNotes(clock=lambda: 1000.0, stream=lines)
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(relay_router(NoDelivery, notes=notes))
    with TestClient(app) as client:
        # when a scanner tries 500 secrets and 300 posts carry none
        answers = [post(client, b"{}", secret=f"guess-{n}") for n in range(500)]
        answers += [post(client, b"{}", secret=None) for _ in range(300)]
    # then each is a 401 in the app's shape that closes the connection
    assert {a.status_code for a in answers} == {401}
    assert all(a.headers["connection"] == "close" for a in answers)
    # and no event was written for any of them
    assert captured.find("alert.relay_rejected") == []
    # but the metric counts every one, by reason
    assert captured.metric(REJECTED_METRIC, reason="wrong_secret") == 500
    assert captured.metric(REJECTED_METRIC, reason="missing_secret") == 300
    # and stderr heard one line per reason
    written = lines.getvalue().splitlines()
    assert len(written) == 2, written
    assert "(wrong_secret)" in written[0] and "(missing_secret)" in written[1]
    assert all(guess not in lines.getvalue() for guess in ("guess-0", "guess-499"))


def test_an_unconfigured_relay_is_not_an_event_per_probe(captured, monkeypatch):
    """Before ALERT_RELAY_SECRET is set, every probe gets 503 but only the counter moves."""
    monkeypatch.delenv("ALERT_RELAY_SECRET")
    with TestClient(create_app(deliverer_factory=NoDelivery)) as client:
        answers = [post(client, b"{}", secret="anything") for _ in range(50)]
    assert {a.status_code for a in answers} == {503}
    assert answers[0].headers["retry-after"] == "60"
    assert captured.find("alert.relay_rejected") == []
    assert captured.metric(REJECTED_METRIC, reason="relay_not_configured") == 50


def test_refusals_after_the_secret_still_write_an_event(client, captured):
    """Azure (who has the secret) sending a body we cannot read is worth an event each."""
    response = post(client, b"[1, 2]")
    assert_error(response, 400, "invalid_alert", "JSON object")
    assert captured.assert_event("alert.relay_rejected", code="invalid_alert")
    assert captured.metric(REJECTED_METRIC, reason="invalid_alert") == 1


def test_refusal_notes_say_one_line_per_reason_per_minute():
    """The notes on an injected clock: a line, then silence (counted) for 60 s, then a line
    saying how many were held back; each reason on its own schedule."""
    now = [0.0]
    out = io.StringIO()
    notes = RefusalNotes(every_s=60.0, clock=lambda: now[0], stream=out)
    written = []
    for at, reason in ((0, "wrong_secret"), (1, "wrong_secret"), (30, "missing_secret"),
                       (59.9, "wrong_secret"), (60, "wrong_secret"), (61, "wrong_secret"),
                       (89.9, "missing_secret"), (90, "missing_secret"),
                       (125, "wrong_secret")):
        now[0] = at
        written.append(notes.note(reason, "the relay secret does not match"))
    assert written == [True, False, True, False, True, False, False, True, True]
    lines = out.getvalue().splitlines()
    assert lines == [
        "alert relay: refused a request (wrong_secret): the relay secret does not match",
        "alert relay: refused a request (missing_secret): the relay secret does not match",
        "alert relay: refused a request (wrong_secret): the relay secret does not match; "
        "2 more refused for this reason since the previous line",
        "alert relay: refused a request (missing_secret): the relay secret does not match; "
        "1 more refused for this reason since the previous line",
        "alert relay: refused a request (wrong_secret): the relay secret does not match; "
        "1 more refused for this reason since the previous line",
    ]


def test_refusal_notes_survive_a_closed_stderr():
    closed = io.StringIO()
    closed.close()
    assert RefusalNotes(clock=lambda: 0.0, stream=closed).note("wrong_secret", "x") is True


# -- numbers and nesting ----------------------------------------------------------------------


def _alert_with(value_text: str, field: str = "metricValue") -> bytes:
    """A valid alert whose allOf[0].<field> is the raw JSON text given."""
    body = alert()
    body["data"]["alertContext"]["condition"]["allOf"][0][field] = "@@NUMBER@@"
    return json.dumps(body).encode().replace(b'"@@NUMBER@@"', value_text.encode())


@pytest.mark.parametrize(("raw", "says"), [
    # a number with thousands of digits: past Python's int max str digits (a ValueError)
    (_alert_with("1" * 5000), "no double can hold"),
    (_alert_with("-" + "9" * 5000), "no double can hold"),
    # under that limit but past a double: float() of it would raise OverflowError
    (_alert_with("1" + "0" * 400), "no double can hold"),
    (_alert_with("1" + "0" * 309, "threshold"), "no double can hold"),
    # floats that parse to infinities
    (_alert_with("1e400"), "no double can hold (beyond 1.8e308 either way): 1e400"),
    (_alert_with("-1e400"), "either way): -1e400"),
    (_alert_with("1.5E+999", "threshold"), "no double can hold"),
    # literals Python's parser accepts and JSON does not
    (_alert_with("NaN"), "NaN is not a JSON number"),
    (_alert_with("Infinity"), "Infinity is not a JSON number"),
    (_alert_with("-Infinity", "threshold"), "-Infinity is not a JSON number"),
    # nesting: past the depth limit, and past the parser's recursion limit
    (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "nested too deeply"),
    (b"[" * 200_000 + b"]" * 200_000, "nested too deeply"),
    (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, "nested too deeply"),
], ids=["5000-digits", "minus-5000-digits", "401-digits", "310-digit-threshold", "1e400",
        "minus-1e400", "threshold-1.5e999", "NaN", "Infinity", "threshold-minus-Infinity",
        "depth-65", "depth-200k-arrays", "depth-50k-objects"])
def test_numbers_and_nesting_no_parser_holds_are_400_not_500(client, raw, says):
    """A hostile or broken sender with the secret puts numbers in the alert that Python's
    JSON parser or float() cannot take, or nests it past any limit: each is a 400 that says
    what is wrong, with the baseline headers, and nothing is delivered."""
    assert_error(post(client, raw), 400, "invalid_body", says)


@pytest.mark.parametrize(("field", "text"), [
    ("metricValue", '"1e400"'), ("metricValue", '"NaN"'), ("threshold", '"-Infinity"'),
    ("threshold", '"' + "9" * 5000 + '"'),
])
def test_numeric_strings_that_are_not_finite_are_400_naming_the_field(client, field, text):
    """Azure writes thresholds as strings; a string that reads as inf or nan is refused and
    the message names the field."""
    response = post(client, _alert_with(text, field))
    assert_error(response, 400, "invalid_alert", "must be a finite number")
    assert response.json()["error"]["parameter"] == \
        f"data.alertContext.condition.allOf[0].{field}"


class Accepting:
    """A deliverer that takes every alert (and remembers the values it was given)."""

    values: ClassVar[list[float | None]] = []

    def deliver(self, notice: Any, _rule: Any) -> Any:
        Accepting.values.append(notice.value)
        return type("Report", (), {"summary": lambda self: {"delivered": True}})()


def test_the_largest_double_and_tiny_numbers_are_still_delivered():
    """The checks refuse only what a double cannot hold: the largest double, the largest
    integer a double holds, and 1e-400 (zero) go through to delivery."""
    Accepting.values = []
    largest = str(int(1.7976931348623157e308))
    with TestClient(create_app(deliverer_factory=Accepting)) as client:
        for text in ("1.7976931348623157e308", largest, "1e-400", "-0.0", '"12.5"'):
            assert post(client, _alert_with(text)).status_code == 202, text
    assert Accepting.values == [1.7976931348623157e308, float(largest), 0.0, -0.0, 12.5]


# -- internal errors --------------------------------------------------------------------------


class Broken:
    def deliver(self, *_: Any) -> Any:
        raise RuntimeError("the outbox table is gone")


def test_an_internal_error_is_500_json_with_the_baseline_headers(caplog):
    """An exception nobody expected (here: delivery raising) answers 500 in the app's error
    shape, without the exception's text, and with nosniff, no-referrer and no-store: the
    handler for it answers outside every middleware, so error_response carries them."""
    with TestClient(create_app(deliverer_factory=Broken),
                    raise_server_exceptions=False) as client:
        response = post(client, json.dumps(alert()).encode())
    assert_error(response, 500, "internal_error", "unexpected error")
    assert "outbox table" not in response.text


def test_an_internal_error_on_the_wire_carries_the_baseline_headers():
    """The same over uvicorn: what leaves the socket is the JSON 500 with the headers."""
    with serve_app(create_app(deliverer_factory=Broken)) as url:
        response = http_post(url + RELAY, json=alert(), headers={"x-relay-secret": SECRET})
    assert_error(response, 500, "internal_error", "unexpected error")


def test_a_refused_host_name_answers_with_the_baseline_headers():
    """The loopback-only Host check answers inside the header middleware."""
    app = create_app(deliverer_factory=NoDelivery, allowed_hosts=["127.0.0.1"])
    with TestClient(app, base_url="http://127.0.0.1") as client:
        response = client.get("/api/health", headers={"host": "attacker.example"})
    assert response.status_code == 400
    for name, value in BASELINE.items():
        assert response.headers.get(name) == value


# -- bodies over the limit, on a real socket --------------------------------------------------


class CountingReceive:
    """The app, counting the body bytes uvicorn hands it (what the relay read)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.received = 0

    async def __call__(self, scope, receive, send) -> None:
        async def counted():
            message = await receive()
            self.received += len(message.get("body", b""))
            return message

        await self.app(scope, counted if scope["type"] == "http" else receive, send)


def _chunks(total: int, size: int = 64 * 1024, chunked: bool = False) -> Iterator[bytes]:
    """`total` bytes of a body, made as they are sent (never held whole)."""
    block = b"x" * size
    sent = 0
    while sent < total:
        part = block[:min(size, total - sent)]
        sent += len(part)
        yield b"%x\r\n%s\r\n" % (len(part), part) if chunked else part
    if chunked:
        yield b"0\r\n\r\n"


def _send(url: str, head: bytes, body: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a request head and a generated body over a socket, stopping when the server
    closes; returns how many body bytes went, and the answer."""
    parts = urlsplit(url)
    sent = 0
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head)
        try:
            for piece in body:
                sock.sendall(piece)
                sent += len(piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading and closed: what it answered is below
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b'"}}' in answer:
                    break
        except ConnectionResetError:
            pass
    return sent, answer


def _head(secret: str, framing: str) -> bytes:
    return (f"POST {RELAY} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"X-Relay-Secret: {secret}\r\n{framing}\r\n").encode()


def _peak_rss() -> int:
    """This process's peak resident set, KiB: VmHWM where /proc has it, else getrusage."""
    try:
        status = Path("/proc/self/status").read_text()
        return int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE).group(1))
    except (OSError, AttributeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def _reset_peak_rss() -> int:
    """Start the peak over from the current resident set where Linux allows it (earlier
    tests' peaks would hide growth), and return it."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass  # the growth is then measured against the process's peak so far
    return _peak_rss()


HUGE = 300 * MB
CASES = {
    # an honest Content-Length over the limit: refused before a byte of the body is read
    "content-length": (_head(SECRET, f"Content-Length: {HUGE}\r\n"), False, 413),
    # no Content-Length, chunked: counted as it arrives, refused at the limit
    "chunked": (_head(SECRET, "Transfer-Encoding: chunked\r\n"), True, 413),
    # a Content-Length that lies low: the body ends where it says, the rest is no request
    "lying-content-length": (_head(SECRET, "Content-Length: 1000\r\n"), False, 400),
    # without the secret: refused before the body, the connection closed
    "wrong-secret": (_head("guess", f"Content-Length: {HUGE}\r\n"), False, 401),
}


@pytest.mark.parametrize("case", CASES)
def test_a_300_mb_post_is_refused_without_being_buffered(case):
    """A sender pushes 300 MB at the relay (declared, chunked, under a lying Content-Length,
    or without the secret). It is refused at the limit; the relay reads at most MAX_BODY and
    a little, and the server process's memory stays flat."""
    head, chunked, status = CASES[case]
    counting = CountingReceive(create_app(deliverer_factory=NoDelivery))
    with serve_app(counting) as url:
        http_get(url + "/api/health")  # warm: imports and first-request state
        rss_before = _reset_peak_rss()
        tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            started = time.monotonic()
            sent, answer = _send(url, head, _chunks(HUGE, chunked=chunked))
            seconds = time.monotonic() - started
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        rss_growth = _peak_rss() - rss_before
    print(f"\n{case}: sent {sent / MB:.1f} MB in {seconds:.2f} s; relay read "
          f"{counting.received / MB:.2f} MB; traced peak +{peak / MB:.2f} MB; "
          f"peak RSS +{rss_growth / 1024:.1f} MB; answer {answer[:12]!r}")
    assert answer.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert counting.received <= MAX_BODY + MB  # at most one read past the limit
    assert peak < 16 * MB  # Python allocations in every thread, the server's included
    assert rss_growth < 64 * 1024  # KiB
    if status == 413:
        error = json.loads(answer.split(b"\r\n\r\n", 1)[1])["error"]
        assert error["code"] == "body_too_large"


def test_a_normal_sender_gets_the_413_and_the_server_goes_on():
    """httpx streaming a 300 MB generator (chunked) reads the 413; the next alert works."""
    with serve_app(create_app(deliverer_factory=NoDelivery)) as url:
        response = http_post(url + RELAY, content=_chunks(HUGE),
                              headers={"x-relay-secret": SECRET})
        assert_error(response, 413, "body_too_large", f"over {MAX_BODY} bytes")
        assert response.headers["connection"] == "close"
        after = http_post(url + RELAY, content=b"[]", headers={"x-relay-secret": SECRET})
        assert_error(after, 400, "invalid_alert", "JSON object")


def test_a_body_just_at_the_limit_is_read():
    """MAX_BODY bytes exactly are read (and refused only for not being an alert)."""
    body = b" " * (MAX_BODY - 2) + b"[]"
    with serve_app(create_app(deliverer_factory=NoDelivery)) as url:
        for content in (body, iter([body[:1000], body[1000:]])):
            response = http_post(url + RELAY, content=content,
                                  headers={"x-relay-secret": SECRET})
            assert_error(response, 400, "invalid_alert", "JSON object")


def test_a_sender_that_hangs_up_mid_body_is_no_internal_error(captured, caplog):
    """A client that hangs up halfway through its body is a refusal like the others, not an
    unexpected exception with a traceback."""
    with serve_app(create_app(deliverer_factory=NoDelivery)) as url:
        parts = urlsplit(url)
        with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
            sock.sendall(_head(SECRET, "Content-Length: 5000\r\n") + b"{" * 100)
        deadline = time.monotonic() + 10
        while not captured.find("alert.relay_rejected") and time.monotonic() < deadline:
            time.sleep(0.02)
    event = captured.assert_event("alert.relay_rejected", code="invalid_body")
    assert "closed before the body ended" in event["metadata"]["reason"]
    assert not [r for r in caplog.records if r.name == "integration_monitoring.internal"]
