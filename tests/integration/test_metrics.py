"""/metrics on the gateway (two gunicorn processes added up) and on the worker's own exporter."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests import images
from tests.stack import API, submit, wait_until_final


def samples(url: str) -> dict[tuple[str, tuple], float]:
    response = API.get(url, timeout=30)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture(scope="module")
def worker_metrics(settings) -> str:
    return f"http://127.0.0.1:{settings.worker_metrics_port}/metrics"


def test_gateway_counts_every_accepted_job_across_its_processes(gateway):
    before = value(samples(f"{gateway}/metrics"), "recog_jobs_accepted_total", kind="single")
    # gunicorn runs two processes here: each request lands on either, the scrape adds both up.
    for i in range(12):
        assert submit(gateway, images.png_digit(i % 10, 9), f"m{i}.png").status_code == 202
    after = value(samples(f"{gateway}/metrics"), "recog_jobs_accepted_total", kind="single")
    assert after - before == 12


def test_gateway_counts_rejections_by_reason(gateway):
    before = samples(f"{gateway}/metrics")
    assert submit(gateway, images.truncated(images.png_digit(4)), "broken.png").status_code == 422
    assert API.post(f"{gateway}/v1/jobs", timeout=10).status_code == 400
    found = samples(f"{gateway}/metrics")
    for reason in ("corrupt_image", "missing_file"):
        rejected = [value(f, "recog_jobs_rejected_total", reason=reason) for f in (before, found)]
        assert rejected[1] - rejected[0] == 1, reason


@pytest.mark.timeout(300)  # stopping and starting the worker, then its jobs
def test_gateway_reports_queue_depths(stack, gateway, settings, store):
    """With the worker stopped, three jobs wait in the single-job queue and none in the bulk one."""
    stack.stop("worker1")
    try:
        before = samples(f"{gateway}/metrics")
        job_ids = [submit(gateway, images.png_digit(d, 8), f"q{d}.png").json()["id"] for d in range(3)]
        found = samples(f"{gateway}/metrics")
        for queue, added in ((settings.queue, 3), (settings.bulk_queue, 0)):
            depths = [value(f, "recog_queue_depth", queue=queue) for f in (before, found)]
            assert depths[1] - depths[0] == added, queue
    finally:
        stack.start_worker("worker1")
        stack.wait_worker_ready()
    rows = wait_until_final(store, job_ids, timeout=60)
    assert all(row["status"] == "done" for row in rows.values())


def test_worker_exports_results_batches_and_latencies(gateway, worker_metrics):
    before = samples(worker_metrics)
    fresh = images.encode(images.ink_on_paper(5, 8, size=197))  # bytes no other test sends: no cache hit
    job = submit(gateway, fresh, "five.png", wait=20).json()
    assert job["status"] == "done"
    after = samples(worker_metrics)
    model = job["model"]["name"]
    done = value(after, "recog_jobs_finished_total", status="done", model=model) - value(
        before, "recog_jobs_finished_total", status="done", model=model
    )
    assert done >= 1
    for histogram in ("recog_batch_size", "recog_inference_seconds", "recog_job_seconds"):
        assert value(after, f"{histogram}_count") > value(before, f"{histogram}_count"), histogram
    assert value(after, "recog_inference_seconds_sum") > 0
