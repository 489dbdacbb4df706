"""The Cassandra schema: one table per query, created idempotently by `recog schema`.

CQL here runs on Cassandra 2.1 (local stack) and 5.0 (compose): no date/smallint types, no JSON,
no materialized views.
"""

from __future__ import annotations

from cassandra.cluster import Session

from shared.settings import Settings, replication_options

TABLES = (
    # The job by id: what GET /v1/jobs/<id> reads.
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id uuid PRIMARY KEY,
        status text,
        filename text,
        sha256 text,
        size_bytes int,
        image_format text,
        width int,
        height int,
        model_name text,
        model_version text,
        label text,
        confidence double,
        probabilities list<double>,
        reason text,
        error text,
        worker text,
        created_at timestamp,
        started_at timestamp,
        finished_at timestamp,
        queue_ms double,
        inference_ms double,
        batch_size int
    )""",
    # Every recognition, by the UTC hour it finished in ('2026-11-21T14'): cqlsh reads one hour
    # without a scan, and a partition holds at most an hour of results.
    """CREATE TABLE IF NOT EXISTS predictions_by_hour (
        hour text,
        finished_at timestamp,
        job_id uuid,
        status text,
        label text,
        confidence double,
        reason text,
        error text,
        model_name text,
        model_version text,
        sha256 text,
        filename text,
        worker text,
        PRIMARY KEY ((hour), finished_at, job_id)
    ) WITH CLUSTERING ORDER BY (finished_at DESC, job_id ASC)""",
)


def keyspace_cql(settings: Settings) -> str:
    options = replication_options(settings.cassandra_replication)
    # Identifiers and replication options cannot be bound; both come from validated settings.
    rendered = ", ".join(f"'{k}': '{v}'" for k, v in options.items())
    return f"CREATE KEYSPACE IF NOT EXISTS {settings.cassandra_keyspace} WITH replication = {{{rendered}}}"


def create_schema(session: Session, settings: Settings) -> None:
    session.execute(keyspace_cql(settings), timeout=30)
    session.set_keyspace(settings.cassandra_keyspace)
    for cql in TABLES:
        session.execute(cql, timeout=30)
