"""A worker's status read on the real Cassandra: one request asks for many jobs (an IN of their
ids), so its answer must still be each job's own status, whatever the request holds."""

import uuid

from shared.jobs import DONE, FAILED, QUEUED, RUNNING
from shared.store import statements as cql
from shared.store.cassandra_results import STATUS_KEYS


def requests_sent(store, monkeypatch) -> list[tuple[str, tuple]]:
    """(CQL, values) of each request the store sends from now on, still sent."""
    requests = []
    run_async = store._cql.run_async
    monkeypatch.setattr(
        store._cql,
        "run_async",
        lambda text, values: requests.append((text, values)) or run_async(text, values),
    )
    return requests


def test_statuses_read_together_are_each_jobs_own_also_past_one_requests_worth(store, monkeypatch):
    """More ids than one request takes, a few of them twice, some with no row at all (a waited-for
    job whose worker writes its row): each id asked for once, STATUS_KEYS to a request."""
    states = (QUEUED, RUNNING, DONE, FAILED)
    written = {uuid.uuid4(): states[n % len(states)] for n in range(STATUS_KEYS + 7)}
    insert = store.session.prepare("INSERT INTO jobs (job_id, status) VALUES (?, ?)")
    for job_id, status in written.items():
        store.session.execute(insert, (job_id, status))
    unknown = [uuid.uuid4() for _ in range(5)]
    requests = requests_sent(store, monkeypatch)

    statuses, recalled = store.look_up([*written, *unknown, *list(written)[:3]], [])

    assert statuses == written and recalled == []
    assert [(text, len(values[0])) for text, values in requests] == [
        (cql.SELECT_STATUSES, STATUS_KEYS),
        (cql.SELECT_STATUSES, len(written) + len(unknown) - STATUS_KEYS),
    ]
    asked = [job_id for _, values in requests for job_id in values[0]]
    assert sorted(asked) == sorted([*written, *unknown])


def test_a_lone_jobs_status_is_read_on_its_own(store, monkeypatch):
    """Not as an IN: a cluster routes a single-key read to the job's own replicas."""
    job_id = uuid.uuid4()
    store.session.execute(
        store.session.prepare("INSERT INTO jobs (job_id, status) VALUES (?, ?)"), (job_id, DONE)
    )
    requests = requests_sent(store, monkeypatch)
    assert store.look_up([job_id, job_id], []) == ({job_id: DONE}, [])
    assert store.look_up([uuid.uuid4()], []) == ({}, [])
    assert [text for text, _ in requests] == [cql.SELECT_STATUS, cql.SELECT_STATUS]
