"""Backpressure on the real stack: a key past its request rate, a tenant past its queued images,
and a full single-image queue are refused with Retry-After, counted, and let through again."""

import io
import re
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from gateway import create_app
from tests import images
from tests.integration.test_tenants import new_key, unique
from tests.stack import API, keyed_client, wait_until_final

# The worker is stopped and started again (TensorFlow loads in 20 to 40 s here).
pytestmark = pytest.mark.timeout(400)


def refused(metrics: str, reason: str) -> float:
    """recog_requests_refused_total{reason} in a gateway's /metrics."""
    found = re.search(rf'^recog_requests_refused_total\{{reason="{reason}"\}} (\S+)$', metrics, re.M)
    return float(found[1]) if found else 0.0


def test_a_key_past_its_rate_gets_429_and_goes_on_after_retry_after(settings, gateway):
    """The stack runs the default RECOG_REQUESTS_PER_SECOND; five times that many requests from
    eight threads outrun it."""
    headers = dict(new_key(settings, unique("fast")).headers)
    before = refused(API.get(f"{gateway}/metrics", timeout=10).text, "rate_limited")
    url = f"{gateway}/v1/jobs/not-a-uuid"  # a 400 once past the key and rate checks: no store read
    with ThreadPoolExecutor(8) as pool:
        answers = list(
            pool.map(
                lambda _: requests.get(url, headers=headers, timeout=10),
                range(5 * settings.requests_per_second),
            )
        )
    limited = [r for r in answers if r.status_code == 429]
    assert limited, f"no 429 in {len(answers)} requests: {sorted({r.status_code for r in answers})}"
    assert {r.status_code for r in answers} <= {400, 429}
    assert limited[-1].json()["error"]["code"] == "rate_limited"
    assert "RECOG_REQUESTS_PER_SECOND" in limited[-1].json()["error"]["message"]
    wait = int(limited[-1].headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait)
    assert requests.get(f"{gateway}/v1/batches?limit=1", headers=headers, timeout=10).status_code == 200
    after = refused(API.get(f"{gateway}/metrics", timeout=10).text, "rate_limited")
    assert after >= before + len(limited), "every gunicorn process's refusals, added up"
    other = API.get(f"{gateway}/v1/batches?limit=1", timeout=10)
    assert other.status_code == 200, "one key's rate is its own"


def test_queued_images_and_a_full_queue_refuse_until_the_workers_catch_up(stack, settings, store, gateway):
    """With the worker stopped nothing finishes: a tenant reaches its cap on queued images (429),
    and single images fill the queue (503). Once the worker is back and their jobs are done, the
    same requests are accepted. The caps are lowered for this test's own gateway (a few images
    rather than 50,000 and 10,000); the rest runs as a user's does."""
    app = create_app(settings.replace(max_queued_images=4, max_queue_depth=3))
    filler, single = app.test_client(), app.test_client()
    filler.environ_base["HTTP_AUTHORIZATION"] = new_key(settings, unique("filler")).headers["Authorization"]
    single.environ_base["HTTP_AUTHORIZATION"] = new_key(settings, unique("single")).headers["Authorization"]
    admin = keyed_client(app, settings)
    before = {
        r: refused(admin.get("/metrics").get_data(as_text=True), r) for r in ("too_many_queued", "queue_full")
    }
    stack.stop("worker1")
    try:
        files = {"files": [(io.BytesIO(images.png_digit(d, 4)), f"q{d}.png") for d in range(4)]}
        batch = filler.post("/v1/batches", data=files, content_type="multipart/form-data")
        assert batch.status_code == 202, batch.get_json()
        over = filler.post("/v1/jobs", data={"file": (io.BytesIO(images.png_digit(5, 4)), "q5.png")})
        assert over.status_code == 429 and over.get_json()["error"]["code"] == "too_many_queued"
        assert int(over.headers["Retry-After"]) > 0
        assert "RECOG_MAX_QUEUED_IMAGES" in over.get_json()["error"]["message"]

        queued = []
        for n in range(3):
            answer = single.post("/v1/jobs", data={"file": (io.BytesIO(images.png_digit(n, 6)), f"s{n}.png")})
            assert answer.status_code == 202, answer.get_json()
            queued.append(answer.get_json()["id"])
        full = single.post("/v1/jobs", data={"file": (io.BytesIO(images.png_digit(3, 6)), "s3.png")})
        assert full.status_code == 503 and full.get_json()["error"]["code"] == "queue_full"
        assert int(full.headers["Retry-After"]) > 0
    finally:
        stack.start_worker()
    stack.wait_worker_ready()
    lines = filler.get(f"/v1/batches/{batch.get_json()['id']}/results?format=json").get_json()
    ids = [line["job_id"] for line in lines]
    rows = wait_until_final(store, ids + queued, timeout=120)
    assert all(row["status"] == "done" for row in rows.values())
    # Retry-After later, with the jobs done, the same requests go through.
    again = filler.post("/v1/jobs", data={"file": (io.BytesIO(images.png_digit(5, 4)), "q5.png")})
    assert again.status_code == 202, again.get_json()
    assert (
        single.post("/v1/jobs", data={"file": (io.BytesIO(images.png_digit(3, 6)), "s3.png")}).status_code
        == 202
    )
    metrics = admin.get("/metrics").get_data(as_text=True)
    assert refused(metrics, "too_many_queued") == before["too_many_queued"] + 1
    assert refused(metrics, "queue_full") == before["queue_full"] + 1
