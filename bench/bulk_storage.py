"""What bulk's results cost to store, row design by row design: how far from issue 12's bulk
target each promise recog keeps for a batch file puts it, measured before anyone changes one.

The worker's own pipeline, as `recog classify` runs it (model/local_files.py: the files read and
prepared in a pool of one process a core, a chunk of 256 ahead of one model call a chunk), over
`bench/throughput.py`'s 10,000 bulk images, with each chunk's results written to a Cassandra of
its own in each of these ways, alternated round by round:

- none: no store at all, the floor of any bulk path on this machine;
- today: what recog writes for a batch file (at intake its job row and its batch line; at the
  end its job row, audit row, batch line and cache row, 8 files to a logged batch): 3 writes a
  file in partitions of their own (the job row twice, the cache row once);
- no cache rows: the same less the cache row, so batch files are neither answered from nor
  added to the cache of repeated bytes;
- job row at the end: at intake the batch lines alone, the job row written once, whole, with the
  result, so a batch file's `GET /v1/jobs/<id>` answers 404 until it ends;
- job row at the end, no cache rows: both, one write a file in a partition of its own;
- per chunk: no row of a file's own at all, one logged batch a chunk of its batch lines and audit
  rows (the lines written as queued at intake): no job row for a batch file, no cache;
- job rows by part: per chunk, and each file's job row too, in a table keyed by the file's part
  of 64 (a table of this benchmark's own, `part_jobs`), so a batch file keeps a row of everything
  about it, found from its job id if the gateway made the id name its part (the part's id with
  the file's place in its last byte): no cache for batch files, and their rows move.

The gateway, Celery, Redis and the client are left out on purpose: this is what the rows alone
allow. Prints images/s and CPU ms an image (this process with its pool, and Cassandra), medians
of the rounds.

    .venv/bin/python bench/bulk_storage.py --json bench/bulk_storage.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cassandra.query import BatchType  # noqa: E402

from bench import process_cpu  # noqa: E402
from bench.own_cassandra import own_cassandra  # noqa: E402
from bench.throughput import STATE, make_folder  # noqa: E402
from devstack import processes  # noqa: E402
from model.local_files import CHUNK, recognise_files  # noqa: E402
from model.recogniser import Prediction, Recogniser, configure_threads  # noqa: E402
from shared.jobs import NewJob, Outcome, utcnow  # noqa: E402
from shared.parts import PART_FILES  # noqa: E402
from shared.settings import PROJECT_ROOT  # noqa: E402
from shared.store import statements as cql  # noqa: E402
from shared.store.cassandra_results import CassandraStore, finish_groups, finish_statements  # noqa: E402

WORKER = "bench"
CACHE_ROWS = {cql.REMEMBER_LABELLED, cql.REMEMBER_BLANK}
# The writes of a finished job in a partition of its own: its job row and its cache row.
PER_IMAGE = {
    cql.FINISH_LABELLED,
    cql.FINISH_BLANK,
    cql.FINISH_FAILED,
    cql.RECORD_UPLOAD,
    cql.RECORD_UPLOAD_STARTED,
    *CACHE_ROWS,
}
WAYS = (
    "none",
    "today",
    "no cache rows",
    "job row at the end",
    "job row at the end, no cache rows",
    "per chunk",
    "job rows by part",
)
# The table "job rows by part" writes to: a part's files' rows in one partition.
PART_JOBS = """CREATE TABLE IF NOT EXISTS part_jobs (
    part_id uuid, job_id uuid, filename text, sha256 text, size_bytes int, status text, label text,
    confidence double, probabilities list<double>, reason text, model_name text, model_version text,
    worker text, created_at timestamp, finished_at timestamp, PRIMARY KEY ((part_id), job_id))"""
INSERT_PART_JOB = """INSERT INTO part_jobs (part_id, job_id, filename, sha256, size_bytes, status, created_at)
    VALUES (?, ?, ?, ?, ?, ?, ?)"""
FINISH_PART_JOB = """UPDATE part_jobs SET status = ?, label = ?, confidence = ?, probabilities = ?,
    reason = ?, model_name = ?, model_version = ?, worker = ?, finished_at = ?
    WHERE part_id = ? AND job_id = ?"""


def run(store: CassandraStore, how: str, recogniser: Recogniser, files: list[Path]) -> int:
    """Recognise every file, storing each chunk's results the named way; the files read right."""
    batch_id, right, chunk = uuid.uuid4(), 0, []
    for path, result in recognise_files(recogniser, files, 16_000_000):
        chunk.append((path, result))
        if len(chunk) == CHUNK:
            right += _store(store, how, batch_id, recogniser, chunk)
            chunk = []
    if chunk:
        right += _store(store, how, batch_id, recogniser, chunk)
    return right


def _store(store: CassandraStore, how: str, batch_id: uuid.UUID, recogniser: Recogniser, chunk: list) -> int:
    now = utcnow()
    info = recogniser.info
    jobs, outcomes = [], []
    parts = [uuid.UUID(int=uuid.uuid4().int & ~0xFF) for _ in range(0, len(chunk), PART_FILES)]
    for n, (path, result) in enumerate(chunk):
        data = path.read_bytes()  # the gateway hashed it at intake; every design records the hash
        job = NewJob(
            uuid.UUID(int=parts[n // PART_FILES].int | n % PART_FILES),
            path.name,
            hashlib.sha256(data).hexdigest(),
            len(data),
            "PNG",
            0,
            0,
            info.name,
            now,
            batch_id,
        )
        labelled = isinstance(result, Prediction) and result.label is not None
        jobs.append(job)
        outcomes.append(
            Outcome(
                job.job_id,
                job.sha256,
                job.filename,
                WORKER,
                now,
                label=str(result.label) if labelled else None,
                confidence=result.confidence if labelled else None,
                probabilities=list(result.probabilities) if labelled else [],
                reason=None if labelled else "no digit",
                model_name=info.name,
                model_version=info.version,
                batch_id=batch_id,
            )
        )
    right = sum(1 for path, o in zip(chunk, outcomes, strict=True) if o.label == _label(path[0]))
    if how == "none":
        return right
    if how in ("today", "no cache rows"):
        store.insert_jobs(jobs)
    else:
        queued = [(cql.INSERT_BATCH_ROW, (batch_id, j.filename, j.job_id, "queued")) for j in jobs]
        store.session.execute(store.cql_batch(queued, BatchType.UNLOGGED))  # one partition: atomic
    if how.startswith("job row at the end"):
        for job, o in zip(jobs, outcomes, strict=True):
            o.created_at = job.created_at  # the job row's own columns, written with its result
            o.upload = {k: getattr(job, k) for k in ("size_bytes", "image_format", "width", "height")}
            o.upload["model_name"] = job.model_name
    if how == "job rows by part":
        rows = [
            (INSERT_PART_JOB, (_part(j.job_id), j.job_id, j.filename, j.sha256, j.size_bytes, "queued", now))
            for j in jobs
        ]
        for start in range(0, len(rows), PART_FILES):  # a part's rows: one partition, atomic
            store.session.execute(store.cql_batch(rows[start : start + PART_FILES], BatchType.UNLOGGED))
    if how in ("per chunk", "job rows by part"):
        shared = [s for o in outcomes for s in _kept(o, PER_IMAGE)]
        if how == "job rows by part":
            shared += [_part_job_result(o) for o in outcomes]
        store.session.execute(store.cql_batch(shared))
    else:
        dropped = CACHE_ROWS if how.endswith("no cache rows") else set()
        groups = [[s for o in g for s in _kept(o, dropped)] for g in finish_groups(outcomes)]
        for future in [store.session.execute_async(store.cql_batch(g)) for g in groups]:
            future.result()
    return right


def _kept(o: Outcome, dropped: set[str]) -> list[tuple[str, tuple]]:
    """The writes CassandraStore.finish makes for a finished job, less the dropped statements."""
    return [s for s in finish_statements(o) if s[0] not in dropped]


def _part(job_id: uuid.UUID) -> uuid.UUID:
    return uuid.UUID(int=job_id.int & ~0xFF)


def _part_job_result(o: Outcome) -> tuple[str, tuple]:
    model = (o.model_name, o.model_version, o.worker, o.finished_at)
    return FINISH_PART_JOB, (
        "done",
        o.label,
        o.confidence,
        o.probabilities,
        o.reason,
        *model,
        _part(o.job_id),
        o.job_id,
    )


def _label(path: Path) -> str:
    return path.stem.rsplit("-", 1)[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    folder = STATE / f"folder-{args.images}"
    make_folder(folder, args.images, PROJECT_ROOT / ".recog" / "cache" / "training")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
    settings, stack = own_cassandra("bench-bulk-storage", 29152, 27110)
    configure_threads(2)
    recogniser = Recogniser(settings.models_dir, settings.model)
    ways = WAYS
    rates: dict[str, list[float]] = {how: [] for how in ways}
    cpu: dict[str, dict[str, list[float]]] = {how: {"pipeline": [], "cassandra": []} for how in ways}
    accuracy: dict[str, float] = {}
    try:
        stack.start_cassandra()
        stack.create_schema()
        store = CassandraStore.open(settings)
        store.session.execute(PART_JOBS)
        for how in ways:  # Cassandra's first writes of each kind cost more: warm them
            run(store, how, recogniser, files[:500])
        for _ in range(args.rounds):  # alternated, so drift on a shared machine hits each alike
            for how in ways:
                before, mine = process_cpu.snapshot(stack.run_dir), _own_cpu(stack.run_dir)
                started = time.perf_counter()
                right = run(store, how, recogniser, files)
                rates[how].append(len(files) / (time.perf_counter() - started))
                cost = process_cpu.cost_per_image(before, process_cpu.snapshot(stack.run_dir), len(files))
                cpu[how]["pipeline"].append(round((_own_cpu(stack.run_dir) - mine) * 1000 / len(files), 3))
                cpu[how]["cassandra"].append(cost.get("cassandra", 0.0))
                accuracy[how] = round(right / len(files), 4)
        store.close()
    finally:
        stack.down()
    floor = statistics.median(rates["none"])
    heads = ("images/s", "of none", "pipeline CPU ms/img", "Cassandra")
    print(f"\n{'results stored':34s} {heads[0]:>9s} {heads[1]:>8s} {heads[2]:>20s} {heads[3]:>10s}")
    for how in ways:
        rate = statistics.median(rates[how])
        pipeline, cassandra = (statistics.median(cpu[how][part]) for part in ("pipeline", "cassandra"))
        print(f"{how:34s} {rate:9.0f} {rate / floor:8.0%} {pipeline:20.2f} {cassandra:10.2f}")
    print(f"accuracy: {accuracy}")
    if args.json:
        result = {
            "images": len(files),
            "rounds": args.rounds,
            "images_per_second": rates,
            "cpu_ms_per_image": cpu,
        }
        args.json.write_text(json.dumps({**result, "accuracy": accuracy}, indent=2) + "\n")


def _own_cpu(run_dir: Path) -> float:
    """CPU seconds of this process and of its children with theirs (the pool's processes are the
    fork server's children, reaped by it when each run shuts its pool down), Cassandra apart."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    cassandra = processes.running_pid(run_dir, "cassandra")
    ticks = 0
    for proc in Path("/proc").iterdir():
        fields = (
            process_cpu.stat_fields(proc) if proc.name.isdigit() and proc.name != str(cassandra) else None
        )
        if fields is not None and int(fields[1]) == os.getpid():  # ppid
            ticks += sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    return me.ru_utime + me.ru_stime + ticks / process_cpu.TICK


if __name__ == "__main__":
    main()
