"""The whole stack in infra/: contracts between the Bicep, the Python code and the KQL files.

No Bicep compiler runs here (tests/test_bicep.py parses every file with tree-sitter-bicep and
pins API versions); these tests hold the deployment to what the code needs:

- every app setting the Python code reads is set by the Function App module, except the
  local-only ones listed below with their reason;
- every rule in integration_monitoring/alerts/rules.json becomes a rule through the module's
  loop and reaches an action group that main.bicep deploys;
- secrets travel only through @secure() parameters, come from the environment in
  main.bicepparam, and never reach an output;
- the workbook's queries are the admin API's KQL files, loaded with loadTextContent(), and run
  unchanged after the workbook's prelude: on the local store they give the admin API's rows;
- main.bicep outputs the dashboard and relay URLs; azure.yaml deploys the app with azd.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest
import tree_sitter
import tree_sitter_bicep

from integration_monitoring import queries
from integration_monitoring.admin import _filters
from integration_monitoring.alerts._relay import PATH as RELAY_PATH
from integration_monitoring.schedules import TIMERS
from integration_monitoring.store import TelemetryStore

from .helpers import ROOT
from .test_bicep import (
    BICEP_FILES,
    INFRA,
    RULES,
    declarations,
    declared_name,
    object_properties,
    params,
    problems,
    resource_type,
    string_value,
    text,
    walk,
)

MAIN = INFRA / "main.bicep"
PARAMS_FILE = INFRA / "main.bicepparam"
MODULES = INFRA / "modules"
FUNCTION_APP = MODULES / "function-app.bicep"
WORKBOOK = MODULES / "workbook.bicep"
WORKBOOK_LAYOUT = INFRA / "workbook" / "dashboard.json"
ALERT_RULES_MODULE = MODULES / "alert-rules.bicep"
ACTION_GROUPS_MODULE = MODULES / "action-groups.bicep"
AZURE_YAML = ROOT / "azure.yaml"
DEPLOY_DOC = ROOT / "README.md"  # its "Deploying to Azure" section
QUERIES = ROOT / "integration_monitoring" / "queries"
DASHBOARD = "integration_monitoring/admin/dashboard"

# Settings the code reads that modules/function-app.bicep does not set, and why. Everything else
# the code reads must be set there.
LOCAL_ONLY = {
    "TELEMETRY_DB": (
        "path of the local DuckDB store, never opened when Application Insights is configured"
    ),
    "ADMIN_API_TOKEN": "the local server's bearer token; on Azure, function keys or Entra ID",
    "WEBSITE_AUTH_ENABLED": "set by the platform itself when App Service authentication is on",
    "WEBSITE_HOSTNAME": "set by the platform itself: the app's default host name",
    "TELEMETRY_RETENTION_DAYS": (
        "clean-up of the local store; in Azure the workspace's retention (logRetentionDays) applies"
    ),
}
# Settings that must not be set in Azure: the distro is configured by configure_telemetry()
# (README, "In an Azure Functions app"), and Flex Consumption rejects the settings it moved into
# functionAppConfig.
FORBIDDEN_SETTINGS = {
    "PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "AzureWebJobsStorage",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
}
# App settings that hold secrets: each must come from a @secure() parameter.
SECRET_SETTINGS = {
    "ALERT_RELAY_SECRET",
    "SLACK_WEBHOOK_URL",
    "PAGERDUTY_ROUTING_KEY",
    "MICROSOFT_PROVIDER_AUTHENTICATION_SECRET",
}
# main.bicep's parameters that carry secrets.
SECRET_PARAMS = {
    "relaySecret",
    "relayFunctionKey",
    "slackWebhookUrl",
    "pagerDutyRoutingKey",
    "authClientSecret",
}

# Built-in role ids (Microsoft Learn, "Azure built-in roles").
ROLES = {
    "Log Analytics Reader": "73c42c96-874c-492b-b04d-ab87d138a893",
    "Storage Blob Data Owner": "b7e6dc6d-f1e8-4753-8033-0f276bb0955b",
    "Storage Table Data Contributor": "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3",
    "Monitoring Metrics Publisher": "3913510d-42f4-4e42-8a64-420c390055eb",
    "Azure Service Bus Data Owner": "090c5cfd-751d-490a-894a-3ce6f1109419",
    "Monitoring Contributor": "749f88d5-cbae-40b8-bcfc-e573ddc772fa",
}


# --- Parsing ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bicep() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


def root_of(bicep: tree_sitter.Parser, path: Path):
    return bicep.parse(path.read_bytes()).root_node


def variables(root) -> dict[str, Any]:
    return {
        declared_name(v): v.named_children[-1] for v in declarations(root, "variable_declaration")
    }


def outputs(root) -> dict[str, Any]:
    return {
        declared_name(o): o.named_children[-1] for o in declarations(root, "output_declaration")
    }


def modules(root) -> dict[str, tuple[Path, Any]]:
    """Module symbol -> (its file, its body object)."""
    found = {}
    for module in declarations(root, "module_declaration"):
        path = string_value(module.named_children[1])
        body = next(child for child in walk(module) if child.type == "object")
        found[declared_name(module)] = ((MAIN.parent / path).resolve(), body)
    return found


def properties(node) -> dict[str, Any]:
    """The direct `key: value` pairs of an object node."""
    return {
        (string_value(p.named_children[0]) or text(p.named_children[0])): p.named_children[-1]
        for p in node.named_children
        if p.type == "object_property"
    }


def multiline_string(node) -> str:
    """The value of a '''...''' string (Bicep drops a newline right after the opening)."""
    raw = text(node)
    assert raw.startswith("'''") and raw.endswith("'''"), raw[:20]
    value = raw[3:-3]
    return value[1:] if value.startswith("\n") else value


# --- Settings the code reads --------------------------------------------------------------------

_READS = [
    re.compile(r"""\bos\.(?:environ\.get|getenv)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""),
    re.compile(r"""\bos\.environ\[\s*["']([A-Za-z_][A-Za-z0-9_]*)["']\s*\]"""),
    re.compile(r"""\benv\.get\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""),
    re.compile(r"""\b_(?:flag|int)\(\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""),
]
# A read through a module constant: os.environ.get(SECRET_SETTING, ...).
_READ_BY_NAME = re.compile(r"\b(?:os\.environ\.get|os\.getenv|env\.get)\(\s*([A-Z][A-Z0-9_]*)\b")
_CONSTANT = r"""^{name}\s*(?::[^=]+)?=\s*["']([A-Za-z_][A-Za-z0-9_]*)["']"""


def code_settings() -> dict[str, set[str]]:
    """App setting name -> the files that read it, from the app's Python code."""
    files = [
        ROOT / "function_app.py",
        *sorted((ROOT / "functions").rglob("*.py")),
        *sorted((ROOT / "integration_monitoring").rglob("*.py")),
    ]
    found: dict[str, set[str]] = {}
    for path in files:
        source = path.read_text()
        names = {m.group(1) for pattern in _READS for m in pattern.finditer(source)}
        for constant in _READ_BY_NAME.findall(source):
            match = re.search(_CONSTANT.format(name=constant), source, re.MULTILINE)
            assert match, f"{path.relative_to(ROOT)}: cannot resolve setting name {constant}"
            names.add(match.group(1))
        for name in names:
            found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    # Timer schedules are read through TimerSpec.setting (the %SETTING% binding expression).
    for timer in TIMERS:
        found.setdefault(timer.setting, set()).add("integration_monitoring/schedules.py")
    return found


def test_the_settings_scan_finds_what_the_code_reads():
    """A control: settings read in each known way are found (so an empty diff means something)."""
    found = code_settings()
    assert {
        "APPLICATIONINSIGHTS_CONNECTION_STRING",  # os.environ.get
        "SERVICEBUS_QUEUES",  # env.get
        "TELEMETRY_STDOUT",  # _flag
        "TELEMETRY_CARDINALITY_LIMIT",  # _int
        "ALERT_RELAY_SECRET",  # os.environ.get(SECRET_SETTING)
        "QUEUE_SAMPLE_SCHEDULE",  # TimerSpec.setting
    } <= set(found)


def function_app_settings(bicep) -> dict[str, Any]:
    """Every app setting the Function App module sets: name -> value node."""
    root = root_of(bicep, FUNCTION_APP)
    found: dict[str, Any] = {}
    for name, value in variables(root).items():
        if name.endswith("Settings") and name != "appSettings":
            for node in walk(value):
                if node.type == "object":
                    found.update(properties(node))
    return found


def test_every_setting_the_code_reads_is_set_by_the_function_app(bicep):
    read = code_settings()
    assert set(LOCAL_ONLY) <= set(read), "LOCAL_ONLY lists a setting the code no longer reads"
    settings = function_app_settings(bicep)
    missing = {
        name: sorted(files)
        for name, files in read.items()
        if name not in settings and name not in LOCAL_ONLY
    }
    assert not missing, f"set in modules/function-app.bicep, or list as local-only: {missing}"
    assert not set(LOCAL_ONLY) & set(settings), "a local-only setting is set in Azure"


def test_the_code_settings_are_set_unconditionally(bicep):
    """The settings the code reads live in codeSettings, which the app always gets."""
    variables_ = variables(root_of(bicep, FUNCTION_APP))
    code = properties(variables_["codeSettings"])
    assert set(code_settings()) - set(LOCAL_ONLY) <= set(code)
    union = variables_["appSettings"]
    assert re.fullmatch(r"union\(\s*codeSettings\s*,.*\)", text(union), re.DOTALL), text(union)
    # They are the site's `appsettings` config, whole (a loop over them would not compile).
    root = root_of(bicep, FUNCTION_APP)
    [config] = [r for r in declarations(root, "resource_declaration")
                if declared_name(r) == "settings"]
    body = properties(next(child for child in walk(config) if child.type == "object"))
    assert "'Microsoft.Web/sites/config@" in text(config)
    assert (text(body["parent"]), text(body["name"]), text(body["properties"])) == (
        "site", "'appsettings'", "appSettings")


def test_the_function_app_sets_no_forbidden_setting(bicep):
    assert not set(function_app_settings(bicep)) & FORBIDDEN_SETTINGS
    for path in BICEP_FILES:  # no module sets them another way either
        keys = {
            text(n.named_children[0])
            for n in walk(root_of(bicep, path))
            if n.type == "object_property"
        }
        assert not keys & FORBIDDEN_SETTINGS, path.name


def test_secret_settings_come_from_secure_parameters(bicep):
    settings = function_app_settings(bicep)
    decorators = params(root_of(bicep, FUNCTION_APP))
    for name in SECRET_SETTINGS:
        value = settings[name]
        assert value.type == "identifier", f"{name} = {text(value)}: not a parameter"
        assert "secure" in decorators[text(value)], f"{name} comes from an insecure parameter"


def test_the_host_uses_storage_and_services_by_identity(bicep):
    settings = function_app_settings(bicep)
    assert text(settings["AzureWebJobsStorage__credential"]) == "'managedidentity'"
    assert {
        "AzureWebJobsStorage__accountName",
        "AzureWebJobsStorage__clientId",
        "AZURE_CLIENT_ID",
    } <= set(settings)
    root = root_of(bicep, FUNCTION_APP)
    [deployment] = object_properties(root, "deployment")
    assert "'UserAssignedIdentity'" in text(deployment) and "'blobContainer'" in text(deployment)
    [runtime] = object_properties(root, "runtime")
    assert string_value(properties(runtime)["name"]) == "python"
    assert string_value(properties(runtime)["version"]) == "3.11"
    [sku] = object_properties(root, "sku")
    assert {k: string_value(v) for k, v in properties(sku).items()} == {
        "name": "FC1",
        "tier": "FlexConsumption",
    }
    storage = root_of(bicep, MODULES / "storage.bicep")
    assert [text(v) for v in object_properties(storage, "allowSharedKeyAccess")] == ["false"]


# --- Roles --------------------------------------------------------------------------------------


def role_ids(root) -> dict[str, str]:
    """Symbol -> role id, for variables holding role ids (`var x = '<guid>'`, `roles.x`)."""
    found = {}
    for name, value in variables(root).items():
        if value.type == "object":
            found.update({f"{name}.{key}": string_value(v) for key, v in properties(value).items()})
        else:
            found[name] = string_value(value)
    return {k: v for k, v in found.items() if v and re.fullmatch(r"[0-9a-f-]{36}", v)}


def role_assignments(bicep) -> list[tuple[str, str, str]]:
    """(file, type of the scope, role id) of every role assignment under infra/."""
    found = []
    for path in BICEP_FILES:
        root = root_of(bicep, path)
        for resource in declarations(root, "resource_declaration"):
            if (
                not text(resource.named_children[1])
                .lower()
                .startswith("'microsoft.authorization/roleassignments@")
            ):
                continue
            body = next(child for child in walk(resource) if child.type == "object")
            props = properties(body)
            # No scope: the deployment's own resource group.
            scope = text(props["scope"]) if "scope" in props else "resourceGroup()"
            definition = text(properties(props["properties"])["roleDefinitionId"])
            match = re.fullmatch(
                r"subscriptionResourceId\('Microsoft\.Authorization/"
                r"roleDefinitions',\s*([\w.]+)\)",
                definition,
            )
            assert match, f"{path.name}: {definition}"
            role = match.group(1)
            # name: guid(<scope>.id, principalId, <role>), so redeploying finds the same one.
            name = re.sub(r"\s+", "", text(props["name"]))
            assert name == f"guid({scope}.id,principalId,{role})", f"{path.name}: {name}"
            scoped = {
                declared_name(r): resource_type(r).partition("@")[0].lower()
                for r in declarations(root, "resource_declaration")
            } | {"resourceGroup()": "microsoft.resources/resourcegroups"}
            found.append((path.name, scoped[scope.removesuffix("[i]")], role_ids(root)[role]))
    return found


def test_the_identity_gets_the_roles_it_needs_and_no_more(bicep):
    assignments = {(scope, role) for _, scope, role in role_assignments(bicep)}
    assert assignments == {
        ("microsoft.operationalinsights/workspaces", ROLES["Log Analytics Reader"]),
        ("microsoft.storage/storageaccounts", ROLES["Storage Blob Data Owner"]),
        # the alert relay's outbox, on its table only
        (
            "microsoft.storage/storageaccounts/tableservices/tables",
            ROLES["Storage Table Data Contributor"],
        ),
        ("microsoft.insights/components", ROLES["Monitoring Metrics Publisher"]),
        # queue runtime properties need Manage: Data Owner, on each sampled queue only
        ("microsoft.servicebus/namespaces/queues", ROLES["Azure Service Bus Data Owner"]),
        # silences as alert processing rules, which are resources of the group itself
        ("microsoft.resources/resourcegroups", ROLES["Monitoring Contributor"]),
    }


def test_the_app_starts_after_its_role_assignments(bicep):
    mods = modules(root_of(bicep, MAIN))
    _, app = mods["functionApp"]
    assert [
        text(n) for n in properties(app)["dependsOn"].named_children if n.type != "comment"
    ] == ["rbac"]
    # The Service Bus host name comes from the role module, so that one comes first too.
    assert "serviceBusRbac.outputs" in text(
        properties(properties(app)["params"])["serviceBusFullyQualifiedNamespace"]
    )


def test_the_alert_outbox_table_is_where_the_app_looks_and_only_it_is_writable(bicep):
    """The storage module creates the table the code names, the app's setting is that account's
    table endpoint, and the table role is scoped to that table, whose name main passes on."""
    from integration_monitoring.alerts._outbox import TABLE_NAME

    storage = root_of(bicep, MODULES / "storage.bicep")
    kinds = {
        declared_name(r): resource_type(r).partition("@")[0].lower()
        for r in declarations(storage, "resource_declaration")
    }
    assert kinds["outbox"] == "microsoft.storage/storageaccounts/tableservices/tables"
    [default] = [
        string_value(p.named_children[-1])
        for p in declarations(storage, "parameter_declaration")
        if declared_name(p) == "outboxTableName"
    ]
    assert default == TABLE_NAME
    assert text(outputs(storage)["outboxTableName"]) == "outbox.name"
    settings = function_app_settings(bicep)
    endpoint = text(settings["ALERT_OUTBOX_TABLE_ENDPOINT"])
    assert endpoint == "storage.properties.primaryEndpoints.table"
    assert text(settings["ALERT_REDELIVERY_HOURS"]) == "string(alertRedeliveryHours)"
    _, rbac = modules(root_of(bicep, MAIN))["rbac"]
    passed = properties(properties(rbac)["params"])["outboxTableName"]
    assert text(passed) == "storage.outputs.outboxTableName"
    scopes = {(file, scope) for file, scope, role in role_assignments(bicep)
              if role == ROLES["Storage Table Data Contributor"]}
    assert scopes == {("rbac.bicep", "microsoft.storage/storageaccounts/tableservices/tables")}


# --- Modules, parameters and secrets ------------------------------------------------------------


def test_infra_holds_the_whole_stack():
    expected = {
        MAIN,
        *(
            MODULES / f"{name}.bicep"
            for name in (
                "monitoring",
                "storage",
                "function-app",
                "servicebus",
                "rbac",
                "rbac-servicebus",
                "workbook",
                "action-groups",
                "alert-rules",
            )
        ),
    }
    assert expected <= set(BICEP_FILES)


def test_main_uses_every_module_and_only_existing_files(bicep):
    used = {path for path, _ in modules(root_of(bicep, MAIN)).values()}
    for path in used:
        assert path.is_file(), path
    assert used == {path.resolve() for path in MODULES.glob("*.bicep")}


def test_main_passes_every_required_module_parameter_and_no_unknown_one(bicep):
    for symbol, (path, body) in modules(root_of(bicep, MAIN)).items():
        module_root = root_of(bicep, path)
        declared = {declared_name(p): p for p in declarations(module_root, "parameter_declaration")}
        required = {
            name for name, p in declared.items() if not any(c.type == "=" for c in p.children)
        }
        given = set(properties(properties(body)["params"]))
        assert given <= set(declared), f"{symbol}: unknown parameters {given - set(declared)}"
        assert required <= given, f"{symbol}: missing {required - given}"


def test_secrets_flow_only_through_secure_parameters(bicep):
    main_root = root_of(bicep, MAIN)
    main_params = params(main_root)
    assert {name for name, d in main_params.items() if "secure" in d} >= SECRET_PARAMS
    for symbol, (path, body) in modules(main_root).items():
        module_params = params(root_of(bicep, path))
        for name, value in properties(properties(body)["params"]).items():
            if "secure" not in module_params[name]:
                assert not (
                    value.type == "identifier" and "secure" in main_params.get(text(value), [])
                ), f"{symbol}.{name} receives a secret insecurely"
                continue
            assert value.type == "identifier" and "secure" in main_params[text(value)], (
                f"{symbol}.{name} is secure but gets {text(value)}"
            )


def test_secure_parameters_have_no_secret_default_and_reach_no_output(bicep):
    for path in BICEP_FILES:
        root = root_of(bicep, path)
        secure = set()
        for param in declarations(root, "parameter_declaration"):
            name = declared_name(param)
            if "secure" not in params(root)[name]:
                continue
            secure.add(name)
            if any(c.type == "=" for c in param.children):
                default = param.named_children[-1]
                empty = string_value(default) == "" or (
                    default.type == "object" and not default.named_children)
                assert empty, f"{path.name}: {name}"
        for name, value in outputs(root).items():
            used = {text(n) for n in walk(value) if n.type == "identifier"}
            assert not used & secure, f"{path.name}: output {name} uses a secret"


def bicepparam_assignments() -> dict[str, str]:
    """main.bicepparam: parameter -> its expression text (the grammar has no .bicepparam)."""
    lines = [
        line for line in PARAMS_FILE.read_text().splitlines() if not line.lstrip().startswith("//")
    ]
    assert next(line for line in lines if line.strip()).strip() == "using './main.bicep'"
    found: dict[str, str] = {}
    current = None
    for line in lines:
        match = re.match(r"param\s+(\w+)\s*=\s*(.*)$", line)
        if match:
            current = match.group(1)
            assert current not in found, f"{current} assigned twice"
            found[current] = match.group(2)
        elif current and line.strip() and not line.startswith("using"):
            found[current] += "\n" + line
    return found


def test_the_parameters_file_sets_known_parameters_with_valid_expressions(bicep):
    assigned = bicepparam_assignments()
    main_root = root_of(bicep, MAIN)
    declared = {declared_name(p): p for p in declarations(main_root, "parameter_declaration")}
    assert set(assigned) <= set(declared), set(assigned) - set(declared)
    required = {name for name, p in declared.items() if not any(c.type == "=" for c in p.children)}
    assert required <= set(assigned), f"main.bicepparam lacks {required - set(assigned)}"
    for name, expression in assigned.items():
        source = f"var {name} = {expression}\n".encode()
        assert not problems(bicep.parse(source).root_node), f"main.bicepparam: {name}"


def test_the_parameters_file_reads_every_secret_from_the_environment(bicep):
    secure = {n for n, d in params(root_of(bicep, MAIN)).items() if "secure" in d}
    for name, expression in bicepparam_assignments().items():
        if name in secure:
            assert re.fullmatch(
                r"readEnvironmentVariable\('[A-Z_]+'(?:\s*,\s*'')?\)", expression.strip()
            ), f"{name} = {expression}"
        else:  # nothing that looks like a credential sits in the file
            assert not re.search(r"hooks\.slack\.com/services/\w|[0-9a-f]{32}", expression)


# --- Alerts -------------------------------------------------------------------------------------


def test_every_alert_rule_reaches_an_action_group_that_main_deploys(bicep):
    main_mods = modules(root_of(bicep, MAIN))
    (rules_path, rules_body), (groups_path, _) = main_mods["alertRules"], main_mods["actionGroups"]
    assert (rules_path, groups_path) == (
        ALERT_RULES_MODULE.resolve(),
        ACTION_GROUPS_MODULE.resolve(),
    )
    wired = {k: text(v) for k, v in properties(properties(rules_body)["params"]).items()}
    assert wired["criticalActionGroupId"] == "actionGroups.outputs.criticalActionGroupId"
    assert wired["notifyActionGroupId"] == "actionGroups.outputs.notifyActionGroupId"
    assert set(outputs(root_of(bicep, ACTION_GROUPS_MODULE))) >= {
        "criticalActionGroupId",
        "notifyActionGroupId",
    }

    # The routing the loop applies (alert-rules.bicep), evaluated for every rule of the list.
    module = root_of(bicep, ALERT_RULES_MODULE)
    critical_channels = {
        string_value(n)
        for n in variables(module)["criticalChannels"].named_children
        if n.type != "comment"
    }
    [groups] = [v for v in object_properties(module, "actionGroups") if v.type != "object"]
    assert re.sub(r"\s+", "", text(groups)) == (
        "empty(intersection(rule.channels,criticalChannels))?(contains(rule.channels,'slack')?"
        "[notifyActionGroupId]:[]):[criticalActionGroupId]"
    )
    for rule in RULES:
        channels = set(rule["channels"])
        group = (
            "critical"
            if channels & critical_channels
            else "notify"
            if "slack" in channels
            else None
        )
        assert group, f"{rule['id']}: channels {sorted(channels)} reach no action group"
    # A rule that emails needs addresses: the example environment has some.
    if any("email" in rule["channels"] for rule in RULES):
        assert "@" in bicepparam_assignments()["alertEmails"]


def test_main_deploys_the_rules_on_a_new_workspace_without_query_validation(bicep):
    _, body = modules(root_of(bicep, MAIN))["alertRules"]
    given = properties(properties(body)["params"])
    assert text(given["workspaceId"]) == "monitoring.outputs.workspaceId"
    assert text(given["skipQueryValidation"]) == "skipQueryValidation"
    # a parameter, true unless the operator says otherwise (the workspace is new)
    [param] = [p for p in declarations(root_of(bicep, MAIN), "parameter_declaration")
               if declared_name(p) == "skipQueryValidation"]
    assert text(param).endswith("param skipQueryValidation bool = true"), text(param)
    _, groups = modules(root_of(bicep, MAIN))["actionGroups"]
    assert text(properties(properties(groups)["params"])["relayUrl"]) == "relayUrl"


# --- Outputs ------------------------------------------------------------------------------------


def test_main_outputs_the_dashboard_and_relay_urls(bicep):
    root = root_of(bicep, MAIN)
    found = outputs(root)
    host = r"https://\$\{functionApp\.outputs\.defaultHostName\}"
    assert re.fullmatch(rf"'{host}/dashboard'", text(found["dashboardUrl"]))
    assert text(found["relayUrl"]) == "relayUrl"
    assert re.fullmatch(rf"'{host}{re.escape(RELAY_PATH)}'", text(variables(root)["relayUrl"]))


def test_retention_is_at_least_thirty_days(bicep):
    for path, name in (
        (MAIN, "logRetentionDays"),
        (MODULES / "monitoring.bicep", "retentionInDays"),
    ):
        root = root_of(bicep, path)
        [param] = [
            p for p in declarations(root, "parameter_declaration") if declared_name(p) == name
        ]
        assert text(param.named_children[-1]) == "30"
        decorators = param.prev_named_sibling
        assert "@minValue(30)" in text(decorators).replace(" ", "")


# --- The workbook -------------------------------------------------------------------------------

LAYOUT: dict[str, Any] = json.loads(WORKBOOK_LAYOUT.read_text())
TILES: list[dict[str, Any]] = LAYOUT["tiles"]
TILE_FIELDS = {
    "header": str,
    "query": str,
    "title": str,
    "status": str,
    "visualization": str,
    "lookback": bool,
}
STATUS_PARAMETERS = {
    "HealthStatus": _filters.INTEGRATION_STATUSES,
    "JobStatus": _filters.JOB_STATUSES,
    "AlertState": _filters.ALERT_STATES,
}
PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")


def workbook_parts(bicep) -> tuple[str, Path, dict[str, list[Path]]]:
    """(prelude, the common views' file, query name -> the files joined for it) as
    workbook.bicep loads them: a file, or variables and files in one interpolated string."""
    root = root_of(bicep, WORKBOOK)
    found = variables(root)

    def loaded(node) -> Path:
        assert node.type == "call_expression" and text(node.named_children[0]) == "loadTextContent"
        [argument] = node.named_children[1].named_children
        return (WORKBOOK.parent / string_value(argument)).resolve()

    def joined(node) -> list[Path]:
        if node.type != "string":
            return [loaded(node)]
        parts = [part.named_children[0] for part in node.named_children
                 if part.type == "interpolation"]
        assert parts and all(part.type in ("identifier", "call_expression") for part in parts)
        assert not [c for c in node.named_children if c.type == "string_content"], \
            "nothing but the files"
        return [loaded(found[text(part)]) if part.type == "identifier" else loaded(part)
                for part in parts]

    files = {name: joined(value) for name, value in properties(found["kql"]).items()}
    return multiline_string(found["prelude"]), loaded(found["common"]), files


def tile_text(files: dict[str, list[Path]], name: str) -> str:
    """A tile's question as the workbook joins it."""
    return "".join(path.read_text() for path in files[name])


def test_the_workbook_loads_the_query_files_themselves(bicep):
    _, common, files = workbook_parts(bicep)
    assert common == (QUERIES / "_common.kql").resolve()
    for name, paths in files.items():
        assert paths[-1] == (QUERIES / f"{name}.kql").resolve(), f"kql.{name} loads {paths}"
        # with the shared files its first line says it uses, in the API's order
        assert tile_text(files, name) == queries.text(name), name
    used = {tile["query"] for tile in TILES}
    assert used == set(files), "every loaded file is a tile, every tile's file is loaded"
    # Every question the dashboard asks is in the workbook (the live stream's fingerprint is
    # how the page notices changes, and the restatement's two are the daily job's).
    assert set(queries.names()) - {"stream_fingerprint", "integration_state",
                                   "restatements"} == used


def test_each_tile_runs_prelude_status_common_and_its_file(bicep):
    root = root_of(bicep, WORKBOOK)
    [query] = object_properties(root, "query")
    assert text(query) == (
        "'${prelude}let _status = \"${tile.status}\";\\n${common}${kql[tile.query]}'"
    )
    [loop] = [n for n in walk(variables(root)["tileGroups"]) if n.type == "for_statement"]
    assert text(variables(root)["tileItems"]) == "flatten(tileGroups)"
    assert "layout.tiles" in text(loop)
    # Range tiles follow the TimeRange parameter; lookback tiles get a wider fixed context.
    assert re.search(r"tile\.lookback\s*\?", text(loop))
    assert "timeContextFromParameter: 'TimeRange'" in text(loop)
    assert "loadJsonContent('../workbook/dashboard.json')" in text(variables(root)["layout"])
    assert (WORKBOOK.parent / "../workbook/dashboard.json").resolve() == WORKBOOK_LAYOUT
    [data] = object_properties(root, "serializedData")
    assert text(data) == "string(workbookContent)"


@pytest.mark.parametrize("tile", TILES, ids=lambda t: f"{t['query']}:{t['title']}")
def test_workbook_tiles_are_complete(tile):
    assert {k: type(v) for k, v in tile.items()} == TILE_FIELDS
    assert tile["visualization"] in {"table", "timechart", "barchart"}
    uses_lookback = "_lookback_since" in queries.text(tile["query"])
    assert tile["lookback"] == uses_lookback, "lookback tiles need the wider time context"
    assert '"' not in tile["status"] and "\\" not in tile["status"]


def test_the_prelude_defines_what_the_api_defines(bicep):
    prelude, _, _ = workbook_parts(bicep)
    names = set(re.findall(r"^let (\w+) =", prelude, re.MULTILINE)) | {"_status"}
    api = _filters.Filters(
        since=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        until=dt.datetime(2026, 1, 2, tzinfo=dt.UTC),
        bucket=dt.timedelta(minutes=15),
        tenants=None,
    ).values()
    assert names == set(api)
    days = int(re.search(r"^let _lookback_since = _until - (\d+)d;$", prelude, re.MULTILINE)[1])
    assert dt.timedelta(days=days) == _filters.LOOKBACK


def test_workbook_parameters_cover_every_placeholder(bicep):
    prelude, _, _ = workbook_parts(bicep)
    defined = {p["name"]: p for p in LAYOUT["parameters"]}
    used = PLACEHOLDER.findall(prelude) + [
        m for tile in TILES for m in PLACEHOLDER.findall(tile["status"])
    ]
    for name, option in used:
        assert name in defined, f"{{{name}}} is no workbook parameter"
        if defined[name]["type"] != 4:  # text and drop-down values are escaped into "..."
            assert option == "escapejson", f"{{{name}:{option}}}"
    assert defined["TimeRange"]["type"] == 4 and defined["TimeRange"]["isRequired"]
    for name, statuses in STATUS_PARAMETERS.items():
        choices = json.loads(defined[name]["jsonData"])
        assert [c["value"] for c in choices] == ["", *statuses], name
    for tile in TILES:
        status = tile["status"]
        if status.startswith("{"):
            file = tile["query"]
            expected = {
                "integration_status": "HealthStatus",
                "recent_jobs": "JobStatus",
                "alerts": "AlertState",
            }[file]
            assert PLACEHOLDER.fullmatch(status)[1] == expected
        else:
            assert status in ("", *_filters.JOB_STATUSES)
    assert len({p["id"] for p in LAYOUT["parameters"]}) == len(LAYOUT["parameters"])


# The workbook writes the parameters into the query text before it runs (Azure Monitor
# workbooks, "Workbook time parameters" and "Parameter formatting options"): a time range's start
# and end as datetime values, its grain as a timespan, :escapejson as the JSON-escaped text.
NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.UTC)
WORKBOOK_CASES = [
    {},
    {"Tenant": "tenant-105"},
    {"Adapter": "salesforce", "HealthStatus": "degraded"},
    {"Search": '" | take 1 //', "JobStatus": "failed"},
    {"Search": 'say "hi" \\ it\'s', "Entity": "contact", "AlertState": "active"},
]


def as_workbook(
    query: str, since: dt.datetime, until: dt.datetime, bucket: dt.timedelta, values: dict[str, str]
) -> str:
    def substitute(match: re.Match[str]) -> str:
        name, option = match.group(1), match.group(2)
        if name == "TimeRange":
            moment = {"start": since, "end": until}.get(option)
            if moment is not None:
                return f"datetime({moment.strftime('%Y-%m-%dT%H:%M:%S.000Z')})"
            assert option == "grain"
            return f"{int(bucket.total_seconds() // 60)}m"
        assert option == "escapejson"
        return json.dumps(values.get(name, ""), ensure_ascii=False)[1:-1]  # JSON.stringify

    return PLACEHOLDER.sub(substitute, query)


@pytest.fixture(scope="module")
def workbook_store(demo_store) -> TelemetryStore:
    """Two hours of the demo's workload up to NOW."""
    return demo_store(hours=2, now=NOW, seed=7)


@pytest.mark.parametrize("case", WORKBOOK_CASES, ids=lambda c: ",".join(c) or "no-filters")
def test_workbook_queries_give_the_admin_apis_rows(bicep, workbook_store, case):
    """Each tile's text, as the workbook runs it, answers exactly what the API's text answers."""
    prelude, common, files = workbook_parts(bicep)
    since, until = NOW - dt.timedelta(hours=2), NOW
    bucket = _filters.bucket_for(until - since)
    checked = 0
    for tile in TILES:
        status = as_workbook(tile["status"], since, until, bucket, case)
        text_ = (
            prelude
            + f'let _status = "{status}";\n'
            + common.read_text()
            + tile_text(files, tile["query"])
        )
        workbook_rows = workbook_store.kql(as_workbook(text_, since, until, bucket, case)).rows
        api = _filters.Filters(
            since=since,
            until=until,
            bucket=bucket,
            tenant_id=case.get("Tenant", ""),
            integration_id=case.get("Integration", ""),
            adapter_type=case.get("Adapter", ""),
            entity=case.get("Entity", ""),
            tenants=None,
            status=status,
            q=case.get("Search", ""),
        )
        api_rows = workbook_store.kql(queries.render(tile["query"], api.values())).rows
        assert sorted(map(repr, workbook_rows)) == sorted(map(repr, api_rows)), tile["title"]
        checked += bool(api_rows)
    if not case:
        assert checked >= len(TILES) - 2, "the demo data should fill nearly every tile"


# --- azd ----------------------------------------------------------------------------------------


def yaml_mapping(path: Path) -> dict[str, Any]:
    """The block mappings of a small YAML file (no PyYAML here): key: value, by indentation."""
    root: dict[str, Any] = {}
    stack: list[tuple[int, dict[str, Any]]] = [(-1, root)]
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        while stack[-1][0] >= indent:
            stack.pop()
        if value.strip():
            stack[-1][1][key] = value.strip()
        else:
            child: dict[str, Any] = {}
            stack[-1][1][key] = child
            stack.append((indent, child))
    return root


def test_azure_yaml_deploys_this_folder_as_the_function_app(bicep):
    config = yaml_mapping(AZURE_YAML)
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    api = config["services"]["api"]
    assert (api["project"], api["language"], api["host"]) == (".", "python", "function")
    # The app is found by its tag; main.bicep outputs the name for the hooks.
    assert "'azd-service-name': 'api'" in FUNCTION_APP.read_text()
    assert "AZURE_FUNCTION_NAME" in outputs(root_of(bicep, MAIN))
    # The dashboard's vendored Chart.js is built before packaging (the Makefile's target).
    assert api["hooks"]["prepackage"]["run"] == f"make {DASHBOARD}/vendor/chart.umd.js"
    assert f"DASHBOARD := {DASHBOARD}" in (ROOT / "Makefile").read_text()
    assert "VENDOR := $(DASHBOARD)/vendor/chart.umd.js" in (ROOT / "Makefile").read_text()
    hook = config["hooks"]["postdeploy"]["run"]
    assert (ROOT / hook).is_file() and "RELAY_FUNCTION_KEY" in (ROOT / hook).read_text()
    # main.bicepparam, which azd reads next to main.bicep, takes the key from the environment.
    assert (
        "readEnvironmentVariable('RELAY_FUNCTION_KEY')"
        in bicepparam_assignments()["relayFunctionKey"]
    )


def test_files_named_in_the_azd_configuration_exist():
    """Every path azure.yaml names, in its settings or its comments, is in the repository."""
    named = re.findall(r"(?<![\w/.])((?:infra|docs|integration_monitoring)/[\w./-]+\.\w+)",
                       AZURE_YAML.read_text())
    assert named, "the scan finds the paths azure.yaml names"
    missing = [path for path in named if not (ROOT / path).exists()
               and not path.startswith(f"{DASHBOARD}/vendor/")]  # built by make
    assert not missing, missing
    sections = re.findall(r'"([^"]+)" in README\.md', AZURE_YAML.read_text())
    for section in sections:
        assert f"## {section}" in DEPLOY_DOC.read_text(), section


def test_the_deployment_guide_has_the_commands():
    guide = DEPLOY_DOC.read_text()
    for command in (
        "az login",
        "az group create",
        "az deployment group create",
        "-f infra/main.bicep",
        "-p infra/main.bicepparam",
        "func azure functionapp publish",
        "azd up",
        "make",
        "az functionapp keys set",
        RELAY_PATH,
        "/dashboard",
        "/api/health",
    ):
        assert command in guide, command


# --- The package ---------------------------------------------------------------------------------


def funcignored(relative: str) -> bool:
    """Whether .funcignore (gitignore syntax, as Core Tools and azd read it) drops a path."""
    ignored = False
    parts = relative.split("/")
    for raw in (ROOT / ".funcignore").read_text().splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!")
        directory = pattern.endswith("/")
        pattern = pattern.strip("/")
        if "/" in pattern:  # anchored at the root: match a leading part of the path
            candidates = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
        else:  # a name at any depth
            candidates = list(parts)
        if directory:  # only the directories above the file
            candidates = candidates[:-1]
        if any(fnmatch.fnmatchcase(c, pattern) for c in candidates):
            ignored = not negate
    return ignored


def test_the_package_keeps_what_the_app_reads_at_run_time():
    """The relay reads the rule list, the dashboard its page and assets (Chart.js included)."""
    kept = [
        "function_app.py",
        "host.json",
        "requirements.txt",
        "integration_monitoring/alerts/rules.json",
        f"{DASHBOARD}/index.html",
        f"{DASHBOARD}/dashboard.js",
        f"{DASHBOARD}/dashboard.css",
        f"{DASHBOARD}/vendor/chart.umd.js",
        "integration_monitoring/queries/_common.kql",
    ]
    assert not [path for path in kept if funcignored(path)]
    assert funcignored(f"{DASHBOARD}/node_modules/chart.js/package.json")
    assert funcignored("tests/test_infra.py") and funcignored(".venv/bin/python")


def test_the_package_keeps_the_runbooks_the_dashboard_serves():
    """The runbooks the app serves at /docs/runbooks/ are deployed with it."""
    runbooks = sorted(f"integration_monitoring/alerts/runbooks/{rule['id']}.md" for rule in RULES)
    assert all((ROOT / path).is_file() for path in runbooks)
    assert not [path for path in runbooks if funcignored(path)]
