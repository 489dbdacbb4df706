"""Redis SIGKILLed while gathered single jobs wait for a busy pool, with the production settings.

When the connection to Redis breaks, Celery empties its pool's queue: a gathered batch handed
over but not yet taken by a process is dropped, and its callback never comes. The worker once
kept counting such a batch as running, for the time limit and a minute more (six minutes by
default); with both of its slots so taken it gathered every later single job without starting
one, stopped reading Redis once its prefetch was full, and the fault suite's Redis case failed.

The worker runs tests/poisoned_worker.py, whose decoder sleeps on an image marked SLOW: the one
stand-in, for a chunk whose images take seconds to decode, so that both pool processes are busy
when the jobs arrive. The worker's settings are the defaults; the kill and restart are real.
"""

import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests import images
from tests.integration.test_batches import post_batch, wait_for_batch
from tests.poisoned_worker import SLOW, SLOW_SECONDS
from tests.stack import poisoned_worker_running, submit, wait_until_final

RECOVERY_LIMIT = 120  # seconds from the restart until every accepted job is final, as the fault suite
DROPPED = "gathered batches no pool process had taken were dropped with the connection to Redis"
pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def slow_worker(stack):
    """Both workers replaced by one poisoned worker1 that takes both queues, with the stack's own
    settings, and the real ones back after the test."""
    with poisoned_worker_running(stack):
        yield


def send_singles(gateway: str, labels: list[int]) -> dict[str, int]:
    """{job id: its digit}, sent at once."""
    data = [images.fresh_png_digit(d, 3) for d in labels]
    with ThreadPoolExecutor(len(data)) as pool:
        responses = list(pool.map(lambda blob: submit(gateway, blob), data))
    assert all(r.status_code == 202 for r in responses), [r.text for r in responses]
    return {r.json()["id"]: d for r, d in zip(responses, labels, strict=True)}


@pytest.mark.parametrize("stack", ["volume"], indirect=True)  # the image store plays no part
def test_jobs_gathered_while_the_pool_was_busy_do_not_stop_the_worker_when_redis_restarts(
    stack, store, gateway, slow_worker
):
    # One chunk a batch: each keeps a pool process busy for SLOW_SECONDS.
    posted, batches = time.monotonic(), []
    for label in (4, 9):
        response = post_batch(gateway, [(f"{label}.png", images.fresh_png_digit(label, 1, mark=SLOW))])
        assert response.status_code == 202, response.text
        batches.append(response.json()["id"])
    # Both chunks held by the worker (its lease names them), so taken by its two idle processes.
    deadline = time.monotonic() + 10
    while sum(len(lease["held"]) for lease in store.leases()) < 2:
        assert time.monotonic() < deadline, "the worker did not receive the two chunks"
        time.sleep(0.1)
    # Handed to the pool one gathered batch each, two of them; the third waits in the gather.
    before = send_singles(gateway, [1, 2, 3])
    deadline = time.monotonic() + 10
    while not {uuid.UUID(j) for j in before} <= {w for lease in store.leases() for w in lease["held"]}:
        assert time.monotonic() < deadline, "the worker did not receive the single jobs"
        time.sleep(0.1)
    assert time.monotonic() - posted < SLOW_SECONDS - 1, "the chunks may have ended before the kill"
    log_before = stack.log("worker1").read_text()
    stack.kill("redis")
    time.sleep(1)
    stack.start_redis()
    restarted = time.monotonic()

    # Sent after the restart: started once a pool process is free, not minutes later.
    after = send_singles(gateway, [5, 6, 7])
    rows = wait_until_final(store, list(after), timeout=SLOW_SECONDS + 45)
    statuses = {j: (rows.get(j) or {}).get("status") for j in after}
    late = {j: status for j, status in statuses.items() if status != "done"}
    assert not late, f"jobs sent after Redis came back not done within {SLOW_SECONDS + 45} s: {late}"
    assert {j: int(rows[j]["label"]) for j in after} == after

    # And nothing accepted before the kill is lost: Redis or the sweeper brings it back.
    rows = wait_until_final(
        store, list(before), timeout=max(1, RECOVERY_LIMIT - (time.monotonic() - restarted))
    )
    assert {j: (rows.get(j) or {}).get("status") for j in before} == dict.fromkeys(before, "done")
    assert {j: int(rows[j]["label"]) for j in before} == before
    for batch_id in batches:
        remaining = max(1, RECOVERY_LIMIT - (time.monotonic() - restarted))
        assert wait_for_batch(gateway, batch_id, timeout=remaining)["done"] == 1
    print(f"\nall final {time.monotonic() - restarted:.0f} s after Redis restarted")
    # The case this test is for happened: the worker saw the batches dropped.
    log = stack.log("worker1").read_text()[len(log_before) :]
    assert DROPPED in log, "no gathered batch was waiting for the pool when Redis died"
