"""sweep() on a MemoryStore with a recording send: what is sent again, and what is left alone."""

import uuid
from datetime import timedelta

import pytest

from shared.jobs import NewJob, minute_bucket, utcnow
from shared.messaging import JobMessage, Work
from shared.store import StoreUnavailable
from tests.fakes import MemoryStore
from workers.sweeper import STATUSES_AT_ONCE, sweep

LEASE = timedelta(seconds=30)
NOW = utcnow().replace(second=30, microsecond=0)


def open_work(store: MemoryStore, age: timedelta, jobs: int = 1, chunk: bool = False) -> Work:
    """Work recorded as the gateway records it, sent `age` ago."""
    created = NOW - age
    batch = uuid.uuid4() if chunk else None
    messages = tuple(
        JobMessage(uuid.uuid4(), "ab" * 32, f"{n}.png", "digits", created, batch) for n in range(jobs)
    )
    work = Work(messages[0].job_id if not chunk else uuid.uuid4(), messages, chunk, created)
    store.insert_jobs(
        [NewJob(m.job_id, m.filename, m.sha256, 1, "PNG", 1, 1, "digits", created, batch) for m in messages],
        [work],
    )
    return work


def run(store, sent, queued=0, now=NOW, look_back_hours=24, chunks_queued=None):
    """queued: the singles queue's length; chunks_queued: the bulk queue's (default: the same)."""
    lengths = {False: queued, True: queued if chunks_queued is None else chunks_queued}
    return sweep(store, sent.append, lengths.__getitem__, LEASE, look_back_hours, now=now)


def test_lost_work_is_sent_again_once_and_recorded_as_sent():
    store, sent = MemoryStore(), []
    lost = open_work(store, timedelta(minutes=3))
    assert run(store, sent).resent_work == 1
    assert [w.work_id for w in sent] == [lost.work_id] and sent[0].sent_at == NOW and sent[0].resent
    assert run(store, sent, now=NOW + timedelta(seconds=15)).resent_work == 0
    assert len(sent) == 1, "work just sent again waits a whole lease before the next"


def test_work_sent_less_than_a_lease_ago_is_left_alone():
    store, sent = MemoryStore(), []
    open_work(store, timedelta(seconds=20))
    assert run(store, sent).resent_work == 0 and sent == []


def test_work_a_live_worker_holds_is_left_alone_until_its_lease_is_gone():
    store, sent = MemoryStore(), []
    held = open_work(store, timedelta(minutes=10))
    store.renew_lease("w1/abc", [held.work_id], {}, 30)
    assert run(store, sent).resent_work == 0
    del store.lease_rows["w1/abc"]  # the worker was SIGKILLed: its lease expired
    assert run(store, sent).resent_work == 1 and sent[0].work_id == held.work_id


def test_work_still_waiting_in_its_queue_is_left_alone_until_a_worker_reads_past_it():
    store, sent = MemoryStore(), []
    waiting = open_work(store, timedelta(minutes=10))
    assert run(store, sent, queued=500).resent_work == 0, "no worker has read anything yet"
    store.renew_lease("w1/abc", [], {"single": NOW - timedelta(minutes=10)}, 30)
    assert run(store, sent, queued=500).resent_work == 0, "the worker reads sends of its time"
    store.renew_lease("w1/abc", [], {"single": NOW - timedelta(minutes=5)}, 30)
    assert run(store, sent, queued=500).resent_work == 1 and sent[0].work_id == waiting.work_id


def test_a_newer_read_of_the_other_queue_says_nothing_about_this_one():
    store, sent = MemoryStore(), []
    open_work(store, timedelta(minutes=10))
    store.renew_lease("w1/abc", [], {"chunk": NOW}, 30)
    assert run(store, sent, queued=500).resent_work == 0


def test_an_empty_bulk_queue_says_nothing_about_singles_waiting():
    store, sent = MemoryStore(), []
    single = open_work(store, timedelta(minutes=10))
    chunk = open_work(store, timedelta(minutes=10), jobs=3, chunk=True)
    assert run(store, sent, queued=500, chunks_queued=0).resent_work == 1
    assert [w.work_id for w in sent] == [chunk.work_id] and single.work_id not in {w.work_id for w in sent}


def test_held_or_waiting_work_keeps_its_minute_unsettled():
    store, sent = MemoryStore(), []
    held = open_work(store, timedelta(minutes=20))
    store.renew_lease("w1/abc", [held.work_id], {}, 30)
    run(store, sent)
    assert minute_bucket(held.sent_at) not in store.settled


def test_a_look_back_over_several_days_reads_each_days_settled_minutes():
    store, sent = MemoryStore(), []
    days_read = []
    store.settled_minutes = lambda day: days_read.append(day) or set()
    now = NOW.replace(hour=12, minute=0)
    sweep(store, sent.append, lambda chunk: 0, LEASE, 72, now=now)
    assert days_read == sorted({(now - timedelta(days=n)).strftime("%Y-%m-%d") for n in range(4)})


def test_only_the_unfinished_jobs_of_a_chunk_go_again_as_one_chunk():
    store, sent = MemoryStore(), []
    work = open_work(store, timedelta(minutes=3), jobs=5, chunk=True)
    for m in work.messages[:3]:
        store.jobs[m.job_id]["status"] = "done"
    report = run(store, sent)
    assert (report.resent_work, report.resent_jobs) == (1, 2)
    assert sent[0].chunk and [m.job_id for m in sent[0].messages] == [m.job_id for m in work.messages[3:]]
    row = store.open[minute_bucket(work.sent_at)][work.work_id]
    assert (
        row["sent_at"] == NOW.replace(tzinfo=None)
        and len(store.work_messages(minute_bucket(work.sent_at), [work.work_id])[work.work_id]) == 2
    )


class ReadRecordingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.minutes_read: list[str] = []

    def open_work(self, minute):
        self.minutes_read.append(minute)
        return super().open_work(minute)


def test_a_finished_minute_is_settled_and_never_read_again():
    store, sent = ReadRecordingStore(), []
    work = open_work(store, timedelta(minutes=20))
    minute = minute_bucket(work.sent_at)
    store.jobs[work.messages[0].job_id]["status"] = "done"
    run(store, sent)
    assert minute in store.settled and minute in store.minutes_read and sent == []
    store.minutes_read.clear()
    run(store, sent)
    assert minute not in store.minutes_read and store.minutes_read, "newer minutes are still read"


class SettleRecordingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.settles: list[list[str]] = []

    def settle(self, minutes):
        self.settles.append(list(minutes))
        super().settle(minutes)


def test_a_fresh_stores_empty_look_back_is_settled_in_one_call():
    """A write a minute cost Cassandra 1.2 s more CPU on a fresh store's first sweep (1,440 minutes)."""
    store = SettleRecordingStore()
    report = run(store, [], look_back_hours=2)
    old_enough = [m for m in store.settles[0] if m <= minute_bucket(NOW - LEASE - timedelta(minutes=6))]
    assert len(store.settles) == 1 and report.minutes_read > 100
    assert len(old_enough) == len(store.settles[0]) > 100 and set(store.settles[0]) <= store.settled


class SettleFailingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.settle_down = True

    def settle(self, minutes):
        if self.settle_down:
            raise StoreUnavailable("WriteTimeout")
        super().settle(minutes)


def test_minutes_a_failed_settle_left_are_settled_by_a_later_pass():
    store, sent, ended = SettleFailingStore(), [], {}
    work = open_work(store, timedelta(minutes=20))
    store.jobs[work.messages[0].job_id]["status"] = "done"
    minute = minute_bucket(work.sent_at)
    first = sweep(store, sent.append, lambda chunk: 0, LEASE, 2, now=NOW, ended=ended)
    assert minute in first.failed_minutes and minute not in store.settled and ended[minute] == {work.work_id}
    store.settle_down = False
    again = sweep(store, sent.append, lambda chunk: 0, LEASE, 2, now=NOW, ended=ended)
    assert minute in store.settled and not again.failed_minutes and minute not in ended and sent == []


def test_a_minute_is_not_settled_while_a_late_write_could_still_land_in_it():
    store, sent = MemoryStore(), []
    work = open_work(store, timedelta(minutes=2))
    store.jobs[work.messages[0].job_id]["status"] = "done"
    run(store, sent)
    assert minute_bucket(work.sent_at) not in store.settled


def test_work_older_than_the_look_back_is_not_read():
    store, sent = MemoryStore(), []
    open_work(store, timedelta(hours=30))
    recent = open_work(store, timedelta(hours=3))
    assert run(store, sent).resent_work == 1 and sent[0].work_id == recent.work_id


def test_an_unreadable_row_does_not_stop_the_others_of_its_minute():
    store, sent = MemoryStore(), []
    stuck = open_work(store, timedelta(minutes=3))
    lost = open_work(store, timedelta(minutes=3))
    store.open[minute_bucket(stuck.sent_at)][stuck.work_id]["messages"] = "{not json"
    assert run(store, sent).resent_work == 1 and sent[0].work_id == lost.work_id


class MessagesRecordingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.messages_of: list[uuid.UUID] = []

    def work_messages(self, minute, work_ids):
        self.messages_of.extend(work_ids)
        return super().work_messages(minute, work_ids)


def test_only_the_messages_of_work_due_to_be_sent_again_are_read_and_those_once():
    """A minute of bulk work holds 10,000 messages and more, swept every 15 s until it settles:
    not yet due (sent less than a lease ago, or held by a live worker), or found ended before, its
    rows' messages are not read."""
    store, sent, ended = MessagesRecordingStore(), [], {}
    recent = open_work(store, timedelta(seconds=20), jobs=3, chunk=True)
    held = open_work(store, timedelta(minutes=3), jobs=3, chunk=True)
    store.renew_lease("w1", [held.work_id], {}, 30)
    done = open_work(store, timedelta(minutes=3), jobs=3, chunk=True)
    for m in done.messages:
        store.jobs[m.job_id]["status"] = "done"

    def swept():
        return sweep(store, sent.append, lambda chunk: 0, LEASE, 24, now=NOW, ended=ended)

    first = swept()
    assert store.messages_of == [done.work_id] and first.messages_read == 3 and sent == []
    assert recent.work_id not in store.messages_of and held.work_id not in store.messages_of
    store.messages_of.clear()
    again = swept()
    assert store.messages_of == [] and again.messages_read == 0 and again.rows_read == 2


class FlakyMinuteStore(MemoryStore):
    """A minute whose read fails, as a partition over the tombstone limit fails in Cassandra."""

    def __init__(self, bad_minutes: set[str]) -> None:
        super().__init__()
        self.bad_minutes = bad_minutes

    def open_work(self, minute):
        if minute in self.bad_minutes:
            raise StoreUnavailable("ReadFailure: tombstone_failure_threshold")
        return super().open_work(minute)


def test_one_failing_minute_does_not_stop_the_newer_ones():
    old = NOW - timedelta(minutes=9)
    store, sent = FlakyMinuteStore({minute_bucket(old)}), []
    open_work(store, timedelta(minutes=9))
    lost = open_work(store, timedelta(minutes=3))
    report = run(store, sent)
    assert report.failed_minutes == [minute_bucket(old)]
    assert [w.work_id for w in sent] == [lost.work_id]


def test_a_store_that_fails_minute_after_minute_stops_the_sweep():
    minutes = {minute_bucket(NOW - timedelta(minutes=n)) for n in range(1, 30)}
    store = FlakyMinuteStore(minutes)
    with pytest.raises(StoreUnavailable):
        run(store, [], look_back_hours=1)
    # Swept oldest first: the empty minutes before the failing ones were found settled, and are.
    assert store.settled and not store.settled & minutes


class LookUpRecordingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.look_ups: list[int] = []

    def look_up(self, job_ids, recall_keys):
        self.look_ups.append(len(job_ids))
        return super().look_up(job_ids, recall_keys)


def test_statuses_are_read_a_slice_at_a_time():
    """Thousands of reads at once would queue every other request to Cassandra behind them."""
    store, sent = LookUpRecordingStore(), []
    work = open_work(store, timedelta(minutes=3), jobs=600, chunk=True)
    for m in work.messages:
        store.jobs[m.job_id]["status"] = "done"
    report = run(store, sent)
    assert report.statuses_read == 600 and sent == []
    assert sum(store.look_ups) == 600 and len(store.look_ups) > 1 and max(store.look_ups) <= STATUSES_AT_ONCE
