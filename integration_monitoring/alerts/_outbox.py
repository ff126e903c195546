"""The outbox: alert deliveries that failed, kept until they are delivered or given up.

    outbox = outbox_from_env()            # Table Storage with ALERT_OUTBOX_TABLE_ENDPOINT,
                                          # else a SQLite file beside the local store
    outbox.add(entry)                     # False when that notice is queued already
    outbox.due(now)                       # entries whose next attempt is due, oldest first
    outbox.pending(alert_id, channel)     # what is queued for one alert on one channel
    outbox.save(entry)                    # the entry with its new etag, or None if it changed
    outbox.remove(entry)                  # False if it changed since it was read
    outbox.claim(key, now, until)         # True once per key, for every instance, until then
    outbox.claimed(key, now)              # whether someone holds that claim
    outbox.release(key)                   # the claim is free again (a delivery failed)
    outbox.save_silence(silence)          # the silence with its new etag, or None if it changed
    outbox.silences()                     # every silence kept (expired ones for a while)

An entry holds what is needed to send the notice again and to record its events: alert id,
condition, channel, rule, severity, tenant, integration, the flat dimensions, and the outgoing
body. It never holds the Slack webhook URL or the PagerDuty routing key: those are secrets, read
from the settings when the entry is sent, so a rotated key applies to queued deliveries too.

Beside the entries, both stores keep the relay's claims, the ledger that makes it idempotent and
ordered across instances: which notices were recorded, which were sent on which channel, and so
which alerts are resolved already (a Fired arriving after its Resolved is then not delivered).
Azure Monitor retries webhooks, and a retry may reach another instance. They keep the silences
too, so that every instance holds back the same notifications, and an entry a silence holds
back (`held_by`) waits there until the silence ends.

Both stores key an entry by channel and a hash of alert id and condition (Table Storage keys may
not contain '/', which full Azure alert ids do), and both update and delete only the version
that was read (an etag), so a writer never overwrites what it did not see.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import math
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from ._silences import Silence

TABLE_NAME = "alertoutbox"
HOURS_SETTING = "ALERT_REDELIVERY_HOURS"
SQLITE_NAME = "alert-outbox.sqlite3"
#: Resolved waits for Fired on the same channel: the order a channel must see them in.
CONDITION_ORDER = {"Fired": 0, "Resolved": 1}
#: The Table Storage partitions of the claims and the silences; channels partition the entries.
CLAIMS_PARTITION = "claims"
SILENCES_PARTITION = "silences"
#: How long an ended silence is kept, to be listed as expired.
SILENCE_KEPT = dt.timedelta(days=30)
_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"  # fixed width, so text order is time order in SQLite


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass
class PendingDelivery:
    """One notice for one channel that has not been delivered yet."""

    alert_id: str
    condition: str
    channel: str
    rule_id: str
    severity: str
    body: dict[str, Any]
    queued_at: dt.datetime
    next_attempt_at: dt.datetime
    tenant_id: str | None = None
    integration_id: str | None = None
    #: The flat dimensions events carry (adapterType, queue).
    dimensions: dict[str, str] = field(default_factory=dict)
    #: HTTP attempts so far, the relay's included.
    attempts: int = 0
    #: Attempts by the redelivery timer; the backoff grows with them.
    redeliveries: int = 0
    last_error: str = ""
    #: The silence holding it back (empty: it waits to be redelivered).
    held_by: str = ""
    #: The group it waits in (route and group values; empty: sent on its own), with the
    #: notice itself, from which the group's one message is built.
    group: str = ""
    notice: dict[str, Any] | None = None
    #: The stored version this copy was read at (None before it is stored).
    etag: str | None = None

    @property
    def key(self) -> str:
        return entry_key(self.alert_id, self.condition)

    def record(self) -> dict[str, Any]:
        """The entry as JSON-ready values (times as UTC text), without its etag."""
        return {
            "alertId": self.alert_id, "condition": self.condition, "channel": self.channel,
            "ruleId": self.rule_id, "severity": self.severity, "body": self.body,
            "queuedAt": _text(self.queued_at), "nextAttemptAt": _text(self.next_attempt_at),
            "tenantId": self.tenant_id, "integrationId": self.integration_id,
            "dimensions": self.dimensions, "attempts": self.attempts,
            "redeliveries": self.redeliveries, "lastError": self.last_error,
            "heldBy": self.held_by, "group": self.group, "notice": self.notice,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any], etag: str | None = None) -> PendingDelivery:
        return cls(
            alert_id=record["alertId"], condition=record["condition"],
            channel=record["channel"], rule_id=record["ruleId"], severity=record["severity"],
            body=record["body"], queued_at=_time(record["queuedAt"]),
            next_attempt_at=_time(record["nextAttemptAt"]), tenant_id=record.get("tenantId"),
            integration_id=record.get("integrationId"),
            dimensions=dict(record.get("dimensions") or {}),
            attempts=int(record.get("attempts") or 0),
            redeliveries=int(record.get("redeliveries") or 0),
            last_error=record.get("lastError") or "", held_by=record.get("heldBy") or "",
            group=record.get("group") or "", notice=record.get("notice"), etag=etag)


def claim_key(key: str) -> str:
    """A claim's key, safe for any store (see entry_key)."""
    return hashlib.sha256(key.encode()).hexdigest()


def entry_key(alert_id: str, condition: str) -> str:
    """A key safe for any store: alert ids may hold characters Table Storage refuses."""
    return hashlib.sha256(f"{alert_id}\n{condition}".encode()).hexdigest()


class Outbox(Protocol):
    """Where failed deliveries wait; SqliteOutbox locally, TableOutbox in Azure."""

    def add(self, entry: PendingDelivery) -> bool: ...

    def due(self, now: dt.datetime) -> list[PendingDelivery]: ...

    def pending(self, alert_id: str, channel: str) -> list[PendingDelivery]: ...

    def entries(self) -> list[PendingDelivery]: ...

    def save(self, entry: PendingDelivery) -> PendingDelivery | None: ...

    def remove(self, entry: PendingDelivery) -> bool: ...

    def claim(self, key: str, now: dt.datetime, until: dt.datetime) -> bool: ...

    def claimed(self, key: str, now: dt.datetime) -> bool: ...

    def release(self, key: str) -> None: ...

    def purge(self, now: dt.datetime) -> int: ...

    def save_silence(self, silence: Silence) -> Silence | None: ...

    def silences(self) -> list[Silence]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RedeliveryPolicy:
    """When to try again: 1, 2, 4 … minutes, capped, and never past the bound."""

    bound: dt.timedelta = dt.timedelta(hours=24)
    base: dt.timedelta = dt.timedelta(minutes=1)
    cap: dt.timedelta = dt.timedelta(minutes=30)

    def delay(self, attempt: int) -> dt.timedelta:
        """The wait before redelivery number `attempt` (1 is the first)."""
        return min(self.cap, self.base * 2 ** max(0, min(attempt - 1, 30)))

    def deadline(self, entry: PendingDelivery) -> dt.datetime:
        return entry.queued_at + self.bound

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RedeliveryPolicy:
        """The bound from ALERT_REDELIVERY_HOURS (default 24)."""
        from ..queues import SettingError

        env = os.environ if env is None else env
        raw = (env.get("ALERT_REDELIVERY_HOURS") or "").strip()
        if not raw:
            return cls()
        try:
            hours = float(raw)
        except ValueError:
            hours = math.nan
        if not math.isfinite(hours) or not 0 < hours <= 24 * 30:
            raise SettingError(HOURS_SETTING, f"{raw!r} is not a number of hours in (0, 720]")
        return cls(bound=dt.timedelta(hours=hours))


def outbox_from_env(env: Mapping[str, str] | None = None) -> Outbox:
    """Table Storage when ALERT_OUTBOX_TABLE_ENDPOINT is set, else SQLite beside the store."""
    env = os.environ if env is None else env
    endpoint = (env.get("ALERT_OUTBOX_TABLE_ENDPOINT") or "").strip()
    if endpoint:
        return TableOutbox(endpoint)
    from ..store import default_path

    # Beside the local store, in the same data directory (.data/ unless TELEMETRY_DB moves it).
    store = (env.get("TELEMETRY_DB") or "").strip() or default_path()
    return SqliteOutbox(Path(store).parent / SQLITE_NAME)


# -- SQLite -----------------------------------------------------------------------------------


class SqliteOutbox:
    """The outbox in a SQLite file; the file is created on first use, not on construction."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._ready = False
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        # One connection per operation: callers are the relay's worker threads and the timer.
        if not self._ready:
            with self._lock:
                if not self._ready:
                    self._prepare()
                    self._ready = True
        with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as db, db:
            yield db

    def _prepare(self) -> None:
        # Instances that open a new file at once race to switch it to WAL, and SQLite answers
        # the losers "locked" at once rather than after the busy timeout: try again briefly.
        self.path.parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                with contextlib.closing(sqlite3.connect(self.path, timeout=10)) as db, db:
                    if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                        db.execute("PRAGMA journal_mode=WAL")
                    db.execute(
                        "CREATE TABLE IF NOT EXISTS alert_outbox ("
                        " channel TEXT NOT NULL, key TEXT NOT NULL,"
                        " alert_id TEXT NOT NULL, next_attempt_at TEXT NOT NULL,"
                        " version INTEGER NOT NULL, entry TEXT NOT NULL,"
                        " PRIMARY KEY (channel, key))")
                    db.execute("CREATE TABLE IF NOT EXISTS alert_claims ("
                               " key TEXT PRIMARY KEY, until TEXT NOT NULL)")
                    db.execute("CREATE TABLE IF NOT EXISTS alert_silences ("
                               " id TEXT PRIMARY KEY, ended_at TEXT NOT NULL,"
                               " version INTEGER NOT NULL, silence TEXT NOT NULL)")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def add(self, entry: PendingDelivery) -> bool:
        with self._db() as db:
            done = db.execute(
                "INSERT OR IGNORE INTO alert_outbox VALUES (?, ?, ?, ?, 1, ?)",
                (entry.channel, entry.key, entry.alert_id, _text(entry.next_attempt_at),
                 json.dumps(entry.record())))
            return done.rowcount == 1

    def due(self, now: dt.datetime) -> list[PendingDelivery]:
        return self._select("WHERE next_attempt_at <= ? ORDER BY next_attempt_at", _text(now))

    def pending(self, alert_id: str, channel: str) -> list[PendingDelivery]:
        return self._select("WHERE channel = ? AND alert_id = ?", channel, alert_id)

    def entries(self) -> list[PendingDelivery]:
        return self._select("ORDER BY next_attempt_at")

    def _select(self, where: str, *args: Any) -> list[PendingDelivery]:
        with self._db() as db:
            rows = db.execute(f"SELECT entry, version FROM alert_outbox {where}", args)
            return [PendingDelivery.from_record(json.loads(entry), str(version))
                    for entry, version in rows]

    def save(self, entry: PendingDelivery) -> PendingDelivery | None:
        with self._db() as db:
            done = db.execute(
                "UPDATE alert_outbox SET entry = ?, next_attempt_at = ?, version = version + 1"
                " WHERE channel = ? AND key = ? AND version = ?",
                (json.dumps(entry.record()), _text(entry.next_attempt_at), entry.channel,
                 entry.key, int(entry.etag or 0)))
        return replace(entry, etag=str(int(entry.etag or 0) + 1)) if done.rowcount else None

    def remove(self, entry: PendingDelivery) -> bool:
        with self._db() as db:
            done = db.execute(
                "DELETE FROM alert_outbox WHERE channel = ? AND key = ? AND version = ?",
                (entry.channel, entry.key, int(entry.etag or 0)))
            return done.rowcount == 1

    def claim(self, key: str, now: dt.datetime, until: dt.datetime) -> bool:
        with self._db() as db:  # one statement: atomic between processes
            done = db.execute(
                "INSERT INTO alert_claims VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                " SET until = excluded.until WHERE alert_claims.until <= ?",
                (claim_key(key), _text(until), _text(now)))
            return done.rowcount == 1

    def claimed(self, key: str, now: dt.datetime) -> bool:
        with self._db() as db:
            return db.execute("SELECT 1 FROM alert_claims WHERE key = ? AND until > ?",
                              (claim_key(key), _text(now))).fetchone() is not None

    def release(self, key: str) -> None:
        with self._db() as db:
            db.execute("DELETE FROM alert_claims WHERE key = ?", (claim_key(key),))

    def purge(self, now: dt.datetime) -> int:
        """Forget claims that ran out, and silences that ended long ago."""
        with self._db() as db:
            db.execute("DELETE FROM alert_silences WHERE ended_at <= ?",
                       (_text(now - SILENCE_KEPT),))
            return db.execute("DELETE FROM alert_claims WHERE until <= ?",
                              (_text(now),)).rowcount

    def save_silence(self, silence: Silence) -> Silence | None:
        """A new silence (no etag), or the version read (its etag) changed; None if another
        writer got there first."""
        record = json.dumps(silence.record())
        with self._db() as db:
            if silence.etag is None:
                done = db.execute("INSERT OR IGNORE INTO alert_silences VALUES (?, ?, 1, ?)",
                                  (silence.id, _text(silence.ended_at), record))
                version = 1
            else:
                done = db.execute(
                    "UPDATE alert_silences SET silence = ?, ended_at = ?, version = version + 1"
                    " WHERE id = ? AND version = ?",
                    (record, _text(silence.ended_at), silence.id, int(silence.etag)))
                version = int(silence.etag) + 1
        return replace(silence, etag=str(version)) if done.rowcount else None

    def silences(self) -> list[Silence]:
        with self._db() as db:
            rows = db.execute("SELECT silence, version FROM alert_silences")
            return [Silence.from_record(json.loads(text), str(version))
                    for text, version in rows]

    def close(self) -> None:
        pass


# -- Azure Table Storage ----------------------------------------------------------------------


class TableOutbox:
    """The outbox in an Azure Storage table, reached by identity (no account key).

    PartitionKey is the channel, RowKey the entry's hash; the body and dimensions are JSON
    text. A string property holds 64 KiB, that is 32 K UTF-16 units: a Slack message stays far
    below (it is cut to Slack's limits), but a PagerDuty event carrying a huge dimension value
    may not fit, and then it cannot be queued (the relay reports it failed).
    """

    def __init__(self, endpoint: str, credential: Any = None, *, table_name: str = TABLE_NAME,
                 **client_options: Any) -> None:
        from azure.data.tables import TableClient

        if credential is None:
            from azure.identity import DefaultAzureCredential

            credential = DefaultAzureCredential()
        # The relay calls this inside Azure Monitor's 10 s wait, and a timer run must end
        # inside its minute: one quick retry, short waits. Table calls are small.
        client_options.setdefault("retry_total", 1)
        client_options.setdefault("connection_timeout", 3)
        client_options.setdefault("read_timeout", 5)
        self._client = TableClient(endpoint, table_name, credential=credential,
                                   **client_options)
        self._created = False

    def _table(self) -> Any:
        if not self._created:
            from azure.core.exceptions import HttpResponseError, ResourceExistsError

            try:
                self._client.create_table()
            except ResourceExistsError:
                pass
            except HttpResponseError as error:
                # The deployment creates the table and grants the app data access on it
                # alone, which may not cover creating tables: then it exists already.
                if error.status_code != 403:
                    raise
            self._created = True
        return self._client

    def add(self, entry: PendingDelivery) -> bool:
        from azure.core.exceptions import ResourceExistsError

        try:
            self._table().create_entity(_entity(entry))
        except ResourceExistsError:
            return False
        return True

    def due(self, now: dt.datetime) -> list[PendingDelivery]:
        found = self._query("NextAttemptAt le @now", now=now)
        return sorted(found, key=lambda e: e.next_attempt_at)

    def pending(self, alert_id: str, channel: str) -> list[PendingDelivery]:
        return self._query("PartitionKey eq @channel and AlertId eq @alert", channel=channel,
                           alert=alert_id)

    def entries(self) -> list[PendingDelivery]:
        found = self._query("PartitionKey ne @claims and PartitionKey ne @silences",
                            claims=CLAIMS_PARTITION, silences=SILENCES_PARTITION)
        return sorted(found, key=lambda e: e.next_attempt_at)

    def _query(self, query: str, **parameters: Any) -> list[PendingDelivery]:
        return [_from_entity(e) for e in
                self._table().query_entities(query, parameters=parameters)]

    def save(self, entry: PendingDelivery) -> PendingDelivery | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError
        from azure.data.tables import UpdateMode

        try:
            done = self._table().update_entity(
                _entity(entry), mode=UpdateMode.REPLACE, etag=entry.etag,
                match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return None
        return replace(entry, etag=done.get("etag"))

    def remove(self, entry: PendingDelivery) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError

        try:  # a 404 is no error to the SDK: the entry is gone either way
            self._table().delete_entity(entry.channel, entry.key, etag=entry.etag,
                                        match_condition=MatchConditions.IfNotModified)
        except ResourceModifiedError:
            return False
        return True

    def claim(self, key: str, now: dt.datetime, until: dt.datetime) -> bool:
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode

        row = {"PartitionKey": CLAIMS_PARTITION, "RowKey": claim_key(key), "Until": until}
        try:
            self._table().create_entity(row)
            return True
        except ResourceExistsError:
            pass
        # Held already: take it over only if it ran out, and only the version read.
        try:
            held = self._table().get_entity(CLAIMS_PARTITION, row["RowKey"])
        except ResourceNotFoundError:
            return self.claim(key, now, until)  # released meanwhile
        if _aware(held["Until"]) > now:
            return False
        try:
            self._table().update_entity(row, mode=UpdateMode.REPLACE,
                                        etag=held.metadata.get("etag"),
                                        match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        return True

    def claimed(self, key: str, now: dt.datetime) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            held = self._table().get_entity(CLAIMS_PARTITION, claim_key(key))
        except ResourceNotFoundError:
            return False
        return _aware(held["Until"]) > now

    def release(self, key: str) -> None:
        self._table().delete_entity(CLAIMS_PARTITION, claim_key(key))  # a 404 is fine

    def purge(self, now: dt.datetime) -> int:
        """Forget claims that ran out, and silences that ended long ago."""
        table = self._table()
        old = table.query_entities("PartitionKey eq @silences and EndedAt le @then",
                                   parameters={"silences": SILENCES_PARTITION,
                                               "then": now - SILENCE_KEPT},
                                   select=["PartitionKey", "RowKey"])
        for row in list(old):
            table.delete_entity(row["PartitionKey"], row["RowKey"])
        stale = list(table.query_entities("PartitionKey eq @claims and Until le @now",
                                          parameters={"claims": CLAIMS_PARTITION, "now": now},
                                          select=["PartitionKey", "RowKey"]))
        for row in stale:
            table.delete_entity(row["PartitionKey"], row["RowKey"])
        return len(stale)

    def save_silence(self, silence: Silence) -> Silence | None:
        from azure.core import MatchConditions
        from azure.core.exceptions import (
            ResourceExistsError,
            ResourceModifiedError,
            ResourceNotFoundError,
        )
        from azure.data.tables import UpdateMode

        row = {"PartitionKey": SILENCES_PARTITION, "RowKey": silence.id,
               "EndedAt": silence.ended_at,
               "Silence": json.dumps(silence.record(), ensure_ascii=False)}
        try:
            if silence.etag is None:
                done = self._table().create_entity(row)
            else:
                done = self._table().update_entity(
                    row, mode=UpdateMode.REPLACE, etag=silence.etag,
                    match_condition=MatchConditions.IfNotModified)
        except (ResourceExistsError, ResourceModifiedError, ResourceNotFoundError):
            return None
        return replace(silence, etag=done.get("etag"))

    def silences(self) -> list[Silence]:
        rows = self._table().query_entities("PartitionKey eq @silences",
                                            parameters={"silences": SILENCES_PARTITION})
        return [Silence.from_record(json.loads(row["Silence"]), row.metadata.get("etag"))
                for row in rows]

    def close(self) -> None:
        self._client.close()


def _entity(entry: PendingDelivery) -> dict[str, Any]:
    return {
        "PartitionKey": entry.channel, "RowKey": entry.key, "AlertId": entry.alert_id,
        "Condition": entry.condition, "RuleId": entry.rule_id, "Severity": entry.severity,
        "TenantId": entry.tenant_id or "", "IntegrationId": entry.integration_id or "",
        # Unescaped: the service counts a property in UTF-16 units (32 K of them), and
        # json.dumps' default writes each non-ASCII character as six.
        "Dimensions": json.dumps(entry.dimensions, ensure_ascii=False),
        "Body": json.dumps(entry.body, ensure_ascii=False),
        "QueuedAt": entry.queued_at, "NextAttemptAt": entry.next_attempt_at,
        "Attempts": entry.attempts, "Redeliveries": entry.redeliveries,
        "LastError": entry.last_error, "HeldBy": entry.held_by, "Group": entry.group,
        "Notice": json.dumps(entry.notice, ensure_ascii=False) if entry.notice else "",
    }


def _from_entity(entity: Any) -> PendingDelivery:
    return PendingDelivery(
        alert_id=entity["AlertId"], condition=entity["Condition"],
        channel=entity["PartitionKey"], rule_id=entity["RuleId"], severity=entity["Severity"],
        body=json.loads(entity["Body"]), queued_at=_aware(entity["QueuedAt"]),
        next_attempt_at=_aware(entity["NextAttemptAt"]),
        tenant_id=entity.get("TenantId") or None,
        integration_id=entity.get("IntegrationId") or None,
        dimensions=json.loads(entity.get("Dimensions") or "{}"),
        attempts=int(entity.get("Attempts") or 0),
        redeliveries=int(entity.get("Redeliveries") or 0),
        last_error=entity.get("LastError") or "", held_by=entity.get("HeldBy") or "",
        group=entity.get("Group") or "",
        notice=json.loads(entity["Notice"]) if entity.get("Notice") else None,
        etag=entity.metadata.get("etag"))


# -- times ------------------------------------------------------------------------------------


def _aware(moment: dt.datetime) -> dt.datetime:
    moment = dt.datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute,
                         moment.second, moment.microsecond, tzinfo=moment.tzinfo)
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def _text(moment: dt.datetime) -> str:
    return _aware(moment).strftime(_TIME_FORMAT)


def _time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, _TIME_FORMAT).replace(tzinfo=dt.UTC)
