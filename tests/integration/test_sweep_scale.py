"""The sweeper's cost follows the open work, not the finished: 200,000 finished jobs on the real
Cassandra, in a keyspace of the test's own, and a sweep afterwards reads no more than before."""

import time
import uuid
from datetime import timedelta

import pytest
from cassandra.concurrent import execute_concurrent_with_args

from shared.jobs import DONE, utcnow
from shared.messaging import JobMessage, Work
from shared.store import statements as cql
from shared.store.cassandra_results import CassandraStore
from shared.store.schema import create_schema
from shared.store.session import connect
from workers.sweeper import sweep

FINISHED_JOBS = 200_000
CHUNK = 64
MINUTES = 50  # spread over the minutes from 70 to 21 minutes ago
KEYSPACE = "recognition_sweep_scale"
LEASE = timedelta(seconds=30)


@pytest.fixture
def scale_store(stack):
    settings = stack.settings.replace(cassandra_keyspace=KEYSPACE)
    cluster, session = connect(settings)
    session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    create_schema(session, settings)
    store = CassandraStore.open(settings)
    yield store
    store.close()
    session.execute(f"DROP KEYSPACE IF EXISTS {KEYSPACE}", timeout=120)
    cluster.shutdown()


def timed_sweep(store, now) -> tuple[float, object]:
    started = time.perf_counter()
    never_lost = lambda work: pytest.fail(f"work {work.work_id} sent again; every job here is final")  # noqa: E731
    report = sweep(store, never_lost, lambda chunk: 0, LEASE, 24, now=now)
    return time.perf_counter() - started, report


def write_finished_work(store: CassandraStore, now) -> None:
    """What the gateway and the workers leave after 200,000 jobs: open work and final job rows."""
    work_rows, job_rows = [], []
    for n in range(FINISHED_JOBS // CHUNK):
        sent = now - timedelta(minutes=21 + n * MINUTES * CHUNK // FINISHED_JOBS)
        messages = tuple(
            JobMessage(uuid.uuid4(), "ab" * 32, f"{i}.png", "digits", sent) for i in range(CHUNK)
        )
        work = Work(uuid.uuid4(), messages, True, sent)
        work_rows.append(store._work_values(work))
        job_rows.extend((m.job_id, DONE) for m in messages)
    session = store.session
    insert_work = session.prepare(cql.OPEN_WORK)
    insert_job = session.prepare("INSERT INTO jobs (job_id, status) VALUES (?, ?)")
    # Well under what one connection takes in flight: at 200 the driver once refused with
    # ConnectionBusy ("overloaded") while the rest of the suite shared the session's host.
    for statement, rows in ((insert_work, work_rows), (insert_job, job_rows)):
        for result in execute_concurrent_with_args(session, statement, rows, concurrency=64):
            assert result.success, result.result_or_exc


@pytest.mark.timeout(400)  # writing and settling 200,000 jobs took 90 s here
@pytest.mark.parametrize("stack", ["volume"], indirect=True)  # the store backend plays no part
def test_sweep_cost_stays_flat_with_200000_finished_jobs(stack, scale_store):
    log = stack.log("cassandra")
    log_start = log.stat().st_size
    now = utcnow()
    before = now - timedelta(hours=2)  # the baseline settles nothing the jobs are written into
    timed_sweep(scale_store, before)  # settles the day's empty minutes, once
    empty_seconds, empty = timed_sweep(scale_store, before)

    write_finished_work(scale_store, now)
    settling_seconds, settling = timed_sweep(scale_store, now)
    assert settling.rows_read == FINISHED_JOBS // CHUNK and settling.resent_work == 0
    full_seconds, full = timed_sweep(scale_store, now)

    print(
        f"\nsweep with no finished jobs: {empty_seconds * 1000:.0f} ms, {empty.minutes_read} minutes read;"
        f" settling {FINISHED_JOBS:,} finished jobs once: {settling_seconds:.1f} s;"
        f" then: {full_seconds * 1000:.0f} ms, {full.minutes_read} minutes, {full.rows_read} rows read"
    )
    assert full.rows_read == empty.rows_read == 0, "settled minutes are never read again"
    assert full.minutes_read == empty.minutes_read
    written = log.read_bytes()[log_start:].decode(errors="replace")
    warnings = [line for line in written.splitlines() if "tombstone" in line.lower()]
    assert not warnings, f"Cassandra warned about tombstones: {warnings[:3]}"
