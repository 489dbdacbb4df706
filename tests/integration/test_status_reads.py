"""A worker's status read on the real Cassandra: one request asks for many jobs (an IN of their
ids), so its answer must still be each job's own status, whatever the request holds."""

import uuid

from shared.jobs import DONE, FAILED, QUEUED, RUNNING
from shared.store.cassandra_results import STATUS_KEYS


def test_statuses_read_together_are_each_jobs_own_also_past_one_requests_worth(store):
    """More ids than one request takes, a few of them twice, some with no row at all (a waited-for
    job whose worker writes its row)."""
    states = (QUEUED, RUNNING, DONE, FAILED)
    written = {uuid.uuid4(): states[n % len(states)] for n in range(STATUS_KEYS + 7)}
    insert = store.session.prepare("INSERT INTO jobs (job_id, status) VALUES (?, ?)")
    for job_id, status in written.items():
        store.session.execute(insert, (job_id, status))
    unknown = [uuid.uuid4() for _ in range(5)]

    statuses, recalled = store.look_up([*written, *unknown, *list(written)[:3]], [])

    assert statuses == written and recalled == []
    one = next(iter(written))
    assert store.look_up([one], []) == ({one: written[one]}, [])  # a lone job: a read of its own
    assert store.look_up([unknown[0]], []) == ({}, [])
