"""Column lists of the Log Analytics tables Application Insights writes, as DuckDB DDL.

Names, order and KQL types follow the Azure Monitor table reference for `AppTraces` and
`AppMetrics`; `dynamic` is DuckDB's JSON, `datetime` a UTC TIMESTAMP.
"""

from __future__ import annotations

KQL_TO_DUCKDB = {
    "string": "VARCHAR",
    "datetime": "TIMESTAMP",
    "int": "INTEGER",
    "long": "BIGINT",
    "real": "DOUBLE",
    "dynamic": "JSON",
    "bool": "BOOLEAN",
}

_OPERATION = [("OperationName", "string"), ("OperationId", "string"), ("ParentId", "string")]
_CLIENT = [
    ("SyntheticSource", "string"), ("SessionId", "string"), ("UserId", "string"),
    ("UserAuthenticatedId", "string"), ("UserAccountId", "string"), ("AppVersion", "string"),
    ("AppRoleName", "string"), ("AppRoleInstance", "string"), ("ClientType", "string"),
    ("ClientModel", "string"), ("ClientOS", "string"), ("ClientIP", "string"),
    ("ClientCity", "string"), ("ClientStateOrProvince", "string"),
    ("ClientCountryOrRegion", "string"), ("ClientBrowser", "string"),
    ("ResourceGUID", "string"), ("IKey", "string"), ("SDKVersion", "string"),
]
#: Columns every workspace table has.
_STANDARD = [
    ("SourceSystem", "string"), ("Type", "string"), ("_ResourceId", "string"),
    ("_BilledSize", "real"), ("_IsBillable", "string"), ("_SubscriptionId", "string"),
]

#: In the tables' schema order (the reference pages now list them alphabetically).
TABLES: dict[str, list[tuple[str, str]]] = {
    "AppTraces": [
        ("TenantId", "string"), ("TimeGenerated", "datetime"), ("Message", "string"),
        ("SeverityLevel", "int"), ("Properties", "dynamic"), ("Measurements", "dynamic"),
        *_OPERATION, *_CLIENT,
        ("ItemCount", "int"), ("ReferencedItemId", "string"), ("ReferencedType", "string"),
        *_STANDARD,
    ],
    "AppMetrics": [
        ("TenantId", "string"), ("TimeGenerated", "datetime"), ("Name", "string"),
        ("ItemCount", "int"), ("Sum", "real"), ("Min", "real"), ("Max", "real"),
        ("Properties", "dynamic"), *_OPERATION, *_CLIENT, *_STANDARD,
    ],
}


#: `Properties` keys the admin questions read on most rows. The file keeps each one's value
#: beside the JSON, in a column named by `kept()`, written when the row is, so a question
#: reads a column instead of parsing every row's JSON again (`_store.py` rewrites its SQL).
#: Log Analytics has no such columns and needs none: each table shows only its own columns.
KEPT_KEYS = (
    "tenantId", "integrationId", "adapterType", "entity", "duration", "recordCount", "error",
    "errorType", "status", "reason", "syncIntervalMinutes", "taskId", "syncType", "attempt",
    "recordsCreated", "recordsUpdated", "recordsFailed", "alertId", "channel", "condition",
    "queued", "tenant_id", "integration_id", "adapter_type", "queue",
    # the daily restatement's (read for every lifecycle row, successful syncs included)
    "restatedAt", "statusChangedAt", "lastSuccessfulSync", "lastSeenAt",
)
#: The keys each table keeps: a metric's labels are few, and its rows the most numerous.
KEPT: dict[str, tuple[str, ...]] = {
    "AppTraces": KEPT_KEYS,
    "AppMetrics": ("tenant_id", "integration_id", "adapter_type", "entity", "queue", "status"),
}


def kept(key: str) -> str:
    """The column that keeps `Properties.<key>`."""
    return f"_kept_{key}"


def text(key: str) -> str:
    """The column that keeps `tostring(Properties.<key>)`: the kept value as text."""
    return f"_text_{key}"


def physical(table: str) -> str:
    """The table that holds a workspace table's rows and kept keys; `table` is a view of it
    with the workspace's columns only."""
    return f"_{table}"


def create_statements() -> list[str]:
    """CREATE TABLE / VIEW IF NOT EXISTS for every table."""
    statements = []
    for table, columns in TABLES.items():
        body = ", ".join([*(f'"{name}" {KQL_TO_DUCKDB[kind]}' for name, kind in columns),
                          *(f'"{kept(key)}" JSON' for key in KEPT[table]),
                          *(f'"{text(key)}" VARCHAR' for key in KEPT[table])])
        names = ", ".join(f'"{name}"' for name, _ in columns)
        statements.append(f'CREATE TABLE IF NOT EXISTS "{physical(table)}" ({body})')
        statements.append(f'CREATE VIEW IF NOT EXISTS "{table}" AS SELECT {names} '
                          f'FROM "{physical(table)}"')
    return statements
