"""One image from HTTP to Cassandra and back, through the real gunicorn, Redis, worker and Cassandra."""

import uuid
from pathlib import Path

import redis

from tests import images
from tests.stack import API, keyed_client, stored_images, submit, wait_until_final

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_submit_and_wait_returns_the_digit(gateway):
    response = submit(gateway, (EXAMPLES / "three.png").read_bytes(), "three.png", wait=20)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "done" and job["label"] == "3"
    assert job["confidence"] > 0.9 and len(job["probabilities"]) == 10
    assert job["model"]["name"] == "digits" and len(job["model"]["version"]) == 12
    assert job["file"]["name"] == "three.png" and len(job["file"]["sha256"]) == 64
    assert job["worker"].startswith("worker") and job["batch_size"] == 1
    assert job["inference_ms"] > 0 and job["queue_ms"] >= 0
    assert job["created_at"] <= job["started_at"] <= job["finished_at"]


def test_a_waited_for_jobs_row_written_by_its_worker_holds_what_a_queued_jobs_row_does(gateway, store):
    """The gateway writes no row for a job whose request waits; the worker writes it whole with the
    result. It must hold every column the gateway's row and the worker's marks give any other job."""
    data = images.fresh_png_digit(2, 4)
    waited = submit(gateway, data, "waited.png", wait=20).json()
    queued = submit(gateway, images.fresh_png_digit(2, 5), "queued.png").json()
    wait_until_final(store, [queued["id"]], timeout=30)
    rows = {
        name: store.get_job(uuid.UUID(job["id"])) for name, job in (("waited", waited), ("queued", queued))
    }
    filled = {
        name: {column for column, value in row.items() if value is not None} for name, row in rows.items()
    }
    assert filled["waited"] == filled["queued"], filled["waited"] ^ filled["queued"]
    assert rows["waited"]["filename"] == "waited.png" and rows["waited"]["status"] == "done"
    shape = ("image_format", "width", "height")
    assert [rows["waited"][c] for c in shape] == [rows["queued"][c] for c in shape]
    assert rows["waited"]["size_bytes"] == len(data) and rows["waited"]["width"] > 0
    assert rows["waited"]["created_at"] <= rows["waited"]["started_at"] <= rows["waited"]["finished_at"]


def test_submit_then_poll(gateway, store):
    response = submit(gateway, images.png_digit(7, 1), "seven.png")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued" and response.headers["Location"] == f"/v1/jobs/{body['id']}"
    wait_until_final(store, [body["id"]], timeout=30)
    job = API.get(f"{gateway}{body['links']['self']}", timeout=10).json()
    assert job["status"] == "done" and job["label"] == "7"


def test_get_with_wait_holds_until_done(gateway):
    job_id = submit(gateway, images.png_digit(5, 2)).json()["id"]
    job = API.get(f"{gateway}/v1/jobs/{job_id}", params={"wait": 20}, timeout=30).json()
    assert job["status"] == "done" and job["label"] == "5"


def test_blank_image_is_done_with_no_digit(gateway):
    job = submit(gateway, images.blank_png(), "blank.png", wait=20).json()
    assert job["status"] == "done"
    assert job["label"] is None and job["confidence"] is None and "no digit" in job["reason"]


def test_unknown_job_is_404(gateway):
    response = API.get(f"{gateway}/v1/jobs/{uuid.uuid4()}", timeout=10)
    assert response.status_code == 404 and response.json()["error"]["code"] == "unknown_job"


def test_bad_upload_leaves_no_row_no_task_no_file(gateway, settings, store):
    queue = redis.Redis.from_url(settings.redis_url)
    images_before = stored_images(settings, store)
    rows_before = store.session.execute("SELECT count(*) FROM jobs").one()["count"]
    queued_before = queue.llen(settings.queue)
    response = submit(gateway, images.truncated(images.png_digit(9)), "broken.png")
    assert response.status_code == 422 and response.json()["error"]["code"] == "corrupt_image"
    assert store.session.execute("SELECT count(*) FROM jobs").one()["count"] == rows_before
    assert queue.llen(settings.queue) == queued_before
    assert stored_images(settings, store) == images_before


def test_same_bytes_again_are_answered_from_cache(gateway):
    data = images.encode(images.ink_on_paper(8, 7, size=173))  # a size no other test uses
    first = submit(gateway, data, "eight.png", wait=20).json()
    second = submit(gateway, data, "eight-again.png", wait=20).json()
    assert first["cached"] is False and second["cached"] is True
    assert second["label"] == first["label"] == "8" and second["probabilities"] == first["probabilities"]
    assert second["model"] == first["model"] and second["id"] != first["id"]


def test_a_waiting_request_is_answered_from_the_announcement_as_a_read_of_the_row_would_be(
    settings, monkeypatch
):
    """The gateway, in this process, on the real stack, with its polling fallback made longer than
    the wait: only the worker's announcement on Redis can end the wait, and it does without the
    gateway reading the job row, with exactly what a later read of the row answers."""
    import io
    import time

    from gateway import create_app, waiting

    monkeypatch.setattr(waiting, "FALLBACK_POLL_SECONDS", 600.0)
    app = create_app(settings)
    store = app.extensions["recog"].store
    reads = []
    read = store.get_job
    monkeypatch.setattr(store, "get_job", lambda job_id: reads.append(job_id) or read(job_id))
    client = keyed_client(app, settings)
    data = images.encode(images.ink_on_paper(6, 2, size=233))  # a size no other test uses: no cache
    started = time.monotonic()
    response = client.post("/v1/jobs?wait=20", data={"file": (io.BytesIO(data), "six.png")})
    assert response.status_code == 200, response.get_json()
    answer = response.get_json()
    assert answer["label"] == "6" and time.monotonic() - started < 10
    assert reads == [], "the wait read the job row instead of answering from the announcement"
    assert client.get(f"/v1/jobs/{answer['id']}").get_json() == answer


def test_a_thread_keeps_its_pub_sub_connection_between_waits_and_gets_a_new_one_when_redis_drops_it(
    settings, monkeypatch
):
    """Two waits on one thread share one connection (no connect and login per request); Redis
    killing it between waits (as its idle timeout does) does not cost the next wait its answer."""
    import io

    from gateway import create_app, waiting

    app = create_app(settings)
    client = keyed_client(app, settings)
    store = app.extensions["recog"].store
    reads = []
    read = store.get_job
    monkeypatch.setattr(store, "get_job", lambda job_id: reads.append(job_id) or read(job_id))

    def post(digit: int, size: int) -> dict:
        data = images.encode(images.ink_on_paper(digit, 3, size=size))  # sizes no other test uses
        response = client.post("/v1/jobs?wait=20", data={"file": (io.BytesIO(data), f"{digit}.png")})
        assert response.status_code == 200, response.get_json()
        return response.get_json()

    assert post(2, 237)["label"] == "2" and reads == []
    pubsub = waiting._CONNECTIONS.held[1]
    assert post(3, 239)["label"] == "3" and reads == []
    assert waiting._CONNECTIONS.held[1] is pubsub, "the second wait made a new connection"
    host, port = pubsub.connection._sock.getsockname()[:2]  # Redis knows the client by this address
    assert redis.Redis.from_url(settings.redis_url).client_kill(f"{host}:{port}")
    assert post(4, 241)["label"] == "4"
    now = waiting._CONNECTIONS.held[1].connection._sock.getsockname()[:2]
    assert now != (host, port), "the killed connection was used again"


def test_a_late_queued_row_never_hides_a_result_its_worker_wrote_first(store):
    """The race the gateway's late record has with a worker: the result landed just before the
    wait's end was noticed. Real Cassandra keeps the newest stamp of each column, and the late row
    is stamped before the job was made."""
    from shared.jobs import NewJob, Outcome, utcnow
    from shared.messaging import JobMessage, Work

    created = utcnow()
    job = NewJob(uuid.uuid4(), "race.png", "ab" * 32, 100, "PNG", 28, 28, "digits", created)
    upload = {**job.upload(), "model_name": "digits", "started_at": created}
    done = Outcome(job.job_id, job.sha256, job.filename, "w1", utcnow(), "4", 0.9, [0.1] * 10, upload=upload)
    done.model_name, done.model_version, done.created_at = "digits", "v1", created
    store.finish([done])
    message = JobMessage(job.job_id, job.sha256, job.filename, "digits", created)
    store.record_waited(job, Work(job.job_id, (message,), False, created))
    row = store.get_job(job.job_id)
    assert row["status"] == "done" and row["label"] == "4" and row["filename"] == "race.png"
