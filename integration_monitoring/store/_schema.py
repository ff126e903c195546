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

_CLIENT = [
    ("SyntheticSource", "string"), ("SessionId", "string"), ("UserId", "string"),
    ("UserAuthenticatedId", "string"), ("UserAccountId", "string"), ("AppVersion", "string"),
    ("AppRoleName", "string"), ("AppRoleInstance", "string"), ("ClientType", "string"),
    ("ClientModel", "string"), ("ClientOS", "string"), ("ClientIP", "string"),
    ("ClientCity", "string"), ("ClientStateOrProvince", "string"),
    ("ClientCountryOrRegion", "string"), ("ClientBrowser", "string"),
]

TABLES: dict[str, list[tuple[str, str]]] = {
    "AppTraces": [
        ("TenantId", "string"), ("TimeGenerated", "datetime"), ("Message", "string"),
        ("SeverityLevel", "int"), ("Properties", "dynamic"), ("Measurements", "dynamic"),
        ("OperationName", "string"), ("OperationId", "string"), ("ParentId", "string"),
        *_CLIENT,
        ("ResourceGUID", "string"), ("IKey", "string"), ("SDKVersion", "string"),
        ("ItemCount", "int"), ("ReferencedItemId", "string"), ("ReferencedType", "string"),
        ("SourceSystem", "string"), ("Type", "string"), ("_ResourceId", "string"),
    ],
    "AppMetrics": [
        ("TenantId", "string"), ("TimeGenerated", "datetime"), ("Name", "string"),
        ("Sum", "real"), ("Min", "real"), ("Max", "real"), ("ItemCount", "int"),
        ("Properties", "dynamic"),
        *_CLIENT,
        ("OperationName", "string"), ("OperationId", "string"), ("ParentId", "string"),
        ("ResourceGUID", "string"), ("IKey", "string"), ("SDKVersion", "string"),
        ("SourceSystem", "string"), ("Type", "string"), ("_ResourceId", "string"),
    ],
}


def create_statements() -> list[str]:
    """CREATE TABLE IF NOT EXISTS for every table, plus an index on TimeGenerated."""
    statements = []
    for table, columns in TABLES.items():
        body = ", ".join(f'"{name}" {KQL_TO_DUCKDB[kind]}' for name, kind in columns)
        statements.append(f'CREATE TABLE IF NOT EXISTS "{table}" ({body})')
    return statements
