"""Make arbitrary metadata safe to log: JSON-ready, bounded, and free of secrets.

Every string the telemetry library writes (operation, service, tenant and integration ids,
metadata keys and values at any depth, exception and error texts, metric label values)
passes through `scrub()`, the one place secrets are recognised. Redaction is best effort:
it knows common key names, header, URL, connection-string and token shapes, not every
secret a caller could put in free text.
"""

from __future__ import annotations

import datetime as _dt
import enum
import functools
import json
import math
import re
from collections.abc import Mapping
from typing import Any

REDACTED = "[REDACTED]"

MAX_DEPTH = 8
MAX_STRING = 8192
MAX_ITEMS = 256

# -- secret key names ---------------------------------------------------------------------
#
# A name is split into words (camelCase, PascalCase, kebab-case, snake_case, dots, spaces
# and digits all separate words: `X-Api-Key`, `refreshTokens`, `private_key_pem`,
# `password1`), trailing format words (`pem`, `b64`, `value`, `hash`, `header`...) are
# dropped, and what is left, joined, must END in a secret noun. So `clientSecret`,
# `sessionToken` and `Ocp-Apim-Subscription-Key` are secrets while `tokenCount`,
# `tokenExpiresAt`, `secretName`, `keyboard`, `monkey` and `tokenizer` are not.

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+")
#: Words after the secret noun that only say how it is encoded or which one it is.
_FORMAT_WORDS = frozenset({
    "pem", "der", "b", "base", "hex", "raw", "enc", "encoded", "encrypted", "value", "values",
    "str", "string", "text", "data", "bytes", "hash", "hashed", "header", "headers", "json",
    "plain", "plaintext", "new", "old", "current", "confirm", "confirmation"})
#: Secret nouns a name may end with (plural allowed). `key` and `code` only with a word
#: that makes them credentials: `apiKey`, `accountKey`, `authCode`, but not `partitionKey`,
#: `dedupKey`, `statusCode`.
_SECRET_NAME = re.compile(
    r"(?:token|secret|password|passwd|passphrase|passcode|authorization|credential|cookie"
    r"|signature|connectionstring|connstring|connstr|assertion|bearer"
    r"|(?:api|access|account|private|secret|shared|subscription|master|signing|sign|client"
    r"|encryption|decryption|host|functions?|app|application|storage|ssh|auth|session"
    r"|primary|secondary|admin|webhook|license|consumer|developer|sas|hmac|routing)key"
    r"|(?:auth|authorization|oauth|otp|totp|mfa|verification|recovery|backup|security"
    r"|access)code)s?$")
#: Short secret names, recognised only as a whole last word (`basicAuth`, `db_pwd`, `sig`).
_SECRET_WORDS = frozenset(
    {"sig", "sigs", "pwd", "pw", "pass", "pin", "otp", "auth", "sas", "psk", "hmac"})
#: Names ending in a secret noun that are not secrets: pagination cursors and token counts.
_NOT_SECRET_NAME = re.compile(
    r"(?:page|nextpage|next|continuation|skip|delta|sync|cursor|resume|cancellation"
    r"|max|min|prompt|completion|total|input|output|cached|reasoning|used|remaining)tokens?$")
#: In a URL query or a connection string (after `?`, `&`, `#` or `;`) these are secrets too:
#: `?code=` (OAuth), `?key=` (API keys), `?sign=`.
_QUERY_SECRET_WORDS = frozenset({"code", "key", "sign"})
#: Every secret name above holds one of these, or `conn` and `str` (tests/test_redaction.py
#: checks it).
_SECRET_STEMS = ("pass", "token", "secret", "key", "auth", "sig", "pw", "cookie", "credential",
                 "code", "assertion", "bearer", "pin", "otp", "sas", "psk", "hmac")


def _words(name: str) -> tuple[list[str], int]:
    """The name's lower-case words, and how many are left without trailing format words."""
    words = [word.lower() for word in _WORD.findall(name)]
    kept = len(words)
    while kept and words[kept - 1] in _FORMAT_WORDS:
        kept -= 1
    return words, kept


@functools.lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True when a name (a metadata key, a header, a query parameter) names a secret.

    Cached: the same keys recur in every event.
    """
    words, kept = _words(key)
    if not kept:
        return False
    if words[kept - 1] in _SECRET_WORDS:
        return True
    # With and without format words: `tokenString`, `connectionString(Pem)` are secrets.
    for end in range(len(words), kept - 1, -1):
        joined = "".join(words[:end])
        if _SECRET_NAME.search(joined) and not _NOT_SECRET_NAME.search(joined):
            return True
    return False


def _is_query_secret(name: str) -> bool:
    if is_secret_key(name):
        return True
    words, kept = _words(name)
    return bool(kept) and words[kept - 1] in _QUERY_SECRET_WORDS


# -- secrets inside text ------------------------------------------------------------------

#: Authorization schemes shown in front of a redacted credential: `Bearer [REDACTED]`.
_SCHEMES = (r"bearer|basic|digest|negotiate|ntlm|token|sharedaccesssignature|sas"
            r"|aws4-hmac-sha256|hmac-sha256|hmac|oauth|apikey|ssws|splunk|key|mac")
_SCHEME_WORDS = frozenset(_SCHEMES.split("|"))

#: A private key block (to its end, or to the end of a cut-off text).
_PEM = re.compile(r"-----BEGIN[A-Z0-9 ]*PRIVATE KEY[A-Z ]*-----(?:.*?-----END[A-Z0-9 ]*"
                  r"PRIVATE KEY[A-Z ]*-----|.*)", re.DOTALL)
#: Tokens recognisable without a name: JWTs (and JWEs), GitHub, Slack, Stripe and Google keys.
_TOKENS = re.compile(
    r"(?<![\w-])(?:eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*"
    r"(?:\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*)?"
    r"|gh[pousr]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|xox[abposer]-[A-Za-z0-9-]{10,}"
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{10,}|AIza[\w-]{30,})")
_TOKEN_MARKERS = ("eyJ", "ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_", "xox",
                  "k_live_", "k_test_", "AIza")
#: Webhook URLs whose path is the credential.
_WEBHOOK = re.compile(r"(?i)(?P<keep>(?:https?://)?(?:hooks\.slack\.com|(?:[\w-]+\.)?"
                      r"discord(?:app)?\.com/api/webhooks|[\w-]+\.webhook\.office\.com))"
                      r"/[^\s\"'<>]+")
#: `scheme://user:password@host`: the password (up to the last `@` before the path).
_USERINFO = re.compile(r"(?i)(?P<keep>\b[a-z][a-z0-9+.-]*://[^\s/?#@:]*):"
                       r"(?P<secret>[^\s/?#]*)@")
#: `Authorization: ...` and `Cookie:`/`Set-Cookie:` lines: the rest of the line.
_HEADER_LINE = re.compile(r"(?i)(?<![\w.$-])(?P<name>[\w.$-]*?(?:authorization|cookies?))"
                          r"(?P<sep>[ \t]*+:[ \t]*+)(?P<value>[^\s\"'][^\r\n]*)")
#: `name=value`, `name: value`, `name = value`, `"name": "value"`, `name => value`: a name
#: (quoted or not, `\"` in JSON inside JSON, up to three words: `API key: ...`; after `--`
#: or URL-encoded `?`/`&`/`;`) and its value (`_PAIR_VALUE`: quoted, in braces or brackets,
#: or a bare word after an optional authorization scheme).
_PAIR = re.compile(
    r"(?:(?<![\w.$-])|(?<=--)|(?<=%3[FfBb])|(?<=%2[36]))(?P<kq>\\?[\"']|)"
    r"(?P<name>[A-Za-z_$][\w.$-]*+(?:[ ][A-Za-z][\w.$-]*+){0,2})(?P=kq)"
    r"(?P<sep>[ \t]*+(?:=>|:=|[=:]|%3[Dd])[ \t]*+)")
#: What comes before a name in a URL query or a connection string (also URL-encoded).
_QUERY_BEFORE = ("?", "&", "#", ";", "%3F", "%3f", "%26", "%3B", "%3b", "%23")
#: A pair's value, matched only after a secret name (so other pairs cost nothing more).
_PAIR_VALUE = re.compile(
    r"(?P<value>\\\"[^\"\r\n]*+\"|\"(?:[^\"\\\r\n]|\\.|\"\")*+\"|'(?:[^'\\\r\n]|\\.|'')*+'"
    r"|(?:\{[^{}\r\n]*+\}|\[[^\[\]\r\n]*+\])(?=[\s,;&)\]}\"'<>]|$)"
    r"|(?P<scheme>(?i:" + _SCHEMES + r")[ \t]++)?[^\s&;\"'<>]++)")
#: `--password hunter2` and `'--token', 'abc'` in a command line or its repr.
_FLAG = re.compile(r"(?<![\w.$-])--(?P<name>[A-Za-z][\w-]*+)(?P<sep>[\"']?,?[ \t]++[\"']?)"
                   r"(?P<value>[^\s\"',-][^\s\"']*+)")
#: `<password>...</password>`, also with a namespace and attributes.
_XML = re.compile(r"<(?P<tag>[A-Za-z_][\w.:-]*+)(?P<attrs>\s[^<>]*+)?>(?P<value>[^<]++)"
                  r"</(?P=tag)\s*>")
#: `Bearer <token>` / `Basic <credentials>` without a header name.
_SCHEME_TOKEN = re.compile(r"(?i)\b(?P<scheme>bearer|basic)(?P<space>\s+)"
                           r"(?P<credential>[A-Za-z0-9\-._~+/]{8,}=*)")
#: A word of prose after `Basic`/`Bearer` ("Basic authentication failed"), not a credential.
_PROSE_WORD = re.compile(r"[A-Z]?[a-z]+")
_VALUE_TAIL = ",.)]}"
_OPENERS = {")": "(", "]": "[", "}": "{"}
#: Values that say what state a secret is in rather than being one: JSON literals and the
#: words error texts use (`Invalid session token: "expired"`, `password: required`).
_NOT_SECRETS = frozenset({
    "null", "true", "false", "none", "nil", "undefined", "expired", "invalid", "missing",
    "revoked", "required", "empty", "malformed", "unknown", "rejected", "denied", "unset",
    "absent", "present", "valid", "wrong", "incorrect", "mismatch", "refreshed", "rotated",
    "changed", "reset", "locked", "disabled", "enabled", "blank", "not", "redacted"})

#: Short strings already scrubbed and found unchanged (operations, ids, label values recur
#: in every event): a dictionary lookup instead of the rules. Holds no secrets by definition.
_UNCHANGED: dict[str, None] = {}
_UNCHANGED_MAX_LEN = 200
_UNCHANGED_MAX_ITEMS = 4096


def scrub(text: str) -> str:
    """The one scrubber: `text` with the secrets it recognises replaced by `[REDACTED]`.

    Rules, in order: private key blocks; JWTs and vendor tokens (GitHub, Slack, Stripe,
    Google); webhook URLs whose path is the secret (Slack, Discord, Teams); the password in
    URL userinfo (`scheme://user:password@`); `Authorization:` and `Cookie:`/`Set-Cookie:`
    header lines to their end; the value of every `name=value`, `name: value`,
    `"name": "value"`, `name => value` pair whose name `is_secret_key` (in a URL query or
    connection string also `code`, `key`, `sign`; URL-encoded pairs too), to the end of the
    line when the pair starts one, to the next `;` in a connection string;
    `--password value` flags; `<password>` elements; and `Bearer`/`Basic` credentials.
    Text longer than MAX_STRING is cut first.

    Never raises: if a rule fails, the whole text becomes `[REDACTED]`.
    """
    try:
        if text in _UNCHANGED:
            return text
        scrubbed = _scrub(text)
        if scrubbed is text and len(text) <= _UNCHANGED_MAX_LEN:
            if len(_UNCHANGED) >= _UNCHANGED_MAX_ITEMS:
                _UNCHANGED.clear()
            _UNCHANGED[text] = None
        return scrubbed
    except Exception:  # a failing rule must not leak the text nor raise into the caller
        return REDACTED


def _scrub(text: str) -> str:
    if len(text) > MAX_STRING:
        text = text[:MAX_STRING] + "…"
    # Each rule runs only when its marker is in the text (a replacement only removes
    # markers, so the lower-cased copy taken first stays a safe guard for all of them).
    lower = text.lower()
    if "-----begin" in lower:
        text = _PEM.sub(REDACTED, text)
    for marker in _TOKEN_MARKERS:
        if marker in text:
            text = _TOKENS.sub(REDACTED, text)
            break
    if "/" in text:
        if "hooks.slack.com" in lower or "discord" in lower or "webhook.office" in lower:
            text = _WEBHOOK.sub(r"\g<keep>/" + REDACTED, text)
        if "@" in text and "://" in text:
            text = _USERINFO.sub(_userinfo, text)
    named = _names_a_secret(lower)
    if named and (":" in text or "=" in text):
        if ":" in text and ("authorization" in lower or "cookie" in lower):
            text = _HEADER_LINE.sub(_header_line, text)
        text = _pairs(text)
    if named and "--" in text:
        text = _FLAG.sub(_flag, text)
    if named and "</" in text:
        text = _XML.sub(_xml, text)
    if "bearer" in lower or "basic" in lower:
        text = _SCHEME_TOKEN.sub(_scheme_token, text)
    return text


def _names_a_secret(lower: str) -> bool:
    """Whether lower-cased text holds a stem of a name `is_secret_key` (or a query or
    connection string) would call secret; cheaper than looking for pairs in every text."""
    return any(stem in lower for stem in _SECRET_STEMS) or (
        "conn" in lower and "str" in lower)  # connectionString, conn_str


def _userinfo(m: re.Match[str]) -> str:
    if not m["secret"] or m["secret"] == REDACTED:
        return m[0]
    return f"{m['keep']}:{REDACTED}@"


def _header_line(m: re.Match[str]) -> str:
    value = m["value"]
    if _not_secret(value):
        return m[0]
    scheme, _, rest = value.partition(" ")
    if rest.strip() and scheme.lower() in _SCHEME_WORDS:
        if rest.startswith(REDACTED):
            return m[0]
        return f"{m['name']}{m['sep']}{scheme} {REDACTED}"
    if value.startswith(REDACTED):
        return m[0]
    return f"{m['name']}{m['sep']}{REDACTED}"


def _flag(m: re.Match[str]) -> str:
    if not is_secret_key(m["name"]) or m["value"] == REDACTED:
        return m[0]
    return f"--{m['name']}{m['sep']}{REDACTED}"


def _xml(m: re.Match[str]) -> str:
    if not is_secret_key(m["tag"]) or m["value"] == REDACTED:
        return m[0]
    return f"<{m['tag']}{m['attrs'] or ''}>{REDACTED}</{m['tag']}>"


def _scheme_token(m: re.Match[str]) -> str:
    if _PROSE_WORD.fullmatch(m["credential"]):
        return m[0]
    return f"{m['scheme']}{m['space']}{REDACTED}"


def _pairs(text: str) -> str:
    """Redact the values of secret-named pairs, left to right."""
    parts: list[str] = []
    done = scan = 0
    search = _PAIR.search
    while (m := search(text, scan)) is not None:
        start = m.start()
        if not (is_secret_key(m["name"])
                or (text.endswith(_QUERY_BEFORE, max(0, start - 3), start)
                    and _is_query_secret(m["name"]))):
            scan = m.end("sep")  # the value may itself hold a pair: `a=password=...`
            continue
        v = _PAIR_VALUE.match(text, m.end())
        if v is None:
            scan = m.end()
            continue
        value_start, value_end = v.span()
        replacement, value_end = _redacted_value(text, m, v, value_start, value_end)
        if replacement is None:
            scan = value_end
            continue
        parts.append(text[done:value_start])
        parts.append(replacement)
        done = scan = value_end
    if not parts:
        return text
    parts.append(text[done:])
    return "".join(parts)


def _redacted_value(text: str, m: re.Match[str], v: re.Match[str], start: int,
                    end: int) -> tuple[str | None, int]:
    """What replaces a secret pair's value, and where the replaced part ends."""
    value = v["value"]
    first = value[0]
    if value.startswith(REDACTED):
        return None, end
    if value.startswith('\\"'):
        inner, quote = value[2:-2], '\\"'
    elif first in "\"'":
        inner, quote = value[1:-1], first
    elif first == "{" and value[-1] == "}":  # an ODBC value: `Pwd={a;b}`
        inner = value[1:-1]
        return (None if not inner.strip() or inner == REDACTED else "{" + REDACTED + "}"), end
    elif first == "[" and value[-1] == "]":  # a list: `"Authorization": ["Bearer ..."]`
        return (None if not value[1:-1].strip() else REDACTED), end
    else:
        scheme = v["scheme"] or ""
        if not scheme:
            end = _value_extent(text, m, end)
        bare = text[start + len(scheme):end]
        kept = _without_tail(bare)
        if not kept or bare.startswith(REDACTED) or _not_secret(kept):
            return None, end
        return scheme + REDACTED + bare[len(kept):], end
    if not inner or inner.startswith(REDACTED) or _not_secret(inner):
        return None, end
    return quote + REDACTED + quote, end


def _not_secret(value: str) -> bool:
    """Blank, or one state word (`expired`, `required`...) and nothing else."""
    value = value.strip().rstrip(_VALUE_TAIL).lower()
    return not value or value in _NOT_SECRETS


def _without_tail(value: str) -> str:
    """A bare value without the punctuation that closes the text around it:
    `{password=x, user=y}` keeps its `,` and `}`; `token=[abc]` keeps its `]`."""
    value = value.rstrip(" \t")
    while value and value[-1] in _VALUE_TAIL:
        last = value[-1]
        opener = _OPENERS.get(last)
        if opener is not None and opener in value:
            break
        value = value[:-1].rstrip(" \t")
    return value


def _value_extent(text: str, m: re.Match[str], end: int) -> int:
    """A bare value goes on past a space where the pair starts a line with a name of one or
    two words (`password: a b`, `Client Secret: a b`, YAML) or sits in a connection string
    (`...;Password=a b;...`): to the line's end, or for `=` to the next `;`."""
    name = m["name"]
    start = m.start("name")
    line_start = text.rfind("\n", 0, start) + 1
    lead = text[line_start:start].strip(" \t\r\"'\\")
    equals = m["sep"].strip() == "="
    if not ((lead in ("", "-") and name.count(" ") < 2) or (equals and lead.endswith(";"))):
        return end
    line_end = len(text)
    for stop in ("\r", "\n") + ((";",) if equals else ()):
        found = text.find(stop, end)
        if found != -1:
            line_end = min(line_end, found)
    return max(end, line_end)


# -- values -------------------------------------------------------------------------------


def clean(value: Any, depth: int = 0) -> Any:
    """Return a JSON-ready copy of `value` with secrets redacted; never raises."""
    try:
        return _clean(value, depth)
    except Exception:  # a hostile __str__ or __iter__ must not reach the caller
        return "<unserialisable>"


def _clean(value: Any, depth: int) -> Any:
    if value is None or value is True or value is False:
        return value
    kind = type(value)
    if kind is str:
        return value if value in _UNCHANGED else scrub(value)
    if kind is int:
        return value
    if kind is float:
        return value if math.isfinite(value) else str(value)
    if depth >= MAX_DEPTH:
        return "<too deep>"
    if isinstance(value, Mapping):
        return clean_mapping(value, depth + 1)
    if isinstance(value, (list, tuple, set, frozenset)):
        items = list(value)[:MAX_ITEMS]
        return [_clean(item, depth + 1) for item in items]
    if isinstance(value, BaseException):
        return scrub(f"{type(value).__name__}: {value}")
    if isinstance(value, enum.Enum):
        return _clean(value.value, depth + 1)
    if isinstance(value, bool | int):
        return int(value)
    if isinstance(value, float):
        return _clean(float(value), depth)
    if isinstance(value, _dt.datetime):
        return iso_utc(value)
    if isinstance(value, (_dt.date, _dt.time)):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds() * 1000.0
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    try:
        return scrub(str(value))
    except Exception:  # a hostile __str__
        return "<unserialisable>"


def clean_mapping(mapping: Mapping[Any, Any], depth: int = 0) -> dict[str, Any]:
    """Clean every key and value of a mapping; values of secret-named keys are redacted
    (None and booleans stay: `"token": null` and `"hasPassword": true` hold no secret)."""
    out: dict[str, Any] = {}
    for index, (key, value) in enumerate(mapping.items()):
        if index >= MAX_ITEMS:
            out["_truncated"] = True
            break
        name = key if type(key) is str else clean(key)
        if not isinstance(name, str):
            name = json.dumps(name)
        if is_secret_key(name):
            value = value if value is None or type(value) is bool else REDACTED
        else:
            value = clean(value, depth)
        out[name if name in _UNCHANGED else scrub(name)] = value
    if "value" in out or "Value" in out:  # [{"name": "DB_PASSWORD", "value": "..."}]
        _redact_named_value(out)
    return out


def _redact_named_value(out: dict[str, Any]) -> None:
    label = out.get("name", out.get("Name", out.get("key", out.get("Key"))))
    if type(label) is not str or not is_secret_key(label):
        return
    for key in ("value", "Value"):
        value = out.get(key)
        if key in out and value is not None and type(value) is not bool:
            out[key] = REDACTED


def scrub_labels(labels: Mapping[str, Any]) -> Mapping[str, Any]:
    """Metric labels with their string values scrubbed (the same mapping when none changes)."""
    for value in labels.values():
        if type(value) is not str or value not in _UNCHANGED:
            break
    else:
        return labels
    return {key: scrub(value) if type(value) is str else value
            for key, value in labels.items()}


def iso_utc(moment: _dt.datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a `Z`, as the seed's timestamps are."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    moment = moment.astimezone(_dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def property_string(value: Any) -> str:
    """How a cleaned value is stored as an Application Insights property (always a string).

    Strings stay as they are; everything else is JSON, so `true`, `5`, `1.5` and nested
    objects read back with KQL's `tobool`, `toint`, `todouble` and `parse_json`.
    """
    kind = type(value)
    if kind is str:
        return value
    if kind is bool:
        return "true" if value else "false"
    if kind is int:
        return str(value)
    if kind is float:  # cleaned floats are finite, and repr is what JSON writes
        return repr(value)
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
