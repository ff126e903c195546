"""The Log Analytics query API on 127.0.0.1, answered by duckdb-kql on a local store, for tests.

    with LogAnalyticsLoopback(store) as workspace:
        client = LogsQueryClient(workspace.credential, endpoint=workspace.endpoint,
                                 connection_verify=workspace.ca_path)
        client.query_workspace("ws-1", "AppTraces | count", timespan=timedelta(hours=1))

It speaks HTTPS with a throwaway certificate authority (`trustme`) and answers what
`LogsQueryClient.query_workspace` sends: `POST /v1/workspaces/{workspace}/query` with
`{"query": ..., "timespan": ..., "workspaces": ...}` and `Prefer: wait=N` (the server
timeout). The honest answer runs the received KQL with duckdb-kql on the given
`TelemetryStore`, restricted to the request's `timespan` as the service restricts it, and
writes the rows the way the service does (see `to_wire`):

    {"tables": [{"name": "PrimaryResult", "columns": [{"name": "n", "type": "long"}],
                 "rows": [[5]]}]}

- datetime: ISO 8601 in UTC with up to 7 fractional digits, trailing zeros dropped, and a Z.
- timespan: .NET's `[-][d.]hh:mm:ss[.fffffff]`.
- real: a JSON number; NaN and the infinities as the strings "NaN", "Infinity", "-Infinity".
- dynamic: the value's compact JSON text, as a JSON *string* (the SDK does not parse it).
- string: never null; Kusto strings have no null, so a NULL from DuckDB is sent as "".
- guid, decimal: strings. bool: true/false. int, long: numbers. Any other null: null.

Requests without `Authorization: Bearer <the credential's token>` get the service's 401.
Every query is first analysed by Microsoft's Kusto.Language against the workspace's real
tables (`tests/kusto.py`), as strict as Log Analytics: one it refuses gets the service's 400
`BadArgumentError` with the syntax or semantic error inside, before duckdb-kql sees it, so
no test passes on KQL that Azure would refuse. A query duckdb-kql cannot run gets the same.
Tests inject faults, and switch them off again, with:

- `fail_next(n, ...)`: the next n queries get an HTTP error (with `Retry-After` if asked);
  `fail_always(...)`: every query does, until `reset`. The body is the service's JSON
  error, or any other text (`body=`), as a gateway in front of the service may send.
- `partial_next(n)` / `partial_always()`: the rows plus a `PartialError` beside them,
  which the SDK turns into `LogsQueryPartialResult`.
- `delay(s)`: a stall; one longer than the request's `Prefer: wait=N` ends in the
  service's 504, as the service cancels a query at its server timeout. `stall()`: a stall
  that lasts until `reset`, longer than any client waits, however busy the machine.
- `go_down()` / `come_up()`: the endpoint refuses connections, then listens again on the
  same port.
- `reset()`: all of the above off. One-off faults are used before standing ones.

It holds each identity (bearer token) to Azure Monitor's documented per-user query limits
("User query throttling", https://learn.microsoft.com/azure/azure-monitor/service-limits#log-queries-and-language):
five queries run at once and the others wait in a queue; a query that waits more than
3 minutes, or that arrives with 200 waiting, gets a 429; and more than 200 queries in any
30 seconds get a 429 with `Retry-After`. `Limits(...)` changes them (`limits=None`: none).
`admitted` counts the queries each identity was allowed to run, `throttled` the 429s.

Each recorded request carries its arrival time (`at`, `time.monotonic()`), so a test can
check how long a client waited between attempts.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
import threading
import time
import uuid
from dataclasses import dataclass
from decimal import Decimal
from http.server import BaseHTTPRequestHandler
from typing import Any, NamedTuple
from urllib.parse import unquote, urlsplit

import duckdb
from duckdb_kql import KqlError
from duckdb_kql.errors import KqlSyntaxError

from ..kusto import Diagnostic, shared_analyser
from .servicebus import OutageAwareHandler, Outages, StaticTokenCredential

DEFAULT_TOKEN = "loopback-loganalytics-token"
QUERY_PATH = re.compile(r"^/v1/workspaces/(?P<workspace>[^/]+)/query/?$")
#: What the service answers when a query does not finish within `Prefer: wait=N`.
GATEWAY_TIMEOUT = 504

#: The service's error codes and messages per HTTP status (`{"error": {...}}` bodies).
_ERRORS = {
    400: ("BadArgumentError", "The request had some invalid properties"),
    401: ("AuthorizationRequiredError", "Valid authentication was not provided"),
    403: ("InsufficientAccessError",
          "The provided credentials have insufficient access to perform the requested "
          "operation"),
    404: ("PathNotFoundError", "The requested path does not exist"),
    405: ("MethodNotAllowedError", "The requested method is not allowed for this resource"),
    429: ("ThrottledError", "Too many requests. Please retry after the Retry-After interval"),
    500: ("InternalServerError", "An unexpected error occurred processing the request"),
    502: ("BadGateway", "The service received an invalid response from upstream"),
    503: ("ServiceUnavailableError", "The service is temporarily unavailable"),
    504: ("GatewayTimeout", "Gateway timeout: the query did not complete in the allotted time"),
}
#: The error beside the tables of a partial answer (what the service sends when, say,
#: a query hits a result limit): the SDK reads it into `LogsQueryPartialResult`.
PARTIAL_DETAIL = ("Query result set has exceeded the internal record count limit 500000 "
                  "(E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)")
_DURATION = re.compile(r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?"
                       r"(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")


@dataclass(frozen=True)
class Limits:
    """Azure Monitor's per-user query limits (see the module's docstring)."""

    concurrent: int = 5
    queue: int = 200
    queue_wait_s: float = 180.0
    per_window: int = 200
    window_s: float = 30.0


class _Identity:
    """What one identity has running, waiting and sent lately."""

    def __init__(self) -> None:
        self.running = 0
        self.waiting = 0
        self.sent: list[float] = []  # arrival times within the rate window
        self.turn = threading.Condition()


class RecordedRequest(NamedTuple):
    method: str
    path: str  # as sent, query string included
    headers: dict[str, str]  # names lower-cased
    body: Any  # the parsed JSON body, or None when it was not JSON
    at: float = 0.0  # time.monotonic() on arrival

    @property
    def query(self) -> str:
        """The KQL text the request carried ("" if none)."""
        return self.body.get("query", "") if isinstance(self.body, dict) else ""


@dataclass
class _Failure:
    status: int
    retry_after: float | None
    code: str | None
    message: str | None
    body: str | None = None  # raw text instead of the service's JSON error


class LogAnalyticsLoopback(Outages):
    """An HTTPS server that answers Log Analytics queries by running them on a local store."""

    name = "loganalytics-loopback"
    quiet = True  # clients that gave up (timeouts) reset their connections; that is expected

    def __init__(self, store: Any, token: str = DEFAULT_TOKEN,
                 workspaces: tuple[str, ...] | None = None,
                 limits: Limits | None = Limits()) -> None:
        """`workspaces`: the workspace ids that exist (others get 404); None means any."""
        super().__init__()
        self.limits = limits
        self._identities: dict[str, _Identity] = {}
        self.admitted: dict[str, list[float]] = {}  # identity -> when each query was let in
        self.throttled = 0
        self.store = store
        self.credential = StaticTokenCredential(token)
        self.workspaces = workspaces
        self._requests: list[RecordedRequest] = []
        # One-off faults, each with the number of requests that had arrived when it was set:
        # it applies only to a request that arrives later, so a request still in flight from
        # an earlier test (a stalled one, a client's late retry) never takes it.
        self._arrived = 0
        self._running = 0  # queries on the store right now: `stop` waits for them
        self._idle = threading.Condition()
        self._failures: list[tuple[int, _Failure]] = []
        self._partials: list[tuple[int, str]] = []
        self._standing_failure: _Failure | None = None
        self._standing_partial: str | None = None
        self._delay_s = 0.0
        self._healed = threading.Event()  # set by `reset`: ends the stalls under way

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def stop(self) -> None:
        """Stop, then wait for queries still running on the store (handlers are daemon
        threads), so that whoever closes the store next does not close it under them."""
        super().stop()
        with self._idle:
            self._idle.wait_for(lambda: self._running == 0, timeout=60)

    # -- what tests use -------------------------------------------------------------------

    @property
    def host(self) -> str:
        """`127.0.0.1:<port>` once started."""
        return self.address

    @property
    def endpoint(self) -> str:
        """What to pass as `LogsQueryClient(endpoint=...)`."""
        return f"https://{self.host}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        """(method, path, headers, body) of every request received, failed ones included."""
        with self._lock:
            return list(self._requests)

    @property
    def queries(self) -> list[str]:
        """The KQL text of every request received, in arrival order."""
        return [request.query for request in self.requests]

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    def fail_next(self, count: int, status: int = 503, retry_after: float | None = None, *,
                  code: str | None = None, message: str | None = None,
                  body: str | None = None) -> None:
        """Answer the next `count` queries with `status` and the service's error body (or
        `body`, sent as HTML)."""
        with self._lock:
            self._failures.extend((self._arrived, _Failure(status, retry_after, code, message,
                                                           body)) for _ in range(count))

    def fail_always(self, status: int = 503, retry_after: float | None = None, *,
                    code: str | None = None, message: str | None = None,
                    body: str | None = None) -> None:
        """Answer every query with `status` until `reset` (after any `fail_next` ones)."""
        with self._lock:
            self._standing_failure = _Failure(status, retry_after, code, message, body)

    def partial_next(self, count: int, detail: str = PARTIAL_DETAIL) -> None:
        """Answer the next `count` queries with their rows and a `PartialError` beside them."""
        with self._lock:
            self._partials.extend([(self._arrived, detail)] * count)

    def partial_always(self, detail: str = PARTIAL_DETAIL) -> None:
        """Answer every query with its rows and a `PartialError` until `reset`."""
        with self._lock:
            self._standing_partial = detail

    def delay(self, seconds: float) -> None:
        """Stall every following answer by `seconds` (0 to stop stalling)."""
        with self._lock:
            self._delay_s = seconds
            self._healed.clear()

    def stall(self) -> None:
        """Stall every following answer until `reset`."""
        self.delay(math.inf)

    def reset(self) -> None:
        """Switch every fault off: pending and standing ones, delays, an outage (recorded
        requests stay)."""
        with self._lock:
            self._failures.clear()
            self._partials.clear()
            self._standing_failure = None
            self._standing_partial = None
            self._delay_s = 0.0
            self._healed.set()
        self.come_up()

    # -- called by the handler ------------------------------------------------------------

    def _wait(self, seconds: float) -> bool:
        """Wait `seconds`, or less if healed meanwhile; True when the server is stopping."""
        deadline = time.monotonic() + seconds
        while not self._healed.is_set():
            if self._stopping.wait(min(0.05, deadline - time.monotonic())):
                return True
            if time.monotonic() >= deadline:
                break
        return self._stopping.is_set()

    def _answer(self, method: str, raw_path: str, headers: dict[str, str],
                raw_body: bytes) -> tuple[int, dict[str, str], dict[str, Any] | str] | None:
        """The response to one request, or None when it gets none (the server stopped, or a
        stall until healed ended)."""
        try:
            body: Any = json.loads(raw_body) if raw_body else None
        except ValueError:
            body = None
        with self._lock:
            self._requests.append(RecordedRequest(method, raw_path, headers, body,
                                                  time.monotonic()))
            self._arrived += 1
            arrival = self._arrived

        authorization = headers.get("authorization", "")
        if not authorization.startswith("Bearer "):
            return error_answer(401)
        if authorization != f"Bearer {self.credential.token}":
            return error_answer(401, "InvalidTokenError",
                                "The provided authentication is not valid for this resource")
        match = QUERY_PATH.match(urlsplit(raw_path).path)
        if match is None:
            return error_answer(404)
        workspace = unquote(match.group("workspace"))
        if self.workspaces is not None and workspace not in self.workspaces:
            return error_answer(404, "WorkspaceNotFoundError",
                                f"Workspace '{workspace}' was not found")
        if method != "POST":
            return error_answer(405)

        with self._lock:
            failure = _take(self._failures, arrival) or self._standing_failure
            delay_s = self._delay_s
        if failure is not None:
            extra = {}
            if failure.retry_after is not None:
                extra["Retry-After"] = _number(failure.retry_after)
            if failure.body is not None:
                return failure.status, {"Content-Type": "text/html", **extra}, failure.body
            status, more, answer = error_answer(failure.status, failure.code, failure.message)
            return status, {**more, **extra}, answer

        if not isinstance(body, dict) or not isinstance(body.get("query"), str):
            return error_answer(400, message="The request body must be JSON with a 'query'")
        try:
            window = parse_timespan(body.get("timespan"))
        except ValueError as error:
            return error_answer(400, message=f"Invalid timespan: {error}")
        refusals = shared_analyser().errors(body["query"])
        if refusals:
            return refused(body["query"], refusals)
        identity = authorization.removeprefix("Bearer ")
        refusal = self._admit(identity)
        if refusal is not None:
            return refusal
        try:
            # a slow answer holds its place among the identity's running queries
            wait_s = _server_timeout(headers.get("prefer", ""))
            if delay_s:
                stalled = min(delay_s, wait_s) if wait_s is not None else delay_s
                # a stall that only healing ended never answers: its client gave up long
                # ago, and its query must not hold the store while the next one is timed
                if self._wait(stalled) or math.isinf(stalled):
                    return None
                if wait_s is not None and delay_s > wait_s:
                    return error_answer(GATEWAY_TIMEOUT)
            return self._run(body, window, arrival)
        finally:
            self._leave(identity)

    def _admit(self, identity: str) -> tuple[int, dict[str, str], dict[str, Any]] | None:
        """A place among the identity's running queries, or the service's 429."""
        limits = self.limits
        if limits is None:
            return None
        with self._lock:
            who = self._identities.setdefault(identity, _Identity())
        now = time.monotonic()
        with who.turn:
            who.sent = [t for t in who.sent if now - t < limits.window_s]
            if len(who.sent) >= limits.per_window:
                wait = limits.window_s - (now - who.sent[0])
                return self._throttle(f"more than {limits.per_window} queries in "
                                      f"{limits.window_s:g} seconds", wait)
            who.sent.append(now)
            if who.running >= limits.concurrent and who.waiting >= limits.queue:
                return self._throttle(f"{limits.queue} queries are already queued", 1)
            who.waiting += 1
            try:
                started = who.turn.wait_for(lambda: who.running < limits.concurrent,
                                            timeout=limits.queue_wait_s)
            finally:
                who.waiting -= 1
            if not started:
                return self._throttle(
                    f"the query waited more than {limits.queue_wait_s:g} s in the queue", 1)
            who.running += 1
        with self._lock:
            self.admitted.setdefault(identity, []).append(time.monotonic())
        return None

    def _leave(self, identity: str) -> None:
        if self.limits is None:
            return
        who = self._identities[identity]
        with who.turn:
            who.running -= 1
            who.turn.notify()

    def _throttle(self, why: str, retry_after: float) -> tuple[int, dict[str, str],
                                                                dict[str, Any]]:
        with self._lock:
            self.throttled += 1
        status, headers, answer = error_answer(
            429, message=f"Too many requests: {why}. Please retry after the Retry-After "
                         "interval")
        return status, {**headers, "Retry-After": str(max(1, math.ceil(retry_after)))}, answer

    def running_now(self, identity: str | None = None) -> int:
        """Queries of the identity (default: the credential's) running right now."""
        who = self._identities.get(identity or self.credential.token)
        return who.running if who is not None else 0

    def _run(self, body: dict[str, Any], window: Any,
             arrival: int) -> tuple[int, dict[str, str], dict[str, Any] | str]:
        with self._idle:
            self._running += 1
        try:
            # The service applies the timespan "in addition to any that are specified in
            # the query expression": every table seen through [start, end]. Our own
            # questions cover less than it (their prelude bounds every table), so they run
            # on the store's translate-once path, which is how a store of a day's telemetry
            # answers as fast as a workspace would.
            declared = _declared(body["query"])
            if declared is not None and _within(declared[1], window):
                result = self.store.kql(declared[0], parameters=declared[1])
            else:
                result = self.store.kql(body["query"], timespan=window)
        except KqlError as error:
            return bad_query(error)
        except duckdb.Error as error:  # a translation duckdb then refuses: still our query
            return bad_query(error)
        except Exception as error:  # the loopback's own failure: the service's 500
            return error_answer(500, message=f"{type(error).__name__}: {error}")
        finally:
            with self._idle:
                self._running -= 1
                self._idle.notify_all()

        answer: dict[str, Any] = {"tables": [table(result.columns, result.rows)]}
        with self._lock:
            detail = _take(self._partials, arrival) or self._standing_partial
        if detail is not None:
            answer["error"] = partial_error(detail)
        return 200, {}, answer


_LET = re.compile(r"^let (_[a-z][a-z0-9_]*) = (.*);$")
_STRING_ESCAPES = {"\\\\": "\\", '\\"': '"', "\\n": "\n", "\\r": "\r", "\\t": "\t"}


def _literal(text: str) -> Any:
    """A value our prelude wrote (`queries.kql_literal`), or KeyError."""
    if text in ("true", "false"):
        return text == "true"
    if text.startswith('"') and text.endswith('"'):
        return re.sub(r'\\[\\"nrt]', lambda m: _STRING_ESCAPES[m.group()], text[1:-1])
    if text.startswith("long(") and text.endswith(")"):
        return int(text[5:-1])
    if text.startswith("datetime(") and text.endswith("Z)"):
        return dt.datetime.fromisoformat(text[9:-2]).replace(tzinfo=dt.UTC)
    if re.fullmatch(r"\d+s", text):
        return dt.timedelta(seconds=int(text[:-1]))
    if text.startswith("dynamic([") and text.endswith("])"):
        return tuple(json.loads(text[8:-1]))
    raise KeyError(text)


def _declared(query: str) -> tuple[str, dict[str, Any]] | None:
    """One of our questions (a prelude of literals, then the text) as the same question
    with its values as parameters (`queries.parameterized`); None for any other text."""
    from integration_monitoring import queries

    values: dict[str, Any] = {}
    lines = query.split("\n")
    for count, line in enumerate(lines):  # noqa: B007 - `count` is read after the loop
        match = _LET.match(line)
        if match is None:
            break
        try:
            values[match.group(1)] = _literal(match.group(2))
        except (KeyError, ValueError):
            return None
    if "_until" not in values or "_lookback_since" not in values:
        return None
    rest = "\n".join(lines[count:])
    names = [name for name in queries.forms() if rest == queries.text("_common")
             + queries.text(name)]
    if len(names) != 1:
        return None
    return queries.parameterized(names[0], values)


def _within(values: dict[str, Any], window: Any) -> bool:
    """Whether the request's timespan leaves every row the question reads in view."""
    if window is None:
        return True
    start, end = window
    since, until = (values[k].astimezone(dt.UTC).replace(tzinfo=None)
                    for k in ("_lookback_since", "_until"))
    return start <= since and until <= end


def _take(faults: list[tuple[int, Any]], arrival: int) -> Any:
    """The first one-off fault set before request number `arrival` came in, removed."""
    if faults and faults[0][0] < arrival:
        return faults.pop(0)[1]
    return None


# -- the service's JSON -----------------------------------------------------------------------


def table(columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]) -> dict[str, Any]:
    """One `PrimaryResult` table, values written as the service writes them."""
    kinds = [kind for _, kind in columns]
    return {"name": "PrimaryResult",
            "columns": [{"name": name, "type": kind} for name, kind in columns],
            "rows": [[to_wire(value, kind) for value, kind in zip(row, kinds, strict=True)]
                     for row in rows]}


def to_wire(value: Any, kind: str) -> Any:
    """A DuckDB value as the Log Analytics query API puts it in a row."""
    if value is None:
        return "" if kind == "string" else None
    if kind == "datetime":
        return kusto_datetime(value)
    if kind == "timespan":
        return kusto_timespan(value)
    if kind == "real":
        value = float(value)
        if math.isnan(value):
            return "NaN"
        if math.isinf(value):
            return "Infinity" if value > 0 else "-Infinity"
        return value
    if kind == "dynamic":
        parsed = json.loads(value) if isinstance(value, str) else value
        return json.dumps(_jsonable(parsed), separators=(",", ":"), ensure_ascii=False)
    if kind in ("guid", "decimal"):
        return str(value)
    if kind == "bool":
        return bool(value)
    if kind in ("int", "long"):
        return int(value)
    return value if isinstance(value, str) else str(value)


def kusto_datetime(value: dt.datetime | dt.date) -> str:
    """`2025-06-02T11:59:59.978451Z`: UTC, at most 7 fractional digits, no trailing zeros."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime(value.year, value.month, value.day)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    fraction = f"{value.microsecond:06d}0".rstrip("0")
    return value.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def kusto_timespan(value: dt.timedelta | dt.time) -> str:
    """.NET's constant TimeSpan format: `[-][d.]hh:mm:ss[.fffffff]`."""
    if isinstance(value, dt.time):
        value = dt.timedelta(hours=value.hour, minutes=value.minute, seconds=value.second,
                             microseconds=value.microsecond)
    sign = "-" if value < dt.timedelta(0) else ""
    rest = abs(value)
    hours, seconds = divmod(rest.seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    text = f"{hours:02d}:{minutes:02d}:{seconds:02d}"
    if rest.days:
        text = f"{rest.days}.{text}"
    if rest.microseconds:
        text += f".{rest.microseconds:06d}0"
    return sign + text


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dt.datetime):
        return kusto_datetime(value)
    if isinstance(value, dt.timedelta):
        return kusto_timespan(value)
    if isinstance(value, (Decimal, uuid.UUID)):
        return str(value)
    return value


def error_answer(status: int, code: str | None = None,
                 message: str | None = None) -> tuple[int, dict[str, str], dict[str, Any]]:
    """The service's `{"error": {"message", "code", "correlationId"}}` for `status`."""
    default_code, default_message = _ERRORS.get(status, ("Error", "The request failed"))
    return status, {}, {"error": {"message": message or default_message,
                                  "code": code or default_code,
                                  "correlationId": str(uuid.uuid4())}}


def bad_query(error: Exception) -> tuple[int, dict[str, str], dict[str, Any]]:
    """400 for a query duckdb-kql cannot run."""
    return query_error(isinstance(error, KqlSyntaxError), str(error).strip()
                       or type(error).__name__)


def refused(text: str, errors: list[Diagnostic]) -> tuple[int, dict[str, str], dict[str, Any]]:
    """400 for a query the service's analyser refuses, naming its first error."""
    return query_error(errors[0].syntax, errors[0].describe(text))


def query_error(syntax: bool, detail: str) -> tuple[int, dict[str, str], dict[str, Any]]:
    """The service's 400: BadArgumentError > SyntaxError or SemanticError > the detail."""
    status, headers, answer = error_answer(400)
    answer["error"]["innererror"] = {
        "code": "SyntaxError" if syntax else "SemanticError",
        "message": ("A recognition error occurred in the query." if syntax
                    else "A semantic error occurred."),
        "innererror": {"code": "SYN0002" if syntax else "SEM0100", "message": detail},
    }
    return status, headers, answer


def partial_error(detail: str) -> dict[str, Any]:
    """The `error` the service writes beside the tables of a partial answer."""
    return {"message": "There were some errors when processing your query.",
            "code": "PartialError",
            "correlationId": str(uuid.uuid4()),
            "details": [{"code": "EngineError",
                         "message": "Something went wrong processing your query on the server.",
                         "innererror": {"code": "-2133196797", "message": detail,
                                        "severity": 2, "severityName": "Error"}}]}


# -- running a query --------------------------------------------------------------------------


def parse_timespan(value: Any) -> tuple[dt.datetime, dt.datetime] | None:
    """The body's ISO 8601 interval (`start/end`, `start/duration`, `duration/end` or a
    duration ending now) as naive UTC bounds, or None for no restriction."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ValueError(f"not a string: {value!r}")
    parts = value.split("/")
    if len(parts) == 1:
        end = dt.datetime.now(dt.UTC)
        return _naive(end - _duration(parts[0])), _naive(end)
    if len(parts) != 2:
        raise ValueError(value)
    first, second = parts
    if first.startswith("P"):
        end = _instant(second)
        return _naive(end - _duration(first)), _naive(end)
    start = _instant(first)
    end = start + _duration(second) if second.startswith("P") else _instant(second)
    return _naive(start), _naive(end)


def _instant(text: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _duration(text: str) -> dt.timedelta:
    match = _DURATION.match(text.strip())
    if not match or text.strip() in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {text!r}")
    parts = {key: float(number) for key, number in match.groupdict().items() if number}
    return dt.timedelta(days=parts.get("d", 0), hours=parts.get("h", 0),
                        minutes=parts.get("m", 0), seconds=parts.get("s", 0))


def _naive(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _server_timeout(prefer: str) -> float | None:
    """`wait=N` of a `Prefer` header such as `wait=60,include-statistics=true`."""
    for part in prefer.split(","):
        name, _, value = part.strip().partition("=")
        if name.strip().lower() == "wait":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# -- HTTP plumbing ----------------------------------------------------------------------------


def _handler_for(loopback: LogAnalyticsLoopback) -> type[BaseHTTPRequestHandler]:
    class Handler(OutageAwareHandler):
        def _serve(self) -> None:
            answer = loopback._answer(self.command, self.path, self.lower_headers(),
                                      self.read_body())
            if answer is None:  # stopped, or a stall that healing ended: no answer at all
                self.close_connection = True
                return
            status, extra, payload = answer
            if isinstance(payload, str):
                body = payload.encode()
            else:
                body = json.dumps(payload, allow_nan=False, ensure_ascii=False).encode()
            self.respond(status, {"Content-Type": "application/json; charset=utf-8", **extra,
                                  "Strict-Transport-Security": "max-age=31536000"}, body)

        do_GET = do_POST = do_PUT = do_DELETE = _serve  # noqa: N815 (http.server's names)

    Handler.loopback = loopback
    return Handler
