"""JobMessage on the wire: JSON both ways, messages queued by earlier versions, stored copies."""

import json
import uuid
from datetime import UTC, datetime

from shared.messaging import JobMessage, Work, ids_repr, stored_messages

CREATED = datetime(2026, 11, 24, 14, 5, 6, 789000, tzinfo=UTC)


def test_a_message_survives_json_both_ways():
    message = JobMessage(uuid.uuid4(), "ab" * 32, "a/b.png", "digits", CREATED, uuid.uuid4(), True, 3)
    assert JobMessage.from_dict(json.loads(json.dumps(message.to_dict()))) == message


def test_a_message_queued_by_the_previous_version_is_read():
    """Before the typed message, the dict had no 'attempt' until a retry added one."""
    old = {
        "id": "0b7e4c1e-8f0a-4c7b-9a51-2d1f3c4e5a6b",
        "sha256": "cd" * 32,
        "filename": "x.png",
        "model": "digits",
        "created_at": CREATED.isoformat(),
        "batch_id": None,
        "new_bytes": False,
    }
    message = JobMessage.from_dict(old)
    assert message.attempt == 0 and message.batch_id is None and message.created_at == CREATED
    assert message.key.job_id == uuid.UUID(old["id"])
    added = {
        "attempt": 0,
        "work_id": None,
        "sent_at": None,
        "resent": False,
        "alone": False,
        "part": None,
        "tenant": None,
    }
    assert message.to_dict() == {**old, **added}


def test_a_message_names_the_work_it_travelled_in():
    message = JobMessage(uuid.uuid4(), "ab" * 32, "a.png", "digits", CREATED)
    sent = CREATED.replace(minute=9)
    (stamped,) = Work(uuid.uuid4(), (message,), False, sent).stamped()
    again = JobMessage.from_dict(json.loads(json.dumps(stamped.to_dict())))
    assert again.sent_at == sent and again.work_id is not None and again.job_id == message.job_id


def test_stored_work_that_is_missing_or_unreadable_is_none():
    messages = tuple(JobMessage(uuid.uuid4(), "ab" * 32, f"{n}.png", "digits", CREATED) for n in "ab")
    assert stored_messages(Work(uuid.uuid4(), messages, True, CREATED).to_json()) == messages
    assert stored_messages(None) is None and stored_messages("{not json") is None
    assert stored_messages(json.dumps([{"id": "x"}])) is None and stored_messages('{"id": 1}') is None


def test_flower_sees_job_ids_never_file_names():
    batch = uuid.uuid4()
    messages = [JobMessage(uuid.uuid4(), "ab" * 32, "secret-name.png", "digits", CREATED, batch)]
    shown = ids_repr(messages)
    assert shown.startswith(f"batch {batch}:") and str(messages[0].job_id) in shown
    assert "secret-name" not in shown
