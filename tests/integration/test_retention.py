"""Retention on the real stack: with RECOG_RETENTION_DAYS of 20 seconds, a finished job's and
batch's rows expire by Cassandra TTL, `recog collect-images` removes their images, and a job
accepted within the retention (queued: its worker is stopped) keeps its row and its image.

It runs on its own keyspace, queues and image folder, with a second worker of its own, so the
short retention touches no other test's rows."""

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from gateway import create_app
from shared.store.cassandra_results import CassandraStore
from tests import images
from tests.stack import stored_images, wait_until_final

RECOG = Path(sys.executable).parent / "recog"
RETENTION = 20  # seconds
pytestmark = pytest.mark.timeout(400)


def recog(settings, *args: str) -> str:
    env = {**os.environ, **settings.to_env()}
    done = subprocess.run([str(RECOG), *args], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_old_rows_and_images_go_and_a_live_job_keeps_its_own(stack, settings):
    own = settings.replace(
        cassandra_keyspace=f"retention_{settings.image_store}",
        queue="recog-retention",
        bulk_queue="recog-retention.bulk",
        image_dir=settings.image_dir.parent / "images-retention",
        retention_days=RETENTION / 86400,
        audit_retention_days=RETENTION / 86400,
        collect_minutes=0,  # the test runs the collector itself, as an operator would
        worker_metrics_port=0,
        api_key="",
    )
    recog(own, "schema")
    client = create_app(own).test_client()
    key = recog(own, "keys", "create", "retention").strip().splitlines()[-1]
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    store = CassandraStore.open(own)
    stack.start_worker("worker2", settings=own, queues="both")
    try:
        stack.wait_worker_ready("worker2")
        old = client.post("/v1/jobs?wait=30", data={"file": (_bytes(1), "old.png")}).get_json()
        assert old["status"] == "done", old
        files = {"files": [(_bytes(2), "b2.png"), (_bytes(3), "b3.png")]}
        batch = client.post("/v1/batches", data=files, content_type="multipart/form-data").get_json()
        batch_jobs = [line["job_id"] for line in _lines(client, batch["id"])]
        assert all(row["status"] == "done" for row in wait_until_final(store, batch_jobs, 60).values())
        old_images = stored_images(own, store)
        assert len(old_images) == 3
        written = time.monotonic()  # the old jobs' last writes are before this

        stack.stop("worker2")
        time.sleep(8)
        live = client.post("/v1/jobs", data={"file": (_bytes(4), "live.png")}).get_json()
        live_image = stored_images(own, store) - old_images
        time.sleep(max(0.0, written + RETENTION + 2 - time.monotonic()))

        # Every row of the old job and batch is gone; the live job's row is there.
        assert client.get(f"/v1/jobs/{old['id']}").status_code == 404
        assert client.get(f"/v1/batches/{batch['id']}").status_code == 404
        for table, column, value in [
            ("jobs", "job_id", uuid.UUID(old["id"])),
            ("batches", "batch_id", uuid.UUID(batch["id"])),
            ("batch_jobs", "batch_id", uuid.UUID(batch["id"])),
            ("batch_parts", "batch_id", uuid.UUID(batch["id"])),
            ("batches_by_tenant", "tenant", "retention"),
            ("results_by_image", "sha256", old["file"]["sha256"]),
        ]:
            rows = list(store.session.execute(f"SELECT * FROM {table} WHERE {column} = %s", (value,)))
            assert rows == [], f"{table} still holds {rows[:1]}"
        audit = store.session.execute(
            "SELECT job_id FROM predictions_by_hour WHERE hour = %s", (old["finished_at"][:13],)
        )
        assert uuid.UUID(old["id"]) not in {row["job_id"] for row in audit}
        assert store.get_job(uuid.UUID(live["id"]))["status"] == "queued"

        # The collector removes the old images, and only those.
        said = recog(own, "collect-images")
        assert said.startswith("removed 3 images"), said
        assert stored_images(own, store) == live_image and len(live_image) == 1
        # Still within its retention, the live job is whole, as its owner reads it.
        shown = client.get(f"/v1/jobs/{live['id']}")
        assert shown.status_code == 200 and shown.get_json()["status"] == "queued"
        assert shown.get_json()["file"]["sha256"] in live_image
    finally:
        stack.stop("worker2")
        store.close()


def _bytes(digit: int):
    import io

    return io.BytesIO(images.fresh_png_digit(digit, digit, 200))


def _lines(client, batch_id: str) -> list[dict]:
    return client.get(f"/v1/batches/{batch_id}/results?format=json").get_json()
