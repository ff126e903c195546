"""Redaction: one scrubber for every text the library writes, wherever the secret hides.

A table of shapes (what changes and, as much, what must not), properties over generated
secrets, surrounding text and key spellings, and end to end: the stdout line, the capture
and the local store never see a secret from a plain `logging` call or a logger call.
"""

from __future__ import annotations

import io
import json
import logging
import string
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.trace import TracerProvider

from integration_monitoring import REDACTED, SeedLogHandler, Telemetry, get_logger
from integration_monitoring.store import StoreLogExporter, StoreMetricExporter, TelemetryStore
from integration_monitoring.telemetry import Losses, _values
from integration_monitoring.telemetry._values import clean, is_secret_key, scrub

R = REDACTED
JWT = ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
       ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U")

# -- the table ------------------------------------------------------------------------------

UNCHANGED = [
    "sync.completed",
    "tenant-105",
    "salesforce-connection-1",
    "ValueError: bad row 12 at 10:30:00",
    "x=1 monkey=2 keyboard=3 tokenizer=4 tokenCount=5",
    "token count: 5",
    "maxTokens=4096 promptTokens=120 completionTokens=80",
    "Basic authentication failed for user bob",
    "Bearer token expired",
    "GET https://api.example.com/v1/contacts?limit=50&offset=100",
    "ssh://git@github.com/org/repo.git",
    "partitionKey=tenant-105 rowKey=contact-1 dedupKey=rule-1 key: cache-1",
    "status code=429, retry after 30 s",
    "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey",
    '{"tokenExpiresAt": "2025-01-01T00:00:00Z", "secretName": "db-password"}',
    "<keyboard>qwerty</keyboard>",
    "https://acct.blob.core.windows.net/c/b.csv?sv=2022-11-02&se=2025-01-01&sp=r",
    "Author: Jane Doe",
    "https://graph.microsoft.com/v1.0/users?$skiptoken=X1234&$top=10",
    "the API key is set",
    '{"password": null, "hasPassword": true}',
    "grant_type=client_credentials&client_id=app-1",
    "--passes 3 --keyboard us --tokenizer bpe",
    'Invalid session token: "expired" | take 1',
    "password: required",
    "Authorization: missing",
    "postgres://app@db.internal:5432/app",
]

CHANGED = [
    # URLs: query parameters in any vendor's spelling, fragments, userinfo, SAS
    ("GET https://api.x.com/v1?access_token=abc123&limit=5",
     f"GET https://api.x.com/v1?access_token={R}&limit=5"),
    ("https://s3.amazonaws.com/b/o?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F2025"
     "&X-Amz-Signature=fe5f80f77d5fa3be&X-Amz-Date=20250101T000000Z",
     f"https://s3.amazonaws.com/b/o?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={R}"
     f"&X-Amz-Signature={R}&X-Amz-Date=20250101T000000Z"),
    ("https://maps.example.com/geocode?address=x&key=AIzaSyD-abc",
     f"https://maps.example.com/geocode?address=x&key={R}"),
    ("https://app.example.com/cb?code=4%2F0AX4XfWh&state=af0ifjsldkj",
     f"https://app.example.com/cb?code={R}&state=af0ifjsldkj"),
    ("POST /token?client_id=abc&client_secret=s3cr3t&grant_type=client_credentials",
     f"POST /token?client_id=abc&client_secret={R}&grant_type=client_credentials"),
    ("https://app/#access_token=abc123&token_type=Bearer&expires_in=3600",
     f"https://app/#access_token={R}&token_type=Bearer&expires_in=3600"),
    ("https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig=AbC%2BdEf%3D&se=2025",
     f"https://acct.blob.core.windows.net/c/b?sv=2022-11-02&sr=b&sig={R}&se=2025"),
    ("https://x.example.com/api?apikey=k1&api_key=k2&password=p&token=t&signature=s",
     f"https://x.example.com/api?apikey={R}&api_key={R}&password={R}&token={R}&signature={R}"),
    ("postgres://app:hunter2@db.internal:5432/app",
     f"postgres://app:{R}@db.internal:5432/app"),
    ("redis://:p%40ss@cache:6379", f"redis://:{R}@cache:6379"),
    ("amqps://user:pa:ss@w0rd@host/vhost", f"amqps://user:{R}@host/vhost"),
    # connection strings
    ("Server=tcp:x.database.windows.net;Database=d;User ID=sa;Password=my pass;Encrypt=True",
     f"Server=tcp:x.database.windows.net;Database=d;User ID=sa;Password={R};Encrypt=True"),
    ("Driver={ODBC 18};Server=x;Uid=sa;Pwd={p;w;d};", f"Driver={{ODBC 18}};Server=x;Uid=sa;"
                                                      f"Pwd={{{R}}};"),
    ("DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=abc+def/ghi==;"
     "EndpointSuffix=core.windows.net",
     f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={R};"
     "EndpointSuffix=core.windows.net"),
    ("Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey=abc=",
     f"Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey={R}"),
    ("BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature=sv=2022&sig=abc",
     f"BlobEndpoint=https://a.blob.core.windows.net/;SharedAccessSignature={R}"),
    ("Host=db;Username=app;Password='it''s;secret';Pooling=true",
     f"Host=db;Username=app;Password='{R}';Pooling=true"),
    # JSON, dicts and reprs embedded in text
    ('{"user": "bob", "password": "hunter2"}', f'{{"user": "bob", "password": "{R}"}}'),
    ("{'client_secret': 'abc', 'client_id': 'id-1'}",
     f"{{'client_secret': '{R}', 'client_id': 'id-1'}}"),
    ('{"refreshToken":"abc","expiresIn":3600}', f'{{"refreshToken":"{R}","expiresIn":3600}}'),
    ('{\\"apiKey\\": \\"abc\\"}', f'{{\\"apiKey\\": \\"{R}\\"}}'),
    ('{"pin": 1234, "hasPassword": true}', f'{{"pin": {R}, "hasPassword": true}}'),
    ('{"password": "not hunter2"}', f'{{"password": "{R}"}}'),
    ("{password=hunter2, user=bob}", f"{{password={R}, user=bob}}"),
    ("Config(username='bob', password='hunter2')", f"Config(username='bob', password='{R}')"),
    ("{:client_secret => \"abc\"}", f"{{:client_secret => \"{R}\"}}"),
    # header lines
    ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: Basic {R}"),
    (f"authorization: Bearer {JWT}", f"authorization: Bearer {R}"),
    ('Authorization: Digest username="bob", realm="x", response="6629fae4"',
     f"Authorization: Digest {R}"),
    ("Proxy-Authorization: Negotiate YIIabc", f"Proxy-Authorization: Negotiate {R}"),
    ("Authorization: SomeVendor k1 k2", f"Authorization: {R}"),
    ("X-Api-Key: 0123456789abcdef", f"X-Api-Key: {R}"),
    ("Ocp-Apim-Subscription-Key: 0123abcd", f"Ocp-Apim-Subscription-Key: {R}"),
    ("Cookie: session=abc; csrftoken=def", f"Cookie: {R}"),
    ("HTTP/1.1 200 OK\r\nSet-Cookie: sid=abc; Path=/; HttpOnly\r\nContent-Type: text/html",
     f"HTTP/1.1 200 OK\r\nSet-Cookie: {R}\r\nContent-Type: text/html"),
    ("x-functions-key: abc==", f"x-functions-key: {R}"),
    ("X-Hub-Signature-256: sha256=abc", f"X-Hub-Signature-256: {R}"),
    # prose, YAML, env
    ("login failed: password: hunter2 (attempt 3)", f"login failed: password: {R} (attempt 3)"),
    ("retrying with password = hunter2 for bob", f"retrying with password = {R} for bob"),
    ("client secret: abc123 rotated", f"client secret: {R}"),
    ("rotated: client secret: abc123 today", f"rotated: client secret: {R} today"),
    ("API key: abc123", f"API key: {R}"),
    ("db_password1=hunter2 user=bob", f"db_password1={R}"),
    ("db:\n  password: my secret pass\n  user: bob", f"db:\n  password: {R}\n  user: bob"),
    ("export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG", f"export AWS_SECRET_ACCESS_KEY={R}"),
    ("(sessionToken: abc, region: eu)", f"(sessionToken: {R}, region: eu)"),
    ("sessionToken: abc, region: eu", f"sessionToken: {R}"),
    ("a=password=hunter2", f"a=password={R}"),
    ("user=bob pass=hunter2 port=21", f"user=bob pass={R} port=21"),
    ("psql --password hunter2 --host db", f"psql --password {R} --host db"),
    ("['az', 'login', '--client-secret', 'abc', '--tenant', 't1']",
     f"['az', 'login', '--client-secret', '{R}', '--tenant', 't1']"),
    ("run --token=abc --verbose", f"run --token={R} --verbose"),
    ("?next=https%3A%2F%2Fx%2Fcb%3Ftoken%3Dabc", f"?next=https%3A%2F%2Fx%2Fcb%3Ftoken%3D{R}"),
    ('"Authorization": ["Bearer abc"]', f'"Authorization": {R}'),
    # tokens without a name, webhook URLs, XML, key blocks
    (f"token was {JWT} yesterday", f"token was {R} yesterday"),
    ("push with ghp_0123456789abcdefghijABCDEFGHIJ0123 failed", f"push with {R} failed"),
    ("slack xoxb-123456789012-abcdefghij rejected", f"slack {R} rejected"),
    ("charge with sk_live_0123456789abcdef", f"charge with {R}"),
    ("sent Bearer abc.def-123 to api", f"sent Bearer {R} to api"),
    ("posting to https://hooks.slack.com/services/T000/B000/XXXX failed",
     f"posting to https://hooks.slack.com/{R} failed"),
    ('<wsse:Password Type="#PasswordText">hunter2</wsse:Password>',
     f'<wsse:Password Type="#PasswordText">{R}</wsse:Password>'),
    ("<creds><clientSecret>abc</clientSecret><user>bob</user></creds>",
     f"<creds><clientSecret>{R}</clientSecret><user>bob</user></creds>"),
    ("key: -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY----- done",
     f"key: {R} done"),
]


@pytest.mark.parametrize("text", UNCHANGED)
def test_text_without_secrets_is_unchanged(text):
    """Ids, operations, counts and names that only look like secrets pass as they are."""
    assert scrub(text) == text


@pytest.mark.parametrize(("text", "expected"), CHANGED)
def test_secrets_in_text_are_redacted_in_every_shape(text, expected):
    """Each shape loses its secret and keeps what is around it; scrubbing again changes
    nothing."""
    assert scrub(text) == expected
    assert scrub(expected) == expected


SECRET_NAMES = [
    "token", "accessToken", "refresh_token", "refreshTokens", "id-token", "sessionToken",
    "client_secret", "ClientSecret", "secrets", "CLIENT_SECRET", "password", "Password1",
    "db-password", "passwordConfirmation", "passwd", "pwd", "db_pwd", "passphrase",
    "Authorization", "Proxy-Authorization", "api_key", "apiKey", "APIKey", "X-API-KEY",
    "x-api-key", "Ocp-Apim-Subscription-Key", "x-functions-key", "AccountKey",
    "SharedAccessKey", "SharedAccessSignature", "private_key", "private_key_pem",
    "privateKeyB64", "connection_string", "ConnectionString", "credentials", "cookie",
    "Set-Cookie", "client_assertion", "X-Amz-Signature", "X-Amz-Security-Token", "sig",
    "basicAuth", "authCode", "otp", "pin", "webhookSecret", "routing_key", "tokenString",
]
NOT_SECRET_NAMES = [
    "tokenCount", "tokenExpiresAt", "tokenType", "token_url", "maxTokens", "nextPageToken",
    "continuationToken", "keyboard", "monkey", "tokenizer", "secretName", "passwordPolicy",
    "recordCount", "entity", "error", "authorizedBy", "author", "retryable", "tenantId",
    "integrationId", "duration", "key", "keyId", "partitionKey", "dedupKey", "statusCode",
    "code", "SharedAccessKeyName", "signatureVersion", "publicKey", "credentialId",
]


@pytest.mark.parametrize("name", SECRET_NAMES)
def test_secret_names_are_recognised_in_any_spelling(name):
    assert is_secret_key(name)
    assert _values._names_a_secret(name.lower())  # the text rules' guard sees it too


@pytest.mark.parametrize("name", NOT_SECRET_NAMES)
def test_names_that_only_resemble_secrets_are_kept(name):
    """`tokenCount` is a count and `keyboard` a keyboard: their values are telemetry."""
    assert not is_secret_key(name)


# -- properties -----------------------------------------------------------------------------

#: Text around the secret: no separator, quote or marker a rule looks for.
PLAIN = string.ascii_letters + string.digits + " .,-_/()!?#%*+"
#: The secret's characters: what a token or password is made of, valid in every shape.
SECRET_CHARS = string.ascii_letters + string.digits + "-._~+!*$="
SHAPES = [
    "password={s}", "password: {s}", "password = {s}", "PASSWORD:{s}", "db_password1={s}",
    "client_secret={s}", "clientSecret: {s}", "refreshTokens: {s}", "X-Amz-Signature={s}",
    "https://api.example.com/v1/items?access_token={s}&limit=5",
    "https://api.example.com/v1/items?limit=5&api_key={s}",
    "https://app.example.com/cb?state=1&code={s}", "https://h.example.com/x?key={s}",
    "https://acct.blob.core.windows.net/c/b?sv=2022&sig={s}&se=2025",
    "https://user:{s}@db.example.com:5432/app", "redis://:{s}@cache:6379",
    "Server=tcp:x;User ID=sa;Password={s};Encrypt=True", "Server=x;Pwd={s}",
    "AccountName=a;AccountKey={s};EndpointSuffix=core.windows.net",
    "Endpoint=sb://ns/;SharedAccessKeyName=root;SharedAccessKey={s}",
    "SharedAccessSignature={s}",
    '{{"password": "{s}"}}', "{{'apiKey': '{s}'}}", '{{\\"token\\": \\"{s}\\"}}',
    "{{password={s}, user=bob}}", "Authorization: Basic {s}", "Authorization: Bearer {s}",
    "Authorization: {s}", "X-Api-Key: {s}", "Ocp-Apim-Subscription-Key: {s}",
    "Cookie: sid={s}", "Set-Cookie: sid={s}; Path=/; HttpOnly", "<password>{s}</password>",
    "<ns:ClientSecret>{s}</ns:ClientSecret>", "API key: {s}", "user=bob pass={s}",
    "--password {s}", "['--token', '{s}']", "?next=%2Fcb%3Faccess_token%3D{s}",
    '{{"headers": {{"Authorization": ["Bearer {s}"]}}}}',
]
secrets = st.text(SECRET_CHARS, min_size=4, max_size=40).map(lambda s: "Zq9~" + s)
plain = st.text(PLAIN, max_size=60)


@settings(max_examples=400, deadline=None)
@given(shape=st.sampled_from(SHAPES), secret=secrets, before=plain, after=plain)
def test_a_secret_in_any_shape_in_any_text_never_comes_out(shape, secret, before, after):
    """Whatever surrounds it, a secret in one of the shapes is gone from the output."""
    text = f"{before} {shape.format(s=secret)} {after}"
    scrubbed = scrub(text)
    assert secret not in scrubbed
    assert REDACTED in scrubbed


@settings(max_examples=300, deadline=None)
@given(text=plain)
def test_plain_text_comes_out_unchanged(text):
    assert scrub(text) == text


#: Pieces of the shapes the rules look for, to build texts that exercise them together.
MARKUP = st.lists(st.sampled_from([
    "password", "token", "Password", "apiKey", "key", "code", "sig", "pass", "=", ":", " ",
    ";", "&", "?", "#", '"', "'", "{", "}", "[", "]", "<", ">", "</", "/", "@", "://",
    "https", "Bearer", "Basic", "abc", "x1Y2", "\n", "-----BEGIN", " PRIVATE KEY-----",
    "-----END", "eyJabcdef.ghijk.", "\\", "Authorization", "Cookie", ",", ".", ")", "null",
    REDACTED, "  ", "\t", "--", "%3D", "%26", "ghp_", "0123456789abcdefghijklmnop",
    "hooks.slack.com/", "-"]), max_size=30).map("".join)


@settings(max_examples=500, deadline=None)
@given(text=st.text(max_size=300) | MARKUP)
def test_any_text_is_scrubbed_without_raising_and_stays_scrubbed(text):
    scrubbed = scrub(text)
    assert isinstance(scrubbed, str)
    assert scrub(scrubbed) == scrubbed


STYLES = {
    "snake": lambda words: "_".join(w.lower() for w in words),
    "kebab": lambda words: "-".join(w.lower() for w in words),
    "header": lambda words: "-".join(w.capitalize() for w in words),
    "camel": lambda words: words[0].lower() + "".join(w.capitalize() for w in words[1:]),
    "pascal": lambda words: "".join(w.capitalize() for w in words),
    "upper": lambda words: "_".join(w.upper() for w in words),
    "dotted": lambda words: ".".join(w.lower() for w in words),
}


@settings(max_examples=300, deadline=None)
@given(prefix=st.lists(st.sampled_from(["db", "salesforce", "azure", "x", "main", "user"]),
                       max_size=2),
       noun=st.sampled_from([["password"], ["secret"], ["token"], ["api", "key"],
                             ["access", "token"], ["client", "secret"], ["private", "key"],
                             ["connection", "string"], ["signature"], ["credentials"],
                             ["subscription", "key"], ["account", "key"], ["cookie"]]),
       plural=st.booleans(),
       suffix=st.sampled_from([[], ["pem"], ["value"], ["b64"], ["1"], ["hash"]]),
       tail=st.sampled_from([None, "count", "id", "name", "type", "url", "expires at"]),
       style=st.sampled_from(sorted(STYLES)))
def test_a_name_is_secret_by_its_last_word_in_any_spelling(prefix, noun, plural, suffix, tail,
                                                           style):
    """`X-Api-Key`, `api_key`, `apiKey`, `API_KEY`, `apiKeys1`: one verdict; a word after
    the noun (`apiKeyId`, `tokenCount`) makes it an ordinary field."""
    noun = [*noun[:-1], noun[-1] + ("s" if plural and not noun[-1].endswith("s") else "")]
    words = [*prefix, *noun, *suffix, *(tail.split() if tail else [])]
    name = STYLES[style](words)
    assert is_secret_key(name) is (tail is None), name
    if tail is None:
        assert _values._names_a_secret(name.lower()), name


# -- values, failures, cost -----------------------------------------------------------------


def test_every_value_at_any_depth_and_every_key_goes_through_the_scrubber():
    """Dicts, lists, tuples, sets, exceptions and objects: every text inside is scrubbed;
    secret-named keys hide their whole value, except None and booleans."""
    class Thing:
        def __str__(self):
            return "Thing(password=hunter2)"

    value = clean({
        "request": {"headers": {"X-Api-Key": "k", "Accept": "json"},
                    "attempts": [("GET /x?token=t1", 1), {"why": "Authorization: Basic abc12345"}]},
        "error": RuntimeError("401 from https://u:hunter2@api.example.com/"),
        "thing": Thing(),
        "tags": {"password=hunter2"},
        "hasToken": True,
        "refreshToken": None,
        "clientSecret": {"nested": "whole value hidden"},
        "Authorization: Bearer abc12345": 1,
    })
    assert value == {
        "request": {"headers": {"X-Api-Key": R, "Accept": "json"},
                    "attempts": [[f"GET /x?token={R}", 1], {"why": f"Authorization: Basic {R}"}]},
        "error": f"RuntimeError: 401 from https://u:{R}@api.example.com/",
        "thing": f"Thing(password={R})",
        "tags": [f"password={R}"],
        "hasToken": True,
        "refreshToken": None,
        "clientSecret": R,
        f"Authorization: Bearer {R}": 1,
    }


def test_a_failing_scrubber_degrades_to_a_redacted_value_and_never_raises(monkeypatch, captured):
    """If a rule breaks, the text it was given is replaced, and the caller's call goes on."""
    def broken(text):
        raise RuntimeError("rule failed")

    monkeypatch.setattr(_values, "_scrub", broken)
    _values._UNCHANGED.clear()
    assert scrub("password=hunter2") == R
    event = get_logger("x-adapter").error("sync.failed", tenant_id="tenant-7",
                                          error="password=hunter2")
    assert event is not None
    assert event["operation"] == R and event["tenantId"] == R
    assert event["metadata"] == {R: R}  # keys are text too
    assert captured.telemetry.errors["events_dropped"] == 0


@pytest.mark.parametrize("text", [
    "a:" * 5000, "password=" * 1000, "<" * 9000, "eyJ" * 3000, "a=b " * 2500,
    '"a": "' * 1500, "aa bb cc: " * 900, "password: " * 900, "https://a:" * 900,
    "authorization:" * 600, "Bearer " * 1300, "x" * 100_000, ("word " * 2000),
    "password=" + "a" * 9000, "token: " + "a b " * 2000, "{" * 9000, "'" * 9000,
])
def test_hostile_texts_are_scrubbed_quickly(text):
    """No rule backtracks badly: texts are cut at MAX_STRING and each rule stays linear."""
    _values._UNCHANGED.clear()
    started = time.perf_counter()
    scrubbed = scrub(text)
    assert time.perf_counter() - started < 0.5
    assert len(scrubbed) <= _values.MAX_STRING + 1


def test_pipeline_notes_and_problems_are_scrubbed():
    """stderr notes and the problems /api/health shows carry exporter errors: scrubbed too."""
    stream = io.StringIO()
    losses = Losses(stream=stream)
    losses.logs_lost("export_failed", 3, detail="POST https://x.example.com/?sig=hunter2 failed")
    losses.problem("azure", "cannot export: AccountKey=hunter2;EndpointSuffix=x")
    assert "hunter2" not in stream.getvalue()
    assert "hunter2" not in json.dumps(losses.snapshot())
    assert f"sig={R}" in stream.getvalue()


# -- end to end -----------------------------------------------------------------------------

SECRET = "hunter2-Zq9~s3cr3t"


def _emit_everything(telemetry: Telemetry) -> None:
    """A plain `logging` call with a secret in its message and one with an exception, and
    a logger call with secrets in the tenant id, nested metadata and an exception."""
    handler = SeedLogHandler(telemetry)
    stdlib = logging.getLogger("billing-adapter.redaction")
    stdlib.addHandler(handler)
    stdlib.setLevel(logging.INFO)
    stdlib.propagate = False
    try:
        stdlib.warning("token refresh failed for bob password=%s, retrying", SECRET)
        try:
            raise ConnectionError(f"POST https://api.example.com/oauth?client_secret={SECRET}")
        except ConnectionError:
            stdlib.exception("Authorization: Bearer %s refused", SECRET,
                             extra={"tenantId": "tenant-105", "apiKey": SECRET})
    finally:
        stdlib.removeHandler(handler)
    try:
        raise RuntimeError(f"401 for https://svc:{SECRET}@api.example.com/ ({{\"password\": "
                           f"\"{SECRET}\"}})")
    except RuntimeError as exc:
        error = exc
    get_logger("billing-adapter", telemetry).error(
        "api.call_failed", tenant_id=f"tenant-105;Password={SECRET}",
        integration_id=f"sf-1?sig={SECRET}",
        request={"headers": {"X-Api-Key": SECRET, "Accept": "application/json"},
                 "attempts": [{"url": f"https://x.example.com/?token={SECRET}"},
                              (f"password: {SECRET}", 2)]},
        exception=error, error=str(error), entity="contact")
    get_logger("billing-adapter", telemetry).info("sync.completed", tenant_id="tenant-105",
                                                  integration_id="sf-1", recordCount=3)
    telemetry.metric("sync_jobs_total", 1, {"tenant_id": f"tenant-105?sig={SECRET}",
                                            "integration_id": "sf-1", "status": "failed"})


def test_no_secret_reaches_stdout_or_the_capture(captured, stdout_lines):
    """The stdout JSON line, the events, the log records exporters get and the metric
    series hold no trace of the secret; ids without secrets pass unchanged."""
    _emit_everything(captured.telemetry)
    lines = stdout_lines()
    assert len(lines) == len(captured.events) == 4
    for line in lines:
        assert SECRET not in json.dumps(line)
    for event in captured.events:
        assert SECRET not in json.dumps(event)
    for record in captured.log_records:
        assert SECRET not in str(record.body)
        assert all(SECRET not in str(value) for value in record.attributes.values())
    for labels, _point in captured.series("sync_jobs_total"):
        assert SECRET not in json.dumps(labels)
    assert captured.telemetry.errors["events_dropped"] == 0
    # what is left is still useful telemetry
    first, second, third, fourth = lines
    assert first["operation"] == f"token refresh failed for bob password={R}, retrying"
    assert first["level"] == "warn" and first["service"] == "billing-adapter.redaction"
    assert second["operation"] == f"Authorization: Bearer {R}"
    assert second["tenantId"] == "tenant-105" and second["metadata"]["apiKey"] == R
    assert second["metadata"]["error"] == (
        f"POST https://api.example.com/oauth?client_secret={R}")
    assert third["tenantId"] == f"tenant-105;Password={R}"
    assert third["integrationId"] == f"sf-1?sig={R}"
    assert third["metadata"]["request"]["headers"] == {"X-Api-Key": R,
                                                        "Accept": "application/json"}
    assert third["metadata"]["entity"] == "contact"
    assert fourth["tenantId"] == "tenant-105" and fourth["integrationId"] == "sf-1"
    assert fourth["metadata"] == {"recordCount": 3}


def test_no_secret_reaches_the_local_store(tmp_path):
    """Through the local store's exporters: no AppTraces or AppMetrics row holds it."""
    store = TelemetryStore(tmp_path / "redaction.duckdb")
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(StoreLogExporter(store)))
    reader = PeriodicExportingMetricReader(StoreMetricExporter(store),
                                           export_interval_millis=3_600_000)
    meter_provider = MeterProvider(metric_readers=[reader])
    sink = io.StringIO()
    telemetry = Telemetry(logger_provider=logger_provider, meter_provider=meter_provider,
                          tracer_provider=TracerProvider(), stream=sink)
    try:
        _emit_everything(telemetry)
        assert telemetry.flush(timeout_millis=10_000)
        cursor = store.cursor()
        traces = cursor.execute('SELECT * FROM "AppTraces"').fetchall()
        metrics = cursor.execute('SELECT * FROM "AppMetrics"').fetchall()
        cursor.close()
    finally:
        logger_provider.shutdown()
        meter_provider.shutdown()
        store.close()
    assert len(traces) == 4 and metrics
    assert SECRET not in repr(traces) and SECRET not in repr(metrics)
    assert SECRET not in sink.getvalue()
    assert "tenant-105" in repr(traces)
