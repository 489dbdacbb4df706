"""A batch's parts counted by the worker that ends a chunk, and by the sweeper where a worker died
first: the counts are written whole from the part's lines, so no rerun adds a job twice."""

import dataclasses
import uuid
from datetime import timedelta

import pytest

from gateway.intake import Intake, plan_work
from shared.image_store import VolumeImageStore
from shared.jobs import NewJob, utcnow
from shared.settings import Settings
from tests.fakes import FakeRuntime
from workers.alone import run_chunk
from workers.pipeline import run_jobs
from workers.sweeper import sweep


@pytest.fixture
def runtime(tmp_path):
    return FakeRuntime(Settings.from_env({}, image_dir=tmp_path), VolumeImageStore(tmp_path))


def upload(runtime, payloads: list[bytes], refused: int = 0, chunk_size: int = 64):
    """A batch upload recorded as the gateway records it: returns its work and parts."""
    intake = Intake("digits", utcnow() - timedelta(minutes=3), uuid.uuid4())
    made, batch = intake.created_at, intake.batch_id
    for n, data in enumerate(payloads):
        sha256, _ = runtime.images.put(data)
        intake.accepted.append(
            NewJob(uuid.uuid4(), f"{n:03}.png", sha256, 9, "PNG", 28, 28, "digits", made, batch)
        )
    for n in range(refused):
        job = NewJob(uuid.uuid4(), f"bad{n}.png", "ff" * 32, 3, "", 0, 0, "digits", made, batch)
        intake.refused.append((job, "not an image"))
    work, parts = plan_work(intake, chunk_size, made)
    runtime.store.insert_jobs(intake.accepted, work, [], parts)
    for job, _ in intake.refused:  # as commit() writes them: failed at once
        runtime.store.lines[job.job_id] = {"status": "failed", "finished_at": made}
    return work, parts


def counts(runtime, part):
    c = runtime.store.parts[part.part_id]
    return (c.total, c.running, c.done, c.failed, c.cached)


def test_a_chunk_writes_its_part_whole_without_reading_a_line(runtime):
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2", b"not a digit"])
    assert counts(runtime, part) == (3, 0, 0, 0, 0)
    reads = []
    runtime.store.batch_lines = lambda keys: reads.append(keys) or []
    run_chunk(runtime, list(work.stamped()), "w1", 0)
    assert counts(runtime, part) == (3, 0, 2, 1, 0)
    assert reads == [], "what the chunk just finished needs no read back"


def test_a_chunk_delivered_twice_counts_each_job_once(runtime):
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2"])
    run_chunk(runtime, list(work.stamped()), "w1", 0)
    run_chunk(runtime, list(work.stamped()), "w2", 0)
    assert counts(runtime, part) == (2, 0, 2, 0, 0)


def test_a_chunk_sent_again_with_some_of_its_jobs_counts_the_others_from_their_lines(runtime):
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2", b"digit:3"])
    first, *rest = work.stamped()
    run_chunk(runtime, [first], "w1", 0)  # as if the rest had been lost with a dead worker
    assert counts(runtime, part) == (3, 0, 1, 0, 0)
    resent = [dataclasses.replace(m, resent=True) for m in rest]
    run_chunk(runtime, resent, "w2", 0)
    assert counts(runtime, part) == (3, 0, 3, 0, 0)


def test_a_running_chunk_shows_in_its_part_and_a_refused_file_in_its_own(runtime):
    (work,), (part, refused) = upload(runtime, [b"digit:1", b"digit:2"], refused=2)
    assert counts(runtime, refused) == (2, 0, 0, 2, 0)
    runtime.store.mark_running([m.key for m in work.stamped()], "w1", utcnow(), wait=False)
    assert counts(runtime, part) == (2, 2, 0, 0, 0)


def test_parts_split_an_upload_by_the_chunk_size(runtime):
    work, parts = upload(runtime, [f"digit:{n % 10}".encode() for n in range(5)], chunk_size=2)
    assert [len(p.members) for p in parts] == [2, 2, 1]
    assert [[m.part for m in w.messages] for w in work] == [[p.part_id] * len(p.members) for p in parts]


def test_the_sweeper_counts_a_part_its_worker_died_before_counting(runtime):
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2"])
    run_jobs(runtime, list(work.stamped()), "w1")  # results written, then SIGKILL: no count
    assert counts(runtime, part) == (2, 2, 0, 0, 0)
    report = sweep(runtime.store, [].append, lambda chunk: 0, timedelta(seconds=30), 24)
    assert report.recounted_parts == 1 and report.resent_work == 0
    assert counts(runtime, part) == (2, 0, 2, 0, 0)
    assert sweep(runtime.store, [].append, lambda chunk: 0, timedelta(seconds=30), 24).recounted_parts == 0
