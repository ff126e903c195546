"""An Azure Table Storage endpoint on 127.0.0.1, for tests: the operations azure-data-tables'
TableClient makes for the alert outbox, in the service's JSON wire format.

    with TableLoopback() as tables:
        client = TableClient(tables.endpoint, "alertoutbox", credential=tables.credential,
                             connection_verify=tables.ca_path)

HTTPS with a throwaway certificate authority (`trustme`). Requests need
`Authorization: Bearer <the credential's token>`. What it answers (x-ms-version 2019-02-02,
JSON with `odata=minimalmetadata`):

- `POST /Tables` `{"TableName"}` creates a table: 201, or 409 `TableAlreadyExists`.
- `POST /<table>` inserts an entity: 201 with the entity and its `ETag`, or 409
  `EntityAlreadyExists`.
- `PUT /<table>(PartitionKey='…',RowKey='…')` replaces an entity, inserting it when there is
  no `If-Match` (upsert): 204 with the new `ETag`; with `If-Match` it must exist (404
  `ResourceNotFound`) and match (412 `UpdateConditionNotSatisfied`) unless it is `*`.
- `GET /<table>()?$filter=…` queries: 200 `{"value": [...]}`, each entity with `odata.etag`,
  `Timestamp` and its `@odata.type` annotations as they were sent. `$filter` takes
  comparisons (`eq ne gt ge lt le`) of properties with string, `datetime'…'`, number and
  boolean literals, joined by `and`, `or`, `not` and parentheses.
- `DELETE /<table>(PartitionKey='…',RowKey='…')` with `If-Match`: 204, 404 or 412.

An unknown table is 404 `TableNotFound`. `fail_next` answers the next requests with an error
status instead (the service being unavailable).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from ._server import LoopbackHandler, LoopbackServer
from .servicebus import StaticTokenCredential

DEFAULT_TOKEN = "loopback-tables-token"
JSON_TYPE = "application/json;odata=minimalmetadata;streaming=true;charset=utf-8"
_ENTITY_PATH = re.compile(r"^/(?P<table>[A-Za-z][A-Za-z0-9]{2,62})"
                          r"\(PartitionKey='(?P<pk>(?:[^']|'')*)',RowKey='(?P<rk>(?:[^']|'')*)'\)$")
_TABLE_PATH = re.compile(r"^/(?P<table>[A-Za-z][A-Za-z0-9]{2,62})(?P<query>\(\))?$")


@dataclass
class Seen:
    """One request as the loopback received it."""

    method: str
    path: str  # decoded, without the query string
    query: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    status: int


class TableLoopback(LoopbackServer):
    """Tables of entities in memory, served as the Table service serves them."""

    name = "table-loopback"

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        super().__init__()
        self.token = token
        self.credential = StaticTokenCredential(token)
        self.tables: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        self.requests: list[Seen] = []
        self._failures: list[int] = []
        self._ticks = 0

    @property
    def endpoint(self) -> str:
        return self.url

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    def fail_next(self, times: int, status: int = 503) -> None:
        with self._lock:
            self._failures.extend([status] * times)

    def entities(self, table: str) -> list[dict[str, Any]]:
        """The stored entities of `table` (properties as sent, plus keys)."""
        with self._lock:
            return [dict(e) for e in self.tables.get(table, {}).values()]

    # -- the service ------------------------------------------------------------------------

    def _answer(self, method: str, raw_path: str, headers: dict[str, str],
                body: bytes) -> tuple[int, dict[str, str], bytes]:
        parts = urlsplit(raw_path)
        path = unquote(parts.path)
        query = {k: v[0] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        with self._lock:
            status, extra, payload = self._serve(method, path, query, headers, body)
            self.requests.append(Seen(method, path, query, headers, status))
        out = {"x-ms-version": headers.get("x-ms-version", "2019-02-02"),
               "x-ms-request-id": f"loopback-{len(self.requests)}", **extra}
        if payload is None:
            return status, out, b""
        return status, {"Content-Type": JSON_TYPE, **out}, json.dumps(payload).encode()

    def _serve(self, method: str, path: str, query: dict[str, str], headers: dict[str, str],
               body: bytes) -> tuple[int, dict[str, str], Any]:
        if self._failures:
            status = self._failures.pop(0)
            return _error(status, "ServerBusy", "The server is busy.")
        if headers.get("authorization") != f"Bearer {self.token}":
            return _error(401, "InvalidAuthenticationInfo",
                          "Authentication information is not given in the correct format.")
        if path == "/Tables" and method == "POST":
            name = json.loads(body)["TableName"]
            if name in self.tables:
                return _error(409, "TableAlreadyExists", "The table specified already exists.")
            self.tables[name] = {}
            return 201, {}, {"odata.metadata": f"{self.url}/$metadata#Tables/@Element",
                             "TableName": name}
        entity_path = _ENTITY_PATH.match(path)
        table_path = _TABLE_PATH.match(path)
        name = (entity_path or table_path).group("table") if (entity_path or table_path) \
            else None
        if name is None:
            return _error(400, "InvalidUri", "Request url is invalid.")
        table = self.tables.get(name)
        if table is None:
            return _error(404, "TableNotFound", "The table specified does not exist.")
        if table_path and method == "POST":
            return self._insert(name, table, json.loads(body))
        if table_path and method == "GET" and table_path.group("query"):
            return self._query(name, table, query.get("$filter"))
        if entity_path and method in ("PUT", "DELETE"):
            key = (entity_path.group("pk").replace("''", "'"),
                   entity_path.group("rk").replace("''", "'"))
            if_match = headers.get("if-match")
            current = table.get(key)
            if if_match is not None and current is None:
                return _error(404, "ResourceNotFound", "The specified resource does not exist.")
            if if_match not in (None, "*") and current["odata.etag"] != if_match:
                return _error(412, "UpdateConditionNotSatisfied",
                              "The update condition specified in the request was not "
                              "satisfied.")
            if method == "DELETE":
                if if_match is None:
                    return _error(400, "MissingRequiredHeader", "If-Match is required.")
                del table[key]
                return 204, {}, None
            entity = self._stamp({**json.loads(body), "PartitionKey": key[0],
                                  "RowKey": key[1]})
            table[key] = entity
            return 204, {"ETag": entity["odata.etag"]}, None
        return _error(405, "UnsupportedHttpVerb", f"{method} is not supported here.")

    def _insert(self, name: str, table: dict[tuple[str, str], dict[str, Any]],
                entity: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        key = (entity["PartitionKey"], entity["RowKey"])
        if key in table:
            return _error(409, "EntityAlreadyExists", "The specified entity already exists.")
        table[key] = stored = self._stamp(entity)
        return 201, {"ETag": stored["odata.etag"]}, {
            "odata.metadata": f"{self.url}/$metadata#{name}/@Element", **stored}

    def _query(self, name: str, table: dict[tuple[str, str], dict[str, Any]],
               where: str | None) -> tuple[int, dict[str, str], Any]:
        try:
            test = _Filter(where).parse() if where else (lambda entity: True)
        except ValueError as error:
            return _error(400, "InvalidInput", f"$filter: {error}")
        found = [dict(e) for key, e in sorted(table.items()) if test(e)]
        return 200, {}, {"odata.metadata": f"{self.url}/$metadata#{name}", "value": found}

    def _stamp(self, entity: dict[str, Any]) -> dict[str, Any]:
        """A new Timestamp and the etag the service derives from it."""
        self._ticks += 1
        moment = dt.datetime.now(dt.UTC) + dt.timedelta(microseconds=self._ticks)
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"
        return {**entity, "Timestamp": stamp,
                "odata.etag": f"W/\"datetime'{quote(stamp, safe='')}'\""}


def _error(status: int, code: str, message: str) -> tuple[int, dict[str, str], Any]:
    return status, {"x-ms-error-code": code}, {
        "odata.error": {"code": code, "message": {"lang": "en-US", "value": message}}}


# -- $filter ---------------------------------------------------------------------------------


_TOKEN = re.compile(r"""\s*(?:
    (?P<open>\() | (?P<close>\)) |
    (?P<datetime>datetime'[^']*') |
    (?P<string>'(?:[^']|'')*') |
    (?P<number>-?\d+(?:\.\d+)?L?) |
    (?P<word>[A-Za-z_][A-Za-z0-9_]*)
)""", re.VERBOSE)
_COMPARE = {
    "eq": lambda a, b: a == b, "ne": lambda a, b: a != b, "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b, "le": lambda a, b: a <= b,
}


class _Filter:
    """A recursive-descent reader of the OData filter subset the Table service takes."""

    def __init__(self, text: str) -> None:
        self.tokens: list[tuple[str, str]] = []
        position = 0
        text = text.strip()
        while position < len(text):
            match = _TOKEN.match(text, position)
            if not match or match.end() == position:
                raise ValueError(f"cannot read {text[position:]!r}")
            kind = match.lastgroup or ""
            self.tokens.append((kind, match.group(kind)))
            position = match.end()
        self.at = 0

    def parse(self) -> Any:
        test = self._or()
        if self.at != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.at][1]!r}")
        return test

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.at] if self.at < len(self.tokens) else None

    def _take(self) -> tuple[str, str]:
        token = self._peek()
        if token is None:
            raise ValueError("the filter ends too soon")
        self.at += 1
        return token

    def _or(self) -> Any:
        left = self._and()
        while self._peek() == ("word", "or"):
            self._take()
            right = self._and()
            left = (lambda a, b: lambda e: a(e) or b(e))(left, right)
        return left

    def _and(self) -> Any:
        left = self._not()
        while self._peek() == ("word", "and"):
            self._take()
            right = self._not()
            left = (lambda a, b: lambda e: a(e) and b(e))(left, right)
        return left

    def _not(self) -> Any:
        if self._peek() == ("word", "not"):
            self._take()
            inner = self._not()
            return lambda e: not inner(e)
        if self._peek() == ("open", "("):
            self._take()
            inner = self._or()
            if self._take() != ("close", ")"):
                raise ValueError("a parenthesis is not closed")
            return inner
        return self._comparison()

    def _comparison(self) -> Any:
        left = self._operand()
        kind, op = self._take()
        if kind != "word" or op not in _COMPARE:
            raise ValueError(f"expected a comparison, not {op!r}")
        right = self._operand()
        compare = _COMPARE[op]

        def test(entity: dict[str, Any]) -> bool:
            a, b = left(entity), right(entity)
            if a is None or b is None or type(a) is not type(b):
                return False  # a missing property, or types that do not compare
            return compare(a, b)

        return test

    def _operand(self) -> Any:
        kind, text = self._take()
        if kind == "datetime":
            value: Any = _instant(text[len("datetime'"):-1])
        elif kind == "string":
            value = text[1:-1].replace("''", "'")
        elif kind == "number":
            value = float(text) if "." in text else int(text.rstrip("L"))
        elif kind == "word" and text in ("true", "false"):
            value = text == "true"
        elif kind == "word":
            return lambda entity: _property(entity, text)
        else:
            raise ValueError(f"unexpected {text!r}")
        return lambda entity: value


def _property(entity: dict[str, Any], name: str) -> Any:
    value = entity.get(name)
    kind = entity.get(f"{name}@odata.type")
    if value is None:
        return None
    if kind == "Edm.DateTime":
        return _instant(value)
    if kind == "Edm.Int64":
        return int(value)
    return value


def _instant(text: str) -> dt.datetime:
    """An Edm.DateTime; the service keeps 7 fractional digits, Python reads 6."""
    head, _, fraction = text.rstrip("Z").partition(".")
    moment = dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=dt.UTC)
    return moment + dt.timedelta(microseconds=int((fraction + "000000")[:6] or 0))


def _handler_for(loopback: TableLoopback) -> type[BaseHTTPRequestHandler]:
    class Handler(LoopbackHandler):
        def _any(self) -> None:
            status, headers, body = loopback._answer(
                self.command, self.path, self.lower_headers(), self.read_body())
            self.respond(status, headers, body)

        def do_GET(self) -> None:
            self._any()

        def do_POST(self) -> None:
            self._any()

        def do_PUT(self) -> None:
            self._any()

        def do_DELETE(self) -> None:
            self._any()

    return Handler

