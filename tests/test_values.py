"""Metadata is coerced to JSON, bounded, and stripped of secrets; nothing raises."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from integration_monitoring import REDACTED, get_logger
from integration_monitoring.telemetry._values import (
    clean,
    clean_mapping,
    is_secret_key,
    property_string,
    scrub,
)
from integration_monitoring.testing import capture_telemetry

SECRET = "s3cr3t-Value-9f8e7d6c5b4a"


def test_secret_keys_in_any_spelling_are_recognised():
    """token, secret, password, authorization, api_key and friends, in any case or style."""
    for key in ["token", "accessToken", "refresh_token", "client_secret", "ClientSecret",
                "password", "db-password", "Authorization", "api_key", "apiKey", "X-API-KEY",
                "connection_string", "ConnectionString", "sessionToken", "AccountKey",
                "credentials", "private_key", "cookie"]:
        assert is_secret_key(key), key
    for key in ["tokenExpiresAt", "recordCount", "entity", "error", "authorizedBy", "retryable",
                "tenantId", "duration"]:
        assert not is_secret_key(key), key


def test_secret_values_inside_text_are_hidden():
    """Bearer tokens, JWTs, key=value secrets and Slack webhook URLs are masked in free text."""
    jwt = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
           ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")
    cases = {
        f"401 from API: Authorization: Bearer {SECRET}": SECRET,
        f"token was {jwt}": jwt,
        f"Endpoint=sb://x/;SharedAccessKeyName=root;SharedAccessKey={SECRET}": SECRET,
        f"GET /cb?code={SECRET}&state=1": SECRET,
        f"posting to https://hooks.slack.com/services/T000/B000/{SECRET}": SECRET,
    }
    for text, secret in cases.items():
        scrubbed = scrub(text)
        assert secret not in scrubbed and REDACTED in scrubbed, scrubbed


def test_awkward_values_are_coerced():
    """Datetimes, decimals, enums, exceptions, bytes, sets, NaN and objects become JSON."""
    class Color(enum.Enum):
        RED = "red"

    class Weird:
        def __str__(self):
            raise RuntimeError("no")

    value = clean({
        "at": dt.datetime(2025, 12, 20, 10, 30, tzinfo=dt.UTC),
        "price": decimal.Decimal("1.50"),
        "color": Color.RED,
        "error": ValueError("bad row"),
        "blob": b"\x00\x01",
        "tags": {"a"},
        "nan": math.nan,
        "weird": Weird(),
        "elapsed": dt.timedelta(seconds=1.5),
        3: "int key",
    })
    assert value == {
        "at": "2025-12-20T10:30:00.000Z", "price": "1.50", "color": "red",
        "error": "ValueError: bad row", "blob": "<2 bytes>", "tags": ["a"], "nan": "nan",
        "weird": "<unserialisable>", "elapsed": 1500.0, "3": "int key",
    }
    json.dumps(value, allow_nan=False)


def test_depth_and_size_are_bounded():
    """A self-referencing structure and a huge string do not blow up or bloat an event."""
    loop: dict = {}
    loop["self"] = loop
    cleaned = clean(loop)
    text = json.dumps(cleaned)
    assert "<too deep>" in text
    assert len(clean("x" * 100_000)) < 9000
    assert len(clean_mapping({str(i): i for i in range(10_000)})) <= 257


def test_property_strings_read_back_with_kql_conversions():
    """Non-string values are stored as JSON text so tobool/toint/todouble/parse_json read them."""
    assert property_string("abc") == "abc"
    assert property_string(True) == "true"
    assert property_string(5) == "5"
    assert property_string(1.5) == "1.5"
    assert property_string({"a": [1, 2]}) == '{"a":[1,2]}'


json_leaves = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
anything = st.recursive(
    json_leaves | st.binary(max_size=8) | st.datetimes() | st.decimals(),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4)
    | st.tuples(children, children),
    max_leaves=20,
)
secret_keys = st.sampled_from(["token", "password", "client_secret", "apiKey", "Authorization",
                               "connection_string", "refreshToken", "SECRET"])


@settings(max_examples=300, deadline=None)
@given(metadata=st.dictionaries(st.text(max_size=16), anything, max_size=6),
       secret_key=secret_keys, nested=st.booleans())
def test_arbitrary_metadata_never_raises_and_never_leaks(metadata, secret_key, nested):
    """Whatever metadata arrives, the call returns, the event is JSON, and secrets are gone."""
    # given arbitrary metadata with a secret planted at the top level or nested
    planted = {secret_key: SECRET, "note": f"Bearer {SECRET}"}
    metadata = {**metadata, "details": planted} if nested else {**metadata, **planted}
    with capture_telemetry() as captured:
        # when it is logged as keyword arguments and as a metadata mapping
        log = get_logger("fuzz-adapter")
        log.warn("fuzz.event", tenant_id="t",
                 **{k: v for k, v in metadata.items()
                    if k.isidentifier() and k not in ("tenant_id", "integration_id")})
        log.log("error", "fuzz.event", metadata=metadata)
    # then both events serialise as strict JSON and hold no trace of the secret
    assert len(captured.events) == 2
    for event in captured.events:
        assert SECRET not in json.dumps(event, allow_nan=False)
    for record in captured.log_records:
        assert all(SECRET not in str(v) for v in record.attributes.values())
    assert captured.telemetry.errors["events_dropped"] == 0


def test_timestamps_are_iso_utc_with_z(captured):
    """Timestamps are ISO 8601 in UTC with milliseconds and a Z."""
    event = get_logger("x").info("op")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", event["timestamp"])
