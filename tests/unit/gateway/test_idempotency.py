"""The Idempotency-Key decisions, on a MemoryStore: who takes a key up, what a retry finds, and
what it writes again. (The whole path against the real gateway and Cassandra is
tests/integration/test_idempotency.py; a first attempt that died half-way, or two requests at the
same instant, cannot be timed for real, so they are set up here.)"""

import uuid
from datetime import timedelta
from types import SimpleNamespace

import pytest

from gateway.batches import _files_held
from gateway.errors import ApiError
from gateway.idempotency import IN_PROGRESS, claim, claimed, earlier_answer, remember_answer
from gateway.intake import Intake, plan_work
from shared.jobs import FAILED, NewJob, Outcome, utcnow
from tests.fakes import MemoryStore
from workers.pipeline import UNRECORDED


@pytest.fixture
def services(offline_settings):
    return SimpleNamespace(settings=offline_settings, store=MemoryStore())


def keyed_intake(taken, shas: list[str]) -> Intake:
    intake = Intake("digits", utcnow(), uuid.uuid4(), claim=taken)
    for sha in shas:
        job = NewJob(intake.next_job_id(), f"{sha}.png", sha, 10, "PNG", 28, 28, "digits", intake.created_at)
        intake.accepted.append(job)
    return intake


def age(services, holder, seconds: float) -> None:
    """As if the holder had taken its key up that long ago."""
    earlier = holder.row["claimed_at"] - timedelta(seconds=seconds)
    services.store.upload_keys[(holder.scope, holder.key)]["claimed_at"] = earlier
    holder.row["claimed_at"] = earlier


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
    age(services, first, IN_PROGRESS.total_seconds() + 1)
    assert claim(services, "jobs", "k").seed == first.seed
    with pytest.raises(ApiError):  # the taker-over is in progress now
        claim(services, "jobs", "k")


def test_a_request_that_fails_frees_its_key_at_once(services):
    with pytest.raises(ApiError), claimed(services, "jobs", "k") as first:
        raise ApiError(415, "not_an_image", "not an image")
    assert claim(services, "jobs", "k").seed == first.seed, "a retry need not wait 10 s"


def test_a_holder_that_lost_its_key_to_a_retry_records_nothing(services):
    """Held past the in-progress window, a request's key was taken over: the late holder stops
    before it records anything, and leaves the fingerprint to the one that holds the key."""
    slow = claim(services, "jobs", "k")
    age(services, slow, IN_PROGRESS.total_seconds() + 1)
    claim(services, "jobs", "k")
    with pytest.raises(ApiError) as lost:
        earlier_answer(services, slow, keyed_intake(slow, ["a"]))
    assert lost.value.status == 409
    assert services.store.upload_keys[("jobs", "k")]["fingerprint"] is None


def test_an_answer_is_written_only_by_the_holder(services):
    slow = claim(services, "jobs", "k")
    earlier_answer(services, slow, keyed_intake(slow, ["a"]))
    age(services, slow, IN_PROGRESS.total_seconds() + 1)
    retry = claim(services, "jobs", "k")
    remember_answer(services, slow, {"id": "late"})
    assert services.store.upload_keys[("jobs", "k")]["answer"] is None
    remember_answer(services, retry, {"id": "x"})
    assert services.store.upload_keys[("jobs", "k")]["answer"] == '{"id": "x"}'


def test_the_key_with_other_files_is_refused(services):
    first = claim(services, "jobs", "k")
    earlier_answer(services, first, keyed_intake(None, ["a"]))
    age(services, first, IN_PROGRESS.total_seconds() + 1)
    retry = claim(services, "jobs", "k")
    with pytest.raises(ApiError) as refused:
        earlier_answer(services, retry, keyed_intake(retry, ["b"]))
    assert refused.value.status == 422 and refused.value.code == "idempotency_key_reused"


def test_a_retry_after_a_half_recorded_first_attempt_records_only_what_is_missing(services):
    """The first attempt died after writing some rows. The retry leaves alone every job that has
    a row (done, queued, failed for want of a row, a refused file's), since writing it again could
    take a job a worker has under way back to queued; it records only the job never written."""
    first = claim(services, "batch:b", "k")
    intake = keyed_intake(first, ["done", "queued", "unrecorded", "new"])
    refused = NewJob(first.id_for("file 4"), "bad.png", "bad", 3, "", 0, 0, "digits", intake.created_at)
    intake.refused.append((refused, "not an image"))
    earlier_answer(services, first, intake)
    _, first_parts = plan_work(intake, 64, utcnow())
    done, queued, unrecorded, new = intake.accepted
    store = services.store
    store.insert_jobs([done, queued, unrecorded])
    store.jobs[done.job_id]["status"] = "done"
    store.jobs[unrecorded.job_id].update(status=FAILED, error=UNRECORDED)
    store.insert_jobs([], refused=[(refused, Outcome(refused.job_id, "bad", "bad.png", "gateway", utcnow()))])
    store.jobs[refused.job_id].update(status=FAILED, error="not an image")

    age(services, first, IN_PROGRESS.total_seconds() + 1)
    retry = claim(services, "batch:b", "k")
    again = keyed_intake(retry, ["done", "queued", "unrecorded", "new"])
    again.refused.append((refused, "not an image"))
    assert earlier_answer(services, retry, again) is None
    assert again.recorded == {done.job_id, queued.job_id, unrecorded.job_id, refused.job_id}
    (work,), parts = plan_work(again, 64, utcnow())
    assert [m.job_id for m in work.messages] == [new.job_id]
    # The same parts as the first attempt's, members and all: written again, never counted twice.
    assert [(p.part_id, [k.job_id for k in p.members]) for p in parts] == [
        (p.part_id, [k.job_id for k in p.members]) for p in first_parts
    ]
    assert [[k.job_id for k in p.members] for p in parts] == [
        [done.job_id, queued.job_id, unrecorded.job_id, new.job_id],
        [refused.job_id],
    ]


def test_a_retry_near_a_full_batch_does_not_count_the_parts_its_first_attempt_wrote(services):
    """The batch cap is checked against the files the batch holds, less this upload's own parts:
    an earlier attempt under the key that wrote them before it died added no files."""
    first = claim(services, "batch:b", "k")
    mine = keyed_intake(first, ["a", "b", "c"])
    others = Intake("digits", utcnow(), mine.batch_id)
    for n in range(5):
        others.accepted.append(
            NewJob(uuid.uuid4(), f"{n}.png", "ab", 1, "PNG", 1, 1, "digits", others.created_at)
        )
    for intake in (others, mine):
        services.store.insert_jobs([], parts=plan_work(intake, 64, utcnow())[1])
    header = {"batch_id": mine.batch_id, "counted": True}
    assert _files_held(services, header, mine) == 5
    assert _files_held(services, header, keyed_intake(None, ["a"])) == 8
