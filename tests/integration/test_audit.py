"""The cqlsh audit lines of docs/operations.md, run with the real cqlsh, and `recog audit` reading the
same rows."""

import json
import re
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest

from shared.jobs import hour_bucket
from shared.settings import PROJECT_ROOT
from shared.store.audit import QUERIES
from tests import images
from tests.integration.test_batches import post_batch, wait_for_batch
from tests.stack import API

BIN = Path(sys.executable).parent


def documented_cqlsh_lines() -> list[str]:
    text = (PROJECT_ROOT / "docs" / "operations.md").read_text()
    section = text[text.index("## Audit") :]
    section = section[: section.index("\n## ", 1)]
    return [line for line in section.splitlines() if line.startswith(".venv/bin/cqlsh ")]


@pytest.fixture(scope="module")
def audited(gateway):
    """One batch job with fresh bytes, so it has a row in every audit table."""
    data = images.encode(images.ink_on_paper(6, 4, size=187))  # a size no other test uses
    accepted = post_batch(gateway, [("audit/six.png", data)], name="audit").json()
    wait_for_batch(gateway, accepted["id"])
    results = API.get(f"{gateway}/v1/batches/{accepted['id']}/results", params={"format": "json"}, timeout=30)
    (row,) = results.json()
    job = API.get(f"{gateway}/v1/jobs/{row['job_id']}", timeout=30).json()
    assert job["status"] == "done" and job["label"] == "6"
    finished = datetime.fromisoformat(job["finished_at"].replace("Z", "+00:00"))
    return {
        "hour": hour_bucket(finished),
        "job": job["id"],
        "batch": accepted["id"],
        "sha256": job["file"]["sha256"],
    }


def fill_in(line: str, keys: dict, port: int) -> list[str]:
    """The documented line with this test's keys and port in place of the examples."""
    line = line.replace(" 9042 ", f" {port} ")
    line = re.sub(r"hour = '[^']+'", f"hour = '{keys['hour']}'", line)
    line = re.sub(r"job_id = [0-9a-f-]{36}", f"job_id = {keys['job']}", line)
    line = re.sub(r"batch_id = [0-9a-f-]{36}", f"batch_id = {keys['batch']}", line)
    line = re.sub(r"sha256 = '[0-9a-f]{64}'", f"sha256 = '{keys['sha256']}'", line)
    program, rest = line.split(" ", 1)
    head, query = rest.split(' -e "', 1)
    return [str(BIN / Path(program).name), *head.split(), "-e", query.rstrip('"')]


def test_the_docs_have_one_cqlsh_line_per_audit_query():
    lines = documented_cqlsh_lines()
    assert len(lines) == len(QUERIES)
    for line, query in zip(lines, QUERIES.values(), strict=True):
        # The docs show the CQL `recog audit` prepares, with an example key in place of `?`.
        pattern = re.escape(query.cql("recognition")).replace(r"\?", "('[^']+'|[0-9a-f-]{36})")
        assert re.search(pattern, line), line


def test_documented_cqlsh_lines_return_the_jobs_rows(audited, settings):
    for line, kind in zip(documented_cqlsh_lines(), QUERIES, strict=True):
        argv = fill_in(line, audited, settings.cassandra_port)
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
        lines = [line for line in out.splitlines() if line.strip()]
        rule = next(i for i, line in enumerate(lines) if set(line.strip()) <= set("-+"))
        header = [cell.strip() for cell in lines[rule - 1].split("|")]  # above cqlsh's ----+---- rule
        rows = [[cell.strip() for cell in line.split("|")] for line in lines if audited["job"] in line]
        assert header == list(QUERIES[kind].columns), out
        assert len(rows) == 1, f"{kind}: {out}"
        assert rows[0][header.index("label")] == "6"


def test_recog_audit_prints_the_same_rows(audited, stack):
    for kind, key in audited.items():
        out = subprocess.run(
            [str(BIN / "recog"), "audit", f"--{kind}", key, "--json"],
            env=stack.env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        ).stdout
        rows = [json.loads(line) for line in out.splitlines()]
        mine = [r for r in rows if r["job_id"] == audited["job"]]
        assert len(mine) == 1, f"{kind}: {rows}"
        assert mine[0]["label"] == "6"
        assert list(mine[0]) == list(QUERIES[kind].columns)


def test_recog_audit_refuses_a_bad_key(stack):
    result = subprocess.run(
        [str(BIN / "recog"), "audit", "--hour", "yesterday"],
        env=stack.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "YYYY-MM-DDTHH" in result.stderr
