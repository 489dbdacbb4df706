"""Flower on the test stack: basic auth, the live worker, and finished tasks showing ids, not files."""

import time
from pathlib import Path

import pytest
import requests

from tests import images
from tests.integration.test_batches import post_batch, wait_for_batch
from tests.stack import API, submit


@pytest.fixture(scope="module")
def flower(stack):
    url = stack.settings.flower_url
    auth = (stack.settings.flower_user, stack.flower_password())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/healthcheck", timeout=5).status_code == 200:
                return url, auth
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    pytest.fail(f"Flower did not answer at {url}; see {stack.log('flower')}")


def poll(fetch, accept, timeout=60):
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = fetch()
        if accept(seen):
            return seen
        time.sleep(1)
    pytest.fail(f"Flower never showed what was expected; last answer: {seen}")


def test_flower_api_needs_the_password(flower):
    url, (user, _) = flower
    assert requests.get(f"{url}/api/workers", timeout=10).status_code == 401
    assert requests.get(f"{url}/api/workers", auth=(user, "wrong"), timeout=10).status_code == 401


def test_the_password_is_on_no_command_line(flower):
    """Any local user can read every process's command line (ps, /proc/<pid>/cmdline)."""
    _, (_, password) = flower
    shown = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if password.encode() in cmdline.read_bytes():
                shown.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")[:200])
        except OSError:  # the process ended while we looked
            pass
    assert not shown, shown


def test_flower_lists_both_workers_with_their_queues(flower):
    url, auth = flower

    def workers():
        return requests.get(f"{url}/api/workers", params={"refresh": 1}, auth=auth, timeout=30).json()

    def queues(found: dict, name: str) -> set[str] | None:
        entry = next((v for k, v in found.items() if k.startswith(f"{name}@") and "active_queues" in v), None)
        return None if entry is None else {q["name"] for q in entry["active_queues"]}

    # Flower fills a worker's entry from several inspect replies; under load one (its queues) can
    # miss a refresh's deadline and the entry comes without it: asked again until both are whole.
    found = poll(workers, lambda w: queues(w, "worker1") and queues(w, "worker-bulk"))
    assert queues(found, "worker1") == {"recog"}
    assert queues(found, "worker-bulk") == {"recog.bulk"}


def test_flower_shows_a_finished_chunk_task_with_ids_only(flower, gateway):
    url, auth = flower
    files = [(f"flower-{i}.png", images.png_digit(i, 7)) for i in range(3)]
    accepted = post_batch(gateway, files).json()
    wait_for_batch(gateway, accepted["id"])

    def chunk_tasks():
        tasks = requests.get(
            f"{url}/api/tasks", params={"taskname": "recog.recognise_chunk"}, auth=auth, timeout=30
        ).json()
        return [t for t in tasks.values() if accepted["id"] in (t.get("args") or "")]

    tasks = poll(chunk_tasks, lambda ts: any(t["state"] == "SUCCESS" for t in ts))
    task = next(t for t in tasks if t["state"] == "SUCCESS")
    assert task["name"] == "recog.recognise_chunk"
    assert task["worker"].startswith("worker-bulk@")
    # The arguments Flower shows are the batch id and the job ids, in upload order: nothing else.
    rows = API.get(f"{gateway}{accepted['links']['results']}", params={"format": "json"}, timeout=30).json()
    job_ids = [row["job_id"] for row in sorted(rows, key=lambda r: r["file"])]
    assert task["args"] == f"batch {accepted['id']}: {job_ids}"


def test_flower_shows_single_jobs_gathered_by_celery_batches_as_succeeded(flower, gateway):
    url, auth = flower
    job = submit(gateway, images.encode(images.ink_on_paper(1, 9, size=191)), "one.png", wait=20).json()
    assert job["status"] == "done"

    def info():
        response = requests.get(f"{url}/api/task/info/{job['id']}", auth=auth, timeout=30)
        return response.json() if response.status_code == 200 else {}

    task = poll(info, lambda t: t.get("state") == "SUCCESS")
    assert task["name"] == "recog.recognise"
    assert task["worker"].startswith("worker1@")
    assert task["args"] == f"['{job['id']}']"
