"""Backpressure on the real stack: a key past its request rate, a tenant past its queued images,
and a full single-image queue are refused with Retry-After, counted, and let through again."""

import io
import time

import pytest
import redis
from prometheus_client import REGISTRY

from gateway import create_app
from shared.messaging import queued_set
from tests import images
from tests.integration.test_tenants import new_key, unique
from tests.stack import wait_until_final

# The worker is stopped and started again (TensorFlow loads in 20 to 40 s here).
pytestmark = pytest.mark.timeout(400)


def refused(reason: str) -> float:
    """recog_requests_refused_total{reason} of the gateways made in this process."""
    return REGISTRY.get_sample_value("recog_requests_refused_total", {"reason": reason}) or 0.0


def keyed(app, settings, name: str):
    """A test client of app with a new key of its own, whose tenant is name."""
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = new_key(settings, name).headers["Authorization"]
    return client


def test_a_key_past_its_rate_gets_429_and_goes_on_after_retry_after(settings):
    """A gateway of this test's own allows 20 requests a second (rather than 1,000: a test client
    cannot outrun that); the rest runs on the stack as a user's gateway does."""
    app = create_app(settings.replace(requests_per_second=20))
    fast, other = keyed(app, settings, unique("fast")), keyed(app, settings, unique("other"))
    before = refused("rate_limited")
    answers = [fast.get("/v1/jobs/not-a-uuid") for _ in range(60)]  # a 400 once past the checks
    limited = [r for r in answers if r.status_code == 429]
    assert len(limited) >= 30, sorted({r.status_code for r in answers})
    assert {r.status_code for r in answers} == {400, 429}
    error = limited[-1].get_json()["error"]
    assert error["code"] == "rate_limited" and "RECOG_REQUESTS_PER_SECOND" in error["message"]
    assert other.get("/v1/batches?limit=1").status_code == 200, "one key's rate is its own"
    wait = int(limited[-1].headers["Retry-After"])
    assert 1 <= wait <= 2
    time.sleep(wait)
    assert fast.get("/v1/batches?limit=1").status_code == 200
    assert refused("rate_limited") == before + len(limited)


def test_queued_images_and_a_full_queue_refuse_until_the_workers_catch_up(stack, settings, store, gateway):
    """With the worker stopped nothing finishes: a tenant reaches its cap on queued images (429),
    and single images fill the queue (503). Once the worker is back and their jobs are done, the
    same requests are accepted. The caps are lowered for this test's own gateway (a few images
    rather than 50,000 and 10,000); the rest runs as a user's does."""
    app = create_app(settings.replace(max_queued_images=4, max_queue_depth=3))
    tenants = unique("filler"), unique("single")
    filler, single = (keyed(app, settings, tenant) for tenant in tenants)
    counted = redis.Redis.from_url(settings.redis_url)
    before = {reason: refused(reason) for reason in ("too_many_queued", "queue_full")}
    stack.stop_workers()
    try:
        files = {"files": [(io.BytesIO(images.fresh_png_digit(d, 4)), f"q{d}.png") for d in range(4)]}
        batch = filler.post("/v1/batches", data=files, content_type="multipart/form-data")
        assert batch.status_code == 202, batch.get_json()
        over = filler.post("/v1/jobs", data={"file": (io.BytesIO(images.fresh_png_digit(5, 4)), "q5.png")})
        assert over.status_code == 429 and over.get_json()["error"]["code"] == "too_many_queued"
        assert int(over.headers["Retry-After"]) > 0
        assert "RECOG_MAX_QUEUED_IMAGES" in over.get_json()["error"]["message"]
        assert counted.zcard(queued_set(tenants[0])) == 4, "the refused job was left counted as queued"

        queued = []
        for n in range(3):
            answer = single.post(
                "/v1/jobs", data={"file": (io.BytesIO(images.fresh_png_digit(n, 6)), f"s{n}.png")}
            )
            assert answer.status_code == 202, answer.get_json()
            queued.append(answer.get_json()["id"])
        full = single.post("/v1/jobs", data={"file": (io.BytesIO(images.fresh_png_digit(3, 6)), "s3.png")})
        assert full.status_code == 503 and full.get_json()["error"]["code"] == "queue_full"
        assert counted.zcard(queued_set(tenants[1])) == 3, "the refused job was left counted as queued"
        assert int(full.headers["Retry-After"]) > 0
    finally:
        stack.start_workers()
    stack.wait_workers_ready()
    lines = filler.get(f"/v1/batches/{batch.get_json()['id']}/results?format=json").get_json()
    ids = [line["job_id"] for line in lines]
    rows = wait_until_final(store, ids + queued, timeout=120)
    assert all(row["status"] == "done" for row in rows.values())
    # Retry-After later, with the jobs done, the same requests go through.
    again = filler.post("/v1/jobs", data={"file": (io.BytesIO(images.fresh_png_digit(5, 4)), "q5.png")})
    assert again.status_code == 202, again.get_json()
    assert (
        single.post(
            "/v1/jobs", data={"file": (io.BytesIO(images.fresh_png_digit(3, 6)), "s3.png")}
        ).status_code
        == 202
    )
    assert refused("too_many_queued") == before["too_many_queued"] + 1
    assert refused("queue_full") == before["queue_full"] + 1
