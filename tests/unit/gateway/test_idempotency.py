"""The Idempotency-Key decisions, on a MemoryStore: who takes a key up, what a retry finds, and
what it writes again. (The whole path against the real gateway and Cassandra is
tests/integration/test_idempotency.py; a first attempt that died half-way, or two requests at the
same instant, cannot be timed for real, so they are set up here.)"""

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from gateway.errors import ApiError
from gateway.idempotency import IN_PROGRESS, claim, claimed, earlier_answer, remember_answer
from gateway.intake import Intake, plan_work
from shared.jobs import FAILED, UNRECORDED, NewJob, Outcome, utcnow
from tests.fakes import MemoryStore


@pytest.fixture
def services(offline_settings):
    return SimpleNamespace(settings=offline_settings, store=MemoryStore())


def keyed_intake(taken, shas: list[str]) -> Intake:
    intake = Intake("digits", utcnow(), uuid.uuid4(), claim=taken)
    for sha in shas:
        job = NewJob(intake.next_job_id(), f"{sha}.png", sha, 10, "PNG", 28, 28, "digits", intake.created_at)
        intake.accepted.append(job)
    return intake


def age(services, scope, key, seconds) -> None:
    """As if the key had been taken up that long ago."""
    row = services.store.upload_keys[(scope, key)]
    row["claimed_at"] -= timedelta(seconds=seconds)


def test_a_retry_gets_the_first_ids_and_the_first_answer(services):
    first = claim(services, "jobs", "k")
    intake = keyed_intake(first, ["a"])
    assert earlier_answer(services, first, intake) is None
    remember_answer(services, first, {"id": str(intake.accepted[0].job_id)})
    retry = claim(services, "jobs", "k")
    assert retry.seed == first.seed
    again = keyed_intake(retry, ["a"])
    assert [j.job_id for j in again.accepted] == [j.job_id for j in intake.accepted]
    assert earlier_answer(services, retry, again) == {"id": str(intake.accepted[0].job_id)}


def test_other_keys_and_scopes_name_other_ids(services):
    one, other = claim(services, "jobs", "k1"), claim(services, "jobs", "k2")
    assert keyed_intake(one, ["a"]).accepted[0].job_id != keyed_intake(other, ["a"]).accepted[0].job_id
    assert claim(services, "batches", "k1").seed != one.seed


def test_a_key_whose_row_expired_gets_new_ids(services):
    """Job rows outlive the key's row: the key used again must not write over the old jobs."""
    first = claim(services, "jobs", "k")
    del services.store.upload_keys[("jobs", "k")]
    assert claim(services, "jobs", "k").seed != first.seed


def test_a_key_taken_up_moments_ago_with_no_answer_is_in_progress(services):
    claim(services, "jobs", "k")
    with pytest.raises(ApiError) as busy:
        claim(services, "jobs", "k")
    assert busy.value.status == 409 and busy.value.code == "upload_in_progress"


def test_a_key_whose_request_died_is_taken_over_once_in_progress_has_passed(services):
    first = claim(services, "jobs", "k")
    age(services, "jobs", "k", IN_PROGRESS.total_seconds() + 1)
    assert claim(services, "jobs", "k").seed == first.seed
    with pytest.raises(ApiError):  # the taker-over is in progress now
        claim(services, "jobs", "k")


def test_a_request_that_fails_frees_its_key_at_once(services):
    with pytest.raises(ApiError), claimed(services, "jobs", "k"):
        raise ApiError(415, "not_an_image", "not an image")
    assert claim(services, "jobs", "k") is not None, "a retry need not wait for the in-progress window"


def test_the_key_with_other_files_is_refused(services):
    earlier_answer(services, claim(services, "jobs", "k"), keyed_intake(None, ["a"]))
    age(services, "jobs", "k", IN_PROGRESS.total_seconds() + 1)
    retry = claim(services, "jobs", "k")
    with pytest.raises(ApiError) as refused:
        earlier_answer(services, retry, keyed_intake(retry, ["b"]))
    assert refused.value.status == 422 and refused.value.code == "idempotency_key_reused"


def test_a_retry_after_a_half_recorded_first_attempt_records_only_what_is_missing(services):
    """The first attempt died after writing some rows. Of its jobs, the retry leaves alone one a
    worker finished and a refused file's failed row; it writes again one still queued (its batch
    line may be what was missing), one the worker failed for want of a row, and one never written."""
    first = claim(services, "batch:b", "k")
    intake = keyed_intake(first, ["done", "queued", "unrecorded", "new"])
    refused = NewJob(first.id_for("file 4"), "bad.png", "bad", 3, "", 0, 0, "digits", intake.created_at)
    intake.refused.append((refused, "not an image"))
    earlier_answer(services, first, intake)
    done, queued, unrecorded, new = intake.accepted
    store = services.store
    store.insert_jobs([done, queued, unrecorded])
    store.jobs[done.job_id]["status"] = "done"
    store.jobs[unrecorded.job_id].update(status=FAILED, error=UNRECORDED)
    store.insert_jobs([], refused=[(refused, Outcome(refused.job_id, "bad", "bad.png", "gateway", utcnow()))])
    store.jobs[refused.job_id].update(status=FAILED, error="not an image")

    age(services, "batch:b", "k", IN_PROGRESS.total_seconds() + 1)
    retry = claim(services, "batch:b", "k")
    again = keyed_intake(retry, ["done", "queued", "unrecorded", "new"])
    again.refused.append((refused, "not an image"))
    assert earlier_answer(services, retry, again) is None
    assert again.recorded == {done.job_id, refused.job_id}
    (work,) = plan_work(again, 64, utcnow())
    assert [m.job_id for m in work.messages] == [queued.job_id, unrecorded.job_id, new.job_id]
