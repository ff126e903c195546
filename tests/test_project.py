"""Contracts between the project's files: dependencies, CI, docs."""

from __future__ import annotations

import re
import tomllib

from integration_monitoring import METRICS

from .helpers import ROOT


def _pins(path: str) -> dict[str, str]:
    pins = {}
    for line in (ROOT / path).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"{path}: {line} is not pinned"
            pins[name.lower()] = version
    return pins


def test_every_library_dependency_is_pinned_for_the_function_app():
    """requirements.txt pins each dependency pyproject.toml declares, within its range."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = project["dependencies"] + project["optional-dependencies"]["app"]
    pins = _pins("requirements.txt")
    for requirement in declared:
        name = re.split(r"[<>=!\[ ]", requirement, maxsplit=1)[0].lower()
        assert name in pins, f"{name} is not pinned in requirements.txt"


def test_ci_runs_the_readme_test_command():
    """.ci/run calls make test, which the README shows next to make run."""
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make run" in readme


def test_metrics_reference_lists_every_metric_with_its_labels():
    """docs/metrics.md names each metric, its kind, unit and labels as the code declares them."""
    doc = (ROOT / "docs" / "metrics.md").read_text()
    for spec in METRICS:
        row = next((line for line in doc.splitlines() if line.startswith(f"| `{spec.name}`")),
                   None)
        assert row, f"{spec.name} missing from docs/metrics.md"
        assert spec.kind in row
        for label in spec.labels:
            assert f"`{label}`" in row, f"{spec.name}: label {label} not documented"
