"""The relay's claims, kept where the outbox lives (SQLite locally, Table Storage on Azurite):
one holder per key across instances, until the claim runs out or is released."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from integration_monitoring.alerts import SqliteOutbox, TableOutbox
from integration_monitoring.alerts._outbox import utc_now

pytestmark = pytest.mark.xdist_group("azurite")
DAY = dt.timedelta(days=1)


@pytest.fixture(params=["sqlite", "table"])
def stores(request, tmp_path, azurite) -> Iterator[Any]:
    """A factory of outboxes on one store: each call is another instance of the app."""
    opened = []
    if request.param == "sqlite":
        def make():
            return SqliteOutbox(tmp_path / "outbox.sqlite3")
    else:
        table = f"claims{uuid.uuid4().hex[:16]}"

        def make():
            return TableOutbox(azurite.endpoint, azurite.token_credential(), table_name=table,
                               **azurite.client_options)

    def opener():
        store = make()
        opened.append(store)
        return store

    yield opener
    for store in opened:
        store.close()


def test_a_key_is_claimed_once_across_instances(stores):
    """A retried webhook reaching another instance finds the key taken."""
    one, two = stores(), stores()
    assert one.claim("notice|a-1|Fired", utc_now(), utc_now() + DAY) is True
    assert two.claim("notice|a-1|Fired", utc_now(), utc_now() + DAY) is False
    assert two.claimed("notice|a-1|Fired", utc_now()) is True
    assert two.claimed("notice|a-1|Resolved", utc_now()) is False


def test_a_released_claim_can_be_taken_again(stores):
    """A delivery that failed for good frees its claim, so a retry of it is sent."""
    one, two = stores(), stores()
    assert one.claim("sent|a-1|Fired|slack", utc_now(), utc_now() + DAY)
    one.release("sent|a-1|Fired|slack")
    one.release("sent|never-claimed")  # releasing what nobody holds is no error
    assert two.claim("sent|a-1|Fired|slack", utc_now(), utc_now() + DAY)


def test_a_claim_that_ran_out_is_free_and_purged(stores):
    """Claims last a day, not forever: an expired one is taken over, and purged."""
    store = stores()
    assert store.claim("old", utc_now(), utc_now() - dt.timedelta(seconds=1))
    assert store.claimed("old", utc_now()) is False
    assert store.claim("old", utc_now(), utc_now() + DAY) is True
    assert store.claim("stale", utc_now(), utc_now() - dt.timedelta(seconds=1))
    assert store.purge(utc_now()) == 1
    assert store.claimed("old", utc_now())


def test_simultaneous_claims_have_one_winner(stores):
    """Eight instances claim the same key at once: exactly one gets it."""
    instances = [stores() for _ in range(8)]
    now = utc_now()
    with ThreadPoolExecutor(8) as pool:
        won = list(pool.map(lambda store: store.claim("notice|race|Fired", now, now + DAY),
                            instances))
    assert won.count(True) == 1, won


def test_claims_are_not_queued_deliveries(stores):
    """The claims share the outbox's table but never show up as entries to redeliver."""
    store = stores()
    store.claim("notice|a-1|Fired", utc_now(), utc_now() + DAY)
    assert store.entries() == []
    assert store.due(utc_now() + 2 * DAY) == []


@pytest.mark.parametrize("attempt", range(20))
def test_instances_opening_a_new_sqlite_file_at_once_all_succeed(tmp_path, attempt):
    """Instances that start together all open the new file: none is told it is locked."""
    path = tmp_path / "outbox.sqlite3"
    now = utc_now()
    first_calls = [
        lambda store: store.claim("notice|race|Fired", now, now + DAY),
        lambda store: store.claimed("notice|race|Fired", now),
        lambda store: store.entries(),
        lambda store: store.purge(now),
    ] * 3
    with ThreadPoolExecutor(len(first_calls)) as pool:
        done = list(pool.map(lambda call: call(SqliteOutbox(path)), first_calls))
    assert done[0::4].count(True) == 1, done
