"""The reference pages are held to the code: a setting, an error code or a CLI option added
without its docs fails here, and so does a link to a page that does not exist."""

import ast
import dataclasses
import re
from pathlib import Path

import click

from cli.main import cli
from shared.settings import FLOWER, PROJECT_ROOT, Settings
from tests.docs_tables import expected_cells, table_rows
from tests.settings_readers import readers

DOCS = PROJECT_ROOT / "docs"


def test_every_setting_is_documented_with_its_type_default_bounds_and_readers():
    documented = table_rows((DOCS / "configuration.md").read_text(), "RECOG_")
    expected = expected_cells()
    assert sorted(documented) == sorted(expected), "docs/configuration.md lists other settings than Settings"
    for name, cells in expected.items():
        assert documented[name][:4] == cells, (
            f"{name}: the row should start | `{name}` | {' | '.join(cells)} |"
        )


def test_each_setting_is_read_by_the_processes_it_names_and_no_other():
    """The "read by" column comes from Settings' declarations; this holds those to the code."""
    found = readers()
    declared = {f.name: set(f.metadata["read_by"]) - {FLOWER} for f in dataclasses.fields(Settings)}
    wrong = {
        name: f"declared {sorted(processes)}, read by {sorted(found.get(name, ()))}"
        for name, processes in declared.items()
        if processes != found.get(name, set())
    }
    assert not wrong, wrong


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
    commands = {
        f"{name} {sub}" if isinstance(command, click.Group) else name: sub_command
        for name, command in cli.commands.items()
        for sub, sub_command in (
            command.commands.items() if isinstance(command, click.Group) else [("", command)]
        )
    }
    for name, command in commands.items():
        row = next((cell for cell in rows if re.search(rf"recog {name}(?![\w-])", cell)), None)
        assert row is not None, f"docs/cli.md has no row for recog {name}"
        in_docs = set(re.findall(r"--[a-z][\w-]*", row))
        in_code = {
            o for p in command.params if isinstance(p, click.Option) for o in p.opts if o.startswith("--")
        }
        assert in_docs == in_code, (
            f"recog {name}: docs/cli.md shows {sorted(in_docs)}, the code has {sorted(in_code)}"
        )


def test_the_readme_is_a_short_front_door():
    assert len((PROJECT_ROOT / "README.md").read_text().splitlines()) <= 200


def anchors(page: Path) -> set[str]:
    """The anchors a markdown renderer gives the page's headings (lowercase, punctuation dropped,
    spaces as hyphens)."""
    headings = re.findall(r"(?m)^#+ (.+)$", page.read_text())
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_in_the_docs_leads_somewhere():
    pages = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "CHANGELOG.md", *DOCS.glob("*.md")]
    for page in pages:
        for target, anchor in re.findall(r"\]\(([^)#:]*)(?:#([^)]*))?\)", page.read_text()):
            path = (page.parent / target) if target else page
            assert path.exists(), f"{page.name} links to {target}, which does not exist"
            if anchor:
                assert anchor in anchors(path), f"{page.name} links to {target}#{anchor}, no such heading"


def test_the_layout_names_every_module():
    layout = (DOCS / "development.md").read_text().split("## Layout", 1)[1].split("\n## ", 1)[0]
    for package in ("gateway", "workers", "model", "shared", "shared/store", "cli", "devstack"):
        for module in (PROJECT_ROOT / package).glob("*.py"):
            assert f"`{module.name}`" in layout, (
                f"docs/development.md's layout leaves out {package}/{module.name}"
            )
