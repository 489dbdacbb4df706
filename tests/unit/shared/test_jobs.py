"""A job's status as a worker reads it: an open job whose cancel was asked for reads CANCEL_ASKED,
an ended one keeps its ending whatever was asked after."""

from datetime import UTC, datetime

import pytest

from shared.jobs import CANCEL_ASKED, seen_status

ASKED = datetime(2026, 12, 7, 7, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "asked", "seen"),
    [
        ("queued", ASKED, CANCEL_ASKED),
        ("running", ASKED, CANCEL_ASKED),
        ("queued", None, "queued"),
        ("done", ASKED, "done"),
        ("failed", ASKED, "failed"),
        ("cancelled", ASKED, "cancelled"),
    ],
)
def test_a_cancel_shows_only_on_a_job_still_open(status, asked, seen):
    assert seen_status(status, asked) == seen
