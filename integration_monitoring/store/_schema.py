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


def create_statements() -> list[str]:
    """CREATE TABLE IF NOT EXISTS for every table."""
    statements = []
    for table, columns in TABLES.items():
        body = ", ".join(f'"{name}" {KQL_TO_DUCKDB[kind]}' for name, kind in columns)
        statements.append(f'CREATE TABLE IF NOT EXISTS "{table}" ({body})')
    return statements
