"""The Bicep under infra/ and the alert rules it deploys.

The Bicep is parsed with the tree-sitter-bicep grammar (no Bicep CLI on these machines): every
file parses cleanly, every resource pins an allow-listed API version, the alert-rules module
builds one rule per entry of the rules list, secrets are @secure(). Every rule in
integration_monitoring/alerts/rules.json has the fields the Bicep reads, with values the Azure
Monitor API takes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from integration_monitoring.alerts._rules import CHANNELS, iso_duration
from integration_monitoring.alerts._rules import OPERATORS as EVALUATOR_OPERATORS

from .helpers import ROOT

INFRA = ROOT / "infra"
RULES_FILE = ROOT / "integration_monitoring" / "alerts" / "rules.json"
RULES_FROM_MODULES = "../../integration_monitoring/alerts/rules.json"
ALERT_RULES_MODULE = INFRA / "modules" / "alert-rules.bicep"
ACTION_GROUPS_MODULE = INFRA / "modules" / "action-groups.bicep"
ALERTS_ENTRY = INFRA / "alerts.bicep"
BICEP_FILES = sorted(INFRA.rglob("*.bicep"))

# Resource type (lower case: ARM types are case-insensitive) -> the API versions we deploy with.
# Raise a version only to another stable one, and say here where it comes from.
API_VERSIONS: dict[str, set[str]] = {
    # Stable prometheusRuleGroups API: azure-rest-api-specs, Microsoft.AlertsManagement
    # PrometheusRuleGroups stable/2023-03-01; bicep-types-az 2023-03-01 (later ones are previews).
    "microsoft.alertsmanagement/prometheusrulegroups": {"2023-03-01"},
    # Newest stable scheduledQueryRules API: azure-rest-api-specs
    # specification/monitor/resource-manager/Microsoft.Insights/stable/2023-12-01/
    # scheduledQueryRule_API.json; Bicep types in Azure/bicep-types-az
    # generated/monitor/microsoft.insights/2023-12-01/types.md. The later 2024-01-01-preview and
    # 2025-01-01-preview are previews.
    "microsoft.insights/scheduledqueryrules": {"2023-12-01"},
    # Newest stable actionGroups API: azure-rest-api-specs
    # specification/monitor/resource-manager/Microsoft.Insights/stable/2023-01-01/
    # actionGroups_API.json; Bicep types in bicep-types-az
    # generated/monitor/microsoft.insights/2023-01-01/types.md. 2024-10-01-preview is a preview.
    "microsoft.insights/actiongroups": {"2023-01-01"},
    # The workspace (monitoring.bicep) and the `existing` references to it: a stable version,
    # bicep-types-az generated/operationalinsights/microsoft.operationalinsights/2025-02-01/
    # types.md (retentionInDays, customerId, features). 2025-07-01 and 2026-03-01 are newer
    # stable ones that older Bicep CLIs may not know yet.
    "microsoft.operationalinsights/workspaces": {"2025-02-01"},
    # Workspace-based Application Insights: 2020-02-02 is the newest stable components version
    # and the first with WorkspaceResourceId (bicep-types-az generated/applicationinsights/
    # microsoft.insights/2020-02-02/types.md).
    "microsoft.insights/components": {"2020-02-02"},
    # Newest stable workbooks version: bicep-types-az generated/applicationinsights/
    # microsoft.insights/2023-06-01/types.md.
    "microsoft.insights/workbooks": {"2023-06-01"},
    # Storage account, blob service and deployment container, table service and the alert
    # outbox table: stable 2025-01-01 (bicep-types-az generated/storage/microsoft.storage/
    # 2025-01-01/types.md).
    "microsoft.storage/storageaccounts": {"2025-01-01"},
    "microsoft.storage/storageaccounts/blobservices": {"2025-01-01"},
    "microsoft.storage/storageaccounts/blobservices/containers": {"2025-01-01"},
    "microsoft.storage/storageaccounts/tableservices": {"2025-01-01"},
    "microsoft.storage/storageaccounts/tableservices/tables": {"2025-01-01"},
    # Flex Consumption plan, Function App and its authsettingsV2: stable 2024-11-01 (bicep-types-az
    # generated/web/microsoft.web/2024-11-01/types.md has functionAppConfig, added in 2023-12-01;
    # Azure-Samples/azure-functions-flex-consumption-samples deploys with 2024-04-01).
    "microsoft.web/serverfarms": {"2024-11-01"},
    "microsoft.web/sites": {"2024-11-01"},
    "microsoft.web/sites/config": {"2024-11-01"},
    # The app's user-assigned identity: stable 2024-11-30 (bicep-types-az generated/msi/
    # microsoft.managedidentity/2024-11-30/types.md).
    "microsoft.managedidentity/userassignedidentities": {"2024-11-30"},
    # Role assignments: 2022-04-01, the newest stable version (later ones are previews;
    # bicep-types-az generated/authorization/microsoft.authorization/2022-04-01).
    "microsoft.authorization/roleassignments": {"2022-04-01"},
    # Service Bus namespace and queues: stable 2024-01-01 (bicep-types-az generated/servicebus/
    # microsoft.servicebus/2024-01-01/types.md).
    "microsoft.servicebus/namespaces": {"2024-01-01"},
    "microsoft.servicebus/namespaces/queues": {"2024-01-01"},
}

# A parameter whose name says it holds a secret must be @secure() (a webhook address is a
# credential: whoever has it can post).
SECRET_NAME = re.compile(r"secret|key|password|passw|token|credential|webhook", re.IGNORECASE)

# --- What the scheduledQueryRules API (kind LogAlert) accepts -----------------------------------
# windowSize and evaluationFrequency: the values the service takes, as validated by
# hashicorp/terraform-provider-azurerm internal/services/monitor/
# monitor_scheduled_query_rules_alert_v2_resource.go (window_duration, evaluation_frequency);
# Microsoft Learn "Create or edit a log search alert rule" (MicrosoftDocs/azure-monitor-docs
# articles/azure-monitor/alerts/alerts-create-log-alert-rule.md): evaluation "from one minute to
# one day", the alert time range "limited to a maximum of two days".
EVALUATION_FREQUENCIES = (
    "PT1M", "PT5M", "PT10M", "PT15M", "PT30M", "PT45M",
    "PT1H", "PT2H", "PT3H", "PT4H", "PT5H", "PT6H", "P1D",
)  # fmt: skip
WINDOW_SIZES = (*EVALUATION_FREQUENCIES, "P2D")
MAX_QUERY_TIME_RANGE = iso_duration("P2D")  # windowSize x numberOfEvaluationPeriods
# The API spec's enum says "Equals", but the service rejects it and takes "Equal"
# (Azure/azure-rest-api-specs#21794, #22029; Azure/bicep-types-az#2308, #2643).
OPERATORS = ("Equal", "GreaterThan", "GreaterThanOrEqual", "LessThan", "LessThanOrEqual")
# Condition.timeAggregation enum (scheduledQueryRule_API.json 2023-12-01).
TIME_AGGREGATIONS = ("Count", "Average", "Minimum", "Maximum", "Total")
SEVERITIES = range(5)  # Sev0..Sev4: the API's enum 0..4
MAX_DIMENSIONS = 6  # Learn: "You can apply up to six dimensions per alert rule."
FAILING_PERIODS = range(1, 7)  # terraform-provider-azurerm validates both counts as 1..6
MAX_RULE_PROPERTIES = 64 * 1024  # Learn: properties of a rule can't exceed 64 KB in all
# Learn: log search alert queries don't support bag_unpack(), pivot(), narrow(); AggregatedValue
# is a reserved word.
UNSUPPORTED_IN_QUERIES = re.compile(r"\b(bag_unpack|pivot|narrow)\s*\(|\bAggregatedValue\b")
# Resource names: 1-260 characters, none of *<>%{}&:\?/# nor control characters, not ending in
# a space or a period (scheduledQueryRules template reference).
BAD_NAME_CHARS = re.compile(r"[*<>%{}&:\\?/#\x00-\x1f]")

# The fields alert-rules.bicep reads from each rule (checked against the module below as well).
BICEP_FIELDS = (
    "id", "title", "description", "severity", "query", "windowSize", "evaluationFrequency",
    "timeAggregation", "metricMeasureColumn", "operator", "threshold", "dimensions",
    "failingPeriods", "channels", "runbook",
)  # fmt: skip


# --- Parsing ------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def parser():
    try:
        import tree_sitter
        import tree_sitter_bicep
    except ImportError as error:  # pragma: no cover - a set-up fault, said plainly
        pytest.fail(f"{error}: tree-sitter and tree-sitter-bicep belong in requirements-dev.txt")
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_bicep.language()))


@cache
def _parse_cached(parser, path: Path):
    return parser.parse(path.read_bytes())


def parse(parser, path: Path):
    return _parse_cached(parser, path).root_node


def walk(node) -> Iterator[Any]:
    yield node
    for child in node.children:
        yield from walk(child)


def text(node) -> str:
    return node.text.decode()


def string_value(node) -> str | None:
    """The value of a string literal without interpolation, else None."""
    if node is None or node.type != "string":
        return None
    parts = [child for child in node.named_children if child.type != "escape_sequence"]
    if any(part.type != "string_content" for part in parts):
        return None
    return text(node)[1:-1]


def problems(root) -> list[str]:
    return [
        f"{'MISSING ' + node.type if node.is_missing else 'ERROR'} at line "
        f"{node.start_point[0] + 1}, column {node.start_point[1] + 1}: {text(node)[:60]!r}"
        for node in walk(root)
        if node.type == "ERROR" or node.is_missing
    ]


def decorator_names(declaration) -> list[str]:
    """Names of the decorators above a declaration (`@secure()`, `@sys.secure()` -> 'secure')."""
    sibling = declaration.prev_named_sibling
    while sibling is not None and sibling.type == "comment":
        sibling = sibling.prev_named_sibling
    if sibling is None or sibling.type != "decorators":
        return []
    names = []
    for decorator in sibling.named_children:
        expression = decorator.named_children[0]
        target = expression.child_by_field_name("function") or expression
        names.append(text(target).rsplit(".", 1)[-1])
    return names


def declarations(root, kind: str) -> list[Any]:
    return [node for node in root.named_children if node.type == kind]


def declared_name(declaration) -> str:
    return text(declaration.named_children[0])


def params(root) -> dict[str, list[str]]:
    """Parameter name -> its decorator names."""
    return {
        declared_name(param): decorator_names(param)
        for param in declarations(root, "parameter_declaration")
    }


def resource_type(resource) -> str:
    return string_value(resource.named_children[1]) or text(resource.named_children[1])


def object_properties(node, key: str) -> list[Any]:
    """Values of every `key: value` property anywhere under node."""
    found = []
    for child in walk(node):
        if child.type == "object_property" and text(child.named_children[0]) == key:
            found.append(child.named_children[-1])
    return found


def for_loop(resource) -> tuple[str | None, Any, Any] | None:
    """(loop variable, collection, body) when the resource is declared with a `for`."""
    loop = next((c for c in resource.children if c.type == "for_statement"), None)
    if loop is None:
        return None
    variable = loop.child_by_field_name("initializer")
    if variable is None:
        parameters = next(c for c in loop.named_children if c.type == "for_loop_parameters")
        variable = parameters.named_children[0]
    children = loop.children
    collection = children[[c.type for c in children].index("in") + 1]
    return text(variable), collection, loop.child_by_field_name("body")


# --- The Bicep ----------------------------------------------------------------------------------


def test_infra_holds_the_alert_bicep():
    assert {ALERTS_ENTRY, ALERT_RULES_MODULE, ACTION_GROUPS_MODULE} <= set(BICEP_FILES)


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_bicep_parses_without_errors(parser, path):
    root = parse(parser, path)
    assert root.type == "infrastructure"
    assert not problems(root), f"{path.relative_to(ROOT)}: " + "; ".join(problems(root))


@pytest.mark.parametrize(
    "source",
    [
        "param x string\nresource r 'Microsoft.Insights/actionGroups@2023-01-01' = {\n name: 'x'",
        "var rules = loadJsonContent('../rules.json').rules[",
        "resource r 'x@1' = { name: }",
        "param = 3",
        "var x = 'unterminated",
    ],
)
def test_the_parser_reports_broken_bicep(parser, source):
    """A control: the grammar is strict enough for a clean parse to mean something."""
    assert problems(parser.parse(source.encode()).root_node)


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_every_resource_pins_an_allowed_api_version(parser, path):
    for resource in declarations(parse(parser, path), "resource_declaration"):
        name, declared = declared_name(resource), resource_type(resource)
        kind, at, version = declared.partition("@")
        assert at and version, f"{path.name}: resource {name} has no @api-version: {declared}"
        allowed = API_VERSIONS.get(kind.lower())
        assert allowed is not None, f"{path.name}: {kind} is not in the test's allow-list"
        assert version in allowed, f"{path.name}: {kind}@{version} not among {sorted(allowed)}"


def test_alert_rules_module_loads_the_rule_list_and_loops_over_it(parser):
    root = parse(parser, ALERT_RULES_MODULE)
    rules_var = None
    for variable in declarations(root, "variable_declaration"):
        value = variable.named_children[1]
        if value.type != "member_expression":
            continue
        call, member = value.child_by_field_name("object"), value.child_by_field_name("property")
        function = call.child_by_field_name("function") if call.type == "call_expression" else None
        if text(member) == "rules" and function is not None and text(function) == "loadJsonContent":
            arguments = call.child_by_field_name("arguments").named_children
            assert string_value(arguments[0]) == RULES_FROM_MODULES
            rules_var = declared_name(variable)
    assert rules_var, f"no `var … = loadJsonContent('{RULES_FROM_MODULES}').rules`"
    assert (ALERT_RULES_MODULE.parent / RULES_FROM_MODULES).resolve() == RULES_FILE

    loops = [
        (resource, for_loop(resource))
        for resource in declarations(root, "resource_declaration")
        if resource_type(resource).lower().startswith("microsoft.insights/scheduledqueryrules@")
    ]
    assert len(loops) == 1, "one scheduledQueryRules declaration, looping over the rules"
    _, loop = loops[0]
    assert loop is not None, "the scheduledQueryRules resource is not declared with `for`"
    variable, collection, body = loop
    assert text(collection) == rules_var

    assert [string_value(v) for v in object_properties(body, "kind")] == ["LogAlert"]
    [query] = object_properties(body, "query")
    assert re.fullmatch(rf"join\(\s*{variable}\.query\s*,\s*'\\n'\s*\)", text(query))
    [scopes] = object_properties(body, "scopes")
    assert [text(item) for item in scopes.named_children] == ["workspaceId"]
    [custom] = object_properties(body, "customProperties")
    assert {text(p.named_children[0]) for p in custom.named_children} >= {"ruleId", "runbookUrl"}
    assert [text(v) for v in object_properties(body, "autoMitigate")] == ["true"]

    # Every `rule.<field>` the module reads is one of the fields every rule must have.
    read = {
        text(node.child_by_field_name("property"))
        for node in walk(body)
        if node.type == "member_expression" and text(node.child_by_field_name("object")) == variable
    }
    assert read == set(BICEP_FIELDS), f"BICEP_FIELDS and the module differ: {sorted(read)}"


def test_alert_rules_module_outputs_the_rule_ids(parser):
    root = parse(parser, ALERT_RULES_MODULE)
    outputs = {declared_name(o): o for o in declarations(root, "output_declaration")}
    assert "ruleIds" in outputs
    assert ".id" in text(outputs["ruleIds"])


@pytest.mark.parametrize("path", [ACTION_GROUPS_MODULE, ALERTS_ENTRY], ids=lambda p: p.name)
def test_the_relay_secret_is_a_secure_parameter(parser, path):
    decorators = params(parse(parser, path))
    assert "relaySecret" in decorators, f"{path.name} has no relaySecret parameter"
    assert "secure" in decorators["relaySecret"]


@pytest.mark.parametrize("path", BICEP_FILES, ids=lambda p: str(p.relative_to(INFRA)))
def test_parameters_named_like_secrets_are_secure(parser, path):
    insecure = [
        name
        for name, decorators in params(parse(parser, path)).items()
        if SECRET_NAME.search(name) and "secure" not in decorators
    ]
    assert not insecure, f"{path.name}: add @secure() to {insecure}"


def test_action_groups_are_global_with_short_names(parser):
    root = parse(parser, ACTION_GROUPS_MODULE)
    groups = [
        r for r in declarations(root, "resource_declaration")
        if resource_type(r).lower().startswith("microsoft.insights/actiongroups@")
    ]  # fmt: skip
    assert len(groups) == 2
    for group in groups:
        [location] = [string_value(v) for v in object_properties(group, "location")]
        assert location.lower() == "global"
        [short_name] = [string_value(v) for v in object_properties(group, "groupShortName")]
        assert short_name and len(short_name) <= 12
        [receivers] = object_properties(group, "webhookReceivers")
        assert receivers.named_children, "each group calls the relay"
    outputs = {declared_name(o) for o in declarations(root, "output_declaration")}
    assert outputs >= {"criticalActionGroupId", "notifyActionGroupId"}


# --- The rules ----------------------------------------------------------------------------------


RULES: list[dict[str, Any]] = json.loads(RULES_FILE.read_text())["rules"]


def test_the_local_evaluator_knows_the_same_operators_as_the_api():
    assert set(EVALUATOR_OPERATORS) == set(OPERATORS)


def test_rule_ids_are_unique():
    ids = [rule.get("id") for rule in RULES]
    assert RULES and len(set(ids)) == len(ids)


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.get("id", "?"))
def test_rule_has_every_field_the_bicep_reads(rule):
    missing = [field for field in BICEP_FIELDS if field not in rule]
    assert not missing, f"{rule.get('id')}: missing {missing}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.get("id", "?"))
def test_rule_values_are_ones_the_api_accepts(rule):
    rid = rule["id"]
    # The resource name is "<namePrefix>-<id>": leave room for a prefix within 260 characters.
    assert isinstance(rid, str) and 0 < len(rid) <= 200 and not BAD_NAME_CHARS.search(rid)
    assert not rid.endswith((" ", "."))
    for field in ("title", "description", "metricMeasureColumn", "runbook"):
        assert isinstance(rule[field], str) and rule[field].strip(), f"{rid}: {field}"

    severity = rule["severity"]
    assert type(severity) is int and severity in SEVERITIES, f"{rid}: severity {severity!r}"

    # ISO 8601 durations, and among the values the service takes for a log search alert.
    window = iso_duration(rule["windowSize"])
    frequency = iso_duration(rule["evaluationFrequency"])
    assert rule["windowSize"] in WINDOW_SIZES, f"{rid}: windowSize {rule['windowSize']}"
    assert rule["evaluationFrequency"] in EVALUATION_FREQUENCIES, (
        f"{rid}: evaluationFrequency {rule['evaluationFrequency']}"
    )
    # Our own rule: a rule that runs less often than its window leaves data unevaluated.
    assert frequency <= window, f"{rid}: evaluated every {frequency}, over a {window} window"

    assert rule["timeAggregation"] in TIME_AGGREGATIONS, f"{rid}: {rule['timeAggregation']}"
    assert rule["operator"] in OPERATORS, f"{rid}: operator {rule['operator']!r}"
    # Bicep types the threshold as int (bicep-types-az 2023-12-01 types.md) and has no fractional
    # literals; the REST API takes a double, so keep thresholds whole in the JSON.
    assert type(rule["threshold"]) is int, f"{rid}: threshold {rule['threshold']!r}"

    periods = rule["failingPeriods"]
    evaluated, failing = periods["numberOfEvaluationPeriods"], periods["minFailingPeriodsToAlert"]
    assert evaluated in FAILING_PERIODS and failing in FAILING_PERIODS and failing <= evaluated
    assert window * evaluated <= MAX_QUERY_TIME_RANGE, f"{rid}: query time range over two days"

    dimensions = rule["dimensions"]
    assert isinstance(dimensions, list) and len(dimensions) <= MAX_DIMENSIONS
    assert len(set(dimensions)) == len(dimensions)

    channels = rule["channels"]
    assert channels and set(channels) <= set(CHANNELS), f"{rid}: channels {channels}"
    # the app serves runbooks/<id>.md beside the rules at the rule's runbook path
    assert rule["runbook"] == f"docs/runbooks/{rid}.md", f"{rid}: runbook {rule['runbook']}"
    assert (RULES_FILE.parent / "runbooks" / f"{rid}.md").is_file(), f"{rid}: no runbook"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.get("id", "?"))
def test_rule_query_fits_a_log_search_alert(rule):
    lines = rule["query"]
    assert isinstance(lines, list) and lines and all(isinstance(line, str) for line in lines)
    query = "\n".join(lines)
    assert not UNSUPPORTED_IN_QUERIES.search(query), f"{rule['id']}: unsupported in alert queries"
    # The measured column and each dimension are columns the query makes.
    for column in (rule["metricMeasureColumn"], *rule["dimensions"]):
        assert re.search(rf"\b{re.escape(column)}\b", query), f"{rule['id']}: no {column} column"
    size = len(json.dumps({k: rule[k] for k in BICEP_FIELDS}, ensure_ascii=False).encode())
    assert size < MAX_RULE_PROPERTIES
