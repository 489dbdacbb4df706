"""Poison images on the real stack: an image that kills the pool process decoding it, and one that
never finishes decoding, in a batch and among single jobs.

The worker runs tests/poisoned_worker.py: the real app, whose decoder SIGKILLs its own process on
one marked image and loops forever on another. That decoder is the one stand-in, for a crash or
a hang no file can be counted on to cause in today's Pillow. The deaths, Redis handing work back,
the pool's time limit and the starts kept in Cassandra are all real. The time limit is 10 s
instead of the default 300 s so the hang is judged stuck within the test; what happens after
that is the same at any limit.
"""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack import processes
from tests import images
from tests.integration.test_batches import post_batch, wait_for_batch
from tests.poisoned_worker import CRASH, HANG
from tests.stack import API, poisoned_worker_running, submit, wait_until_final
from workers.alone import KILLED_ALONE

TIME_LIMIT = 10


@pytest.fixture
def poisoned_worker(stack):
    """Both workers replaced by one poisoned worker1 (both queues) for the test, the real ones back
    after it."""
    with poisoned_worker_running(stack, stack.settings.replace(task_time_limit=TIME_LIMIT)) as pid:
        yield pid


def starts(store, job_id: str) -> int:
    """How often a worker began this job on its own, as Cassandra keeps it."""
    query = "SELECT COUNT(*) FROM work_starts WHERE work_id = %s"
    return store.session.execute(query, (uuid.UUID(job_id),)).one()["count"]


def test_poison_images_fail_alone_and_every_other_image_is_done(stack, store, gateway, poisoned_worker):
    labels = [i % 10 for i in range(40)]
    files = [(f"ok/{i:02d}-{d}.png", images.fresh_png_digit(d, i % 10)) for i, d in enumerate(labels)]
    files.insert(10, ("poison/crash.png", images.fresh_png_digit(7, mark=CRASH)))
    files.insert(30, ("poison/hang.png", images.fresh_png_digit(7, mark=HANG)))
    started = time.monotonic()
    response = post_batch(gateway, files)
    assert response.status_code == 202, response.text
    batch_id = response.json()["id"]
    # Single jobs sent at once, so celery-batches may gather the poison one with neighbours.
    uploads = [(f"{d}.png", images.fresh_png_digit(d, 5)) for d in range(10)]
    uploads.insert(4, ("crash.png", images.fresh_png_digit(3, 5, mark=CRASH)))
    with ThreadPoolExecutor(len(uploads)) as pool:
        single_ids = list(pool.map(lambda u: submit(gateway, u[1], u[0]).json()["id"], uploads))
    crash_single = single_ids.pop(4)

    batch = wait_for_batch(gateway, batch_id, timeout=300)
    singles = wait_until_final(store, [*single_ids, crash_single], timeout=120)
    print(f"\nthe poison batch and singles final {time.monotonic() - started:.0f} s after the upload")

    results = API.get(f"{gateway}/v1/batches/{batch_id}/results?format=json", timeout=60).json()
    lines = {row["file"]: row for row in results}
    poisoned = [lines.pop("poison/crash.png"), lines.pop("poison/hang.png"), singles.pop(crash_single)]
    for row in poisoned:
        assert row["status"] == "failed", row
        assert f"stopped the worker process each of the {KILLED_ALONE} times" in row["error"], row["error"]
    assert batch["done"] == len(labels) and batch["failed"] == 2, batch
    assert [lines[name]["label"] for name, _ in files if name in lines] == [str(d) for d in labels]
    assert [singles[j]["label"] for j in single_ids] == [str(d) for d in range(10)]
    # Each poison image began alone KILLED_ALONE times and died; the next start failed it.
    assert [starts(store, str(row["job_id"])) for row in poisoned] == [KILLED_ALONE + 1] * 3
    assert processes.running_pid(stack.run_dir, "worker1") == poisoned_worker, "the worker must live on"
    log = stack.log("worker1").read_text()
    assert f"Hard time limit ({TIME_LIMIT}s) exceeded" in log, "the hanging image was not killed by the limit"
