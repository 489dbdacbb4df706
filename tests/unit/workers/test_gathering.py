"""GatheredBatches' flushing, against a pool that only records what it is handed: when a batch
goes to the pool, how gathered jobs are split, and what frees a pool process. The real worker's
behaviour is tests/integration/test_gathering.py; this covers the edges a real pool does not
produce on demand (a pool closing, a batch whose result never comes, one dropped from the pool's
queue: that one's real case is tests/integration/test_broker_restart.py)."""

from types import SimpleNamespace

from celery import Celery

from workers import gathering
from workers.gathering import GatheredBatches


class RecordedResult:
    def __init__(self, requests, callback, error_callback) -> None:
        self.requests, self.callback, self.error_callback = requests, callback, error_callback
        self.done = self.taken = False

    def ready(self) -> bool:
        return self.done

    def accepted(self) -> bool:
        return self.taken

    def succeed(self) -> None:
        self.done = True
        self.callback(None)

    def die(self) -> None:
        self.done = True
        self.error_callback(RuntimeError("killed"))


class RecordingPool:
    def __init__(self, closing: bool = False) -> None:
        self.handed: list[RecordedResult] = []
        self.closing = closing

    def apply_async(self, fn, args, callback, error_callback):
        if self.closing:
            return None
        simple_requests = args[1][0]
        result = RecordedResult(simple_requests, callback, error_callback)
        self.handed.append(result)
        return result


def request(n: int):
    acknowledged = []
    return SimpleNamespace(
        id=f"r{n}",
        name="recog.recognise",
        _payload=((n,), {}, {}),
        delivery_info={},
        hostname="worker",
        reply_to=None,
        correlation_id=None,
        request_dict={},
        eta=None,
        acknowledged=acknowledged,
        acknowledge=lambda: acknowledged.append(True),
    )


def gatherer(pool: RecordingPool, slots: int = 2, max_batch: int = 3) -> GatheredBatches:
    app = Celery("gathering-test")
    app.conf.task_time_limit = 300

    @app.task(base=GatheredBatches, name="gathered", flush_every=max_batch)
    def gathered(requests):
        pass

    gathered._pool, gathered._slots = pool, slots
    return gathered


def gather(task: GatheredBatches, *ns: int) -> list:
    requests = [request(n) for n in ns]
    for r in requests:
        task._buffer.put(r)
    task._do_flush()
    return requests


def sizes(pool: RecordingPool) -> list[int]:
    return [len(result.requests) for result in pool.handed]


def test_a_batch_goes_to_a_free_process_at_once_and_waits_while_every_process_is_busy():
    pool = RecordingPool()
    task = gatherer(pool)
    first = gather(task, 1)
    gather(task, 2)
    assert sizes(pool) == [1, 1], "each found a process free"
    gather(task, 3, 4, 5, 6, 7)
    assert sizes(pool) == [1, 1], "both processes busy: the five wait, gathering"
    pool.handed[0].succeed()
    assert first[0].acknowledged == [True]
    assert sizes(pool) == [1, 1, 3, 2], "the five go at once, in pieces of at most max batch"
    assert [r.args[0] for r in pool.handed[2].requests + pool.handed[3].requests] == [3, 4, 5, 6, 7]


def test_a_dead_batch_is_sent_again_and_frees_its_process(monkeypatch):
    sent_again = []
    monkeypatch.setattr(gathering, "send_all_again", lambda app, requests: sent_again.append(requests))
    pool = RecordingPool()
    task = gatherer(pool)
    dead = gather(task, 1)
    gather(task, 2)
    gather(task, 3)
    pool.handed[0].die()
    assert sent_again == [dead]
    assert sizes(pool) == [1, 1, 1], "the waiting job took the dead batch's process"


def test_a_closing_pool_takes_nothing_and_counts_nothing():
    pool = RecordingPool(closing=True)
    task = gatherer(pool)
    gather(task, 1)
    gather(task, 2)
    gather(task, 3)
    assert task._in_flight == {}


def test_a_batch_with_no_result_past_the_time_limit_frees_its_process():
    pool = RecordingPool()
    task = gatherer(pool, slots=1)
    gather(task, 1)
    gather(task, 2)
    assert sizes(pool) == [1]
    stuck = pool.handed[0]
    task._in_flight[stuck] -= 300 + gathering.LOST_AFTER_LIMIT_SECONDS + 1
    task._do_flush()
    assert sizes(pool) == [1, 1] and stuck not in task._in_flight


class Timer:
    """The consumer's timer: what celery-batches and GatheredBatches arm on it."""

    def call_repeatedly(self, seconds, fn):
        return SimpleNamespace(cancel=lambda: None)


def consumer_starting(pool: RecordingPool):
    """What Strategy reads of a consumer as it starts (again, after the connection broke)."""
    pool.limit = 2
    return SimpleNamespace(
        pool=pool, hostname="worker", connection_errors=(), event_dispatcher=None, timer=Timer()
    )


def test_batches_the_pool_dropped_unstarted_stop_counting_when_the_consumer_starts_again(caplog):
    pool = RecordingPool()
    task = gatherer(pool)
    gather(task, 1)
    gather(task, 2)
    gather(task, 3)
    gather(task, 4)
    assert sizes(pool) == [1, 1], "both slots taken, 3 and 4 gathered"
    running, dropped = pool.handed
    running.taken = True  # a process had taken it; the other sat in the pool's queue
    task.Strategy(task, task.app, consumer_starting(pool))
    assert running in task._in_flight and dropped not in task._in_flight
    assert "1 gathered batches no pool process had taken were dropped" in caplog.text
    task._do_flush()
    assert [r.args[0] for r in pool.handed[2].requests] == [3, 4], "the waiting jobs took its slot"
    running.succeed()
    assert list(task._in_flight) == [pool.handed[2]]


def test_a_finished_batch_whose_callback_is_still_due_is_left_to_it():
    pool = RecordingPool()
    task = gatherer(pool)
    gather(task, 1)
    finished = pool.handed[0]
    finished.done = True  # its result came before its acceptance was read
    task.Strategy(task, task.app, consumer_starting(pool))
    assert list(task._in_flight) == [finished]
