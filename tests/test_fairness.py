"""Fair use of the query engine: a caller who opens stream after stream or floods the API with
questions gets 429s and holds its share of the engine, never all of it (admin/_fairness.py)."""

from __future__ import annotations

import datetime as dt
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import pytest

from integration_monitoring.admin import Access, LocalBackend
from integration_monitoring.admin._backends import Answer, TextBackend
from integration_monitoring.admin._fairness import Busy, Fairness
from integration_monitoring.admin._filters import parse_filters
from integration_monitoring.admin._service import AdminService
from integration_monitoring.app import create_app
from integration_monitoring.store import TelemetryStore

from .helpers import serve_app
from .test_access import principal


def reader(name: str, tenants: str = "tenant-1") -> dict[str, str]:
    return {"x-ms-client-principal": principal("Monitoring.Reader", tenants=tenants, name=name)}


# -- the allowances ---------------------------------------------------------------------------


def test_a_caller_may_hold_a_few_streams_and_gets_them_back():
    fairness = Fairness(streams=2)
    with ExitStack() as held:
        held.enter_context(fairness.stream("mallory"))
        held.enter_context(fairness.stream("mallory"))
        with pytest.raises(Busy) as busy:
            held.enter_context(fairness.stream("mallory"))
        assert busy.value.retry_after > 0
        with fairness.stream("alice"):  # another caller is not affected
            pass
    with fairness.stream("mallory"):  # closed streams are given back
        assert fairness.open_streams("mallory") == 1


def test_shared_credentials_have_the_apps_bound_only():
    """A token or function key does not tell people apart: no allowance of its own."""
    from integration_monitoring.admin._access import Principal
    from integration_monitoring.admin._fairness import caller_key

    assert caller_key(Principal("token", None, "token")) == ""
    assert caller_key(Principal("a@x.io", None, "entra")) == "entra:a@x.io"
    fairness = Fairness(streams=1, share=1, waiting=0, at_once=8)
    with ExitStack() as held:
        for _ in range(5):
            held.enter_context(fairness.stream(""))
            held.enter_context(fairness.question(""))


def test_a_flooding_caller_holds_its_share_and_the_others_still_run():
    """Mallory's questions block on the engine; Alice's question runs beside them at once."""
    fairness = Fairness(share=2, waiting=3, at_once=3, queue_s=5)
    release = threading.Event()
    running = threading.Semaphore(0)

    def mallory_asks():
        with fairness.question("mallory"):
            running.release()
            release.wait(5)

    with ThreadPoolExecutor(5) as pool:
        flood = [pool.submit(mallory_asks) for _ in range(5)]  # 2 run, 3 wait
        assert running.acquire(timeout=5) and running.acquire(timeout=5)
        assert not running.acquire(timeout=0.2)  # the third waits for mallory's share
        # when mallory asks once more, beyond share and queue
        with pytest.raises(Busy), fairness.question("mallory"):
            pass
        # then alice still gets the engine's free slot right away
        with fairness.question("alice"):
            pass
        release.set()
        for future in flood:
            future.result(timeout=5)


def test_the_app_runs_at_most_so_many_questions_at_once():
    fairness = Fairness(share=4, at_once=2, queue_s=5)
    inside, most, lock = 0, 0, threading.Lock()

    def ask(caller: str) -> None:
        nonlocal inside, most
        with fairness.question(caller):
            with lock:
                inside += 1
                most = max(most, inside)
            threading.Event().wait(0.05)
            with lock:
                inside -= 1

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(ask, [f"caller-{i % 4}" for i in range(16)]))
    assert most == 2


# -- through the app ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def entra(tmp_path_factory):
    store = TelemetryStore(tmp_path_factory.mktemp("fair") / "fair.duckdb")
    app = create_app(backend=LocalBackend(store), access=Access("entra"),
                     stream_options={"poll_s": 0.2, "stream_s": 20, "retry_ms": 100})
    with serve_app(app) as url:
        yield url
    store.close()


def test_opening_stream_after_stream_is_refused_with_retry_after(entra):
    """A reader opening tens of live streams gets four; the rest are clear 429s."""
    url = f"{entra}/api/admin/integrations/stream"
    mallory = reader("mallory@example.com")
    with ExitStack() as stack, httpx.Client(timeout=30) as client:
        answers = []
        for minutes in range(8):
            since = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=2, minutes=minutes))
            request = client.build_request("GET", url, headers=mallory,
                                           params={"since": since.isoformat()})
            answers.append(stack.enter_context(Streamed(client, request)))
        statuses = [a.status_code for a in answers]
        assert statuses == [200] * 4 + [429] * 4
        refused = answers[-1]
        refused.read()
        assert refused.headers["retry-after"].isdigit()
        assert refused.json()["error"]["code"] == "too_many_requests"
        # another reader is not affected
        other = stack.enter_context(Streamed(client, client.build_request(
            "GET", url, headers=reader("alice@example.com"))))
        assert other.status_code == 200


class Streamed:
    """A streamed response held open for the block."""

    def __init__(self, client: httpx.Client, request: httpx.Request) -> None:
        self.client, self.request = client, request

    def __enter__(self) -> httpx.Response:
        self.response = self.client.send(self.request, stream=True)
        return self.response

    def __exit__(self, *exc: object) -> None:
        self.response.close()


class CountingBackend(TextBackend):
    name = "counting"

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.lock = threading.Lock()

    def query(self, kql: str, since: dt.datetime, until: dt.datetime) -> Answer:
        with self.lock:
            self.texts.append(kql)
        return Answer(["events", "latest"], [(0, None)])


def test_streams_whose_windows_start_in_one_bucket_ask_one_question():
    """Thirty streams, each with its own `since` inside one bucket, poll one fingerprint."""
    from integration_monitoring.admin._dashboard import _windowed

    backend = CountingBackend()
    service = AdminService(backend)
    now = dt.datetime(2026, 3, 4, 12, 0, 3, tzinfo=dt.UTC)
    for second in range(30):
        since = dt.datetime(2026, 3, 4, 10, 0, 5, tzinfo=dt.UTC) + dt.timedelta(seconds=second)
        params = {"since": since.isoformat()}
        filters = parse_filters("stream", params, now=now)
        service.run("stream_fingerprint", _windowed(filters, params))
    assert len(backend.texts) == 1
