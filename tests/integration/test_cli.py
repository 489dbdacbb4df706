"""The `recog` commands a person types, run as subprocesses against the test stack: submit,
status, and schema's upgrade of an older keyspace."""

import json
import os
import subprocess
import sys
import time
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
    nowhere = recog(settings.replace(gateway_url="http://127.0.0.1:9"), "status", "x", "--retry-for", "0")
    assert nowhere.returncode == 1 and "cannot reach the gateway" in nowhere.stderr


def test_a_client_gives_up_when_retry_for_runs_out(settings):
    started = time.monotonic()
    result = recog(settings.replace(gateway_url="http://127.0.0.1:9"), "status", JOB, "--retry-for", "4")
    assert result.returncode == 1 and "tried for 4 s" in result.stderr
    assert result.stderr.count("waiting for the service") >= 2, "it waited, with backoff, and said so"
    assert 3 <= time.monotonic() - started < 30


def test_submit_rides_out_a_sigkilled_gateway(stack, settings, tmp_path):
    """The gateway is SIGKILLed; `recog submit` started meanwhile waits, says so, and gets its
    answer once the gateway is back (with the default --retry-for)."""
    digit = tmp_path / "two.png"
    digit.write_bytes(images.encode(images.ink_on_paper(2, 5, size=233)))  # a size no other test uses
    stack.kill("gateway")
    try:
        env = {**os.environ, **settings.to_env()}
        proc = subprocess.Popen(
            [str(RECOG), "submit", str(digit), "--wait", "20"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        time.sleep(4)
        assert proc.poll() is None, "the client gave up while the gateway was down"
    finally:
        stack.start_gateway()
        stack.wait_gateway_ready()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "waiting for the service: cannot reach the gateway" in err
    job = json.loads(out)
    assert job["status"] == "done" and job["label"] == "2"


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
    assert {"images", "open_work", "worker_leases", "batch_jobs", "predictions_by_hour"} <= tables
    store.session.execute("DROP KEYSPACE recog_upgrade")
