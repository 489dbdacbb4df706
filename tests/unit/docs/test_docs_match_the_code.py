"""The reference pages are held to the code: a setting, an error code or a CLI option added
without its docs fails here, and so does a link to a page that does not exist."""

import ast
import re

import click

from cli.main import cli
from shared.settings import PROJECT_ROOT
from tests.docs_tables import expected_cells, table_rows

DOCS = PROJECT_ROOT / "docs"


def test_every_setting_is_documented_with_its_default_bounds_and_readers():
    documented = table_rows((DOCS / "configuration.md").read_text(), "RECOG_")
    expected = expected_cells()
    assert sorted(documented) == sorted(expected), "docs/configuration.md lists other settings than Settings"
    for name, cells in expected.items():
        assert documented[name][:3] == cells, (
            f"{name}: the row should start | `{name}` | {' | '.join(cells)} |"
        )


def error_codes_in_the_code() -> dict[str, int]:
    """Every error code the gateway can answer with: ApiError and error_response calls, and the
    codes of ImageRejected (422 unless it says otherwise), found in the source's syntax tree."""
    codes: dict[str, int] = {}
    for path in [*(PROJECT_ROOT / "gateway").rglob("*.py"), *(PROJECT_ROOT / "shared").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            constants = [a.value for a in node.args if isinstance(a, ast.Constant)]
            keywords = {k.arg: k.value.value for k in node.keywords if isinstance(k.value, ast.Constant)}
            if name in ("ApiError", "error_response") and len(constants) >= 2:
                codes[constants[1]] = constants[0]
            elif name == "ImageRejected" and "code" in keywords:
                codes[keywords["code"]] = keywords.get("status", 422)
    return codes


def test_the_error_table_lists_every_code_the_gateway_returns_and_no_other():
    found = error_codes_in_the_code()
    assert len(found) >= 20, "the search for error codes found too few; has the code changed shape?"
    rows = [
        line.strip("|").split(" | ")
        for line in (DOCS / "api.md").read_text().splitlines()
        if re.match(r"^\| \d{3} \| `[a-z_]+` \|", line)
    ]
    documented = {code.strip().strip("`"): int(status) for status, code, *_ in rows}
    assert documented == found


def test_the_cli_reference_lists_every_command_and_option():
    rows = table_rows((DOCS / "cli.md").read_text(), "recog ")
    documented = {name for cell in rows for name in re.findall(r"recog (\w[\w-]*)", cell)}
    assert documented == set(cli.commands), (
        f"docs/cli.md: {sorted(documented)}; recog: {sorted(cli.commands)}"
    )
    for name, command in cli.commands.items():
        row = next(cell for cell in rows if re.search(rf"recog {name}\b", cell))
        for param in command.params:
            if isinstance(param, click.Option):
                assert any(opt in row for opt in param.opts), (
                    f"recog {name}: {param.opts[0]} is not in docs/cli.md"
                )


def test_the_readme_is_a_short_front_door():
    assert len((PROJECT_ROOT / "README.md").read_text().splitlines()) <= 200


def test_every_relative_link_in_the_docs_leads_somewhere():
    pages = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "CHANGELOG.md", *DOCS.glob("*.md")]
    for page in pages:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"
