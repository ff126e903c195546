"""Microsoft's Kusto.Language, as Log Analytics judges a query, for the tests.

    with KustoAnalyser() as kusto:
        for error in kusto.errors("AppTraces | summarize maxif(x, true)"):
            print(error.describe(text))

`tests/microsoft/kusto-analyse.js` runs the npm package `@kusto/language-service-next` (the
parser and semantic analyser behind Log Analytics, Azure Data Explorer and their editors) in
one long-lived Node process. It is given the workspace's tables as `WORKSPACE_TABLES` declares
them. Kusto.Language knows the engine's dialect; the functions that Azure Monitor Logs
documents as unsupported pass it, so `LOG_ANALYTICS_UNSUPPORTED` adds them as errors.
"""

from __future__ import annotations

import atexit
import json
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

FOLDER = Path(__file__).resolve().parent / "microsoft"
PROGRAM = FOLDER / "kusto-analyse.js"

_IDENTITY = [("TenantId", "string"), ("TimeGenerated", "datetime")]
_OPERATION = [("OperationName", "string"), ("OperationId", "string"), ("ParentId", "string")]
_CLIENT = [(name, "string") for name in (
    "SyntheticSource", "SessionId", "UserId", "UserAuthenticatedId", "UserAccountId",
    "AppVersion", "AppRoleName", "AppRoleInstance", "ClientType", "ClientModel", "ClientOS",
    "ClientIP", "ClientCity", "ClientStateOrProvince", "ClientCountryOrRegion",
    "ClientBrowser", "ResourceGUID", "IKey", "SDKVersion")]
_STANDARD = [("SourceSystem", "string"), ("Type", "string"), ("_ResourceId", "string"),
             ("_BilledSize", "real"), ("_IsBillable", "string"),
             ("_SubscriptionId", "string")]

#: The workspace tables any of our KQL reads, with the columns and types of the Azure Monitor
#: table reference (https://learn.microsoft.com/azure/azure-monitor/reference/tables/apptraces
#: and .../appmetrics), standard columns included. The local store must hold the same
#: (`test_kusto.py` checks it against `store/_schema.py`).
WORKSPACE_TABLES: dict[str, list[tuple[str, str]]] = {
    "AppTraces": [
        *_IDENTITY, ("Message", "string"), ("SeverityLevel", "int"),
        ("Properties", "dynamic"), ("Measurements", "dynamic"), *_OPERATION, *_CLIENT,
        ("ItemCount", "int"), ("ReferencedItemId", "string"), ("ReferencedType", "string"),
        *_STANDARD,
    ],
    "AppMetrics": [
        *_IDENTITY, ("Name", "string"), ("ItemCount", "int"), ("Sum", "real"),
        ("Min", "real"), ("Max", "real"), ("Properties", "dynamic"), *_OPERATION, *_CLIENT,
        *_STANDARD,
    ],
}

#: Functions the engine knows and Azure Monitor Logs refuses: "Language differences" in
#: https://learn.microsoft.com/azure/azure-monitor/logs/log-query-overview lists these as
#: not supported (cross-cluster and cursor functions, principals, extents, ingestion time).
LOG_ANALYTICS_UNSUPPORTED = frozenset({
    "cluster", "database", "cursor_after", "cursor_before_or_at", "cursor_current",
    "current_cursor", "current_principal", "current_principal_details",
    "current_principal_is_member_of", "extent_id", "extent_tags", "ingestion_time",
})


@dataclass(frozen=True)
class Diagnostic:
    severity: str
    code: str
    message: str
    start: int
    length: int
    syntax: bool = False  # found by the parser, not the semantic analysis

    def describe(self, text: str) -> str:
        """`line N: CODE message (near '...')`, for a failing test's message."""
        line = text.count("\n", 0, self.start) + 1
        near = text[self.start:self.start + min(self.length, 60)]
        return f"line {line}: {self.code} {self.message} (near {near!r})"


class KustoAnalyser:
    """One Node process running Kusto.Language; safe to share between threads."""

    def __init__(self, tables: dict[str, list[tuple[str, str]]] | None = None) -> None:
        if not (FOLDER / "node_modules" / "@kusto").is_dir():
            raise RuntimeError(f"Kusto.Language is not installed: run `npm ci` in {FOLDER} "
                               "(make test does)")
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as schema:
            json.dump(tables or WORKSPACE_TABLES, schema)
        self._schema = Path(schema.name)
        self._process = subprocess.Popen(
            ["node", str(PROGRAM), str(self._schema)], cwd=FOLDER, text=True,
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, encoding="utf-8", bufsize=1)
        self._lock = threading.Lock()
        self._known: dict[str, list[Diagnostic]] = {}  # the loopback sees texts again and again

    def diagnostics(self, text: str) -> list[Diagnostic]:
        """Everything Kusto.Language reports, plus Log Analytics' own refusals."""
        with self._lock:
            if text in self._known:
                return self._known[text]
            self._process.stdin.write(json.dumps({"text": text}) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise RuntimeError("the Kusto.Language process ended")
        answer = json.loads(line)
        if "failure" in answer:
            raise RuntimeError(f"Kusto.Language failed: {answer['failure']}")
        found = [Diagnostic(**d) for d in answer["diagnostics"]]
        found += [Diagnostic("Error", "LogAnalytics", f"{call['name']}() is not supported in "
                             "Azure Monitor Logs", call["start"], call["length"])
                  for call in answer["calls"] if call["name"] in LOG_ANALYTICS_UNSUPPORTED]
        with self._lock:
            if len(self._known) > 4096:
                self._known.clear()
            self._known[text] = found
        return found

    def errors(self, text: str) -> list[Diagnostic]:
        return [d for d in self.diagnostics(text) if d.severity == "Error"]

    def close(self) -> None:
        if self._process.poll() is None:
            self._process.stdin.close()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._process.kill()
        self._schema.unlink(missing_ok=True)

    def __enter__(self) -> KustoAnalyser:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: KustoAnalyser | None = None
_shared_lock = threading.Lock()


def shared_analyser() -> KustoAnalyser:
    """One analyser per test process, started on first use and closed at exit."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = KustoAnalyser()
            atexit.register(_shared.close)
        return _shared
