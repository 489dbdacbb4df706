"""finish_statements: which rows record a finished job, with every placeholder bound."""

import uuid
from datetime import UTC, datetime

import pytest

from shared.jobs import Outcome
from shared.store import statements as cql
from shared.store.cassandra_results import finish_statements

FINISHED = datetime(2026, 11, 24, 14, 5, tzinfo=UTC)
CREATED = datetime(2026, 11, 24, 13, 59, tzinfo=UTC)


def outcome(**fields) -> Outcome:
    base = {"model_name": "digits", "model_version": "abc123", "created_at": CREATED}
    return Outcome(uuid.uuid4(), "ab" * 32, "f.png", "w1", FINISHED, **{**base, **fields})


LABELLED = {"label": "7", "confidence": 0.9, "probabilities": [0.1] * 10}


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (LABELLED, [cql.FINISH_LABELLED, cql.AUDIT_LABELLED, cql.REMEMBER_LABELLED]),
        ({"reason": "no digit"}, [cql.FINISH_BLANK, cql.AUDIT_BLANK, cql.REMEMBER_BLANK]),
        ({"error": "damaged"}, [cql.FINISH_FAILED, cql.AUDIT_FAILED]),
        ({**LABELLED, "cached": True}, [cql.FINISH_LABELLED, cql.AUDIT_LABELLED]),
        (
            {**LABELLED, "batch_id": uuid.uuid4()},
            [
                cql.FINISH_LABELLED,
                cql.AUDIT_LABELLED,
                cql.BATCH_ROW_LABELLED,
                cql.REMEMBER_LABELLED,
            ],
        ),
        (
            {"error": "damaged", "batch_id": uuid.uuid4()},
            [cql.FINISH_FAILED, cql.AUDIT_FAILED, cql.BATCH_ROW_FAILED],
        ),
        ({"cancelled": True}, [cql.FINISH_CANCELLED, cql.AUDIT_CANCELLED]),
        (
            {"cancelled": True, "batch_id": uuid.uuid4()},
            [cql.FINISH_CANCELLED, cql.AUDIT_CANCELLED, cql.BATCH_ROW_CANCELLED],
        ),
    ],
    ids=["labelled", "blank", "failed", "cached", "batch", "batch-failed", "cancelled", "batch-cancelled"],
)
def test_the_rows_written_for_each_kind_of_end(fields, expected):
    writes = finish_statements(outcome(**fields))
    assert [text for text, _ in writes] == expected
    for text, values in writes:
        assert text.count("?") == len(values), text
        assert None not in values, f"binding None writes a tombstone: {text}"


def test_the_audit_row_lands_in_the_hour_it_finished():
    writes = dict(finish_statements(outcome(**LABELLED)))
    assert writes[cql.AUDIT_LABELLED][0] == "2026-11-24T14"


def test_finishing_deletes_nothing():
    """Open work expires by itself; a delete per job would leave a tombstone the sweeper reads."""
    for fields in (LABELLED, {"reason": "no digit"}, {"error": "damaged", "batch_id": uuid.uuid4()}):
        assert not any(
            text.lstrip().upper().startswith("DELETE") for text, _ in finish_statements(outcome(**fields))
        )


def test_the_audit_and_cache_rows_carry_the_tenant():
    """The cache is read back by tenant (each tenant's is its own); the audit says whose job it was."""
    writes = dict(finish_statements(outcome(**LABELLED, tenant="acme")))
    assert writes[cql.AUDIT_LABELLED][-1] == "acme"
    assert writes[cql.REMEMBER_LABELLED][-1] == "acme"


def test_finished_jobs_go_8_to_a_batch_and_fewer_when_their_text_is_long():
    from shared.store.cassandra_results import BATCH_BYTES, JOBS_A_LOGGED_BATCH, finish_groups

    now = datetime(2026, 12, 5, tzinfo=UTC)
    short = [Outcome(uuid.uuid4(), "ab", f"{n}.png", "w1", now, "7", 0.9, [0.1] * 10) for n in range(20)]
    assert [len(g) for g in finish_groups(short)] == [JOBS_A_LOGGED_BATCH, JOBS_A_LOGGED_BATCH, 4]
    long_error = "recognition failed: " + "x" * 3_000
    failed = [Outcome(uuid.uuid4(), "ab", "é" * 255, "w1", now, error=long_error) for _ in range(5)]
    groups = list(finish_groups(failed))
    assert [o for g in groups for o in g] == failed and all(len(g) <= 2 for g in groups)
    huge = Outcome(uuid.uuid4(), "ab", "a.png", "w1", now, error="x" * BATCH_BYTES)
    assert [len(g) for g in finish_groups([short[0], huge, short[1]])] == [1, 1, 1]
