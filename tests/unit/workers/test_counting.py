"""A batch's parts counted by the worker that ends a chunk, and by the sweeper where a worker died
first: the counts are written whole from the part's lines, so no rerun adds a job twice."""

import dataclasses
import uuid
from datetime import timedelta

import pytest

from gateway.intake import Intake, plan_work
from shared.image_store import VolumeImageStore
from shared.jobs import NewJob, Outcome, minute_bucket, utcnow
from shared.parts import PartCount
from shared.settings import Settings
from tests.fakes import FakeRuntime
from workers.alone import fail_chunk, run_alone, run_chunk
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
    refused_rows = [
        (job, Outcome(job.job_id, job.sha256, job.filename, "gateway", made, error=e, batch_id=batch))
        for job, e in intake.refused
    ]
    runtime.store.insert_jobs(intake.accepted, work, refused_rows, parts)
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


def test_parts_are_64_files_whatever_the_chunk_size_and_a_chunk_counts_every_part_it_touched(runtime):
    """A retry under a key may reach a gateway with another RECOG_CHUNK_SIZE: it must cut the same
    parts. A chunk of 48 then ends part of a part, and counts the rest from their lines."""
    work, parts = upload(runtime, [f"digit:{n}".encode() for n in range(100)], chunk_size=48)
    assert [len(p.members) for p in parts] == [64, 36]
    assert [len(w.messages) for w in work] == [48, 48, 4]
    assert {m.part for m in work[1].messages} == {parts[0].part_id, parts[1].part_id}
    run_chunk(runtime, list(work[0].stamped()), "w1", 0)
    assert counts(runtime, parts[0]) == (64, 0, 48, 0, 0)
    run_chunk(runtime, list(work[1].stamped()), "w1", 0)
    assert counts(runtime, parts[0]) == (64, 0, 64, 0, 0)
    assert counts(runtime, parts[1]) == (36, 0, 32, 0, 0)


def test_a_line_read_back_and_an_outcome_just_made_are_counted_together(runtime):
    """Lines come back from Cassandra as naive UTC times, outcomes carry aware ones: a chunk
    sent again with part of its jobs compares both (a TypeError here once failed whole chunks)."""
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2"])
    first, second = work.stamped()
    run_chunk(runtime, [first], "w1", 0)
    line = runtime.store.lines[first.job_id]
    line["finished_at"] = line["finished_at"].replace(tzinfo=None)
    run_chunk(runtime, [dataclasses.replace(second, resent=True)], "w2", 0)
    count = runtime.store.parts[part.part_id]
    assert (count.done, count.first_finished.tzinfo is not None) == (2, True)


def test_a_chunk_celery_gave_up_on_fails_only_its_open_jobs_and_counts_its_part(runtime):
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2", b"digit:3"])
    first, *rest = work.stamped()
    run_chunk(runtime, [first], "w1", 0)
    fail_chunk(runtime, list(work.stamped()), "w1", "recognition failed: the store was down")
    assert runtime.store.jobs[first.job_id]["status"] == "done", "a finished job keeps its result"
    assert [runtime.store.jobs[m.job_id]["status"] for m in rest] == ["failed", "failed"]
    assert counts(runtime, part) == (3, 0, 1, 2, 0)


def test_the_sweeper_counts_a_part_its_worker_died_before_counting(runtime):
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2"])
    run_jobs(runtime, list(work.stamped()), "w1")  # results written, then SIGKILL: no count
    assert counts(runtime, part) == (2, 2, 0, 0, 0)
    later = utcnow() + timedelta(minutes=10)  # past the time a minute is settled after
    report = sweep(runtime.store, [].append, lambda chunk: 0, timedelta(seconds=30), 24, now=later)
    assert report.recounted_parts == 1 and report.resent_work == 0
    assert counts(runtime, part) == (2, 0, 2, 0, 0)
    minute = minute_bucket(work.sent_at)
    assert minute not in runtime.store.settled, "a minute is not settled in the pass that had to count it"
    again = sweep(runtime.store, [].append, lambda chunk: 0, timedelta(seconds=30), 24, now=later)
    assert again.recounted_parts == 0 and minute in runtime.store.settled


def test_a_chunk_its_parts_count_ended_costs_the_sweeper_one_read_a_part_then_none(runtime):
    """A minute settles minutes after it ended, and is swept every 15 s till then: an ended row is
    known from its parts (no status read a job), then remembered (not read at all)."""
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2", b"digit:3"])
    run_chunk(runtime, list(work.stamped()), "w1", 0)
    minute, ended = minute_bucket(work.sent_at), {}

    def swept(now):
        return sweep(
            runtime.store, [].append, lambda chunk: 0, timedelta(seconds=30), 24, now=now, ended=ended
        )

    first = swept(utcnow())
    assert (first.rows_read, first.statuses_read, first.resent_work) == (1, 0, 0)
    assert ended[minute] == {work.work_id} and minute not in runtime.store.settled
    again = swept(utcnow())
    assert (again.rows_read, again.statuses_read) == (0, 0)
    swept(utcnow() + timedelta(minutes=10))
    assert minute in runtime.store.settled and minute not in ended, "a settled minute is forgotten"


def test_a_part_left_short_is_checked_job_by_job_and_remembered_only_once_counted(runtime):
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2"])
    run_jobs(runtime, list(work.stamped()), "w1")  # results written, then SIGKILL: no count
    ended = {}

    def swept():
        return sweep(
            runtime.store, [].append, lambda chunk: 0, timedelta(seconds=30), 24, now=utcnow(), ended=ended
        )

    first = swept()
    assert (first.statuses_read, first.recounted_parts) == (2, 1)
    assert not ended.get(minute_bucket(work.sent_at)), "counted in this pass: looked at again in the next"
    second = swept()
    assert (second.statuses_read, second.recounted_parts) == (0, 0)
    assert ended[minute_bucket(work.sent_at)] == {work.work_id}


def test_a_part_with_no_total_says_nothing_of_its_jobs(runtime):
    """A part row made by a 'running' mark alone (the gateway's total never written) counts 0 of
    0: its chunk's statuses are read, and the open jobs sent again."""
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2"])
    runtime.store.parts[part.part_id] = PartCount(0, running=2)
    sent, ended = [], {}
    report = sweep(
        runtime.store, sent.append, lambda chunk: 0, timedelta(seconds=30), 24, now=utcnow(), ended=ended
    )
    assert (report.statuses_read, report.resent_jobs) == (2, 2) and not ended


def test_a_cancelled_chunk_celery_gave_up_on_ends_cancelled_not_failed(runtime):
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2"])
    runtime.store.cancel_batch(part.batch_id, utcnow())
    fail_chunk(runtime, list(work.stamped()), "w1", "recognition failed: the store was down")
    assert [runtime.store.jobs[m.job_id]["status"] for m in work.messages] == ["cancelled", "cancelled"]
    count = runtime.store.parts[part.part_id]
    assert (count.total, count.failed, count.cancelled, count.final) == (2, 0, 2, 2)


def test_a_cancelled_job_run_alone_ends_without_a_start(runtime):
    (work,), (part,) = upload(runtime, [b"digit:1", b"digit:2"])
    first, second = work.stamped()
    runtime.store.cancels[part.batch_id] = {second.job_id}
    outcomes = run_alone(runtime, [first, second], "w1")
    assert {o.job_id: o.status for o in outcomes} == {first.job_id: "done", second.job_id: "cancelled"}
    assert second.job_id not in runtime.store.starts, "a cancelled job was begun"
