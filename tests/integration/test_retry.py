"""Retrying a batch's failed jobs on the real stack: same batch, same ids, counts right, dead
letters listed, and what a retry cannot change left alone."""

import hashlib
import time
import uuid
from collections import Counter

import pytest

from shared.image_store import open_image_store
from tests import images
from tests.integration.test_batches import post_batch, wait_for_batch
from tests.integration.test_cancel import lines
from tests.integration.test_cli import recog
from tests.stack import API, check, put_image

pytestmark = pytest.mark.timeout(400)


def audit_statuses(store, job_ids: set) -> Counter:
    """Each job's audit rows (this hour and the one before: the test may straddle an hour)."""
    now = time.time()
    hours = {time.strftime("%Y-%m-%dT%H", time.gmtime(now - s)) for s in (0, 3600)}
    found = Counter()
    for hour in hours:
        for row in store.session.execute(
            "SELECT job_id, status FROM predictions_by_hour WHERE hour = %s", (hour,)
        ):
            if row["job_id"] in job_ids:
                found[(row["job_id"], row["status"])] += 1
    return found


def test_failed_jobs_retried_end_done_in_the_same_batch(stack, gateway, store, settings, spec):
    """Three images gone from the store when the worker comes to them fail; stored again, a
    retry queues those three (and not a file refused at upload) and they end done."""
    files = [(f"retry/{d}.png", images.fresh_png_digit(d, 8)) for d in range(8)]
    refused = ("retry/cut.png", images.png_digit(1)[:20])  # cut inside its header
    gone = [data for _, data in files[:3]]
    stack.stop_workers()
    try:
        batch = post_batch(gateway, [*files, refused]).json()
        assert batch["accepted"] == 8 and len(batch["failed"]) == 1, batch
        image_store = open_image_store(settings, lambda: store.session)
        for data in gone:
            image_store.delete(hashlib.sha256(data).hexdigest())
    finally:
        stack.start_workers()
    stack.wait_workers_ready()
    first = wait_for_batch(gateway, batch["id"])
    assert (first["status"], first["done"], first["failed"]) == ("partial", 5, 4), first
    failures = API.get(f"{gateway}/v1/batches/{batch['id']}/results?format=json&status=failed", timeout=30)
    dead = check(spec, failures, 200).json()
    assert sorted(line["file"] for line in dead) == [
        "retry/0.png",
        "retry/1.png",
        "retry/2.png",
        "retry/cut.png",
    ]
    assert all(line["status"] == "failed" and line["error"] for line in dead)
    failed_ids = {uuid.UUID(line["job_id"]) for line in dead if line["file"] != "retry/cut.png"}

    for data in gone:
        put_image(settings, store, data)
    body = check(spec, API.post(f"{gateway}/v1/batches/{batch['id']}/retry", timeout=60), 202).json()
    assert body["retried"] == 3 and body["total"] == 9
    # Recounted at once: the three are open again, only the refused file is still failed.
    assert body["failed"] == 1 and body["done"] + body["queued"] + body["running"] == 8

    final = wait_for_batch(gateway, batch["id"])
    assert (final["status"], final["total"], final["done"], final["failed"]) == ("partial", 9, 8, 1), final
    found = {line["file"]: line for line in lines(gateway, batch["id"])}
    assert len(found) == 9, "a retry added lines instead of reusing the batch's own"
    for d in range(3):
        line = found[f"retry/{d}.png"]
        assert (line["status"], line["label"], line["error"]) == ("done", str(d), None), line
        assert uuid.UUID(line["job_id"]) in failed_ids, "a retried file got a new job id"
    row = store.get_job(next(iter(failed_ids)))
    assert row["status"] == "done" and row["error"] is None
    assert found["retry/cut.png"]["status"] == "failed", "a file refused at upload was retried"
    audited = audit_statuses(store, failed_ids)
    assert all(audited[(j, "failed")] == 1 and audited[(j, "done")] == 1 for j in failed_ids), audited

    check(spec, API.post(f"{gateway}/v1/batches/{batch['id']}/retry", timeout=60), 409)
    again = recog(settings, "retry", batch["id"])
    assert again.returncode == 1 and "409 nothing_to_retry" in again.stderr, again.stderr


def test_results_refuse_an_unknown_status(gateway):
    batch = post_batch(gateway, [("s/0.png", images.png_digit(0))]).json()
    answer = API.get(f"{gateway}/v1/batches/{batch['id']}/results?status=lost", timeout=30)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "bad_status"
    unknown = API.post(f"{gateway}/v1/batches/{uuid.uuid4()}/retry", timeout=30)
    assert unknown.status_code == 404 and unknown.json()["error"]["code"] == "unknown_batch"
