"""JobMessage on the wire: JSON both ways, messages queued by earlier versions, stored copies."""

import json
import uuid
from datetime import UTC, datetime

from shared.messaging import JobMessage, ids_repr, stored_message

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
    assert message.key.job_id == uuid.UUID(old["id"]) and message.to_dict() == {**old, "attempt": 0}


def test_a_stored_copy_that_is_missing_or_unreadable_is_none():
    message = JobMessage(uuid.uuid4(), "ab" * 32, "a.png", "digits", CREATED)
    assert stored_message(json.dumps(message.to_dict())) == message
    assert stored_message(None) is None and stored_message("{not json") is None
    assert stored_message(json.dumps({"id": "x"})) is None


def test_flower_sees_job_ids_never_file_names():
    batch = uuid.uuid4()
    messages = [JobMessage(uuid.uuid4(), "ab" * 32, "secret-name.png", "digits", CREATED, batch)]
    shown = ids_repr(messages)
    assert shown.startswith(f"batch {batch}:") and str(messages[0].job_id) in shown
    assert "secret-name" not in shown
