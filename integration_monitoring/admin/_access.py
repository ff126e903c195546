"""Who is calling, and which tenants they may read.

One of four modes, chosen by settings:

- ``open``: the local server on loopback with no ADMIN_API_TOKEN; every caller is an admin.
- ``token``: the local server with ADMIN_API_TOKEN; callers send it as a bearer token.
- ``function-key``: on the Functions host, which checks the function key before the app
  runs (auth level FUNCTION); a caller that got through is an admin.
- ``entra``: on the Functions host behind App Service authentication (ADMIN_AUTH=entra);
  the platform signs users in and passes their claims in X-MS-CLIENT-PRINCIPAL. The
  `Monitoring.Admin` role reads every tenant; `Monitoring.Reader` reads only the tenants
  listed in its tenant claim (ADMIN_TENANT_CLAIM, default ``tenants``).

The platform is what strips a caller's own X-MS-CLIENT-PRINCIPAL header, so entra mode
refuses to start unless the platform says authentication is on (WEBSITE_AUTH_ENABLED).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from ._filters import PARAMETERS, Filters

ADMIN_ROLE = "Monitoring.Admin"
READER_ROLE = "Monitoring.Reader"
TOKEN_SETTING = "ADMIN_API_TOKEN"
MODE_SETTING = "ADMIN_AUTH"
TENANT_CLAIM_SETTING = "ADMIN_TENANT_CLAIM"
#: Set to True by the platform when App Service authentication is on.
PLATFORM_AUTH_SETTING = "WEBSITE_AUTH_ENABLED"
PRINCIPAL_HEADER = "x-ms-client-principal"
MODES = ("open", "token", "function-key", "entra")

_ROLE_CLAIMS = ("roles", "http://schemas.microsoft.com/ws/2008/06/identity/claims/role")
_NAME_CLAIMS = ("name", "preferred_username", "upn", "email",
                "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name")
_MAX_PRINCIPAL = 64 * 1024
#: Claimed tenants become KQL literals, as a tenantId filter does: the same rule.
_TENANT_ID = PARAMETERS["tenantId"].pattern


class AccessDenied(Exception):
    """401 (who are you?) or 403 (not for you), with a message that says what to do."""

    def __init__(self, status: int, code: str, message: str, parameter: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.parameter = parameter
        self.headers = headers


@dataclass(frozen=True)
class Principal:
    """A caller. `tenants` is None for an admin (every tenant), else the readable ones."""

    name: str
    tenants: frozenset[str] | None
    via: str

    @property
    def is_admin(self) -> bool:
        return self.tenants is None

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "role": ADMIN_ROLE if self.is_admin else READER_ROLE,
                "tenants": None if self.tenants is None else sorted(self.tenants),
                "via": self.via}


@dataclass(frozen=True)
class Access:
    mode: str
    token: str = ""
    tenant_claim: str = "tenants"

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"{MODE_SETTING} must be one of {', '.join(MODES)}, "
                             f"not {self.mode!r}")
        if self.mode == "token" and not self.token:
            raise ValueError(f"token mode needs {TOKEN_SETTING}")

    @classmethod
    def for_local(cls, env: Mapping[str, str] | None = None) -> Access:
        """The local server: a bearer token when ADMIN_API_TOKEN is set, else open."""
        token = (os.environ if env is None else env).get(TOKEN_SETTING, "").strip()
        return cls("token", token) if token else cls("open")

    @classmethod
    def for_functions(cls, env: Mapping[str, str] | None = None) -> Access:
        """The Functions host: Entra ID when ADMIN_AUTH=entra, else function keys."""
        env = os.environ if env is None else env
        mode = env.get(MODE_SETTING, "").strip() or "function-key"
        if mode not in ("function-key", "entra"):
            raise ValueError(f"{MODE_SETTING} on the Functions host is function-key or entra, "
                             f"not {mode!r}")
        # Without the platform in front, anyone could send the principal header: fail closed.
        if mode == "entra" and env.get(PLATFORM_AUTH_SETTING, "").strip().lower() != "true":
            raise ValueError(f"{MODE_SETTING}=entra needs App Service authentication in front "
                             f"of the app ({PLATFORM_AUTH_SETTING} is not True); enable it "
                             "(the Bicep's authClientId) or use function keys")
        return cls(mode, tenant_claim=env.get(TENANT_CLAIM_SETTING, "").strip() or "tenants")

    @property
    def host_checks_keys(self) -> bool:
        """Whether the Functions host must demand a function key (auth level FUNCTION)."""
        return self.mode == "function-key"

    def public(self) -> dict[str, str]:
        """What the dashboard needs to know to sign its calls (no secrets)."""
        credential = {"open": "none", "token": "bearer", "function-key": "function-key",
                      "entra": "session"}[self.mode]
        return {"mode": self.mode, "credential": credential}

    def authenticate(self, headers: Mapping[str, str]) -> Principal:
        """The caller behind these request headers; AccessDenied when there is none."""
        if self.mode == "open":
            return Principal("local", None, "open")
        if self.mode == "function-key":
            return Principal("function key", None, "function-key")
        if self.mode == "token":
            return self._bearer(headers.get("authorization", ""))
        return self._entra(headers.get(PRINCIPAL_HEADER, ""))

    def _bearer(self, header: str) -> Principal:
        challenge = {"WWW-Authenticate": 'Bearer realm="integration-monitoring"'}
        scheme, _, given = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise AccessDenied(401, "unauthenticated",
                               "send the admin API token as 'Authorization: Bearer <token>' "
                               f"(the server's {TOKEN_SETTING})", headers=challenge)
        if not hmac.compare_digest(given.strip().encode(), self.token.encode()):
            raise AccessDenied(401, "wrong_token", "the bearer token is not the admin API token",
                               headers={"WWW-Authenticate": challenge["WWW-Authenticate"]
                                        + ', error="invalid_token"'})
        return Principal("token", None, "token")

    def _entra(self, header: str) -> Principal:
        if not header:
            raise AccessDenied(401, "unauthenticated",
                               "sign in: this app requires Entra ID (App Service authentication)")
        claims, name_type, role_type = _client_principal(header)
        roles = set(_values(claims, (role_type, *_ROLE_CLAIMS)))
        name = next(iter(_values(claims, (name_type, *_NAME_CLAIMS))), "") or "signed-in user"
        if ADMIN_ROLE in roles:
            return Principal(name, None, "entra")
        if READER_ROLE not in roles:
            raise AccessDenied(403, "no_role",
                               f"{name} has neither the {ADMIN_ROLE} nor the {READER_ROLE} app "
                               "role; ask an administrator to assign one")
        tenants = frozenset(t for value in _values(claims, (self.tenant_claim,))
                            for t in _tenant_list(value))
        if not tenants:
            raise AccessDenied(403, "no_tenants",
                               f"{name} is a {READER_ROLE} but the '{self.tenant_claim}' claim "
                               "names no tenant")
        return Principal(name, tenants, "entra")


def scope(filters: Filters, principal: Principal) -> Filters:
    """The filters narrowed to what `principal` may read; asking for another tenant is 403."""
    if principal.tenants is None:
        return replace(filters, tenants=None)
    if filters.tenant_id and filters.tenant_id not in principal.tenants:
        raise AccessDenied(403, "tenant_not_allowed",
                           f"you may read tenants {', '.join(sorted(principal.tenants))} only",
                           "tenantId")
    return replace(filters, tenants=tuple(sorted(principal.tenants)))


def _client_principal(header: str) -> tuple[list[dict[str, Any]], str, str]:
    bad = AccessDenied(401, "bad_principal", "the X-MS-CLIENT-PRINCIPAL header is not valid")
    if len(header) > _MAX_PRINCIPAL:
        raise bad
    try:
        body = json.loads(base64.b64decode(header, validate=False))
    except (binascii.Error, ValueError, RecursionError):
        raise bad from None
    claims = body.get("claims") if isinstance(body, dict) else None
    if not isinstance(claims, list):
        raise bad
    claims = [c for c in claims if isinstance(c, dict)
              and isinstance(c.get("typ"), str) and isinstance(c.get("val"), str)]
    name_type = body.get("name_typ") if isinstance(body.get("name_typ"), str) else "name"
    role_type = body.get("role_typ") if isinstance(body.get("role_typ"), str) else "roles"
    return claims, name_type, role_type


def _tenant_list(value: str) -> list[str]:
    """Tenant ids in one claim value (separated by commas, semicolons or spaces); a value
    with anything that is not an id counts for nothing rather than for part of it."""
    ids = [t for t in re.split(r"[\s,;]+", value.strip()) if t]
    return ids if all(_TENANT_ID.fullmatch(t) for t in ids) else []


def _values(claims: list[dict[str, Any]], types: tuple[str, ...]) -> list[str]:
    wanted = {t.lower() for t in types}
    return [c["val"] for c in claims if c["typ"].lower() in wanted]
