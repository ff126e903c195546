"""The real ServiceBusAdministrationClient against the loopback Service Bus management endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceResponseTimeoutError,
)
from azure.servicebus.management import ServiceBusAdministrationClient

from .loopback.servicebus import ServiceBusLoopback, StaticTokenCredential


@pytest.fixture
def bus() -> Iterator[ServiceBusLoopback]:
    """A Service Bus namespace's management endpoint on 127.0.0.1, over HTTPS."""
    with ServiceBusLoopback() as server:
        yield server


def _client(bus: ServiceBusLoopback, credential: object = None,
            **kwargs: object) -> ServiceBusAdministrationClient:
    return ServiceBusAdministrationClient(bus.namespace, credential or bus.credential,
                                          connection_verify=bus.ca_path, **kwargs)


def test_runtime_properties_carry_the_queue_counts(bus):
    """get_queue_runtime_properties reads active, dead-letter and scheduled counts."""
    # given a queue with messages in every state
    bus.set_queue("sync-jobs", active=7, dead_letter=2, scheduled=3)
    # when the SDK reads its runtime properties
    with _client(bus) as client:
        properties = client.get_queue_runtime_properties("sync-jobs")
    # then the counts are the ones set, and the request is the one the SDK documents
    assert properties.name == "sync-jobs"
    assert properties.active_message_count == 7
    assert properties.dead_letter_message_count == 2
    assert properties.scheduled_message_count == 3
    assert properties.transfer_message_count == 0
    assert properties.total_message_count == 12
    assert properties.created_at_utc is not None
    assert [(r.method, r.path) for r in bus.requests] == [
        ("GET", "/sync-jobs?enrich=false&api-version=2024-05")]


def test_list_runtime_properties_follows_next_links(bus):
    """list_queues_runtime_properties pages through $Resources/queues by the feed's next link."""
    # given three queues and a page size of two
    for name, active in [("a-jobs", 1), ("b-jobs", 2), ("c-jobs", 3)]:
        bus.set_queue(name, active=active)
    # when the SDK lists every queue's runtime properties
    with _client(bus) as client:
        listed = {p.name: p.active_message_count
                  for p in client.list_queues_runtime_properties(max_page_size=2)}
    # then all three arrive, over two pages
    assert listed == {"a-jobs": 1, "b-jobs": 2, "c-jobs": 3}
    assert [r.path for r in bus.requests] == [
        "/$Resources/queues?$skip=0&$top=2&api-version=2024-05",
        "/$Resources/queues?$skip=2&$top=2&api-version=2024-05",
    ]


@pytest.mark.parametrize("status", [None, 404], ids=["empty-feed", "http-404"])
def test_missing_queue_raises_resource_not_found(bus, status):
    """A missing queue (the service's 200 empty feed, or a 404) raises ResourceNotFoundError."""
    # given a queue that was never created, or one the server answers 404 for
    if status is not None:
        bus.fail_queue("gone", status)
    # when the SDK reads it
    with _client(bus) as client, pytest.raises(ResourceNotFoundError) as raised:
        client.get_queue_runtime_properties("gone", retry_total=0)
    # then it is reported as not found
    assert type(raised.value) is ResourceNotFoundError


@pytest.mark.parametrize(("status", "expected"), [
    (401, ClientAuthenticationError),
    (403, HttpResponseError),
])
def test_denied_queue_raises_the_sdk_error_for_its_status(bus, status, expected):
    """401 raises ClientAuthenticationError; 403 a plain HttpResponseError carrying the Detail."""
    # given a queue the server refuses to describe
    bus.set_queue("secret-jobs", active=1)
    bus.fail_queue("secret-jobs", status)
    # when the SDK reads it
    with _client(bus) as client, pytest.raises(HttpResponseError) as raised:
        client.get_queue_runtime_properties("secret-jobs", retry_total=0)
    # then exactly the expected class is raised, with the status and the service's message
    assert type(raised.value) is expected
    assert raised.value.status_code == status
    assert "claim" in str(raised.value)


def test_slow_queue_times_out_on_read_timeout(bus):
    """A queue answering after the client's read_timeout raises ServiceResponseTimeoutError."""
    # given a queue whose answer is held back for two seconds
    bus.set_queue("slow-jobs", active=1)
    bus.fail_queue("slow-jobs", None, delay_s=2)
    # when the SDK reads it with a 0.2 s read timeout and no retries
    with _client(bus) as client, pytest.raises(ServiceResponseTimeoutError):
        client.get_queue_runtime_properties("slow-jobs", read_timeout=0.2, retry_total=0)
    # then it gave up after a single request
    assert len(bus.requests) == 1


def test_requests_carry_the_credentials_bearer_token(bus):
    """The Authorization header is the credential's token for the Service Bus scope."""
    # given a queue and the loopback's static-token credential
    bus.set_queue("sync-jobs")
    # when the SDK reads the queue
    with _client(bus) as client:
        client.get_queue_runtime_properties("sync-jobs")
    # then the request was authorised with that token, asked for the Service Bus scope
    (request,) = bus.requests
    assert request.headers["authorization"] == f"Bearer {bus.credential.token}"
    assert bus.credential.scopes == [("https://servicebus.azure.net//.default",)]


def test_wrong_token_is_refused_like_the_service_does(bus):
    """A token the server did not issue gets a 401, raised as ClientAuthenticationError."""
    # given a queue and a credential with another token
    bus.set_queue("sync-jobs", active=1)
    # when the SDK reads the queue with it
    with (_client(bus, StaticTokenCredential("not-the-token")) as client,
          pytest.raises(ClientAuthenticationError) as raised):
        client.get_queue_runtime_properties("sync-jobs", retry_total=0)
    # then the 401 body names the failure
    assert "token is invalid" in str(raised.value)
