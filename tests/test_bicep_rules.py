"""Two of the Bicep compiler's rules, held on our Bicep without a Bicep CLI (tests/bicep_rules.py):
where a for-expression may stand, and which values must be known when the deployment starts.

The fixtures under tests/fixtures/bicep/ mark each line that must give an error with a trailing
`// expect: BCPnnn` comment; the ok-*.bicep ones (the accepted forms) mark none.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .bicep_rules import bicep_parser, check
from .helpers import ROOT

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "bicep"
FIXTURE_FILES = sorted(FIXTURES.glob("*.bicep"))
INFRA_FILES = sorted((ROOT / "infra").rglob("*.bicep"))
EXPECT = re.compile(r"// expect: (BCP\d+(?: BCP\d+)*)\s*$")
# Every code the checker reports, each shown by at least one fixture.
CODES = {"BCP066", "BCP120", "BCP138", "BCP142", "BCP143", "BCP160", "BCP177", "BCP178",
         "BCP181", "BCP182", "BCP341"}  # fmt: skip


def expected(source: str) -> set[tuple[int, str]]:
    return {
        (number, code)
        for number, line in enumerate(source.splitlines(), 1)
        if (match := EXPECT.search(line))
        for code in match.group(1).split()
    }


def report(violations) -> str:
    return "\n".join(f"line {v.line}: {v.code} {v.message}" for v in violations)


@pytest.mark.parametrize("path", FIXTURE_FILES, ids=lambda path: path.name)
def test_fixture_gives_exactly_the_codes_it_marks(path):
    source = path.read_text()
    assert not bicep_parser().parse(source.encode()).root_node.has_error, "unparsable fixture"
    violations = check(source)
    assert {(v.line, v.code) for v in violations} == expected(source), report(violations)


def test_the_fixtures_show_every_code_and_the_accepted_forms():
    marked = {code for path in FIXTURE_FILES for _, code in expected(path.read_text())}
    assert marked == CODES
    accepted = [path for path in FIXTURE_FILES if path.name.startswith("ok-")]
    assert accepted and not any(expected(path.read_text()) for path in accepted)


@pytest.mark.parametrize(
    ("source", "code"),
    [
        # The workbook's tiles: a loop inside flatten()/concat() in a variable.
        (
            "param layout object\n"
            "var items = flatten([for t in layout.tiles: concat([t.header], [t.query])])\n",
            "BCP138",
        ),
        # The function app's settings: a property loop over a variable holding a property of an
        # existing resource.
        (
            "resource ai 'Microsoft.Insights/components@2020-02-02' existing = {\n"
            "  name: 'ai'\n"
            "}\n"
            "var settings = { CONN: ai.properties.ConnectionString }\n"
            "resource site 'Microsoft.Web/sites@2024-11-01' = {\n"
            "  name: 'site'\n"
            "  properties: {\n"
            "    siteConfig: {\n"
            "      appSettings: [for s in items(settings): { name: s.key, value: s.value }]\n"
            "    }\n"
            "  }\n"
            "}\n",
            "BCP178",
        ),
    ],
    ids=["loop-in-function-call", "property-loop-over-runtime-settings"],
)
def test_the_two_defects_found_in_infra_are_caught(source, code):
    assert [v.code for v in check(source)] == [code]


@pytest.mark.parametrize("path", INFRA_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_infra_bicep_keeps_the_compilers_loop_and_constant_rules(path):
    violations = check(path.read_text())
    assert not violations, report(violations)
