"""run_jobs and fail_jobs on a MemoryStore, a real VolumeImageStore and a FakeRecogniser."""

import dataclasses
import uuid
from datetime import timedelta

import pytest

from shared.image_store import VolumeImageStore
from shared.jobs import NewJob, utcnow
from shared.messaging import JobMessage, Work, job_channel, queued_set
from shared.settings import Settings
from tests.fakes import FakeRuntime
from workers.pipeline import fail_jobs, run_jobs


@pytest.fixture
def runtime(tmp_path):
    settings = Settings.from_env({}, image_dir=tmp_path)
    return FakeRuntime(settings, VolumeImageStore(tmp_path))


def queue(runtime, data: bytes, model="digits", batch_id=None, new_bytes=True, age_s=0.0) -> JobMessage:
    """Store the bytes and record the job as the gateway would; returns its message."""
    sha256, _ = runtime.images.put(data)
    created = utcnow() - timedelta(seconds=age_s)
    message = JobMessage(
        uuid.uuid4(), sha256, f"{len(runtime.store.jobs)}.png", model, created, batch_id, new_bytes
    )
    job = NewJob(message.job_id, message.filename, sha256, len(data), "PNG", 28, 28, model, created, batch_id)
    runtime.store.insert_jobs([job], [Work(message.job_id, (message,), False, created)])
    return message


def queue_waited(runtime, data: bytes, model="digits") -> JobMessage:
    """A job whose request waits for its answer: stored, sent with its upload columns, no row."""
    sha256, _ = runtime.images.put(data)
    job = NewJob(uuid.uuid4(), "waited.png", sha256, len(data), "PNG", 28, 28, model, utcnow(), None)
    return JobMessage(
        job.job_id, sha256, job.filename, model, job.created_at, None, True, upload=job.upload()
    )


def test_jobs_are_recognised_in_one_model_call_and_stored_and_announced(runtime):
    messages = [queue(runtime, f"digit:{d}".encode()) for d in (3, 1, 4)]
    outcomes = run_jobs(runtime, messages, "w1")
    assert runtime.model.calls == [[b"digit:3", b"digit:1", b"digit:4"]]
    assert [o.label for o in outcomes] == ["3", "1", "4"]
    assert all(o.batch_size == 3 and o.model_version == "v1" and o.worker == "w1" for o in outcomes)
    assert [runtime.store.jobs[m.job_id]["status"] for m in messages] == ["done"] * 3
    assert runtime.redis.published == [job_channel(str(m.job_id)) for m in messages]


def test_queue_time_is_measured_from_the_job_creation(runtime):
    (outcome,) = run_jobs(runtime, [queue(runtime, b"digit:5", age_s=2.0)], "w1")
    assert 2000 <= outcome.queue_ms < 3000


def test_a_redelivered_finished_job_does_nothing(runtime):
    message = queue(runtime, b"digit:7")
    run_jobs(runtime, [message], "w1")
    assert run_jobs(runtime, [message], "w2") == []
    assert len(runtime.model.calls) == 1 and runtime.store.jobs[message.job_id]["worker"] == "w1"


def test_waited_for_jobs_are_recognised_while_their_statuses_are_read(runtime):
    """Their answer is awaited and their rows are the worker's alone (none marked running): the
    model call runs inside look_up's wait, one call for the group, and a copy of a finished one
    (delivered twice unmarked) costs that call but writes and announces nothing."""
    store, calls_in_look_up = runtime.store, []
    real_look_up = store.look_up

    def look_up(job_ids, recall_keys, meanwhile=None):
        before = len(runtime.model.calls)
        answer = real_look_up(job_ids, recall_keys, meanwhile)
        calls_in_look_up.append(runtime.model.calls[before:])
        return answer

    store.look_up = look_up
    first, second = queue_waited(runtime, b"digit:2"), queue_waited(runtime, b"digit:9")
    outcomes = run_jobs(runtime, [first, second], "w1")
    assert calls_in_look_up == [[[b"digit:2", b"digit:9"]]] and len(runtime.model.calls) == 1
    assert [(o.label, o.batch_size) for o in outcomes] == [("2", 2), ("9", 2)]
    assert store.marked_running == [] and store.jobs[first.job_id]["status"] == "done"
    published = list(runtime.redis.published)
    assert run_jobs(runtime, [first], "w2") == []
    assert len(runtime.model.calls) == 2 and store.jobs[first.job_id]["worker"] == "w1"
    assert runtime.redis.published == published


def test_a_waited_for_job_beside_another_kind_is_recognised_with_it_after_the_look_up(runtime):
    """With a job of the same model that is marked running first (its row the gateway's), the
    group waits for the statuses and still makes one model call."""
    waited, queued = queue_waited(runtime, b"digit:2"), queue(runtime, b"digit:6")
    calls_before_marks = []
    real_mark = runtime.store.mark_running
    runtime.store.mark_running = lambda *a, **k: (
        calls_before_marks.append(len(runtime.model.calls)) or real_mark(*a, **k)
    )
    outcomes = run_jobs(runtime, [waited, queued], "w1")
    assert calls_before_marks == [0] and runtime.model.calls == [[b"digit:2", b"digit:6"]]
    assert {o.job_id: o.label for o in outcomes} == {waited.job_id: "2", queued.job_id: "6"}


def test_known_bytes_are_answered_from_the_cache_without_the_model(runtime):
    run_jobs(runtime, [queue(runtime, b"digit:8")], "w1")
    (again,) = run_jobs(runtime, [queue(runtime, b"digit:8", new_bytes=False)], "w1")
    assert again.cached and again.label == "8" and again.probabilities[8] == 0.9
    assert len(runtime.model.calls) == 1


def test_bytes_marked_new_skip_the_cache(runtime):
    run_jobs(runtime, [queue(runtime, b"digit:2")], "w1")
    (again,) = run_jobs(runtime, [queue(runtime, b"digit:2", new_bytes=True)], "w1")
    assert not again.cached and len(runtime.model.calls) == 2


def test_a_bad_image_fails_only_its_own_job(runtime):
    good, bad = queue(runtime, b"digit:6"), queue(runtime, b"\x89PNG truncated")
    outcomes = {o.job_id: o for o in run_jobs(runtime, [good, bad], "w1")}
    assert outcomes[good.job_id].label == "6" and outcomes[good.job_id].error is None
    assert "truncated" in outcomes[bad.job_id].error
    assert runtime.store.jobs[bad.job_id]["status"] == "failed"


def test_a_missing_image_fails_only_its_own_job(runtime):
    good, gone = queue(runtime, b"digit:0"), queue(runtime, b"digit:9")
    runtime.images.delete(gone.sha256)
    outcomes = {o.job_id: o for o in run_jobs(runtime, [good, gone], "w1")}
    assert outcomes[good.job_id].label == "0"
    assert "not in the image store" in outcomes[gone.job_id].error
    assert runtime.model.calls == [[b"digit:0"]]


def test_an_unknown_model_fails_its_jobs_and_the_rest_go_on(runtime):
    known, unknown = queue(runtime, b"digit:4"), queue(runtime, b"digit:4", model="cats")
    outcomes = {o.job_id: o for o in run_jobs(runtime, [known, unknown], "w1")}
    assert outcomes[known.job_id].label == "4"
    assert "no model called 'cats'" in outcomes[unknown.job_id].error


def test_a_blank_image_is_done_with_a_reason_and_no_label(runtime):
    (outcome,) = run_jobs(runtime, [queue(runtime, b"blank")], "w1")
    assert outcome.error is None and outcome.label is None and outcome.reason == "no digit found"
    assert runtime.store.jobs[outcome.job_id]["status"] == "done"


def test_a_bad_image_does_not_count_in_the_batch_size(runtime):
    good, bad = queue(runtime, b"digit:6"), queue(runtime, b"not an image")
    outcomes = {o.job_id: o for o in run_jobs(runtime, [good, bad], "w1")}
    assert outcomes[good.job_id].batch_size == 1


def test_jobs_are_marked_running_before_they_end_and_finished_ones_are_not(runtime):
    done = queue(runtime, b"digit:1")
    run_jobs(runtime, [done], "w1")
    fresh = queue(runtime, b"digit:2")
    run_jobs(runtime, [done, fresh], "w1")
    assert runtime.store.marked_running == [done.key, fresh.key]


def test_batch_jobs_end_in_their_batch_line_too(runtime):
    batch_id = uuid.uuid4()
    messages = [queue(runtime, b"digit:1", batch_id=batch_id), queue(runtime, b"bad", batch_id=batch_id)]
    run_jobs(runtime, messages, "w1")
    assert [runtime.store.lines[m.job_id]["status"] for m in messages] == ["done", "failed"]


def test_fail_jobs_marks_each_failed_and_announces_it(runtime):
    messages = [queue(runtime, b"digit:1"), queue(runtime, b"digit:2")]
    fail_jobs(runtime, messages, "w1", "recognition failed: boom")
    assert [runtime.store.jobs[m.job_id]["error"] for m in messages] == ["recognition failed: boom"] * 2
    assert len(runtime.redis.published) == 2 and runtime.model.calls == []


def test_a_job_sent_again_whose_row_was_never_written_is_failed_for_the_record(runtime):
    """The gateway writes the work before the job rows; a 503 between the two leaves work whose
    job has no row. When the sweeper sends it, the job is failed, not recognised."""
    recorded = queue(runtime, b"digit:2")
    unrecorded = queue(runtime, b"digit:6")
    del runtime.store.jobs[unrecorded.job_id]
    resent_at = unrecorded.created_at + timedelta(minutes=2)
    resent = [dataclasses.replace(m, sent_at=resent_at, resent=True) for m in (recorded, unrecorded)]
    outcomes = {o.job_id: o for o in run_jobs(runtime, resent, "w1")}
    assert outcomes[recorded.job_id].label == "2"
    assert "not completely recorded" in outcomes[unrecorded.job_id].error
    assert runtime.store.jobs[unrecorded.job_id]["status"] == "failed"
    assert runtime.model.calls == [[b"digit:2"]]


def test_a_first_send_is_recognised_even_before_its_row_can_be_read(runtime):
    """Only a job sent again is judged unrecorded: a first send is never failed for a slow read."""
    message = queue(runtime, b"digit:5")
    del runtime.store.jobs[message.job_id]
    slow_first_send = dataclasses.replace(message, sent_at=message.created_at + timedelta(minutes=5))
    (outcome,) = run_jobs(runtime, [slow_first_send], "w1")
    assert outcome.label == "5"


def test_a_tenants_cache_is_its_own_and_its_finished_jobs_leave_its_queued_set(runtime):
    first = dataclasses.replace(queue(runtime, b"digit:7"), tenant="alice")
    run_jobs(runtime, [first], "w1")
    again = dataclasses.replace(queue(runtime, b"digit:7", new_bytes=False), tenant="alice")
    theirs = dataclasses.replace(queue(runtime, b"digit:7", new_bytes=False), tenant="bob")
    by_job = {o.job_id: o for o in run_jobs(runtime, [again, theirs], "w1")}
    assert by_job[again.job_id].cached and not by_job[theirs.job_id].cached
    assert len(runtime.model.calls) == 2, "bob's copy was recognised, not recalled from alice's"
    assert (queued_set("bob"), str(theirs.job_id)) in runtime.redis.removed
    assert (queued_set("alice"), str(first.job_id)) in runtime.redis.removed


def test_an_error_of_any_length_is_recorded_cut_to_its_first_2000_characters(runtime):
    from workers.pipeline import MAX_ERROR_CHARS, fail_jobs

    message = queue(runtime, b"digit:1")
    (outcome,) = fail_jobs(runtime, [message], "w1", "recognition failed: " + "x" * 100_000)
    assert len(outcome.error) == MAX_ERROR_CHARS == 2_000
    assert outcome.error.startswith("recognition failed: x")


def test_a_job_whose_row_was_left_to_its_worker_is_not_marked_running_and_ends_with_its_upload(runtime):
    """Its request waits for the answer, so no one knows its id: no 'running' mark, and the row is
    written whole with the result: its upload columns, the model asked for and when it started."""
    sha256, _ = runtime.images.put(b"digit:4")
    upload = {"size_bytes": 7, "image_format": "PNG", "width": 28, "height": 28}
    message = JobMessage(uuid.uuid4(), sha256, "4.png", "digits", utcnow(), new_bytes=True, upload=upload)
    (outcome,) = run_jobs(runtime, [message], "w1")
    assert runtime.store.marked_running == []
    assert outcome.label == "4" and runtime.store.jobs[message.job_id]["status"] == "done"
    started = outcome.upload.pop("started_at")
    assert outcome.upload == {**upload, "model_name": "digits"} and started <= outcome.finished_at


def test_new_bytes_are_prepared_while_the_statuses_are_read_and_known_bytes_after(runtime):
    """An image that cannot be in the cache is read and prepared while Cassandra looks its job up
    (inside look_up's wait); one whose earlier result may be there only once the look-up says it
    is not. A job found final meanwhile was prepared for nothing, but not recognised again."""
    done = queue(runtime, b"digit:7")
    run_jobs(runtime, [done], "w1")
    runtime.model.prepared.clear()
    store, seen_in_look_up = runtime.store, []
    real_look_up = store.look_up

    def look_up(job_ids, recall_keys, meanwhile=None):
        prepared_before = len(runtime.model.prepared)
        answer = real_look_up(job_ids, recall_keys, meanwhile)
        seen_in_look_up.append((prepared_before, list(runtime.model.prepared)))
        return answer

    store.look_up = look_up
    new, known = queue(runtime, b"digit:3"), queue(runtime, b"digit:4", new_bytes=False)
    outcomes = run_jobs(runtime, [done, new, known], "w2")
    assert seen_in_look_up == [(0, [b"digit:7", b"digit:3"])]
    assert runtime.model.prepared == [b"digit:7", b"digit:3", b"digit:4"]
    assert runtime.model.calls[-1] == [b"digit:3", b"digit:4"]
    assert {o.job_id: o.label for o in outcomes} == {new.job_id: "3", known.job_id: "4"}
    assert store.jobs[done.job_id]["worker"] == "w1"
    # Sent again (here: another attempt) or a batch's: its status first, its image only if open.
    again = dataclasses.replace(queue(runtime, b"digit:5"), attempt=1)
    in_a_batch = queue(runtime, b"digit:6", batch_id=uuid.uuid4())
    seen_in_look_up.clear()
    run_jobs(runtime, [again, in_a_batch], "w2")
    assert seen_in_look_up == [(3, [b"digit:7", b"digit:3", b"digit:4"])]
    assert runtime.model.prepared[3:] == [b"digit:5", b"digit:6"]


def test_a_single_job_whose_cancel_was_asked_is_skipped_and_ends_cancelled(runtime):
    kept, dropped = queue(runtime, b"digit:2"), queue(runtime, b"digit:8")
    runtime.store.cancel_job(runtime.store.jobs[dropped.job_id], utcnow())
    outcomes = run_jobs(runtime, [kept, dropped], "w1")
    assert runtime.model.calls == [[b"digit:2"]], "a cancelled job went through the model"
    assert {o.job_id: o.status for o in outcomes} == {kept.job_id: "done", dropped.job_id: "cancelled"}
    assert runtime.store.jobs[dropped.job_id]["status"] == "cancelled"
    assert runtime.store.jobs[dropped.job_id]["label"] is None
    assert dropped.job_id not in [k.job_id for k in runtime.store.marked_running]
    # Its waiter hears of it, as of any ending.
    assert job_channel(str(dropped.job_id)) in runtime.redis.published


def test_a_cancelled_batch_is_skipped_from_its_header_even_on_a_chunks_first_start(runtime):
    batch = uuid.uuid4()
    messages = [queue(runtime, f"digit:{d}".encode(), batch_id=batch) for d in range(3)]
    runtime.store.cancel_batch(batch, utcnow())
    outcomes = run_jobs(runtime, messages, "w1", unstarted={m.job_id for m in messages})
    assert runtime.model.calls == []
    assert [o.status for o in outcomes] == ["cancelled"] * 3
    assert [runtime.store.lines[m.job_id]["status"] for m in messages] == ["cancelled"] * 3
    assert runtime.store.cache == {}, "a cancelled job has no result to remember"


def test_a_batch_job_cancelled_alone_is_the_only_one_of_its_chunk_skipped(runtime):
    batch = uuid.uuid4()
    messages = [queue(runtime, f"digit:{d}".encode(), batch_id=batch) for d in range(3)]
    runtime.store.jobs[messages[1].job_id]["batch_id"] = batch
    runtime.store.cancel_job(runtime.store.jobs[messages[1].job_id], utcnow())
    outcomes = run_jobs(runtime, messages, "w1", unstarted={m.job_id for m in messages})
    assert runtime.model.calls == [[b"digit:0", b"digit:2"]]
    assert [o.status for o in outcomes] == ["cancelled", "done", "done"]


def test_a_cancel_asked_while_a_chunk_is_read_stops_it_before_the_model_call(runtime, monkeypatch):
    """The second look at the batch's header, between reading the images and the model call."""
    batch = uuid.uuid4()
    messages = [queue(runtime, f"digit:{d}".encode(), batch_id=batch) for d in range(2)]
    real_get_many = runtime.images.get_many

    def read_then_cancel(shas):
        found = real_get_many(shas)
        if shas:  # the user's cancel lands as the chunk's images are read
            runtime.store.cancel_batch(batch, utcnow())
        return found

    monkeypatch.setattr(runtime.images, "get_many", read_then_cancel)
    outcomes = run_jobs(runtime, messages, "w1", unstarted={m.job_id for m in messages})
    assert runtime.model.calls == []
    assert [o.status for o in outcomes] == ["cancelled", "cancelled"]
    assert runtime.store.cancels_read == 2


def test_a_finished_job_is_not_cancelled_by_a_late_ask(runtime):
    message = queue(runtime, b"digit:6")
    run_jobs(runtime, [message], "w1")
    runtime.store.jobs[message.job_id]["cancel_requested_at"] = utcnow()
    assert run_jobs(runtime, [message], "w1") == []
    assert runtime.store.jobs[message.job_id]["status"] == "done"
