"""Idempotency-Key on the real stack: a retried upload gets its first answer and makes no second
job, single or batch; the same key with other files is refused."""

import contextlib
import threading
import time
import uuid

import pytest
import requests

from shared.jobs import utcnow
from tests import images
from tests.integration.test_batches import audit_rows_per_job, post_batch, wait_for_batch
from tests.integration.test_metrics import samples, value
from tests.stack import API, wait_until_final


def post_job(gateway, data, key, name="digit.png", wait=None):
    return API.post(
        f"{gateway}/v1/jobs",
        params={"wait": wait} if wait else {},
        files={"file": (name, data)},
        headers={"Idempotency-Key": key},
        timeout=60,
    )


def test_a_single_upload_sent_twice_under_one_key_is_one_job(gateway, store):
    since = utcnow()
    key, data = str(uuid.uuid4()), images.fresh_png_digit(7, 2)
    first = post_job(gateway, data, key)
    assert first.status_code == 202, first.text
    job_id = first.json()["id"]
    done = wait_until_final(store, [job_id], timeout=60)[job_id]
    assert done["label"] == "7" and not done["cached"]
    replayed = value(samples(f"{gateway}/metrics"), "recog_uploads_replayed_total")
    again = post_job(gateway, data, key, wait=5)
    assert value(samples(f"{gateway}/metrics"), "recog_uploads_replayed_total") == replayed + 1
    assert again.status_code == 200 and again.json()["id"] == job_id, "the retry waits on the first job"
    time.sleep(2)  # time for a second recognition to land, were the job queued again
    row = store.get_job(uuid.UUID(job_id))
    assert (row["status"], row["finished_at"], row["cached"]) == ("done", done["finished_at"], False)
    assert audit_rows_per_job(store, since, {uuid.UUID(job_id)}) == {uuid.UUID(job_id): 1}
    other = post_job(gateway, data, str(uuid.uuid4()))
    assert other.json()["id"] != job_id, "a new key is a new upload"


def test_the_same_key_with_other_bytes_is_refused(gateway):
    key = str(uuid.uuid4())
    assert post_job(gateway, images.fresh_png_digit(1, 1), key).status_code == 202
    refused = post_job(gateway, images.fresh_png_digit(1, 1), key)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "idempotency_key_reused"
    assert "new key" in refused.json()["error"]["message"]


def test_a_malformed_key_is_refused(gateway):
    response = post_job(gateway, images.png_digit(2), "has spaces in it")
    assert response.status_code == 400 and response.json()["error"]["code"] == "bad_idempotency_key"


def test_a_batch_and_its_added_files_sent_twice_under_their_keys_are_counted_once(gateway, store):
    since = utcnow()
    files = [(f"k/{i:02d}-{i % 10}.png", images.png_digit(i % 10, 3)) for i in range(12)]
    create_key, add_key = str(uuid.uuid4()), str(uuid.uuid4())

    def create():
        return API.post(
            f"{gateway}/v1/batches",
            files=[("files", f) for f in files[:6]],
            data={"name": "keyed"},
            headers={"Idempotency-Key": create_key},
            timeout=60,
        )

    replayed = value(samples(f"{gateway}/metrics"), "recog_uploads_replayed_total")
    first = create()
    assert first.status_code == 202, first.text
    assert create().json() == first.json(), "the retry gets the first answer, batch id and all"
    batch_id = first.json()["id"]

    def add():
        return API.post(
            f"{gateway}/v1/batches/{batch_id}/files",
            files=[("files", f) for f in files[6:]],
            headers={"Idempotency-Key": add_key},
            timeout=60,
        )

    added = add()
    assert added.status_code == 202 and add().json() == added.json()
    batch = wait_for_batch(gateway, batch_id, timeout=120)
    assert (batch["total"], batch["done"]) == (12, 12), batch
    assert add().json() == added.json(), "a retry after the jobs finished still gets the first answer"
    assert value(samples(f"{gateway}/metrics"), "recog_uploads_replayed_total") == replayed + 3
    time.sleep(2)  # time for a second recognition to land, were any job queued again
    job_ids = {row["job_id"] for row in store.batch_rows(uuid.UUID(batch_id))}
    assert len(job_ids) == 12
    assert set(audit_rows_per_job(store, since, job_ids).values()) == {1}, "a job recognised twice"
    assert post_batch(gateway, files[:6]).json()["id"] != batch_id, "no key, a new batch"


@pytest.mark.parametrize("stack", ["volume"], indirect=True)  # the image store plays no part
def test_a_batch_upload_cut_off_by_a_sigkilled_gateway_is_finished_by_its_retry(stack, store):
    """The gateway is SIGKILLed while it records a 400-file upload; the same upload sent again
    under its key, once the gateway is back, ends with every file in the batch once."""
    gateway, since, key = stack.settings.gateway_url, utcnow(), str(uuid.uuid4())
    files = [(f"c/{i:04d}-{i % 10}.png", images.fresh_png_digit(i % 10, i // 10 % 10)) for i in range(400)]

    def send():
        return API.post(
            f"{gateway}/v1/batches",
            files=[("files", f) for f in files],
            data={"name": "cut off"},
            headers={"Idempotency-Key": key},
            timeout=120,
        )

    def send_and_lose_the_answer():
        with contextlib.suppress(requests.RequestException):
            send()

    first = threading.Thread(target=send_and_lose_the_answer, daemon=True)
    first.start()
    deadline = time.monotonic() + 60
    while (row := key_row(store, key)) is None or row["fingerprint"] is None:  # recording has begun
        assert time.monotonic() < deadline and first.is_alive(), "the upload was never being recorded"
        time.sleep(0.005)
    stack.kill("gateway")
    first.join(timeout=30)
    assert key_row(store, key)["answer"] is None, "the kill came after the upload was recorded"
    stack.start_gateway()
    stack.wait_gateway_ready()

    deadline = time.monotonic() + 60
    while (retry := send()).status_code == 409:  # the dead request's claim, until it lapses
        assert time.monotonic() < deadline, retry.text
        time.sleep(float(retry.headers["Retry-After"]))
    assert retry.status_code == 202, retry.text
    batch = wait_for_batch(gateway, retry.json()["id"], timeout=180)
    assert (batch["total"], batch["done"]) == (400, 400), batch
    time.sleep(2)  # time for a second recognition to land, were any job queued twice
    job_ids = {row["job_id"] for row in store.batch_rows(uuid.UUID(retry.json()["id"]))}
    assert len(job_ids) == 400
    assert set(audit_rows_per_job(store, since, job_ids).values()) == {1}, "a job recognised twice"


def key_row(store, key: str) -> dict | None:
    return store.session.execute(
        "SELECT fingerprint, answer FROM upload_keys WHERE scope = 'local/batches' AND key = %s", (key,)
    ).one()
