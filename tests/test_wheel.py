"""The package stands on its own: built as a wheel and installed into a fresh virtual
environment outside the checkout, it serves the dashboard, its assets, the runbooks and the
admin API's answers, and evaluates the alert rules, all from files inside the package."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from integration_monitoring.alerts import load_rules

from .helpers import ROOT, free_port, http_get

VENDOR = ROOT / "integration_monitoring" / "admin" / "dashboard" / "vendor" / "chart.umd.js"


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 600
        ) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict]]:
    """A venv outside the checkout with only the wheel installed in it (the dependencies come
    from the test environment through a .pth line, never the checkout's sources), and a
    demo's history written by it."""
    assert VENDOR.is_file(), "build the dashboard's Chart.js first: make test does"
    work = tmp_path_factory.mktemp("wheel")
    # the tracked files of the package, plus the built Chart.js, as a fresh clone holds them
    source = work / "source"
    listed = run("git", "ls-files", "-z", "integration_monitoring", "pyproject.toml",
                 "README.md", cwd=ROOT).stdout.split("\0")
    for name in filter(None, listed):
        target = source / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / name).read_bytes())
    vendor = source / VENDOR.relative_to(ROOT)
    vendor.parent.mkdir(parents=True, exist_ok=True)
    vendor.write_bytes(VENDOR.read_bytes())
    run(sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--quiet",
        "-w", str(work / "dist"), cwd=work)
    [wheel] = (work / "dist").glob("integration_monitoring-*.whl")
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", str(venv), cwd=work)
    python = venv / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
        "--quiet", str(wheel), cwd=work)
    site = Path(run(str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))",
                    cwd=work).stdout.strip())
    (site / "test-dependencies.pth").write_text(sysconfig.get_path("purelib") + "\n")
    home = work / "home"
    home.mkdir()
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTHON", "TELEMETRY_", "ADMIN_", "APPLICATIONINSIGHTS_",
                                  "LOG_ANALYTICS_"))}
    env["TELEMETRY_DB"] = str(home / "telemetry.duckdb")
    run(str(python), "-m", "integration_monitoring", "demo", "--hours", "2", "--quiet",
        cwd=home, env=env)
    yield python, {"cwd": home, "env": env}


def test_the_installed_package_is_the_wheel_not_the_checkout(installed):
    python, where = installed
    located = run(str(python), "-c", "import integration_monitoring as m; print(m.__file__)",
                  **where).stdout.strip()
    assert str(ROOT) not in located and "venv" in located


def test_the_installed_package_evaluates_the_alert_rules(installed):
    """The rules list and the KQL ship inside: every rule measured on a demo's history."""
    python, where = installed
    evaluated = run(str(python), "-m", "integration_monitoring", "alerts", "evaluate",
                    "--once", **where)
    measured = {line.split()[1] for line in evaluated.stdout.splitlines()}
    assert measured and measured <= {rule.id for rule in load_rules()}, evaluated.stdout
    assert evaluated.stderr.strip().endswith("firing")


def test_the_installed_package_serves_the_dashboard_runbooks_and_answers(installed):
    python, where = installed
    port = free_port()
    server = subprocess.Popen(
        [str(python), "-m", "integration_monitoring", "serve", "--no-demo", "--port", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **where)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if http_get(url + "/api/health").status_code == 200:
                    break
            except Exception:
                assert server.poll() is None, server.communicate()[1]
                time.sleep(0.1)
        page = http_get(url + "/dashboard")
        assert page.status_code == 200 and "dashboard.js" in page.text
        for asset in ("dashboard.js", "dashboard.css", "vendor/chart.umd.js"):
            assert http_get(f"{url}/dashboard/static/{asset}").status_code == 200, asset
        runbook = http_get(url + "/docs/runbooks/high-sync-failure-rate.md")
        assert runbook.status_code == 200 and "high-sync-failure-rate" in runbook.text
        health = http_get(url + "/api/admin/integrations/health")
        assert health.status_code == 200, health.text
        assert health.json()["integrations"], "the demo's integrations are answered"
        alerts = http_get(url + "/api/admin/alerts")
        assert alerts.status_code == 200, alerts.text
    finally:
        server.terminate()
        server.communicate(timeout=30)
