"""batch_progress sums a batch's parts: status, counts, rate and ETA; count_lines counts a part."""

from datetime import datetime, timedelta

import pytest

from shared.batch_progress import batch_progress
from shared.jobs import as_utc
from shared.parts import PartCount, count_lines

CREATED = datetime(2026, 11, 24, 12, 0, 0)  # naive UTC, as the driver hands rows back
HEADER = {"batch_id": "b", "name": "n", "model_name": "digits", "created_at": CREATED}


def line(status, finished_s=None, cached=False):
    finished = CREATED + timedelta(seconds=finished_s) if finished_s is not None else None
    return {"status": status, "cached": cached, "finished_at": finished}


def progress(lines, now_s=10.0, parts=1):
    """The lines counted in `parts` parts, dealt out in turn."""
    counts = [count_lines(lines[n::parts]) for n in range(parts)]
    return batch_progress(HEADER, counts, (CREATED + timedelta(seconds=now_s)).replace(tzinfo=None))


@pytest.mark.parametrize("parts", [1, 2, 4])
def test_half_done_gives_rate_and_eta_from_the_batch_life(parts):
    lines = [line("done", 2), line("done", 4), line("running"), line("queued")]
    body = progress(lines, now_s=10, parts=parts)
    assert (body["status"], body["total"], body["done"], body["running"], body["queued"]) == (
        "running",
        4,
        2,
        1,
        1,
    )
    assert body["progress_percent"] == 50.0
    assert body["images_per_second"] == 0.2 and body["eta_seconds"] == 10.0
    assert body["finished_at"] is None and body["first_finished_at"].endswith("12:00:02.000Z")


@pytest.mark.parametrize(
    ("statuses", "expected"),
    [
        (["queued", "queued"], "queued"),
        (["done", "done"], "done"),
        (["done", "failed"], "partial"),
        (["failed", "failed"], "failed"),
        ([], "queued"),
    ],
)
def test_status_follows_the_lines(statuses, expected):
    assert progress([line(s, 1 if s in ("done", "failed") else None) for s in statuses])["status"] == expected


def test_a_finished_batch_measures_its_rate_up_to_its_last_result():
    body = progress([line("done", 2, cached=True), line("failed", 4)], now_s=100)
    assert body["eta_seconds"] == 0.0 and body["images_per_second"] == 0.5
    assert body["cached"] == 1 and body["failed"] == 1 and body["finished_at"].endswith("12:00:04.000Z")


def test_nothing_finished_yet_has_no_rate_and_no_eta():
    body = progress([line("queued")])
    assert body["images_per_second"] is None and body["eta_seconds"] is None and body["progress_percent"] == 0


def test_a_line_never_written_counts_as_queued():
    finished = as_utc(CREATED + timedelta(seconds=1))
    assert count_lines([{}, line("done", 1)]) == PartCount(
        2, done=1, first_finished=finished, last_finished=finished
    )


def test_a_running_mark_that_landed_after_its_part_was_counted_shows_no_more_running_than_open():
    stale = PartCount(4, running=4, done=3)
    body = batch_progress(HEADER, [stale, PartCount(2)], CREATED + timedelta(seconds=5))
    assert (body["running"], body["queued"], body["total"], body["status"]) == (1, 2, 6, "running")


def cancelled_progress(lines, now_s=10.0, asked=True):
    header = {**HEADER, "cancel_requested_at": CREATED + timedelta(seconds=5) if asked else None}
    return batch_progress(
        header, [count_lines(lines)], (CREATED + timedelta(seconds=now_s)).replace(tzinfo=None)
    )


@pytest.mark.parametrize(
    ("statuses", "asked", "expected"),
    [
        (["done", "queued", "running"], True, "cancelling"),
        (["done", "cancelled", "cancelled"], True, "cancelled"),
        (["cancelled", "cancelled"], True, "cancelled"),
        ([], True, "cancelled"),  # an open batch cancelled before any file came
        (["done", "done"], True, "done"),  # asked while its last images ran: nothing was left to skip
        (["done", "cancelled"], False, "partial"),  # one of its jobs cancelled alone
        (["cancelled", "cancelled"], False, "cancelled"),
        (["failed", "cancelled"], False, "partial"),
        (["cancelled", "queued"], False, "running"),
    ],
)
def test_a_cancel_shows_in_the_status_and_its_count(statuses, asked, expected):
    body = cancelled_progress(
        [line(s, 1 if s in ("done", "failed", "cancelled") else None) for s in statuses], asked=asked
    )
    assert body["status"] == expected
    assert body["cancelled"] == statuses.count("cancelled")
    if expected in ("cancelled", "done", "partial"):
        assert body["done"] + body["failed"] + body["cancelled"] == body["total"]
        assert body["eta_seconds"] == 0.0


def test_a_cancelling_batch_has_no_eta_and_a_rate_of_what_was_recognised():
    body = cancelled_progress([line("done", 2), line("cancelled", 6), line("queued")], now_s=10)
    assert body["eta_seconds"] is None and body["images_per_second"] == 0.1
    assert body["queued"] == 1 and body["progress_percent"] == pytest.approx(66.7)
    assert body["cancel_requested_at"].endswith("12:00:05.000Z")
