"""Small helpers for tests that run the app in a real process."""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent

#: How long a test waits for an answer from one of our own servers. An uncached question
#: takes well under a second on an idle machine and many on a busy one; what a test means
#: by "fast" it measures otherwise, and pytest-timeout ends a real hang.
PATIENT = httpx.Timeout(60.0, connect=10.0)
http_get = partial(httpx.get, timeout=PATIENT)
http_post = partial(httpx.post, timeout=PATIENT)
http_stream = partial(httpx.stream, timeout=PATIENT)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def project_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A clean environment for a child process: local mode, its own store."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("APPLICATIONINSIGHTS_", "TELEMETRY_", "LOG_ANALYTICS_",
                                "ADMIN_"))}
    env["TELEMETRY_DB"] = str(tmp_path / "telemetry.duckdb")
    env.update(extra)
    return env


class Server:
    """`python -m integration_monitoring serve` on a free port, stopped with SIGTERM."""

    def __init__(self, tmp_path: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "integration_monitoring", "serve", "--port", str(self.port),
             *args],
            cwd=ROOT, env=project_env(tmp_path, **env), stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )
        self.stdout = ""
        self.stderr = ""
        token = env.get("ADMIN_API_TOKEN")
        self.headers = {"Authorization": f"Bearer {token}"} if token else {}

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited: {self.process.communicate()}")
            try:
                if httpx.get(self.url + "/api/health", headers=self.headers,
                             timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise TimeoutError("server did not become ready")

    def get(self, path: str) -> httpx.Response:
        return http_get(self.url + path, headers=self.headers)

    def wait_for(self, predicate, timeout: float = 60.0, interval: float = 0.2):
        """Poll until predicate(self) is truthy; returns its value."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate(self)
            if value:
                return value
            time.sleep(interval)
        raise TimeoutError("condition not met in time")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        self.process.send_signal(sig)
        self.stdout, self.stderr = self.process.communicate(timeout=30)
        return self.process.returncode

    def __enter__(self) -> Server:
        self.wait_ready()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process.poll() is None:
            self.stop()


@contextmanager
def serve_app(app) -> Iterator[str]:
    """An ASGI app on uvicorn in a thread, on a free loopback port; yields its base URL."""
    import uvicorn

    port = free_port()
    with serve_config(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")):
        yield f"http://127.0.0.1:{port}"


@contextmanager
def serve_config(config) -> Iterator[None]:
    """A uvicorn server of `config` in a thread, from started to stopped."""
    import uvicorn

    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield
    finally:
        server.should_exit = True
        thread.join(10)


def ipv6_loopback() -> bool:
    """Whether this machine can listen on ::1."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as probe:
            probe.bind(("::1", 0))
        return True
    except OSError:
        return False


def principal(*roles: str, tenants: str | None = None, name: str = "ops@example.com") -> str:
    """An X-MS-CLIENT-PRINCIPAL header value, as App Service authentication sends it."""
    claims = [{"typ": "name", "val": name}, *({"typ": "roles", "val": r} for r in roles)]
    if tenants is not None:
        claims.append({"typ": "tenants", "val": tenants})
    body = {"auth_typ": "aad", "claims": claims, "name_typ": "name", "role_typ": "roles"}
    return base64.b64encode(json.dumps(body).encode()).decode()


def store_telemetry(store) -> tuple:
    """A Telemetry whose events go straight into `store` (one write per event, so a test
    reads them back at once), and its log provider to shut down."""
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from integration_monitoring import Telemetry
    from integration_monitoring.store import StoreLogExporter

    provider = LoggerProvider()
    provider.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(store)))
    return Telemetry(logger_provider=provider, meter_provider=MeterProvider(),
                     tracer_provider=TracerProvider(), stdout=False), provider
