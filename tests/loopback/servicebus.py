"""A Service Bus namespace's management (Atom) endpoint on 127.0.0.1, for tests.

    with ServiceBusLoopback() as bus:
        bus.set_queue("sync-jobs", active=3, dead_letter=1)
        client = ServiceBusAdministrationClient(bus.namespace, bus.credential,
                                                connection_verify=bus.ca_path)
        client.get_queue_runtime_properties("sync-jobs").active_message_count  # 3

It speaks HTTPS with a throwaway certificate authority (`trustme`) and answers the two reads
`ServiceBusAdministrationClient` makes for queue runtime properties, in the service's own shape:

- `GET /<queue>?enrich=false&api-version=2024-05` -> an Atom `<entry>` whose content is a
  `QueueDescription` with `CountDetails` (`get_queue[_runtime_properties]`).
- `GET /$Resources/queues?$skip=0&$top=100&api-version=2024-05` -> an Atom `<feed>` of such
  entries, with a `rel="next"` link while more remain (`list_queues[_runtime_properties]`).

Like the real service, a GET of an entity that does not exist answers **200 with an empty
"Publicly Listed Services" feed**, not 404; the SDK turns that into `ResourceNotFoundError`.
Requests without `Authorization: Bearer <the credential's token>` get the service's 401
`<Error>` body. `fail_queue` makes one queue answer an `<Error>` with any status, or stall;
`go_down` takes the whole namespace off the network (connections refused) until `come_up`.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote, unquote, urlsplit
from xml.sax.saxutils import escape, quoteattr

from azure.core.credentials import AccessToken, AccessTokenInfo

from ._server import LoopbackHandler, LoopbackServer, _QuietServer

ATOM_NS = "http://www.w3.org/2005/Atom"
SB_NS = "http://schemas.microsoft.com/netservices/2010/10/servicebus/connect"
SB_COUNTS_NS = "http://schemas.microsoft.com/netservices/2011/06/servicebus"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
DEFAULT_TOKEN = "loopback-servicebus-token"
#: What the service writes for "never" (DateTime.MinValue) and "forever" (TimeSpan.MaxValue).
NEVER = "0001-01-01T00:00:00Z"
FOREVER = "P10675199DT2H48M5.4775807S"
_DOTNET_EPOCH_OFFSET_S = 62_135_596_800  # seconds from 0001-01-01 to 1970-01-01

_ERROR_DETAILS = {
    400: "Bad Request. To know more visit https://aka.ms/sbResourceMgrExceptions. ",
    401: "Manage,EntityRead claims required for this operation.",
    403: "Unauthorized access. 'Manage' claim(s) are required to perform this operation.",
    404: "The messaging entity '{entity}' could not be found. To know more visit "
         "https://aka.ms/sbResourceMgrExceptions. ",
    429: "The request was terminated because the namespace is being throttled. "
         "Please wait 2 seconds and try again.",
    500: "The server was unable to process the request; please retry the operation.",
    503: "The server is busy. Please try again later.",
}


class Outages(LoopbackServer):
    """A loopback that can go off the network and come back on the same address.

    `go_down` stops listening and cuts the connections clients keep alive, so every request
    fails with "connection refused", as for a host that is down; `come_up` listens again on
    the same port with the same certificate, so clients configured before the outage work
    again without being rebuilt. Handlers report their connections with `_opened`/`_closed`.
    """

    def __init__(self) -> None:
        super().__init__()
        self._context: ssl.SSLContext | None = None
        self._connections: set[socket.socket] = set()

    @property
    def down(self) -> bool:
        return self._server is None

    def go_down(self) -> None:
        server, thread = self._server, self._thread
        if server is None:
            return
        self._server = self._thread = None
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        with self._lock:
            connections = list(self._connections)
            self._connections.clear()
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # the client closed it first

    def come_up(self) -> None:
        if self._server is not None or not self.address:
            return
        port = int(self.address.rsplit(":", 1)[1])
        server_class = _QuietServer if self.quiet else ThreadingHTTPServer
        server = server_class(("127.0.0.1", port), self._handler())  # reuses the address
        server.daemon_threads = True
        if self._context is not None:
            server.socket = self._context.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name=self.name, daemon=True)
        self._thread.start()

    def _tls_context(self) -> ssl.SSLContext:
        self._context = super()._tls_context()  # kept: the same CA after an outage
        return self._context

    def _opened(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.add(connection)

    def _closed(self, connection: socket.socket) -> None:
        with self._lock:
            self._connections.discard(connection)


class OutageAwareHandler(LoopbackHandler):
    """Reports its connection to an `Outages` loopback (set as `loopback`)."""

    loopback: Outages

    def setup(self) -> None:
        super().setup()
        self.loopback._opened(self.connection)

    def finish(self) -> None:
        self.loopback._closed(self.connection)
        super().finish()


class StaticTokenCredential:
    """A credential that hands out one fixed bearer token, whatever the scopes."""

    def __init__(self, token: str = DEFAULT_TOKEN, lifetime_s: int = 3600) -> None:
        self.token = token
        self.lifetime_s = lifetime_s
        self.scopes: list[tuple[str, ...]] = []  # the scopes of every request, in order

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, int(time.time()) + self.lifetime_s)

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        self.scopes.append(scopes)
        return AccessTokenInfo(self.token, int(time.time()) + self.lifetime_s)

    def close(self) -> None:
        pass


class RecordedRequest(NamedTuple):
    method: str
    path: str  # as sent, query string included: "/sync-jobs?enrich=false&api-version=2024-05"
    headers: dict[str, str]  # names lower-cased


@dataclass
class Queue:
    """What the loopback knows of one queue; counts are what the next read reports."""

    name: str
    active: int = 0
    dead_letter: int = 0
    scheduled: int = 0
    transfer: int = 0
    transfer_dead_letter: int = 0
    size_in_bytes: int | None = None  # None: 1 KiB per message
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    updated_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    accessed_at: datetime | None = None

    @property
    def message_count(self) -> int:
        return (self.active + self.dead_letter + self.scheduled + self.transfer
                + self.transfer_dead_letter)


@dataclass
class _Failure:
    status: int | None
    delay_s: float


class ServiceBusLoopback(Outages):
    """An HTTPS server that answers Service Bus management reads for the queues it is given."""

    name = "servicebus-loopback"
    quiet = True  # clients that gave up (timeouts) reset their connections; that is expected

    def __init__(self, token: str = DEFAULT_TOKEN, namespace_name: str = "loopback") -> None:
        super().__init__()
        self.credential = StaticTokenCredential(token)
        self.namespace_name = namespace_name  # the service writes it as each entry's <author>
        self._queues: dict[str, Queue] = {}
        self._failures: dict[str, _Failure] = {}
        self._requests: list[RecordedRequest] = []

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _handler_for(self)

    # -- what tests use -------------------------------------------------------------------

    @property
    def namespace(self) -> str:
        """`127.0.0.1:<port>` once started: what `ServiceBusAdministrationClient` takes."""
        return self.address

    @property
    def endpoint(self) -> str:
        return f"https://{self.namespace}/"

    @property
    def requests(self) -> list[RecordedRequest]:
        """(method, path, headers) of every request received, failed ones included."""
        with self._lock:
            return list(self._requests)

    def set_queue(self, name: str, active: int = 0, dead_letter: int = 0, scheduled: int = 0,
                  *, transfer: int = 0, transfer_dead_letter: int = 0,
                  size_in_bytes: int | None = None) -> Queue:
        """Create the queue, or replace its counts; it then exists until `remove_queue`."""
        now = datetime.now(UTC)
        with self._lock:
            queue = self._queues.get(name.lower()) or Queue(name, created_at=now)
            queue.active, queue.dead_letter, queue.scheduled = active, dead_letter, scheduled
            queue.transfer, queue.transfer_dead_letter = transfer, transfer_dead_letter
            queue.size_in_bytes = size_in_bytes
            queue.updated_at = now
            if queue.message_count:
                queue.accessed_at = now  # messages went through it
            self._queues[name.lower()] = queue  # entity names are case-insensitive
            return queue

    def remove_queue(self, name: str) -> None:
        with self._lock:
            self._queues.pop(name.lower(), None)

    def fail_queue(self, name: str, status: int | None, delay_s: float = 0) -> None:
        """Answer reads of queue `name` with the service's `<Error>` body and `status`.

        `delay_s` stalls the answer first (beyond the client's read timeout it simulates a
        timeout); `status=None` (or 200) then answers normally. Listing is unaffected.
        """
        with self._lock:
            self._failures[name.lower()] = _Failure(status, delay_s)

    def heal_queue(self, name: str) -> None:
        """Undo `fail_queue`."""
        with self._lock:
            self._failures.pop(name.lower(), None)

    def clear_requests(self) -> None:
        with self._lock:
            self._requests.clear()

    # -- called by the handler ------------------------------------------------------------

    def _answer(self, method: str, raw_path: str, headers: dict[str, str],
                host: str) -> tuple[int, dict[str, str], bytes] | None:
        """The response to one request, or None when the server stopped meanwhile."""
        with self._lock:
            self._requests.append(RecordedRequest(method, raw_path, headers))
        split = urlsplit(raw_path)
        entity = unquote(split.path).strip("/")
        query = {key: values[0] for key, values in parse_qs(split.query).items()}
        base = f"https://{host}"

        authorization = headers.get("authorization", "")
        if not authorization:
            return _error(401, "MissingToken: The request has no Authorization header.",
                          host, entity)
        if authorization != f"Bearer {self.credential.token}":
            return _error(401, "claim is empty or token is invalid.", host, entity)
        if method != "GET":
            return _error(405, f"The loopback only serves GET, not {method}.", host, entity)

        with self._lock:
            failure = self._failures.get(entity.lower())
        if failure is not None:
            if failure.delay_s and self._stopping.wait(failure.delay_s):
                return None
            if failure.status not in (None, 200):
                detail = _ERROR_DETAILS.get(failure.status, "The request failed.")
                return _error(failure.status, detail.format(entity=entity), host, entity)

        if entity.lower() == "$resources/queues":
            return self._queue_feed(base, raw_path, query)
        if entity.lower().startswith("$resources/"):
            return _feed_response(_feed(entity.split("/", 1)[1].capitalize(), base + raw_path, []))
        with self._lock:
            queue = self._queues.get(entity.lower())
            snapshot = None if queue is None else _copy(queue)
        if snapshot is None:
            return _feed_response(_no_such_entity_feed())
        body = _entry(snapshot, base + raw_path, self.namespace_name)
        return 200, {"Content-Type": "application/atom+xml;type=entry;charset=utf-8",
                     "ETag": str(_ticks(snapshot.updated_at))}, body.encode()

    def _queue_feed(self, base: str, raw_path: str,
                    query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        skip = int(query.get("$skip", 0))
        top = int(query.get("$top", 100))
        api = query.get("api-version", "2024-05")
        with self._lock:
            queues = [_copy(self._queues[key]) for key in sorted(self._queues)]
        page = queues[skip:skip + top]
        url = base + raw_path
        entries = [_feed_entry(queue, base, url, api, self.namespace_name) for queue in page]
        next_url = None
        if skip + top < len(queues):
            next_url = f"{base}/$Resources/queues?$skip={skip + top}&$top={top}&api-version={api}"
        return _feed_response(_feed("Queues", url, entries, next_url))


# -- the service's XML ------------------------------------------------------------------------


def _entry(queue: Queue, url: str, author: str) -> str:
    """`GET /<queue>`: one Atom entry, as the service writes it (no whitespace between tags)."""
    return f'<entry xmlns="{ATOM_NS}">{_entry_body(queue, url, url, author)}</entry>'


def _feed_entry(queue: Queue, base: str, feed_url: str, api: str, author: str) -> str:
    """One entry of `GET /$Resources/queues`: relative self link, xml:base of the feed."""
    entity_url = f"{base}/{quote(queue.name)}?api-version={api}"
    relative = f"../{quote(queue.name)}?api-version={api}"
    return (f"<entry xml:base={quoteattr(feed_url)}>"
            f"{_entry_body(queue, entity_url, relative, author)}</entry>")


def _entry_body(queue: Queue, entry_id: str, href: str, author: str) -> str:
    return (f"<id>{escape(entry_id)}</id>"
            f'<title type="text">{escape(queue.name)}</title>'
            f"<published>{_atom_time(queue.created_at)}</published>"
            f"<updated>{_atom_time(queue.updated_at)}</updated>"
            f"<author><name>{escape(author)}</name></author>"
            f'<link rel="self" href={quoteattr(href)}/>'
            f'<content type="application/xml">{_queue_description(queue)}</content>')


def _queue_description(queue: Queue) -> str:
    size = queue.size_in_bytes
    if size is None:
        size = 1024 * queue.message_count
    accessed = NEVER if queue.accessed_at is None else _sb_time(queue.accessed_at)
    counts = (f'<CountDetails xmlns:d2p1="{SB_COUNTS_NS}">'
              f"<d2p1:ActiveMessageCount>{queue.active}</d2p1:ActiveMessageCount>"
              f"<d2p1:DeadLetterMessageCount>{queue.dead_letter}</d2p1:DeadLetterMessageCount>"
              f"<d2p1:ScheduledMessageCount>{queue.scheduled}</d2p1:ScheduledMessageCount>"
              f"<d2p1:TransferMessageCount>{queue.transfer}</d2p1:TransferMessageCount>"
              f"<d2p1:TransferDeadLetterMessageCount>{queue.transfer_dead_letter}"
              f"</d2p1:TransferDeadLetterMessageCount>"
              f"</CountDetails>")
    return (f'<QueueDescription xmlns="{SB_NS}" xmlns:i="{XSI_NS}">'
            f"<LockDuration>PT1M</LockDuration>"
            f"<MaxSizeInMegabytes>1024</MaxSizeInMegabytes>"
            f"<RequiresDuplicateDetection>false</RequiresDuplicateDetection>"
            f"<RequiresSession>false</RequiresSession>"
            f"<DefaultMessageTimeToLive>{FOREVER}</DefaultMessageTimeToLive>"
            f"<DeadLetteringOnMessageExpiration>false</DeadLetteringOnMessageExpiration>"
            f"<DuplicateDetectionHistoryTimeWindow>PT10M</DuplicateDetectionHistoryTimeWindow>"
            f"<MaxDeliveryCount>10</MaxDeliveryCount>"
            f"<EnableBatchedOperations>true</EnableBatchedOperations>"
            f"<SizeInBytes>{size}</SizeInBytes>"
            f"<MessageCount>{queue.message_count}</MessageCount>"
            f"<IsAnonymousAccessible>false</IsAnonymousAccessible>"
            f"<AuthorizationRules></AuthorizationRules>"
            f"<Status>Active</Status>"
            f"<CreatedAt>{_sb_time(queue.created_at)}</CreatedAt>"
            f"<UpdatedAt>{_sb_time(queue.updated_at)}</UpdatedAt>"
            f"<AccessedAt>{accessed}</AccessedAt>"
            f"<SupportOrdering>true</SupportOrdering>"
            f"{counts}"
            f"<AutoDeleteOnIdle>{FOREVER}</AutoDeleteOnIdle>"
            f"<EnablePartitioning>false</EnablePartitioning>"
            f"<EntityAvailabilityStatus>Available</EntityAvailabilityStatus>"
            f"<EnableExpress>false</EnableExpress>"
            f"<MaxMessageSizeInKilobytes>256</MaxMessageSizeInKilobytes>"
            f"</QueueDescription>")


def _feed(title: str, url: str, entries: list[str], next_url: str | None = None) -> str:
    links = f'<link rel="self" href={quoteattr(url)}/>'
    if next_url is not None:
        links += f'<link rel="next" href={quoteattr(next_url)}/>'
    return (f'<feed xmlns="{ATOM_NS}"><title type="text">{escape(title)}</title>'
            f"<id>{escape(url)}</id><updated>{_atom_time(datetime.now(UTC))}</updated>"
            f"{links}{''.join(entries)}</feed>")


def _no_such_entity_feed() -> str:
    """What the service answers, with 200, to a GET of an entity that does not exist."""
    return (f'<feed xmlns="{ATOM_NS}"><title type="text">Publicly Listed Services</title>'
            f'<subtitle type="text">This is the list of publicly-listed services currently '
            f"available.</subtitle><id>uuid:{uuid.uuid4()};id=1</id>"
            f"<updated>{_atom_time(datetime.now(UTC))}</updated>"
            f"<generator>Service Bus 1.1</generator></feed>")


def _feed_response(body: str) -> tuple[int, dict[str, str], bytes]:
    return 200, {"Content-Type": "application/atom+xml;type=feed;charset=utf-8"}, body.encode()


def _error(status: int, detail: str, host: str,
           entity: str) -> tuple[int, dict[str, str], bytes]:
    """The service's error body: `<Error><Code>...</Code><Detail>... TrackingId...</Detail>`."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    text = (f"{detail} TrackingId:{uuid.uuid4()}_G0, SystemTracker:{host}:{entity}, "
            f"Timestamp:{stamp}")
    body = f"<Error><Code>{status}</Code><Detail>{escape(text)}</Detail></Error>"
    return status, {"Content-Type": "application/xml; charset=utf-8"}, body.encode()


def _atom_time(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sb_time(moment: datetime) -> str:
    """QueueDescription times: milliseconds without trailing zeros, e.g. 2021-10-21T05:19:18.53Z."""
    moment = moment.astimezone(UTC)
    fraction = f"{moment.microsecond // 1000:03d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{fraction}" if fraction else "") + "Z"


def _ticks(moment: datetime) -> int:
    """.NET ticks (100 ns since 0001-01-01), which the service uses as the entity's ETag."""
    return int((moment.timestamp() + _DOTNET_EPOCH_OFFSET_S) * 10_000_000)


def _copy(queue: Queue) -> Queue:
    return Queue(**queue.__dict__)


# -- HTTP plumbing ----------------------------------------------------------------------------


def _handler_for(loopback: ServiceBusLoopback) -> type[BaseHTTPRequestHandler]:
    class Handler(OutageAwareHandler):
        def version_string(self) -> str:
            return "Microsoft-HTTPAPI/2.0"

        def _serve(self) -> None:
            self.read_body()
            headers = self.lower_headers()
            host = headers.get("host", loopback.namespace)
            answer = loopback._answer(self.command, self.path, headers, host)
            if answer is None:  # the server stopped while the answer stalled
                self.close_connection = True
                return
            status, extra, body = answer
            self.respond(status, {**extra, "Strict-Transport-Security": "max-age=31536000"}, body)

        do_GET = do_PUT = do_DELETE = do_POST = _serve  # noqa: N815 (http.server's names)

    Handler.loopback = loopback
    return Handler
