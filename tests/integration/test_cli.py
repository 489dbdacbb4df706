"""The `recog` commands a person types, run as subprocesses against the test stack: submit,
status, and schema's upgrade of an older keyspace."""

import json
import os
import subprocess
import sys
from pathlib import Path

from tests import images

RECOG = Path(sys.executable).parent / "recog"
JOB = "0b7e4c1e-8f0a-4c7b-9a51-2d1f3c4e5a6b"


def recog(settings, *args, timeout=120):
    env = {**os.environ, **settings.to_env()}
    return subprocess.run([str(RECOG), *args], capture_output=True, text=True, timeout=timeout, env=env)


def test_submit_waits_for_the_answer_and_status_shows_the_same_job(settings, tmp_path):
    digit = tmp_path / "nine.png"
    digit.write_bytes(images.encode(images.ink_on_paper(9, 1, size=237)))  # a size no other test uses
    submitted = recog(settings, "submit", str(digit), "--wait", "20")
    assert submitted.returncode == 0, submitted.stderr
    job = json.loads(submitted.stdout)
    assert job["status"] == "done" and job["label"] == "9" and job["file"]["name"] == "nine.png"
    shown = recog(settings, "status", job["id"])
    assert shown.returncode == 0 and json.loads(shown.stdout) == job


def test_a_wait_longer_than_the_gateway_allows_is_its_clear_error(settings, tmp_path):
    digit = tmp_path / "one.png"
    digit.write_bytes(images.png_digit(1))
    result = recog(settings, "submit", str(digit), "--wait", str(settings.max_wait_seconds + 1))
    assert result.returncode == 1
    assert (
        f"400 bad_wait: wait must be a number of seconds above 0 and at most {settings.max_wait_seconds:g}"
        in (result.stderr)
    )


def test_status_of_an_unknown_job_and_an_unreachable_gateway_say_so(settings):
    unknown = recog(settings, "status", "0b7e4c1e-8f0a-4c7b-9a51-2d1f3c4e5a6b")
    assert unknown.returncode == 1 and "404 unknown_job" in unknown.stderr
    nowhere = recog(settings.replace(gateway_url="http://127.0.0.1:9"), "status", "x")
    assert nowhere.returncode == 1 and "cannot reach the gateway" in nowhere.stderr


def test_schema_adds_the_columns_an_older_keyspace_lacks(settings, store):
    """A keyspace made before jobs.batch_id and jobs.cached existed: `recog schema` adds them,
    keeps the rows, and running it again changes nothing."""
    old = settings.replace(cassandra_keyspace="recog_upgrade")
    store.session.execute("DROP KEYSPACE IF EXISTS recog_upgrade")
    store.session.execute(
        "CREATE KEYSPACE recog_upgrade WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': '1'}"
    )
    store.session.execute(
        "CREATE TABLE recog_upgrade.jobs (job_id uuid PRIMARY KEY, status text, filename text, sha256 text,"
        " size_bytes int, image_format text, width int, height int, model_name text, model_version text,"
        " label text, confidence double, probabilities list<double>, reason text, error text, worker text,"
        " created_at timestamp, started_at timestamp, finished_at timestamp, queue_ms double,"
        " inference_ms double, batch_size int)"
    )
    store.session.execute(f"INSERT INTO recog_upgrade.jobs (job_id, status) VALUES ({JOB}, 'done')")
    for _ in range(2):
        result = recog(old, "schema")
        assert result.returncode == 0 and "schema ready in keyspace recog_upgrade" in result.stdout, (
            result.stderr
        )
    row = store.session.execute(
        f"SELECT status, batch_id, cached FROM recog_upgrade.jobs WHERE job_id = {JOB}"
    ).one()
    assert row == {"status": "done", "batch_id": None, "cached": None}
    tables = {
        r["columnfamily_name"]
        for r in store.session.execute(
            "SELECT columnfamily_name FROM system.schema_columnfamilies WHERE keyspace_name = 'recog_upgrade'"
        )
    }
    assert {"images", "open_jobs", "batch_jobs", "predictions_by_hour"} <= tables
    store.session.execute("DROP KEYSPACE recog_upgrade")
