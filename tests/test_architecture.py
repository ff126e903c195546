"""The import contracts in pyproject.toml (held by lint-imports in `make test`) cover the whole
package: every package and top-level module of integration_monitoring sits in one layer, and
docs/architecture.md names each package."""

from __future__ import annotations

import tomllib

from .helpers import ROOT

PACKAGE = ROOT / "integration_monitoring"


def contracts() -> dict[str, dict]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    return {contract["id"]: contract for contract in config["contracts"]}


def members() -> set[str]:
    """The packages and modules directly inside integration_monitoring."""
    names = {path.name for path in PACKAGE.iterdir()
             if path.is_dir() and (path / "__init__.py").is_file()}
    names |= {path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__"}
    return names


def test_the_layers_name_every_package_and_module_once():
    layered = [name.strip() for layer in contracts()["layers"]["layers"]
               for name in layer.replace(":", "|").split("|")]
    assert sorted(layered) == sorted(set(layered)), "a name sits in two layers"
    assert set(layered) == members()


def test_the_base_is_at_the_bottom_and_the_entry_points_on_top():
    layers = contracts()["layers"]["layers"]
    position = {name.strip(): index for index, layer in enumerate(layers)
                for name in layer.split("|")}
    for base in ("telemetry", "store", "queries"):
        assert all(position[base] > position[feature]
                   for feature in ("admin", "alerts", "queues", "demo", "app", "localhost"))
    assert position["__main__"] == 0


def test_every_contract_kind_the_house_relies_on_is_declared():
    kinds = {contract["type"] for contract in contracts().values()}
    assert {"layers", "private_modules", "acyclic_siblings"} <= kinds


def test_the_architecture_page_names_every_package():
    page = (ROOT / "docs" / "architecture.md").read_text()
    packages = {name for name in members()
                if (PACKAGE / name / "__init__.py").is_file()}
    missing = [name for name in sorted(packages) if f"`{name}`" not in page]
    assert not missing, missing
