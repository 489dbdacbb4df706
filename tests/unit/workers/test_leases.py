"""HeldWork: what a worker's lease claims, from the requests its main process received."""

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from shared.messaging import TASK_RECOGNISE, TASK_RECOGNISE_CHUNK, JobMessage, Work
from workers.leases import HeldWork

SENT = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)


@dataclass
class Request:
    """What HeldWork reads of a Celery request: its task name, its args, whether it was acked."""

    name: str
    args: list
    acknowledged: bool = False


def single(sent_at: datetime) -> tuple[Work, Request]:
    message = JobMessage(uuid.uuid4(), "ab" * 32, "a.png", "digits", SENT)
    work = Work(message.job_id, (message,), False, sent_at)
    return work, Request(TASK_RECOGNISE, [work.stamped()[0].to_dict()])


def chunk(sent_at: datetime) -> tuple[Work, Request]:
    messages = tuple(JobMessage(uuid.uuid4(), "ab" * 32, f"{n}.png", "digits", SENT) for n in range(3))
    work = Work(uuid.uuid4(), messages, True, sent_at)
    return work, Request(TASK_RECOGNISE_CHUNK, [[m.to_dict() for m in work.stamped()]])


def test_received_work_is_held_until_it_is_acknowledged():
    held = HeldWork()
    (one, one_request), (many, many_request) = single(SENT), chunk(SENT)
    held.received(one_request)
    held.received(many_request)
    assert held.snapshot(3600)[0] == {one.work_id, many.work_id}
    one_request.acknowledged = True
    assert held.snapshot(3600)[0] == {many.work_id}


def test_the_newest_send_read_is_kept_per_queue():
    held = HeldWork()
    for moment in (SENT, SENT + timedelta(minutes=5), SENT + timedelta(minutes=2)):
        held.received(single(moment)[1])
    held.received(chunk(SENT + timedelta(minutes=1))[1])
    assert held.snapshot(3600)[1] == {
        "single": SENT + timedelta(minutes=5),
        "chunk": SENT + timedelta(minutes=1),
    }


def test_work_held_past_the_visibility_timeout_is_no_longer_claimed():
    held = HeldWork()
    held.received(single(SENT)[1])
    assert held.snapshot(-1)[0] == set()


def test_a_message_from_an_earlier_version_claims_nothing():
    held = HeldWork()
    message = JobMessage(uuid.uuid4(), "ab" * 32, "a.png", "digits", SENT)
    held.received(Request(TASK_RECOGNISE, [message.to_dict()]))
    held.received(Request(TASK_RECOGNISE, []))
    assert held.snapshot(3600) == (set(), {})


def test_a_broken_broker_connection_releases_every_claim_but_keeps_how_far_the_queues_were_read():
    held = HeldWork()
    (_, one_request), (_, many_request) = single(SENT), chunk(SENT + timedelta(seconds=5))
    held.received(one_request)
    held.received(many_request)
    held.forget_all()
    claimed, newest = held.snapshot(3600)
    assert claimed == set()
    assert newest == {"single": SENT, "chunk": SENT + timedelta(seconds=5)}
