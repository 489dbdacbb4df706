"""batch_progress counts a batch from its job lines: status, counts, rate and ETA."""

from datetime import datetime, timedelta

import pytest

from gateway.batch_progress import batch_progress

CREATED = datetime(2026, 11, 24, 12, 0, 0)  # naive UTC, as the driver hands rows back
HEADER = {"batch_id": "b", "name": "n", "model_name": "digits", "created_at": CREATED}


def line(status, finished_s=None, cached=False):
    finished = CREATED + timedelta(seconds=finished_s) if finished_s is not None else None
    return {"status": status, "cached": cached, "finished_at": finished}


def progress(lines, now_s=10.0):
    return batch_progress(HEADER, lines, (CREATED + timedelta(seconds=now_s)).replace(tzinfo=None))


def test_half_done_gives_rate_and_eta_from_the_batch_life():
    body = progress([line("done", 2), line("done", 4), line("running"), line("queued")], now_s=10)
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
