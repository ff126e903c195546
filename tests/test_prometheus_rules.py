"""The seed's alerts as Prometheus rules: generated from the one rules list, checked and unit
tested with promtool, and driven once by series scraped off the running local app's /metrics.

promtool comes from Debian's `prometheus` package, which `make test` installs; these tests fail
(not skip) without it.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from prometheus_client.parser import text_string_to_metric_families

from integration_monitoring import Telemetry, adapter_request, record_queue_depth, sync_job
from integration_monitoring.alerts import RULES_FILE, RUNBOOKS
from integration_monitoring.telemetry import use
from integration_monitoring.telemetry._metrics import METRICS
from integration_monitoring.telemetry._prometheus import SeedPrometheusReader
from integration_monitoring.testing import capture_telemetry

from .helpers import ROOT, Server

PROM = ROOT / "infra" / "prometheus"
RULES_YAML = PROM / "alert-rules.yml"
RULES_TEST = PROM / "alert-rules.test.yml"
AZURE_JSON = PROM / "azure-rule-groups.json"
ALERT_RULES_JSON = RULES_FILE

#: The seed's headings: "Critical Alerts" and "Warning Alerts".
SEED_SEVERITY = {
    "high-sync-failure-rate": "critical", "service-bus-queue-backlog": "critical",
    "dead-letter-queue-accumulation": "critical", "slow-sync-processing": "warning",
    "high-rate-limit-hits": "warning",
}  # fmt: skip
#: Rules whose expression is not the seed's text (the generator says why, in the rule file).
CHANGED = {"high-sync-failure-rate"}
#: Every series name /metrics can serve for our metrics.
EXPOSED = {f"{spec.name}{suffix}" for spec in METRICS
           for suffix in (("_bucket", "_sum", "_count") if spec.kind == "histogram" else ("",))}


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_generate_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


generate = load(PROM / "generate.py")


@pytest.fixture(scope="session")
def promtool() -> str:
    path = shutil.which("promtool") or "/usr/bin/promtool"
    if not Path(path).exists():
        pytest.fail("promtool is missing: `make test` installs it (Debian package prometheus: "
                    "apt-get install --no-install-recommends prometheus)")
    return path


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, cwd=ROOT)


# -- reading the generated rule file --------------------------------------------------------------


def unquote(value: str) -> str:
    """A scalar as the generator writes it: plain, 'single-quoted' or "JSON-quoted"."""
    if value.startswith("'"):
        assert value.endswith("'"), value
        return value[1:-1].replace("''", "'")
    if value.startswith('"'):
        return json.loads(value)
    return value


def read_rules(text: str) -> list[dict[str, Any]]:
    """The rules of alert-rules.yml, read from the layout the generator writes (indentation by
    level; comments skipped). Reading the file, not the generator's data, is the point."""
    rules: list[dict[str, Any]] = []
    section = None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = stripped.removeprefix("- ").partition(":")
        value = value.strip()
        if stripped.startswith("- alert:"):
            rules.append({"alert": unquote(value), "labels": {}, "annotations": {}})
            section = None
        elif rules and indent == 8:
            if value:
                rules[-1][key] = unquote(value)
            else:
                section = key
        elif rules and indent == 10 and section:
            rules[-1][section][key] = unquote(value)
    return rules


def threshold_of(expr: str) -> tuple[str, float]:
    match = re.search(r"(>=|<=|==|>|<)\s*([0-9.]+)\s*$", expr)
    assert match, f"no trailing comparison in {expr!r}"
    return match.group(1), float(match.group(2))


_KEYWORDS = {"and", "or", "unless", "bool", "offset", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: what is left once strings, label
    matchers, ranges and grouping clauses are removed, minus functions and keywords."""
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for match in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        after = text[match.end():].lstrip()[:1]
        if before.isalnum() or before == "." or after == "(" or match.group() in _KEYWORDS:
            continue  # part of a number, a function, or a keyword
        names.add(match.group())
    return names


def test_metric_names_finds_every_selector():
    """A control for the name check the rules and dashboards rely on."""
    expr = ('sum by (le) (rate(a_bucket{x="y{z}"}[5m])) / ignoring(q) group_left(z) b '
            "+ on(q) c offset 5m > bool 1e3 and max_over_time(d[1h:1m]) or topk(5, e)")
    assert metric_names(expr) == {"a_bucket", "b", "c", "d", "e"}


# -- the rules agree with integration_monitoring/alerts/rules.json -------------------------------


def test_rule_files_are_what_the_generator_writes():
    """alert-rules.yml and azure-rule-groups.json are regenerated, not hand-edited."""
    assert generate.main(["--check", "--runbook-base-url", ""]) == 0, (
        "run: python infra/prometheus/generate.py")


def test_the_rule_file_and_alert_rules_json_agree():
    """Same ids, thresholds, severities and runbooks; the seed's expression unless documented."""
    seed = {rule["id"]: rule for rule in json.loads(ALERT_RULES_JSON.read_text())["rules"]
            if rule.get("seedCondition")}
    rules = {rule["labels"]["rule_id"]: rule for rule in read_rules(RULES_YAML.read_text())}
    assert set(rules) == set(seed) == set(SEED_SEVERITY)
    for rule_id, rule in rules.items():
        azure = seed[rule_id]
        assert rule["labels"]["severity"] == generate.SEVERITY[azure["severity"]]
        assert rule["labels"]["severity"] == SEED_SEVERITY[rule_id]
        assert rule["annotations"]["runbook_url"] == azure["runbook"]
        assert (RUNBOOKS / f"{rule_id}.md").is_file()  # what the app serves at that path
        assert rule["annotations"]["summary"] == azure["title"]
        assert rule["for"] in ("1m", "5m")
        operator, threshold = threshold_of(rule["expr"])
        assert operator == generate.OPERATORS[azure["operator"]]
        assert threshold == azure["threshold"] == threshold_of(azure["seedCondition"])[1]
        if rule_id in CHANGED:
            assert rule["expr"] != azure["seedCondition"]
            assert metric_names(azure["seedCondition"]) <= metric_names(rule["expr"])
        else:
            assert rule["expr"] == azure["seedCondition"], f"{rule_id}: not the seed's PromQL"
        assert metric_names(rule["expr"]) <= EXPOSED
    # Each changed expression says why, in a comment above it.
    comments = " ".join(line.strip().removeprefix("#").strip()
                        for line in RULES_YAML.read_text().splitlines()
                        if line.strip().startswith("#"))
    for rule_id in CHANGED:
        why = " ".join(generate.PROMETHEUS[rule_id].why_expr.split())
        assert f"expr: {why}" in comments


def test_runbook_urls_take_a_base_like_the_azure_rules():
    """--runbook-base-url prefixes docs/runbooks/<id>.md, with or without a trailing slash."""
    for base in ("https://example.org/repo/blob/main", "https://example.org/repo/blob/main/"):
        groups = generate.build(base)
        urls = [rule["annotations"]["runbook_url"] for g in groups for rule in g["rules"]]
        assert urls and all(u.startswith("https://example.org/repo/blob/main/docs/runbooks/")
                            for u in urls)


def test_the_azure_rendering_carries_the_same_rules():
    """azure-rule-groups.json (for the Bicep module) holds the YAML's rules, ISO durations."""
    document = json.loads(AZURE_JSON.read_text())
    yaml_rules = {r["alert"]: r for r in read_rules(RULES_YAML.read_text())}
    azure = {r["alert"]: r for g in document["groups"] for r in g["rules"]}
    assert set(azure) == set(yaml_rules)
    for name, rule in azure.items():
        expected = yaml_rules[name]
        assert rule["expression"] == expected["expr"]
        assert rule["for"] == "PT" + expected["for"].upper()
        assert rule["labels"] == expected["labels"]
        assert {**rule["annotations"], "runbook_url": rule["runbook"]} == expected["annotations"]
        assert 0 <= rule["severity"] <= 4


def test_the_bicep_module_reads_the_azure_rendering():
    """infra/modules/prometheus-rules.bicep loads azure-rule-groups.json and reads only fields
    every rule there has."""
    module = ROOT / "infra" / "modules" / "prometheus-rules.bicep"
    text = module.read_text()
    [path] = re.findall(r"loadJsonContent\('([^']+)'\)", text)
    assert (module.parent / path).resolve() == AZURE_JSON
    document = json.loads(AZURE_JSON.read_text())
    read = set(re.findall(r"\brule\.([A-Za-z]+)", text)) | set(
        re.findall(r"\brule\['([A-Za-z]+)'\]", text))
    assert read and all(read <= set(rule) for g in document["groups"] for rule in g["rules"])
    assert {"interval", "groups"} <= set(document)
    assert "Microsoft.AlertsManagement/prometheusRuleGroups@2023-03-01" in text


# -- promtool -------------------------------------------------------------------------------------


def test_promtool_checks_the_rules(promtool):
    done = run(promtool, "check", "rules", str(RULES_YAML))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 5 rules found" in done.stdout


def test_promtool_unit_tests_pass(promtool):
    """Both sides of every threshold and of every `for:` boundary (alert-rules.test.yml)."""
    done = run(promtool, "test", "rules", str(RULES_TEST))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_rule_is_unit_tested():
    """Each alert has a test where it fires and one at the same series where it does not."""
    text = RULES_TEST.read_text()
    for rule in read_rules(RULES_YAML.read_text()):
        blocks = re.findall(rf"alertname: {rule['alert']}\n\s+exp_alerts:(.*?)(?=\n\s+- eval_time|"
                            r"\n\n|\Z)", text, re.S)
        assert any(b.strip() == "[]" for b in blocks), f"{rule['alert']}: no quiet case"
        assert any("exp_labels" in b for b in blocks), f"{rule['alert']}: never fires"


def test_the_unit_tests_catch_a_wrong_for(promtool, tmp_path):
    """A control: with `for: 4m` instead of 5m the same unit tests fail."""
    (tmp_path / "alert-rules.yml").write_text(RULES_YAML.read_text().replace("for: 5m", "for: 4m"))
    (tmp_path / "alert-rules.test.yml").write_text(RULES_TEST.read_text())
    done = run(promtool, "test", "rules", str(tmp_path / "alert-rules.test.yml"))
    assert done.returncode != 0
    assert "FAILED" in done.stdout + done.stderr


# -- rules driven by series scraped from the running app -----------------------------------------

_TEMPLATE = re.compile(r'\{\{ \$labels\.([a-z_]+) \}\}|\{\{ printf "%\.(\d)f" \$value \}\}')


def render(template: str, labels: dict[str, str], value: float) -> str:
    """The two template forms the rules use (the generator allows no others)."""
    return _TEMPLATE.sub(lambda m: labels.get(m.group(1), "") if m.group(1)
                         else f"{value:.{m.group(2)}f}", template)


def series(name: str, labels: dict[str, str]) -> str:
    def quoted(value: str) -> str:
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

    inner = ",".join(f"{k}={quoted(v)}" for k, v in labels.items())
    return f"{name}{{{inner}}}"


def two_phase(first: int, second: int, switch: int = 10, end: int = 30) -> str:
    """A counter growing by `first` a minute up to minute `switch`, then by `second`."""
    return f"0+{first}x{switch} {first * switch + second}+{second}x{end - switch - 1}"


def scrape_when_ready(server: Server) -> str:
    wanted = {"sync_jobs_total", "sync_latency_ms_bucket", "service_bus_queue_depth",
              "service_bus_dlq_depth"}

    def ready(s: Server) -> str | None:
        if s.get("/api/health").json().get("host", {}).get("demo") != "live":
            return None
        text = s.get("/metrics").text
        names = {line.split("{")[0].split(" ")[0] for line in text.splitlines()
                 if line and not line.startswith("#")}
        return text if wanted <= names else None

    return server.wait_for(ready, timeout=180, interval=1.0)


class ScrapedTests:
    """A promtool test file whose input series are series of a real scrape."""

    def __init__(self, rules: dict[str, dict[str, Any]]) -> None:
        self.rules = rules
        self.tests: list[dict[str, Any]] = []
        self.names: set[str] = set()
        self.covered: set[str] = set()

    def add(self, alert: str, inputs: list[tuple[str, dict[str, str], str]], fires_at: int,
            alert_labels: dict[str, str], value: float) -> None:
        """One test where `inputs` make `alert` fire at `fires_at` (minutes), and one with the
        same series held just below the threshold (the quiet values are each input's 4th)."""
        rule = self.rules[alert]
        expected = {
            "exp_labels": {**rule["labels"], **alert_labels},
            "exp_annotations": {**rule["annotations"], "description": render(
                rule["annotations"]["description"], alert_labels, value)},
        }
        self.names |= {name for name, _, _ in inputs}
        self.covered.add(alert)
        self.tests.append({
            "interval": "1m",
            "input_series": [{"series": series(n, labels), "values": values}
                             for n, labels, values in inputs],
            "alert_rule_test": [
                {"eval_time": f"{fires_at - 1}m", "alertname": alert, "exp_alerts": []},
                {"eval_time": f"{fires_at}m", "alertname": alert, "exp_alerts": [expected]},
            ],
        })

    def quiet(self, alert: str, inputs: list[tuple[str, dict[str, str], str]]) -> None:
        self.tests.append({
            "interval": "1m",
            "input_series": [{"series": series(n, labels), "values": values}
                             for n, labels, values in inputs],
            "alert_rule_test": [{"eval_time": f"{t}m", "alertname": alert, "exp_alerts": []}
                                for t in (18, 30)],
        })

    def write(self, path: Path) -> None:
        # JSON is YAML: promtool reads it as is.
        path.write_text(json.dumps({"rule_files": [str(RULES_YAML)], "evaluation_interval": "1m",
                                    "tests": self.tests}, indent=1))


def promtool_tests_from(text: str) -> tuple[ScrapedTests, set[str], set[str]]:
    """Promtool tests for every rule whose series the exposition holds: (tests, the alerts
    covered, the series names served)."""
    samples: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(dict(sample.labels))
    ours = {name for name in samples if name.split("_")[0] in ("sync", "adapter", "service")}
    assert ours <= EXPOSED, f"served under names the seed does not have: {ours - EXPOSED}"
    tests = ScrapedTests({r["alert"]: r for r in read_rules(RULES_YAML.read_text())})

    if samples.get("service_bus_queue_depth"):
        queue = samples["service_bus_queue_depth"][0]
        tests.add("ServiceBusQueueBacklog", [("service_bus_queue_depth", queue, "95x10 101x20")],
                  16, queue, 101)
        tests.quiet("ServiceBusQueueBacklog", [("service_bus_queue_depth", queue, "100x30")])
    if samples.get("service_bus_dlq_depth"):
        dlq = samples["service_bus_dlq_depth"][0]
        tests.add("DeadLetterQueueAccumulation", [("service_bus_dlq_depth", dlq, "0x10 1x20")],
                  12, dlq, 1)
        tests.quiet("DeadLetterQueueAccumulation", [("service_bus_dlq_depth", dlq, "0x30")])
    if samples.get("sync_latency_ms_bucket"):
        buckets = samples["sync_latency_ms_bucket"]
        job = {k: v for k, v in buckets[0].items() if k != "le"}
        bounds = [b["le"] for b in buckets if {k: v for k, v in b.items() if k != "le"} == job]
        assert "300000" in bounds, f"300000 ms is not a bucket boundary: {bounds}"

        def latency(low: str) -> list[tuple[str, dict[str, str], str]]:
            return [("sync_latency_ms_bucket", {**job, "le": le},
                     "0x30" if float(le) < 300000 else low if float(le) == 300000
                     else "0+1000x30") for le in bounds]

        # 951 of 1000 jobs a minute within 300000 ms, then 949: p95 from just below to above.
        tests.add("SlowSyncProcessing", latency(two_phase(951, 949)), 18, job,
                  300000 + 300000 * (950 - 949) / (1000 - 949))
        tests.quiet("SlowSyncProcessing", latency("0+951x30"))
    if samples.get("sync_jobs_failed_total"):
        failed = samples["sync_jobs_failed_total"][0]

        def jobs(before: int, after: int) -> list[tuple[str, dict[str, str], str]]:
            """`before` then `after` of 100 finished jobs a minute fail."""
            return [("sync_jobs_failed_total", failed, two_phase(before, after)),
                    ("sync_jobs_total", failed, two_phase(before, after)),
                    ("sync_jobs_total", {**failed, "status": "completed"},
                     two_phase(100 - before, 100 - after))]

        tests.add("HighSyncFailureRate", jobs(9, 11), 18,
                  {"adapter_type": failed["adapter_type"]}, 11.0)
        tests.quiet("HighSyncFailureRate", jobs(9, 9))
    if samples.get("adapter_rate_limit_hits_total"):
        hits = samples["adapter_rate_limit_hits_total"][0]
        tests.add("HighRateLimitHits",
                  [("adapter_rate_limit_hits_total", hits, two_phase(594, 606))], 18, hits, 10.1)
        tests.quiet("HighRateLimitHits", [("adapter_rate_limit_hits_total", hits, "0+594x30")])
    assert tests.names <= set(samples)  # every input series name was served
    return tests, tests.covered, set(samples)


def run_scraped(promtool: str, tests: ScrapedTests, path: Path) -> None:
    tests.write(path)
    done = run(promtool, "test", "rules", str(path))
    assert done.returncode == 0, done.stdout + done.stderr + path.read_text()
    assert "SUCCESS" in done.stdout


def test_rules_fire_on_series_scraped_from_the_running_app(promtool, tmp_path):
    """Series names and labels from the live demo's /metrics, values made up around each
    threshold: the rules select those exact series, fire after `for:`, and stay quiet below."""
    # given the local app with the demo running live, and a scrape of its /metrics
    with Server(tmp_path, "--hours", "0.5") as server:
        text = scrape_when_ready(server)
    # when a promtool test is written for every rule whose series the scrape holds
    tests, covered, _ = promtool_tests_from(text)
    # then promtool passes them; queue depth, dead letters and latency are always there (a
    # failed job or a 429 may not have happened live yet)
    run_scraped(promtool, tests, tmp_path / "scraped.test.yml")
    assert covered >= {"ServiceBusQueueBacklog", "DeadLetterQueueAccumulation",
                       "SlowSyncProcessing"}


def test_every_rule_fires_on_series_the_exporter_serves(promtool, tmp_path):
    """The same, from the exposition /metrics serves after a failed job and a 429: all five
    rules select series exactly as the exporter names and labels them."""
    # given a failed sync job with a rate-limited call, and a queue sample
    reader = SeedPrometheusReader()
    provider = MeterProvider(metric_readers=[reader])
    labels = {"tenant_id": "tenant-101", "integration_id": "hubspot-connection-3",
              "adapter_type": "hubspot", "entity": "contact"}
    with capture_telemetry() as captured:
        use(Telemetry(meter_provider=provider, logger_provider=captured.telemetry.logger_provider,
                      tracer_provider=captured.telemetry.tracer_provider, stdout=False))
        with sync_job(**labels) as job:
            with adapter_request() as call:
                call.status_code = 429
            job.fail("rate limit exhausted")
        record_queue_depth("sync-jobs", 150, 2)
        text = reader.exposition().decode()
    provider.shutdown()
    # when promtool tests are written from that exposition
    tests, covered, _ = promtool_tests_from(text)
    # then every rule is covered and passes
    assert covered == set(generate.PROMETHEUS[r].alert for r in generate.PROMETHEUS)
    run_scraped(promtool, tests, tmp_path / "exposition.test.yml")
