"""run_chunk and run_alone on a MemoryStore: which starts count as deaths, and what a poison image
gets. A pool process's death is a stand-in here (the fake model raises ProcessDied on the bytes
b"poison", and the test hands the chunk back the way Redis would); the real SIGKILL, the real
redelivery and the real work_starts table are in tests/integration/test_poison.py."""

import dataclasses
import uuid

import pytest

from shared.image_store import VolumeImageStore
from shared.settings import Settings
from tests.fakes import FakeRuntime
from tests.unit.workers.test_pipeline import queue
from workers.alone import KILLED_ALONE, run_alone, run_chunk
from workers.gathering import MAX_ATTEMPTS


class ProcessDied(BaseException):
    """What the pool process's death looks like from inside a test: nothing after it runs."""


@pytest.fixture
def runtime(tmp_path):
    runtime = FakeRuntime(Settings.from_env({}, image_dir=tmp_path), VolumeImageStore(tmp_path))
    prepare = runtime.model.prepare

    def dies_on_poison(data: bytes, max_pixels: int):  # where tests/poisoned_worker.py kills it
        if data == b"poison":
            raise ProcessDied
        return prepare(data, max_pixels)

    runtime.model.prepare = dies_on_poison
    return runtime


def chunk(runtime, payloads: list[bytes]) -> list:
    batch_id, work_id = uuid.uuid4(), uuid.uuid4()
    return [dataclasses.replace(queue(runtime, p, batch_id=batch_id), work_id=work_id) for p in payloads]


def deliver(runtime, messages, retries=0) -> bool:
    """One delivery of the chunk; False if the process died under it (Redis hands it back)."""
    try:
        run_chunk(runtime, messages, "w1", retries)
    except ProcessDied:
        return False
    return True


def test_a_chunk_runs_whole_in_one_model_call_the_first_time(runtime):
    messages = chunk(runtime, [b"digit:1", b"digit:2", b"digit:3"])
    assert deliver(runtime, messages)
    assert runtime.model.calls == [[b"digit:1", b"digit:2", b"digit:3"]]
    assert runtime.store.starts[messages[0].work_id] == ["w1"]


def test_only_a_chunk_started_before_or_sent_again_reads_its_jobs_statuses(runtime):
    """A chunk's first start, as the gateway sent it, cannot hold a final job: no status is read.
    Delivered again (its process died, or it finished and Redis did not hear), every status is,
    and a finished job is not recognised twice."""
    messages = chunk(runtime, [b"digit:1", b"digit:2"])
    assert deliver(runtime, messages)
    assert runtime.store.statuses_read == 0
    assert deliver(runtime, messages)
    assert runtime.store.statuses_read == 2
    assert len(runtime.model.calls) == 1 and len(runtime.model.prepared) == 2, "nothing decoded again"
    resent = chunk(runtime, [b"digit:3"])
    resent = [dataclasses.replace(m, resent=True) for m in resent]
    assert deliver(runtime, resent)
    assert runtime.store.statuses_read == 3


def test_a_chunk_whose_process_died_runs_one_image_at_a_time_and_its_poison_image_fails(runtime):
    messages = chunk(runtime, [b"digit:1", b"poison", b"digit:3", b"digit:4"])
    deliveries = 1
    while not deliver(runtime, messages):
        deliveries += 1
        assert deliveries < 10, "the chunk kept killing its process"
    # The whole chunk died once, then the poison image alone KILLED_ALONE times.
    assert deliveries == 1 + KILLED_ALONE + 1
    statuses = {m.filename: runtime.store.jobs[m.job_id] for m in messages}
    poison = statuses.pop(messages[1].filename)
    assert poison["status"] == "failed"
    assert f"stopped the worker process each of the {KILLED_ALONE} times" in poison["error"]
    assert [row["label"] for row in statuses.values()] == ["1", "3", "4"]
    # Alone, each image had its own model call; a neighbour done before a death is not run again.
    assert runtime.model.calls.count([b"digit:1"]) == 1 and runtime.model.calls.count([b"digit:4"]) == 1
    assert len(runtime.store.starts[messages[1].job_id]) == KILLED_ALONE + 1


def test_a_chunk_retried_for_a_transient_failure_runs_whole_again(runtime):
    """Celery's retries are starts that ended knowingly: no process died, no need to go slowly."""
    messages = chunk(runtime, [b"digit:1", b"digit:2"])
    runtime.store.start_work(messages[0].work_id, "w1")  # the first start, store down after it
    assert deliver(runtime, messages, retries=1)
    assert runtime.model.calls == [[b"digit:1", b"digit:2"]]


def test_a_chunk_that_dies_more_often_than_its_images_explain_is_failed_not_looped(runtime):
    messages = chunk(runtime, [b"digit:1", b"digit:2"])
    for _ in range(KILLED_ALONE * len(messages) + 2 + MAX_ATTEMPTS):
        runtime.store.start_work(messages[0].work_id, "w1")
    assert deliver(runtime, messages)
    assert runtime.model.calls == []
    errors = {runtime.store.jobs[m.job_id]["error"] for m in messages}
    assert len(errors) == 1 and "stopped its worker process" in errors.pop()


def test_alone_skips_final_jobs_without_counting_a_start(runtime):
    done, todo = queue(runtime, b"digit:5"), queue(runtime, b"digit:6")
    run_alone(runtime, [done], "w1")
    run_alone(runtime, [done, todo], "w1")
    assert runtime.store.starts[done.job_id] == ["w1"] and runtime.store.starts[todo.job_id] == ["w1"]
    assert runtime.store.jobs[todo.job_id]["label"] == "6"
