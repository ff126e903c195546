"""The local server's limits, on raw sockets against the uvicorn configuration `serve` runs
(`localhost.server_config`) in a thread, with deadlines of 2 s so the module stays fast.

Each test is the attack it stops: a client trickling its headers or its body (slowloris),
a flood of idle connections, every connection busy. Bounds are generous on the late side
(the server cannot close before its deadline; it may close a little after).
"""

from __future__ import annotations

import asyncio
import select
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from fastapi import FastAPI, Request

from integration_monitoring.localhost import LimitedH11Protocol, ServerLimits, server_config

from .helpers import free_port, ipv6_loopback, serve_config

DEADLINE_S = 2.0
LATE_S = 4.0  # how much after its deadline the server may close, on a loaded machine


class Holding:
    """Requests to /hold wait until `release` is set; `held` is set once `expect` wait."""

    def __init__(self) -> None:
        self.expect = 0
        self.waiting = 0
        self.held = threading.Event()
        self.release = threading.Event()


def _app(holding: Holding) -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    def ok() -> dict[str, bool]:
        return {"ok": True}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.get("/hold")
    async def hold() -> dict[str, bool]:
        holding.waiting += 1
        if holding.waiting >= holding.expect:
            holding.held.set()
        await asyncio.to_thread(holding.release.wait, 30)
        return {"held": True}

    return app


@contextmanager
def serving(limits: ServerLimits, host: str = "127.0.0.1") -> Iterator[tuple[str, Holding]]:
    """The app on `server_config(..., limits=limits)` in a thread; yields its URL."""
    holding = Holding()
    port = free_port()
    with serve_config(server_config(_app(holding), host, port, limits=limits)):
        try:
            yield f"http://{'[::1]' if ':' in host else host}:{port}", holding
        finally:
            holding.release.set()  # held requests answer, so the server can stop


def _connect(url: str) -> socket.socket:
    parsed = httpx.URL(url)
    return socket.create_connection((parsed.host, parsed.port), timeout=10)


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server closes the socket (EOF or reset) within `seconds`, having sent
    nothing."""
    ready, _, _ = select.select([sock], [], [], seconds)
    if not ready:
        return False
    try:
        data = sock.recv(1024)
    except ConnectionResetError:
        return True
    assert data == b"", f"the server answered instead of closing: {data[:80]!r}"
    return True


def _trickle(sock: socket.socket, data: bytes, every_s: float = 1.0) -> tuple[float, int]:
    """Send `data` one byte every `every_s` until the server closes the socket; returns the
    seconds from the first byte to the close and how many bytes went."""
    started = time.monotonic()
    for sent, byte in enumerate(data):
        try:
            sock.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            return time.monotonic() - started, sent
        if _closed_within(sock, every_s):
            return time.monotonic() - started, sent + 1
    raise AssertionError(f"the server took all {len(data)} bytes, one a second")


def _read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One HTTP/1.1 answer with a Content-Length, from a raw socket."""
    buffer = b""
    while b"\r\n\r\n" not in buffer:
        chunk = sock.recv(65536)
        assert chunk, f"closed before an answer: {buffer!r}"
        buffer += chunk
    head, body = buffer.split(b"\r\n\r\n", 1)
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        body += sock.recv(65536)
    return int(head.split(b" ", 2)[1]), body


HEAD = b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slowly: " + b"z" * 60 + b"\r\n\r\n"


def test_a_client_trickling_its_headers_is_closed_at_the_deadline():
    """Slowloris: one header byte a second keeps plain uvicorn's connection forever (each byte
    restarts nothing it has; its keep-alive timer starts only after an answer). Here the
    head must be complete within the deadline of the connection's opening."""
    limits = ServerLimits(header_timeout_s=DEADLINE_S, max_connections=16)
    with serving(limits) as (url, _):
        sock = _connect(url)
        with sock:
            seconds, sent = _trickle(sock, HEAD)
            # meanwhile, and after, a normal request is answered at once
            assert httpx.get(url + "/ok", timeout=5).json() == {"ok": True}
    assert DEADLINE_S - 1.0 <= seconds <= DEADLINE_S + LATE_S, seconds
    assert sent < len(HEAD)


def test_a_connection_that_never_speaks_is_closed_at_the_deadline():
    limits = ServerLimits(header_timeout_s=DEADLINE_S, max_connections=16)
    with serving(limits) as (url, _), _connect(url) as sock:
        started = time.monotonic()
        assert _closed_within(sock, DEADLINE_S + LATE_S)
        seconds = time.monotonic() - started
    assert seconds >= DEADLINE_S - 0.5, seconds


def test_a_kept_alive_connection_trickling_its_next_request_is_closed():
    """After one honest request, the next one's head trickles in: the head deadline starts at
    its first byte (not the 65 s an idle kept-alive connection is allowed)."""
    limits = ServerLimits(header_timeout_s=DEADLINE_S, max_connections=16)
    with serving(limits) as (url, _), _connect(url) as sock:
        sock.sendall(b"GET /ok HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert _read_response(sock) == (200, b'{"ok":true}')
        # idle longer than the head deadline: still open (it is kept alive 65 s)
        assert not _closed_within(sock, DEADLINE_S + 0.5)
        seconds, sent = _trickle(sock, HEAD)
    assert DEADLINE_S - 1.0 <= seconds <= DEADLINE_S + LATE_S, seconds
    assert sent < len(HEAD)


def test_a_client_trickling_its_body_is_closed_at_the_body_deadline():
    """The body of a request trickled a byte a second: cut off at the body deadline."""
    limits = ServerLimits(header_timeout_s=DEADLINE_S, body_timeout_s=DEADLINE_S,
                          max_connections=16)
    with serving(limits) as (url, _):
        with _connect(url) as sock:
            sock.sendall(b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n"
                         b"Content-Type: application/octet-stream\r\n\r\n")
            seconds, sent = _trickle(sock, b"b" * 100)
        # a body sent at once is answered
        assert httpx.post(url + "/echo", content=b"b" * 100, timeout=5).json() == {
            "received": 100}
    assert DEADLINE_S - 1.0 <= seconds <= DEADLINE_S + LATE_S, seconds
    assert sent < 100


def test_idle_connections_beyond_the_bound_make_room_for_a_real_request():
    """A flood of idle connections: past the bound, each new one closes the connection idle
    the longest, so a real request still gets in (and is answered at once)."""
    bound, flood = 8, 20
    limits = ServerLimits(header_timeout_s=60, max_connections=bound)
    with serving(limits) as (url, _):
        sockets = [_connect(url) for _ in range(flood)]
        try:
            # when a real client comes after the flood, it is answered
            assert httpx.get(url + "/ok", timeout=5).json() == {"ok": True}
            # the oldest flood - bound were closed by the flood itself, one more for the
            # real client; the newest stay open (their head deadline is a minute away)
            evicted = flood - bound + 1
            assert all(_closed_within(s, 5) for s in sockets[:evicted])
            assert not any(_closed_within(s, 0.2) for s in sockets[evicted:])
        finally:
            for sock in sockets:
                sock.close()


def test_when_every_connection_is_busy_a_new_one_is_refused_until_one_frees():
    """Every connection answering a request: a new connection is closed at once (refused),
    not queued behind them; once they finish, requests are answered again."""
    limits = ServerLimits(header_timeout_s=60, max_connections=3)
    with serving(limits) as (url, holding):
        holding.expect = 3
        busy = [_connect(url) for _ in range(3)]
        try:
            for sock in busy:
                sock.sendall(b"GET /hold HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert holding.held.wait(10)
            with _connect(url) as refused:
                assert _closed_within(refused, 5)
            holding.release.set()
            assert [_read_response(sock)[0] for sock in busy] == [200, 200, 200]
            assert httpx.get(url + "/ok", timeout=5).json() == {"ok": True}
        finally:
            for sock in busy:
                sock.close()


@pytest.mark.skipif(not ipv6_loopback(), reason="no IPv6 loopback on this machine")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_the_limits_hold_on_the_ipv6_loopback(host):
    limits = ServerLimits(header_timeout_s=DEADLINE_S, max_connections=16)
    with serving(limits, host) as (url, _):
        assert url.startswith("http://[::1]:")
        assert httpx.get(url + "/ok", timeout=5).json() == {"ok": True}
        with _connect(url) as sock:
            seconds, _ = _trickle(sock, HEAD)
    assert DEADLINE_S - 1.0 <= seconds <= DEADLINE_S + LATE_S


def test_server_config_uses_the_limited_protocol():
    config = server_config(FastAPI(), "[::1]", 1234, limits=ServerLimits(max_connections=5))
    assert config.host == "::1" and config.port == 1234
    assert issubclass(config.http, LimitedH11Protocol)
    assert config.http.limits.max_connections == 5
    assert config.timeout_keep_alive == 65
