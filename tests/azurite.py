"""Azurite, Microsoft's Azure Storage emulator, serving the Table service for the tests.

    with Azurite() as azurite:
        client = TableClient(azurite.endpoint, "alertoutbox",
                             credential=azurite.token_credential(), **azurite.client_options)

`tests/microsoft/node_modules/.bin/azurite-table` (npm package `azurite`, installed by `npm ci`
in tests/microsoft, which `make test` runs) is started on a free loopback port with its data in
memory, and stopped with its whole process group when the block ends. It speaks HTTPS with a
throwaway certificate authority (`trustme`; clients pass `client_options`, i.e.
`connection_verify=ca_path`) and accepts, besides the emulator's well-known account key, bearer
tokens (`--oauth basic`: Azurite checks a token's audience, issuer and lifetime, not its
signature). So a client can reach it as the app reaches Azure, with a token for
`https://storage.azure.com/.default` (`token_credential`), or with the account key
(`key_credential`, `connection_string`), or with a SAS limited to one table (`sas_credential`).
Nothing is sent anywhere else: telemetry is off.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import httpx
import trustme
from azure.core.credentials import (
    AccessToken,
    AccessTokenInfo,
    AzureNamedKeyCredential,
    AzureSasCredential,
)
from azure.data.tables import TableSasPermissions, TableServiceClient, generate_table_sas

from .helpers import free_port

FOLDER = Path(__file__).resolve().parent / "microsoft"
PROGRAM = FOLDER / "node_modules" / ".bin" / "azurite-table"
#: The emulator's well-known development account (documented, the same on every machine).
ACCOUNT = "devstoreaccount1"
ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/"
               "KBHBeksoGMGw==")
#: An issuer Azurite accepts (Microsoft Entra ID's token service) for a made-up tenant.
ISSUER = "https://sts.windows.net/00000000-0000-4000-8000-000000000001/"


class AzuriteMissingError(RuntimeError):
    """Azurite is not installed where the tests look for it."""


class Azurite:
    """One Azurite Table service on 127.0.0.1, for as long as the `with` block lasts."""

    def __init__(self, start_timeout: float = 30.0) -> None:
        self.start_timeout = start_timeout
        self.port = 0
        self.endpoint = ""  # https://127.0.0.1:<port>/devstoreaccount1
        self.ca_path = ""
        self._dir: str | None = None
        self._process: subprocess.Popen[bytes] | None = None

    # -- what clients need ---------------------------------------------------------------

    @property
    def client_options(self) -> dict[str, Any]:
        """Keyword options for an azure-data-tables client: trust the test CA."""
        return {"connection_verify": self.ca_path}

    @property
    def key_credential(self) -> AzureNamedKeyCredential:
        return AzureNamedKeyCredential(ACCOUNT, ACCOUNT_KEY)

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=https;AccountName={ACCOUNT};"
                f"AccountKey={ACCOUNT_KEY};TableEndpoint={self.endpoint};")

    def token_credential(self) -> EmulatorTokenCredential:
        """A TokenCredential whose tokens Azurite accepts for the scopes they are asked for."""
        return EmulatorTokenCredential()

    def sas_credential(self, table: str, **permissions: bool) -> AzureSasCredential:
        """A SAS for `table` alone (read, add, update, delete unless told otherwise): the
        holder may work with that table's entities but not create or delete tables."""
        allowed = {"read": True, "add": True, "update": True, "delete": True, **permissions}
        return AzureSasCredential(generate_table_sas(
            self.key_credential, table, permission=TableSasPermissions(**allowed),
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)))

    def service(self) -> TableServiceClient:
        """A TableServiceClient with the account key, to look at what the code under test
        stored (the test's own view, not the code's)."""
        return TableServiceClient.from_connection_string(self.connection_string,
                                                         **self.client_options)

    # -- the process ---------------------------------------------------------------------

    def start(self) -> Self:
        if not PROGRAM.exists():
            raise AzuriteMissingError(
                f"Azurite is not installed ({PROGRAM.relative_to(FOLDER.parent.parent)} is "
                f"missing): run `npm ci` in {FOLDER} (`make test` does)")
        self._dir = tempfile.mkdtemp(prefix="azurite-")
        cert, key = self._certificate(Path(self._dir))
        try:
            for _ in range(3):  # the free port may be taken before Azurite binds it
                self.port = free_port()
                self.endpoint = f"https://127.0.0.1:{self.port}/{ACCOUNT}"
                if self._launch(cert, key):
                    return self
                self._stop_process()
            raise RuntimeError(f"Azurite did not start: {self._log()}")
        except BaseException:
            self.stop()
            raise

    def _certificate(self, folder: Path) -> tuple[Path, Path]:
        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1")
        self.ca_path = str(folder / "ca.pem")
        ca.cert_pem.write_to_path(self.ca_path)
        cert, key = folder / "cert.pem", folder / "key.pem"
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        return cert, key

    def _launch(self, cert: Path, key: Path) -> bool:
        """Start Azurite and wait until it answers; False if it exited (port taken)."""
        assert self._dir is not None
        log = Path(self._dir) / "azurite.log"
        with log.open("wb") as out:
            try:
                self._process = subprocess.Popen(
                    [str(PROGRAM), "--tableHost", "127.0.0.1", "--tablePort", str(self.port),
                     "--inMemoryPersistence", "--silent", "--disableTelemetry",
                     "--cert", str(cert), "--key", str(key),
                     "--oauth", "basic"],
                    cwd=self._dir, stdin=subprocess.DEVNULL, stdout=out,
                    stderr=subprocess.STDOUT, start_new_session=True)
            except OSError as error:  # no `node` on PATH, most likely
                raise AzuriteMissingError(
                    f"Azurite could not be run ({error}): it needs Node.js and `npm ci` in "
                    f"{FOLDER}") from error
        trust = ssl.create_default_context(cafile=self.ca_path)
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            try:  # any answer will do: unauthenticated, it is a 403
                httpx.get(f"{self.endpoint}/Tables", verify=trust, timeout=1)
                return True
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError(f"Azurite did not answer within {self.start_timeout:g} s: "
                           f"{self._log()}")

    def _log(self) -> str:
        if self._dir is None:
            return ""
        path = Path(self._dir) / "azurite.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def _stop_process(self) -> None:
        """SIGTERM to Azurite's process group (its own session), SIGKILL if it lingers."""
        process, self._process = self._process, None
        if process is None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
            try:
                process.wait(10)
                return
            except subprocess.TimeoutExpired:
                continue

    def stop(self) -> None:
        self._stop_process()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class EmulatorTokenCredential:
    """Hands out unsigned JWTs shaped like Entra ID's: audience from the scope asked for
    (`https://storage.azure.com/.default` → `https://storage.azure.com`), an Entra issuer and a
    one-hour lifetime. Azurite refuses a token for another audience, so a client that asked for
    the wrong scope fails as it would in Azure. `scopes` records every request."""

    def __init__(self) -> None:
        self.scopes: list[tuple[str, ...]] = []

    def _token(self, scopes: tuple[str, ...]) -> tuple[str, int]:
        self.scopes.append(scopes)
        now = int(time.time())
        claims = {"aud": scopes[0].removesuffix("/.default") if scopes else "",
                  "iss": ISSUER, "iat": now, "nbf": now - 60, "exp": now + 3600,
                  "oid": "00000000-0000-4000-8000-000000000002"}
        return f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.", now + 3600

    def get_token(self, *scopes: str, claims: str | None = None, tenant_id: str | None = None,
                  enable_cae: bool = False, **kwargs: Any) -> AccessToken:
        return AccessToken(*self._token(scopes))

    def get_token_info(self, *scopes: str, options: Any = None) -> AccessTokenInfo:
        return AccessTokenInfo(*self._token(scopes))

    def close(self) -> None:
        pass


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


def running_azurite() -> Iterator[Azurite]:
    """The body of a pytest fixture: Azurite for the fixture's scope, or the test fails with
    what to do when Azurite is not installed (no skipping: `make test` installs it)."""
    import pytest

    emulator = Azurite()
    try:
        emulator.start()
    except AzuriteMissingError as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield emulator
    finally:
        emulator.stop()
