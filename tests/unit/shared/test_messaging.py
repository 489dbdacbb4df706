"""JobMessage on the wire: JSON both ways, messages queued by earlier versions, stored copies."""

import json
import uuid
from datetime import UTC, datetime

from shared.messaging import JobMessage, Work, ids_repr, read_message, stored_messages

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


def test_a_message_carries_the_upload_columns_of_a_row_left_to_its_worker():
    upload = {"size_bytes": 812, "image_format": "PNG", "width": 28, "height": 28}
    message = JobMessage(uuid.uuid4(), "ab" * 32, "a.png", "digits", CREATED, upload=upload)
    assert JobMessage.from_dict(json.loads(json.dumps(message.to_dict()))).upload == upload
    odd = {**message.to_dict(), "upload": {"size_bytes": 812}}
    assert read_message(odd) is None, "a row written from half its columns would lose the rest"
    later = {**message.to_dict(), "upload": {**upload, "colour_space": "grey"}}  # a later version's
    assert read_message(later).upload == upload


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


def test_an_announcement_carries_what_the_final_write_set_by_how_the_job_ended():
    from shared.jobs import Outcome
    from shared.messaging import announcement, read_announcement

    finished = datetime(2026, 12, 5, 10, 0, 1, 234000, tzinfo=UTC)
    labelled = Outcome(uuid.uuid4(), "ab" * 32, "a.png", "w1", finished, "7", 0.9, [0.1] * 10)
    labelled.model_name, labelled.model_version, labelled.batch_size = "digits", "v1", 3
    fields = read_announcement(announcement(labelled, CREATED))
    assert fields["status"] == "done" and fields["label"] == "7" and fields["probabilities"] == [0.1] * 10
    assert fields["finished_at"] == finished and fields["started_at"] == CREATED
    assert fields["model_name"] == "digits" and fields["batch_size"] == 3 and fields["cached"] is False
    failed = Outcome(uuid.uuid4(), "ab" * 32, "a.png", "w1", finished, error="broken")
    assert read_announcement(announcement(failed)) == {
        "status": "failed",
        "error": "broken",
        "worker": "w1",
        "finished_at": finished,
    }
    blank = read_announcement(announcement(Outcome(uuid.uuid4(), "ab", "a", "w1", finished, reason="none")))
    assert blank["status"] == "done" and blank["reason"] == "none" and "label" not in blank


def test_an_announcement_of_an_earlier_version_says_to_read_the_row():
    from shared.messaging import read_announcement

    assert read_announcement(b"finished") is None
    assert read_announcement(b'{"no": "status"}') is None


def test_an_announcement_carries_exactly_the_columns_the_final_write_of_the_job_row_sets():
    """Checked against the CQL itself, so a column added to a final write and not announced (a
    waiter's answer would then differ from a read of the row) fails here."""
    import re

    from shared.jobs import Outcome
    from shared.messaging import announcement
    from shared.store import statements as cql

    def columns(statement: str) -> set[str]:
        return set(re.findall(r"(\w+) = \?", statement.split(" WHERE ")[0]))

    finished = datetime(2026, 12, 5, tzinfo=UTC)
    cases = {
        cql.FINISH_LABELLED: Outcome(uuid.uuid4(), "ab", "a", "w1", finished, "7", 0.9, [0.1] * 10),
        cql.FINISH_BLANK: Outcome(uuid.uuid4(), "ab", "a", "w1", finished, reason="none"),
        cql.FINISH_FAILED: Outcome(uuid.uuid4(), "ab", "a", "w1", finished, error="broken"),
        cql.FINISH_CANCELLED: Outcome(uuid.uuid4(), "ab", "a", "w1", finished, cancelled=True),
    }
    for statement, outcome in cases.items():
        assert set(json.loads(announcement(outcome))) == columns(statement), statement
