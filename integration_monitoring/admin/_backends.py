"""Where admin queries run: Log Analytics in Azure, the local DuckDB store everywhere else."""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from .. import queries
from .._time import retry_after_seconds
from ._budget import BudgetSpent, QueryBudget


@dataclass
class Answer:
    """Rows of one query, and why they may be incomplete."""

    columns: list[str]
    rows: list[tuple[Any, ...]]
    partial: list[str] = field(default_factory=list)
    #: Readers' cuts of a shared answer, made once each (`_sharing.Shared.cut`).
    cuts: dict[Any, Any] = field(default_factory=dict, repr=False, compare=False)

    def dicts(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class BackendUnavailable(Exception):
    """The query engine is down, throttling or too slow; try again after `retry_after` s."""

    def __init__(self, reason: str, retry_after: int = 30) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


class QueryFailed(Exception):
    """The engine rejected a query: a defect of ours, not of the request."""


class Backend(Protocol):
    name: str

    def query(self, kql: str, since: dt.datetime, until: dt.datetime) -> Answer:
        """Any KQL text, over [since, until]."""

    def ask(self, name: str, values: Mapping[str, Any]) -> Answer:
        """One of the `queries` files with the request's values."""


class TextBackend:
    """Asks a question by running its rendered text: the values written as literals."""

    def query(self, kql: str, since: dt.datetime, until: dt.datetime) -> Answer:
        raise NotImplementedError

    def ask(self, name: str, values: Mapping[str, Any]) -> Answer:
        return self.query(queries.render(name, values), values["_lookback_since"],
                          values["_until"])


class LocalBackend:
    """duckdb-kql over the local store. A question's text is translated once and each
    request binds its values (`queries.parameterized`)."""

    name = "local"
    #: How long an answer is fresh, and how much longer it may be served while it is
    #: asked again (`SharedQueries`): the local store sees an event within seconds.
    freshness: ClassVar[dict[str, float]] = {"ttl_s": 15.0, "stale_s": 0.0}
    #: A default `until` is now rounded down to this many seconds.
    until_step_s: ClassVar[int] = 5

    def __init__(self, store: Any = None) -> None:
        if store is None:
            from ..store import open_store

            store = open_store()
        self.store = store

    def query(self, kql: str, since: dt.datetime, until: dt.datetime,
              parameters: Mapping[str, Any] | None = None) -> Answer:
        import duckdb
        from duckdb_kql import KqlError

        try:
            result = self.store.kql(kql, parameters=parameters)
        except KqlError as error:
            raise QueryFailed(str(error)) from error
        except (duckdb.IOException, duckdb.ConnectionException) as error:
            raise BackendUnavailable(f"local store unavailable: {error}", 5) from error
        except duckdb.Error as error:
            raise QueryFailed(f"local engine: {error}") from error
        return _answer(result)

    def ask(self, name: str, values: Mapping[str, Any]) -> Answer:
        text, parameters = queries.parameterized(name, values)
        return self.query(text, values["_lookback_since"], values["_until"], parameters)


def _answer(result: Any) -> Answer:
    # Kusto strings are never null (a lookup miss is ""); DuckDB's are.
    strings = [kind == "string" for _, kind in result.columns]
    rows = [tuple("" if value is None and is_string else value
                  for value, is_string in zip(row, strings, strict=True))
            for row in result.rows]
    return Answer([name for name, _ in result.columns], rows)


class LogAnalyticsBackend(TextBackend):
    """`LogsQueryClient.query_workspace` with a managed identity, a server timeout, bounded
    retries on throttling and server errors, and partial results reported, not hidden."""

    name = "log-analytics"
    #: Application Insights data reaches the workspace minutes after it happened; asking
    #: again sooner than a minute buys nothing and spends the identity's query rate.
    freshness: ClassVar[dict[str, float]] = {"ttl_s": 60.0, "stale_s": 600.0}
    #: ... so a window ending "now" ends on the minute: one question per window per minute.
    until_step_s: ClassVar[int] = 60
    #: Throttling and transient server errors; a 504 means the server timeout was spent
    #: already, so it is not tried again.
    RETRYABLE = frozenset({429, 500, 502, 503})

    def __init__(self, workspace_id: str, credential: Any = None, *,
                 server_timeout_s: int = 60, retries: int = 2, backoff_s: float = 1.0,
                 max_wait_s: float = 10.0, sleep: Callable[[float], None] = time.sleep,
                 budget: Any = None, **client_options: Any) -> None:
        """`max_wait_s`: the longest wait before a retry; a service asking for more is not
        asked again, its Retry-After goes to the caller. `sleep` waits (tests pass their
        own to see the waits). `budget`: a `QueryBudget` every attempt takes a place in."""
        from azure.monitor.query import LogsQueryClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        self.workspace_id = workspace_id
        self.server_timeout_s = server_timeout_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_wait_s = max_wait_s
        self.budget = budget
        self._sleep = sleep
        # A socket that stays silent past the server timeout will not answer; the SDK's
        # default connection timeout (300 s) would hold a request for minutes.
        client_options.setdefault("read_timeout", server_timeout_s + 15)
        client_options.setdefault("connection_timeout", 10)
        self.read_timeout_s = client_options["read_timeout"]
        # Our own retry loop below honours Retry-After; the SDK's would stack on top of it.
        self.client = LogsQueryClient(credential, retry_total=0,
                                      raw_response_hook=_unreadable_error, **client_options)

    def query(self, kql: str, since: dt.datetime, until: dt.datetime) -> Answer:
        from azure.core.exceptions import (
            HttpResponseError,
            ServiceRequestError,
            ServiceResponseError,
            ServiceResponseTimeoutError,
        )
        from azure.monitor.query import LogsQueryPartialResult

        attempt = 0
        while True:
            attempt += 1
            if self.budget is not None:
                try:
                    self.budget.take()
                except BudgetSpent as spent:
                    raise BackendUnavailable(str(spent), spent.retry_after) from spent
            try:
                response = self.client.query_workspace(
                    self.workspace_id, kql, timespan=(since, until),
                    server_timeout=self.server_timeout_s)
                break
            except HttpResponseError as error:
                status = error.status_code or 0
                retry_after = _retry_after(error)
                if status in (401, 403):
                    raise QueryFailed(f"Log Analytics refused the app's identity ({status}): "
                                      f"{error.message}") from error
                if status == 504:
                    raise BackendUnavailable("Log Analytics timed the query out",
                                             retry_after or 60) from error
                if status not in self.RETRYABLE:
                    raise QueryFailed(f"Log Analytics rejected the query ({status}): "
                                      f"{error.message}") from error
                if retry_after is not None and retry_after > self.max_wait_s:
                    # Asking sooner than the service said would only be refused again.
                    raise BackendUnavailable(
                        f"Log Analytics answered {status} and asks to wait {retry_after} s",
                        retry_after) from error
                if attempt > self.retries:
                    raise BackendUnavailable(
                        f"Log Analytics answered {status} {attempt} times",
                        retry_after or 30) from error
                self._sleep(retry_after or min(self.backoff_s * 2 ** (attempt - 1)
                                               * random.uniform(0.8, 1.2), self.max_wait_s))
            except json.JSONDecodeError as error:
                # A 200 whose body is not JSON (a proxy's page): no answer, as if cut off.
                if attempt > self.retries:
                    raise BackendUnavailable("Log Analytics sent an answer that is not "
                                             "JSON") from error
                self._sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s))
            except ServiceResponseTimeoutError as error:
                # Silent past the server timeout: asking again would make the caller wait
                # as long once more, for the same outcome.
                raise BackendUnavailable(
                    f"Log Analytics did not answer within {self.read_timeout_s} s",
                    60) from error
            except (ServiceRequestError, ServiceResponseError) as error:
                # DNS, refused, TLS, a connection cut mid-answer
                if attempt > self.retries:
                    raise BackendUnavailable(f"Log Analytics unreachable: {error}") from error
                self._sleep(min(self.backoff_s * 2 ** (attempt - 1), self.max_wait_s))
        if isinstance(response, LogsQueryPartialResult):
            table = response.partial_data[0] if response.partial_data else None
            partial = [_partial_reason(response.partial_error)]
        else:
            table = response.tables[0] if response.tables else None
            partial = []
        if table is None:
            return Answer([], [], partial)
        kinds = list(getattr(table, "columns_types", None) or [])
        rows = [tuple(_value(v, kinds[i] if i < len(kinds) else None) for i, v in enumerate(row))
                for row in table.rows]
        return Answer(list(table.columns), rows, partial)


_NON_FINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _value(value: Any, kind: str | None) -> Any:
    """A cell as the local engine gives it: the SDK converts datetimes only."""
    if kind == "real" and isinstance(value, str):
        return _NON_FINITE.get(value, value)
    if kind == "timespan" and isinstance(value, str):
        return _timespan(value)
    return value


_TIMESPAN = re.compile(r"^(-)?(?:(\d+)\.)?(\d+):(\d+):(\d+(?:\.\d+)?)$")


def _timespan(text: str) -> dt.timedelta | str:
    """Kusto's `[-][d.]hh:mm:ss[.fffffff]`."""
    match = _TIMESPAN.match(text)
    if not match:
        return text
    sign, days, hours, minutes, seconds = match.groups()
    span = dt.timedelta(days=int(days or 0), hours=int(hours), minutes=int(minutes),
                        seconds=float(seconds))
    return -span if sign else span


def _partial_reason(error: Any) -> str:
    """The service puts the real cause in details[].innererror; the SDK keeps the top.
    The SDK hands details over as its own models, which are mappings but not dicts."""
    for detail in getattr(error, "details", None) or []:
        inner = detail.get("innererror") if isinstance(detail, Mapping) else None
        while isinstance(inner, Mapping) and inner.get("innererror"):
            inner = inner["innererror"]
        message = inner.get("message") if isinstance(inner, Mapping) else None
        if message:
            return str(message)
    return getattr(error, "message", None) or "partial result"


def _unreadable_error(pipeline_response: Any) -> None:
    """An error whose body is not JSON (a gateway's HTML page, an empty 503) as an
    HttpResponseError with its status and headers: the SDK would parse the body first and
    raise a bare JSONDecodeError, losing both."""
    from azure.core.exceptions import HttpResponseError

    response = pipeline_response.http_response
    if response.status_code == 200:
        return
    try:
        json.loads(response.text() or "")
    except ValueError:
        status = f"{response.status_code} {response.reason or ''}".strip()
        raise HttpResponseError(
            message=f"Log Analytics answered {status} with a body that is not JSON",
            response=response) from None


def _retry_after(error: Any) -> int | None:
    response = getattr(error, "response", None)
    seconds = retry_after_seconds(
        response.headers.get("Retry-After") if response is not None else None)
    return None if seconds is None else max(1, int(seconds))


def backend_from_settings(store: Any = None) -> Backend:
    """Log Analytics when `LOG_ANALYTICS_WORKSPACE_ID` is set, else the local store."""
    workspace = (os.environ.get("LOG_ANALYTICS_WORKSPACE_ID") or "").strip()
    if workspace:
        options: dict[str, Any] = {}
        endpoint = os.environ.get("LOG_ANALYTICS_ENDPOINT")
        if endpoint:
            options["endpoint"] = endpoint
        per_30s = os.environ.get("LOG_ANALYTICS_QUERIES_PER_30S", "").strip()
        budget = QueryBudget(int(per_30s)) if per_30s.isdigit() and int(per_30s) else QueryBudget()
        return LogAnalyticsBackend(workspace, budget=budget, **options)
    return LocalBackend(store)
