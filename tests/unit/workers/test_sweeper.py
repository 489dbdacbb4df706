"""sweep() on a MemoryStore with a recording send: what is sent again, and what is left alone."""

import uuid
from datetime import timedelta

from shared.jobs import NewJob, utcnow
from shared.messaging import JobMessage
from tests.fakes import MemoryStore
from workers.sweeper import sweep

STALE = timedelta(minutes=61)
# One fixed moment in the middle of an hour: the jobs of a test share their hour whenever it runs.
NOW = utcnow().replace(minute=30, second=0, microsecond=0)


def open_job(store: MemoryStore, age: timedelta) -> JobMessage:
    created = NOW - age
    message = JobMessage(uuid.uuid4(), "ab" * 32, "x.png", "digits", created)
    store.insert_jobs(
        [NewJob(message.job_id, "x.png", "ab" * 32, 1, "PNG", 1, 1, "digits", created)], [message]
    )
    return message


def test_a_job_open_past_the_timeout_is_sent_again_once():
    store, sent = MemoryStore(), []
    lost = open_job(store, timedelta(minutes=90))
    now = NOW
    assert sweep(store, sent.append, STALE, look_back_hours=24, now=now) == 1
    assert sent == [lost]
    assert sweep(store, sent.append, STALE, look_back_hours=24, now=now + timedelta(minutes=1)) == 0
    assert sent == [lost], "a job just sent again must wait a whole timeout before the next"


def test_a_recent_job_is_left_to_its_worker():
    store, sent = MemoryStore(), []
    open_job(store, timedelta(minutes=5))
    assert sweep(store, sent.append, STALE, look_back_hours=24, now=NOW) == 0 and sent == []


def test_a_final_job_still_listed_as_open_is_forgotten_not_sent():
    store, sent = MemoryStore(), []
    message = open_job(store, timedelta(minutes=90))
    store.jobs[message.job_id]["status"] = "done"  # its final write landed, its open row did not go
    assert sweep(store, sent.append, STALE, look_back_hours=24, now=NOW) == 0
    assert sent == [] and not any(store.open.values())


def test_jobs_older_than_the_look_back_are_not_read():
    store, sent = MemoryStore(), []
    open_job(store, timedelta(hours=30))
    recent = open_job(store, timedelta(hours=3))
    assert sweep(store, sent.append, STALE, look_back_hours=24, now=NOW) == 1 and sent == [recent]


def test_a_row_without_a_message_does_not_stop_the_sweep():
    """Earlier code could leave an open row with no message (see RESENT_JOB), and a row could be
    unreadable; neither may keep the sweeper from sending the other lost jobs of its hour."""
    store, sent = MemoryStore(), []
    final = open_job(store, timedelta(minutes=90))
    stuck = open_job(store, timedelta(minutes=90))
    lost = open_job(store, timedelta(minutes=90))
    hour = next(iter(store.open))
    store.jobs[final.job_id]["status"] = "done"
    store.open[hour][final.job_id]["message"] = None
    store.open[hour][stuck.job_id]["message"] = "{not json"
    assert sweep(store, sent.append, STALE, look_back_hours=24, now=NOW) == 1
    assert sent == [lost]
    assert set(store.open[hour]) == {stuck.job_id, lost.job_id}, "the final job's row is forgotten"
