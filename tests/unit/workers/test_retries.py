"""run_gathered's answer to a store that is down: send each job again later, give up after
MAX_ATTEMPTS. The outage is a MemoryStore told to be down (an outage of the real Cassandra is
produced in the integration tests); the Celery app is a recorder of what would be sent."""

import dataclasses

import pytest
from celery import _state as celery_state

from shared.image_store import VolumeImageStore
from shared.messaging import TASK_RECOGNISE_CHUNK, JobMessage
from shared.settings import Settings
from shared.store import StoreUnavailable
from tests.fakes import FakeRuntime
from tests.unit.workers.test_counting import upload
from tests.unit.workers.test_pipeline import queue, queue_waited
from workers import create_celery
from workers.gathering import send_all_again
from workers.tasks import MAX_ATTEMPTS, run_gathered


class RecordingApp:
    def __init__(self, runtime) -> None:
        self._runtime, self.settings, self.sent = runtime, runtime.settings, []

    @property
    def runtime(self):
        return self._runtime

    def send_task(self, name, args, **options) -> None:
        self.sent.append((name, args[0], options))


@pytest.fixture
def app(tmp_path):
    return RecordingApp(FakeRuntime(Settings.from_env({}, image_dir=tmp_path), VolumeImageStore(tmp_path)))


def test_jobs_are_sent_again_with_their_attempt_counted_and_a_growing_delay(app):
    message = queue(app.runtime, b"digit:3")
    app.runtime.store.down = True
    run_gathered(app, [message.to_dict()], "w1")
    run_gathered(app, [dataclasses.replace(message, attempt=3).to_dict()], "w1")
    (_, first, first_options), (_, later, later_options) = app.sent
    assert first["id"] == str(message.job_id) and first["attempt"] == 1 and first_options["countdown"] == 2
    assert later["attempt"] == 4 and later_options["countdown"] == 16
    assert first_options["task_id"] == str(message.job_id), "Flower must keep showing the job's own id"


def test_after_the_last_attempt_the_job_is_failed_with_the_reason(app):
    message = dataclasses.replace(queue(app.runtime, b"digit:3"), attempt=MAX_ATTEMPTS)
    store = app.runtime.store
    store.look_up = _failing(store.look_up)  # recognition meets the outage; recording a failure does not
    run_gathered(app, [message.to_dict()], "w1")
    assert app.sent == []
    assert store.jobs[message.job_id]["status"] == "failed"
    assert f"gave up after {MAX_ATTEMPTS + 1} attempts" in store.jobs[message.job_id]["error"]


def test_a_job_that_cannot_even_be_failed_is_sent_again(app):
    message = dataclasses.replace(queue(app.runtime, b"digit:3"), attempt=MAX_ATTEMPTS)
    app.runtime.store.down = True
    run_gathered(app, [message.to_dict()], "w1")
    ((_, again, _),) = app.sent
    assert again["attempt"] == MAX_ATTEMPTS + 1, "while the store is down nothing may be dropped"


def test_an_unexpected_error_fails_the_jobs_at_once(app):
    message = queue(app.runtime, b"digit:3")
    app.runtime.recogniser = _failing(app.runtime.recogniser, RuntimeError("model exploded"))
    run_gathered(app, [message.to_dict()], "w1")
    assert app.sent == []
    assert "RuntimeError: model exploded" in app.runtime.store.jobs[message.job_id]["error"]


def _failing(method, error=None):
    def fail(*args, **kwargs):
        raise error or StoreUnavailable("down for this call")

    return fail


def test_a_runtime_that_cannot_reach_the_store_sends_the_jobs_again(tmp_path):
    """Cassandra down while a pool process builds its runtime: the flush is not lost."""

    class NoRuntimeYet(RecordingApp):
        @property
        def runtime(self):
            raise StoreUnavailable("Cassandra is not answering")

    runtime = FakeRuntime(Settings.from_env({}, image_dir=tmp_path), VolumeImageStore(tmp_path))
    message = queue(runtime, b"digit:3")
    app = NoRuntimeYet(runtime)
    run_gathered(app, [message.to_dict()], "w1")
    ((_, again, _),) = app.sent
    assert again["id"] == str(message.job_id) and again["attempt"] == 1


def test_an_unreadable_message_is_dropped_and_the_others_run(app):
    message = queue(app.runtime, b"digit:5")
    run_gathered(app, [{"id": "not a uuid"}, message.to_dict()], "w1")
    assert app.runtime.store.jobs[message.job_id]["label"] == "5" and app.sent == []


def test_a_job_sent_again_past_its_attempts_is_failed_and_its_neighbours_run(app):
    """A main process sends the jobs of a batch whose pool process died again whatever their
    count (it has no store to fail them in); the next pool process to gather one fails it."""
    spent = dataclasses.replace(queue(app.runtime, b"digit:3"), attempt=MAX_ATTEMPTS + 1)
    fresh = queue(app.runtime, b"digit:5")
    run_gathered(app, [spent.to_dict(), fresh.to_dict()], "w1")
    assert app.sent == []
    assert app.runtime.store.jobs[spent.job_id]["status"] == "failed"
    assert f"gave up after {MAX_ATTEMPTS + 1} attempts" in app.runtime.store.jobs[spent.job_id]["error"]
    assert app.runtime.store.jobs[fresh.job_id]["label"] == "5"


class LostRequest:
    """What send_all_again uses of a Celery request: its args, acknowledge and reject."""

    def __init__(self, message) -> None:
        self.args, self.outcome = [message.to_dict()], None

    def acknowledge(self) -> None:
        self.outcome = "acknowledged"

    def reject(self, requeue: bool) -> None:
        self.outcome = f"rejected, requeue={requeue}"


def test_a_job_of_a_dead_pool_process_goes_back_with_one_attempt_more_then_is_acknowledged(app):
    message = queue(app.runtime, b"digit:3")
    request = LostRequest(message)
    send_all_again(app, [request])
    ((_, again, _),) = app.sent
    assert again["id"] == str(message.job_id) and again["attempt"] == 1
    assert again["alone"], "one poison image among them must not take its neighbours down again"
    assert request.outcome == "acknowledged"


def test_a_job_that_was_alone_already_goes_back_without_an_attempt_more(app):
    """Its solo starts in Cassandra bound it; counting here too would fail an innocent job that
    waited behind a few poison ones in the same flush."""
    message = dataclasses.replace(queue(app.runtime, b"digit:3"), alone=True, attempt=2)
    send_all_again(app, [LostRequest(message)])
    ((_, again, _),) = app.sent
    assert again["alone"] and again["attempt"] == 2


def test_gathered_jobs_marked_alone_run_after_the_others_each_in_a_model_call_of_its_own(app):
    together = [queue(app.runtime, f"digit:{d}".encode()) for d in (1, 2)]
    alone = [dataclasses.replace(queue(app.runtime, f"digit:{d}".encode()), alone=True) for d in (3, 4)]
    run_gathered(app, [m.to_dict() for m in (alone[0], together[0], alone[1], together[1])], "w1")
    assert app.runtime.model.calls == [[b"digit:1", b"digit:2"], [b"digit:3"], [b"digit:4"]]
    assert [app.runtime.store.jobs[m.job_id]["label"] for m in alone] == ["3", "4"]
    assert all(app.runtime.store.starts[m.job_id] == ["w1"] for m in alone)


def test_a_job_that_cannot_be_sent_again_goes_back_to_redis_itself(app):
    """Redis down when the pool process died: the request is rejected with requeue, which leaves
    it to Redis's own redelivery and takes it out of this worker's lease."""

    def refuse(*args, **kwargs):
        raise ConnectionError("Redis is not answering")

    app.send_task = refuse
    request = LostRequest(queue(app.runtime, b"digit:3"))
    send_all_again(app, [request])
    assert request.outcome == "rejected, requeue=True"


def test_after_one_failed_send_the_rest_go_back_to_redis_without_trying(app):
    """Each try on a dead Redis holds the worker's event loop up for seconds: one is enough."""
    tries = []

    def refuse(*args, **kwargs):
        tries.append(args)
        raise ConnectionError("Redis is not answering")

    app.send_task = refuse
    requests = [LostRequest(queue(app.runtime, f"digit:{d}".encode())) for d in range(5)]
    send_all_again(app, requests)
    assert len(tries) == 1
    assert [r.outcome for r in requests] == ["rejected, requeue=True"] * 5


def test_a_reject_that_fails_too_is_logged_and_the_rest_go_on(app):
    """Redis gone even for the reject: the message stays unacknowledged, nothing raises into
    the worker's event loop."""

    class Unrejectable(LostRequest):
        def reject(self, requeue: bool) -> None:
            raise ConnectionError("Redis is not answering")

    def refuse(*args, **kwargs):
        raise ConnectionError("Redis is not answering")

    app.send_task = refuse
    first = Unrejectable(queue(app.runtime, b"digit:1"))
    second = LostRequest(queue(app.runtime, b"digit:2"))
    send_all_again(app, [first, second])
    assert first.outcome is None and second.outcome == "rejected, requeue=True"


def test_a_job_sent_again_past_its_attempts_that_already_finished_keeps_its_result(app):
    done = queue(app.runtime, b"digit:4")
    run_gathered(app, [done.to_dict()], "w1")
    run_gathered(app, [dataclasses.replace(done, attempt=MAX_ATTEMPTS + 1).to_dict()], "w1")
    assert app.runtime.store.jobs[done.job_id]["status"] == "done"
    assert app.runtime.store.jobs[done.job_id]["label"] == "4"


def test_a_single_job_always_reads_its_status_and_a_copy_of_a_finished_one_does_nothing(app):
    """A single job's message carries no marker of an earlier delivery Redis can be trusted to
    set (a duplicate publish, a failover): its status is read every time."""
    message = queue(app.runtime, b"digit:4")
    run_gathered(app, [message.to_dict()], "w1")
    calls, published = len(app.runtime.model.calls), list(app.runtime.redis.published)
    run_gathered(app, [message.to_dict()], "w2")
    assert app.runtime.store.statuses_read == 2
    assert len(app.runtime.model.calls) == calls
    assert app.runtime.store.jobs[message.job_id]["worker"] == "w1"
    assert app.runtime.redis.published == published


def test_a_model_that_fails_fails_the_open_jobs_and_leaves_a_finished_copy_alone(app):
    """A waited-for job's copy is recognised while its status is read: a model that raises then
    must not turn the finished job into a failed one."""
    finished = queue_waited(app.runtime, b"digit:4")
    run_gathered(app, [finished.to_dict()], "w1")
    fresh = queue_waited(app.runtime, b"digit:5")
    model = app.runtime.model
    model.recognise_prepared = _failing(model.recognise_prepared, RuntimeError("model exploded"))
    run_gathered(app, [finished.to_dict(), fresh.to_dict()], "w2")
    jobs = app.runtime.store.jobs
    assert jobs[finished.job_id]["status"] == "done" and jobs[finished.job_id]["worker"] == "w1"
    assert jobs[fresh.job_id]["status"] == "failed" and "model exploded" in jobs[fresh.job_id]["error"]


def test_a_job_out_of_attempts_fails_with_every_attempts_error(app):
    message = queue(app.runtime, b"digit:3")
    store = app.runtime.store
    store.look_up = _failing(store.look_up)  # each attempt meets the outage; recording a failure does not
    raw, runs = message.to_dict(), 0
    while store.jobs[message.job_id]["status"] != "failed":
        run_gathered(app, [raw], "w1")
        raw, runs = app.sent[-1][1], runs + 1
        assert runs <= MAX_ATTEMPTS + 1, "the job was sent again past its attempts"
    assert runs == MAX_ATTEMPTS + 1 and len(app.sent) == MAX_ATTEMPTS
    assert app.sent[-1][1]["errors"] == ["StoreUnavailable: down for this call"] * MAX_ATTEMPTS
    error = store.jobs[message.job_id]["error"]
    assert error.startswith(
        f"gave up after {MAX_ATTEMPTS + 1} attempts (1: StoreUnavailable: down for this call; 2: "
    )
    assert error.count("StoreUnavailable") == MAX_ATTEMPTS + 1


def test_a_job_its_pool_process_died_under_says_so_when_it_runs_out(app):
    message = queue(app.runtime, b"digit:3")
    send_all_again(app, [LostRequest(message)])
    ((_, again, _),) = app.sent
    spent = dataclasses.replace(JobMessage.from_dict(again), attempt=MAX_ATTEMPTS + 1)
    run_gathered(app, [spent.to_dict()], "w1")
    assert "1: its worker process died while it ran" in app.runtime.store.jobs[message.job_id]["error"]


def test_a_chunk_out_of_attempts_fails_its_jobs_with_every_attempts_error(tmp_path):
    """The chunk task itself, run in this process (Celery's eager apply runs each retry at once;
    a retry's task is looked up in the current app, made this one for the test)."""
    settings = Settings.from_env({}, image_dir=tmp_path)
    celery = create_celery(settings)
    runtime = celery.__dict__["runtime"] = FakeRuntime(settings, VolumeImageStore(tmp_path))
    (work,), _ = upload(runtime, [b"digit:1", b"digit:2"])
    runtime.store.start_work = _failing(runtime.store.start_work)  # each attempt meets the outage
    was = celery_state.get_current_app()
    celery.set_current()
    try:
        result = celery.tasks[TASK_RECOGNISE_CHUNK].apply(args=[[m.to_dict() for m in work.stamped()]])
    finally:
        was.set_current()
    assert result.state == "FAILURE"
    for m in work.messages:
        row = runtime.store.jobs[m.job_id]
        assert row["status"] == "failed" and row["error"].startswith(
            f"gave up after {MAX_ATTEMPTS + 1} attempts (1: "
        )
        assert row["error"].count("StoreUnavailable: down for this call") == MAX_ATTEMPTS + 1
